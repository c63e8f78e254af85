"""A readable trace of how one customer was planned.

For an analyst asking "why did (or didn't) this customer get a message?":
the invoices as of today, the history aggregates the policy used, score
points per characteristic, every segment rule tried, credit, each channel
and why it was rejected, every ladder step considered and what became of
it, and the resulting actions.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from engine.compiler import CompiledRuleset
from engine.formatting import LocaleFormatter, round_money
from engine.history import InvoiceState
from engine.plan import Action
from engine.planner import CustomerPlan, CustomerTrace, plan_customer
from engine.records import CustomerRecords

INDENT = "  "
SHOWN_DIGITS = 4


def explain_customer(
    compiled: CompiledRuleset,
    records: CustomerRecords,
    as_of: dt.datetime,
    *,
    since: dt.date | None = None,
) -> list[str]:
    """Plan one customer and describe every decision, one line each."""
    customer_plan = plan_customer(compiled, records, as_of, since=since)
    return describe(compiled, customer_plan)


def describe(compiled: CompiledRuleset, customer_plan: CustomerPlan) -> list[str]:
    trace = customer_plan.trace
    fmt = compiled.formatter
    lines = [
        f"customer {trace.customer_id}, ruleset {compiled.name}",
        f"as of {trace.now:%Y-%m-%d %H:%M %z} ({compiled.zone.key}); "
        f"steps from {trace.since} to {trace.today}",
    ]
    if trace.error is not None:
        lines.append(f"error: {trace.error}")
        lines.append("no other action is planned for this customer")
    lines += _invoices(trace, fmt)
    lines += _history(trace, fmt)
    lines += _score(trace)
    lines += _segment(trace, compiled)
    lines += _credit(trace, fmt)
    lines += _channels(trace)
    lines += _steps(trace)
    lines += _actions(customer_plan.actions)
    return lines


def _invoices(trace: CustomerTrace, fmt: LocaleFormatter) -> list[str]:
    lines = [f"invoices ({len(trace.invoices)}, {trace.open_invoices} open):"]
    lines += [INDENT + _invoice(state, fmt) for state in trace.invoices]
    if not trace.invoices:
        lines.append(INDENT + "none")
    return lines


def _invoice(state: InvoiceState, fmt: LocaleFormatter) -> str:
    due = f"due {state.due_date}"
    if state.due_effective != state.due_date:
        due += f" (rolled to {state.due_effective})"
    if state.is_open:
        condition = "open"
    elif state.settled is not None:
        condition = f"settled {state.settled}"
    else:
        condition = "closed"
    if state.status is not None:
        condition += f", status {state.status}"
    amounts = f"amount {fmt.money(state.amount)}, paid {fmt.money(state.amount_paid)}"
    if state.is_open:
        amounts += f", due now {fmt.money(state.amount_due)}"
    return f"{state.id}: {due}, {amounts}; {condition}; {state.days_late} days late"


def _history(trace: CustomerTrace, fmt: LocaleFormatter) -> list[str]:
    lines = [
        f"exposure {fmt.money(trace.exposure)} over {trace.open_invoices} "
        "open invoice(s)",
        "history used by the policy:",
    ]
    for name in sorted(trace.history):
        lines.append(f"{INDENT}history.{name} = {_value(trace.history[name])}")
    if not trace.history:
        lines.append(INDENT + "none")
    return lines


def _score(trace: CustomerTrace) -> list[str]:
    if trace.score is None:
        return ["score: the policy has no scorecard"]
    lines = [f"score {trace.score}, grade {trace.grade or '(none)'}:"]
    for line in trace.score_lines:
        band = f"band {line.band_label}" if line.band is not None else "in no band"
        lines.append(
            f"{INDENT}{line.characteristic} = {_value(line.value)}: {band}, "
            f"{line.points} points"
        )
    return lines


def _segment(trace: CustomerTrace, compiled: CompiledRuleset) -> list[str]:
    if trace.segment is None:
        head = "segment: none matched (no segment: no messages)"
    else:
        head = f"segment {trace.segment}:"
    lines = [head]
    for name, rule, matched in trace.segment_checks:
        verdict = "matched" if matched else "no"
        lines.append(f"{INDENT}{name}: {rule} -> {verdict}")
    for segment in compiled.segments[len(trace.segment_checks) :]:
        rule = segment.segment.when.source
        lines.append(f"{INDENT}{segment.name}: {rule} -> not tried (first match wins)")
    return lines


def _credit(trace: CustomerTrace, fmt: LocaleFormatter) -> list[str]:
    credit = trace.credit
    if credit is None:
        return ["credit: the policy sets no limit"]
    outcome = credit.get("decision", "within the limit")
    if not credit["exceeded"]:
        outcome = "within the limit"
    return [
        f"credit: limit {fmt.money(credit['limit'])} ({credit['rule']}), "
        f"exposure {fmt.money(credit['exposure'])}, "
        f"headroom {fmt.money(credit['headroom'])}: {outcome}"
    ]


def _channels(trace: CustomerTrace) -> list[str]:
    if not trace.channels:
        return ["channels: none considered"]
    lines = ["channels:"]
    lines += [f"{INDENT}{name}: {text}" for name, text in trace.channels.items()]
    return lines


def _steps(trace: CustomerTrace) -> list[str]:
    if not trace.steps:
        return ["steps: none considered"]
    lines = ["steps:"]
    ordered = sorted(trace.steps, key=lambda s: (s.invoice_id, s.day, s.step))
    for step in ordered:
        lines.append(
            f"{INDENT}{step.invoice_id} {step.ladder}/{step.step} ({step.at}) "
            f"on {step.day}: {step.outcome}"
        )
    return lines


def _actions(actions: list[Action]) -> list[str]:
    if not actions:
        return ["actions: none"]
    lines = [f"actions ({len(actions)}):"]
    for action in actions:
        lines.append(INDENT + _action(action))
        if action.message is not None:
            body = str(action.message.get("body", ""))
            lines.append(INDENT * 2 + "message: " + _one_line(body))
    return lines


def _action(action: Action) -> str:
    parts = [action.id, action.kind, action.decision]
    if action.step:
        parts.append(f"step {action.step}")
    if action.invoice_ids:
        parts.append("invoices " + ",".join(action.invoice_ids))
    if action.channel:
        parts.append(f"by {action.channel} to {action.address}")
    if action.window_start is not None and action.window_end is not None:
        parts.append(
            f"window {action.window_start:%Y-%m-%d %H:%M}-"
            f"{action.window_end:%H:%M} {action.window_start:%z}"
        )
    reason = action.why.get("reason") or action.why.get("suppressed_by")
    if reason:
        parts.append(f"({reason})")
    if action.details:
        parts.append(
            "details "
            + ", ".join(f"{k}={_value(v)}" for k, v in sorted(action.details.items()))
        )
    return " ".join(parts)


def _value(value: Any) -> str:
    if isinstance(value, Decimal):
        exponent = value.as_tuple().exponent
        if isinstance(exponent, int) and exponent < -SHOWN_DIGITS:
            # An average such as 10/3 has 28 digits; four say enough.
            return f"{round_money(value, SHOWN_DIGITS)}..."
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return str(value)


def _one_line(text: str) -> str:
    """Message copy on one line: line breaks shown as ⏎, so a value with a
    line break cannot pass for another line of the explanation."""
    return text.replace("\r", "").replace("\n", " ⏎ ")
