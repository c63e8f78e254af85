"""Comparing one customer's plan with what a case expects of it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from adapters.policytest.cases import (
    LADDER_KINDS,
    Expectation,
    Expected,
    ExpectedAction,
    ExpectedCredit,
    TestCase,
)
from dsl.diagnostics import Location
from engine.plan import Action
from engine.planner import CustomerPlan

# What each action kind does when nothing else is said.
_DEFAULT_DECISION = {
    "message": "send",
    "escalation": "escalate",
    "offer": "offer",
}


@dataclass(frozen=True)
class Failure:
    """One way a case's plan differs from what the case expects."""

    location: Location
    message: str

    def to_json(self) -> dict[str, Any]:
        at = self.location
        return {
            "path": at.path,
            "line": at.line,
            "column": at.column,
            "message": self.message,
        }


@dataclass(frozen=True)
class CaseResult:
    path: Path
    case: TestCase
    failures: tuple[Failure, ...]

    @property
    def passed(self) -> bool:
        return not self.failures


def check_plan(
    expectation: Expectation, plan: CustomerPlan, zone: str
) -> list[Failure]:
    """Every difference between one customer's plan and its expectation."""
    failures: list[Failure] = []
    shown = _Shown(ZoneInfo(zone))

    def compare(expected: Expected[Any] | None, got: Any, what: str) -> None:
        if expected is not None and expected.value != got:
            failures.append(
                Failure(
                    expected.location,
                    f"{what}: expected {shown(expected.value)}, got {shown(got)}",
                )
            )

    compare(expectation.segment, plan.segment, "segment")
    compare(expectation.score, plan.trace.score, "score")
    compare(expectation.grade, plan.trace.grade, "grade")
    if expectation.credit is not None:
        failures.extend(_check_credit(expectation.credit, plan, shown))
    if expectation.actions is not None:
        failures.extend(_check_actions(expectation, plan, shown))
    return failures


class _Shown:
    """Values as a failure message shows them: instants in the ruleset's
    zone, nothing as `nothing`."""

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone

    def __call__(self, value: Any) -> str:
        if value is None:
            return "nothing"
        if isinstance(value, dt.datetime):
            return value.astimezone(self.zone).isoformat(timespec="minutes")
        return str(value)

    def action(self, action: Action) -> str:
        parts = [action.step or action.kind]
        if action.invoice_ids:
            parts.append(f"invoice {','.join(action.invoice_ids)}")
        text = " ".join(parts) + f": {action.decision}"
        if action.channel:
            text += f" by {action.channel}"
        if action.window_start:
            text += f" from {self(action.window_start)}"
        reason = action_reason(action)
        return text + (f" ({reason})" if reason else "")


def _check_credit(
    expected: ExpectedCredit, plan: CustomerPlan, shown: _Shown
) -> list[Failure]:
    credit = [a for a in plan.actions if a.kind == "credit"]
    got = credit[0] if credit else None
    if expected.decision is None:
        if got is None:
            return []
        return [
            Failure(expected.location, f"credit: expected none, got {got.decision}")
        ]
    if got is None:
        return [
            Failure(
                expected.location,
                f"credit: expected {expected.decision}, got no credit action"
                f" ({_credit_state(plan)})",
            )
        ]
    failures = []
    if got.decision != expected.decision:
        failures.append(
            Failure(
                expected.location,
                f"credit: expected {expected.decision}, got {got.decision}",
            )
        )
    for name, amount in expected.amounts.items():
        value = got.details.get(name)
        if value != amount.value:
            failures.append(
                Failure(
                    amount.location,
                    f"credit {name}: expected {amount.value}, got {shown(value)}",
                )
            )
    return failures


def _credit_state(plan: CustomerPlan) -> str:
    credit = plan.trace.credit
    if credit is None:
        return "the ruleset has no credit rule"
    return f"exposure {credit['exposure']} within limit {credit['limit']}"


def action_reason(action: Action) -> str:
    """Why an action does nothing, in the plan's words."""
    why = action.why
    for key in ("suppressed_by", "reason", "error"):
        value = why.get(key)
        if isinstance(value, str):
            return value
    return ""


def _check_actions(
    expectation: Expectation, plan: CustomerPlan, shown: _Shown
) -> list[Failure]:
    assert expectation.actions is not None
    failures: list[Failure] = []
    unused = list(plan.actions)
    for expected in expectation.actions:
        candidates = [a for a in unused if _identifies(expected, a)]
        if not candidates:
            planned = [shown.action(a) for a in plan.actions if a.kind != "credit"]
            failures.append(
                Failure(
                    expected.location,
                    f"expected {expected.label()}, but the plan has none;"
                    f" planned: {'; '.join(planned) or 'nothing'}",
                )
            )
            continue
        scored = [(_differences(expected, a, shown), a) for a in candidates]
        differences, chosen = min(scored, key=lambda pair: len(pair[0]))
        unused.remove(chosen)
        failures.extend(
            Failure(location, f"{expected.label()}: {text}")
            for location, text in differences
        )

    if expectation.exact:
        where = expectation.actions_location or expectation.location
        failures.extend(
            Failure(where, f"unexpected action {shown.action(action)}")
            for action in unused
            if action.kind in LADDER_KINDS
        )
    return failures


def _identifies(expected: ExpectedAction, action: Action) -> bool:
    if expected.kind is not None and action.kind != expected.kind:
        return False
    if expected.kind is None and action.kind not in LADDER_KINDS:
        return False
    if expected.step is not None and action.step != expected.step:
        return False
    return (
        expected.invoices is None
        or tuple(sorted(action.invoice_ids)) == expected.invoices
    )


def _differences(
    expected: ExpectedAction, action: Action, shown: _Shown
) -> list[tuple[Location, str]]:
    found: list[tuple[Location, str]] = []
    decision = expected.decision
    if decision is None and expected.reason is None:
        decision = _DEFAULT_DECISION.get(action.kind)
    if decision is not None and action.decision != decision:
        reason = action_reason(action)
        found.append(
            (
                expected.location,
                f"decision: expected {decision}, got {action.decision}"
                + (f" ({reason})" if reason else ""),
            )
        )
    for bound, got, what in (
        (expected.channel, action.channel, "channel"),
        (expected.window_start, action.window_start, "window start"),
        (expected.window_end, action.window_end, "window end"),
    ):
        if bound is not None and bound.value != got:
            found.append(
                (
                    bound.location,
                    f"{what}: expected {shown(bound.value)}, got {shown(got)}",
                )
            )
    text = _message_text(action)
    for phrase in expected.contains:
        if _spaced(phrase.value) not in text:
            said = f"it says: {text!r}" if text else "it has no message"
            found.append(
                (phrase.location, f"message should contain {phrase.value!r}; {said}")
            )
    if expected.reason is not None:
        reason = action_reason(action)
        if expected.reason.value not in reason:
            found.append(
                (
                    expected.reason.location,
                    f"reason: expected {expected.reason.value!r},"
                    f" got {reason or 'no reason'!r}",
                )
            )
    return found


def _spaced(text: str) -> str:
    """Text with every kind of space as a plain space.

    Locale formatting puts no-break spaces inside amounts (`R$ 150,00`); a
    test written with an ordinary space still matches.
    """
    return " ".join(text.split())


def _message_text(action: Action) -> str:
    """Every text part of a rendered message (subject first), as one line."""
    message = action.message or {}
    parts = [message.get("subject"), message.get("body")]
    parts += [v for k, v in sorted(message.items()) if k not in ("subject", "body")]
    flat: list[str] = []
    for part in parts:
        if isinstance(part, str):
            flat.append(part)
        elif isinstance(part, list):
            flat.extend(str(item) for item in part)
    return _spaced(" ".join(flat))
