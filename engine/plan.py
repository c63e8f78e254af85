"""The plan: what to do, when, through which channel, and why.

A plan is written as canonical JSON Lines: one header line, then one line
per action, keys sorted, Decimals as strings, actions in a fixed total
order. The same ruleset, data and instant give the same bytes anywhere.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

PLAN_FORMAT = 1

# What an action is.
KINDS = ("message", "credit", "offer", "escalation")

# What became of it. Only "send" (messages), "flag"/"block" (credit),
# "offer" and "escalate" are things to do; the rest are recorded so that
# nothing disappears without a reason.
DECISIONS = (
    "send",  # a message to deliver inside its window
    "dropped",  # no open window and the policy says drop
    "unreachable",  # no channel of the step is usable
    "capped",  # over a frequency cap
    "suppressed",  # a suppression rule matched
    "combined",  # merged into another action of the same day
    "missed",  # its day passed without a run, beyond the catch-up grace
    "error",  # evaluating the policy failed for this record
    "held",  # a bad input record of the customer: nothing planned for them
    "flag",
    "block",
    "offer",
    "escalate",
)


@dataclass(frozen=True)
class Action:
    id: str
    kind: str
    decision: str
    customer_id: str
    invoice_ids: tuple[str, ...]
    segment: str | None
    step: str | None
    channel: str | None
    channel_kind: str | None
    address: str | None  # phone in E.164 or e-mail address
    due_date: dt.date | None  # the effective due date the step counts from
    window_start: dt.datetime | None  # aware, in the ruleset's time zone
    window_end: dt.datetime | None
    # {"body": ..., "subject": ..., "html": ..., channel-specific fields}
    message: dict[str, Any] | None
    cost: Decimal | None
    details: dict[str, Any] = field(default_factory=dict)  # credit, offer data
    why: dict[str, Any] = field(default_factory=dict)

    def sort_key(self) -> tuple[str, str, str, str, str, str]:
        start = self.window_start.isoformat() if self.window_start else ""
        return (
            self.customer_id,
            start,
            ",".join(self.invoice_ids),
            self.kind,
            self.step or "",
            self.id,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "decision": self.decision,
            "customer": self.customer_id,
            "invoices": list(self.invoice_ids),
            "segment": self.segment,
            "step": self.step,
            "channel": self.channel,
            "channel_kind": self.channel_kind,
            "address": self.address,
            "due_date": self.due_date,
            "window": (
                None
                if self.window_start is None
                else {"start": self.window_start, "end": self.window_end}
            ),
            "message": self.message,
            "cost": self.cost,
            "details": self.details,
            "why": self.why,
        }


def action_id(
    ruleset: str,
    kind: str,
    customer_id: str,
    invoice_ids: Iterable[str],
    step: str | None,
    due_date: dt.date | None,
    channel_kind: str | None,
) -> str:
    """The idempotency key of an action.

    It depends only on what identifies the reminder itself, never on copy,
    windows or other steps, so editing one template sends nothing twice.
    """
    parts = [
        ruleset,
        kind,
        customer_id,
        ",".join(sorted(invoice_ids)),
        step or "",
        due_date.isoformat() if due_date else "",
        channel_kind or "",
    ]
    # Unit separators keep ("a", "bc") and ("ab", "c") apart.
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()
    return f"{kind[:3]}_{digest[:24]}"


@dataclass(frozen=True)
class PlanHeader:
    ruleset: str
    ruleset_digest: str
    as_of: dt.datetime  # aware
    input_digest: str
    engine_version: str

    def to_json(self) -> dict[str, Any]:
        return {
            "plan_format": PLAN_FORMAT,
            "ruleset": self.ruleset,
            "ruleset_digest": self.ruleset_digest,
            "as_of": self.as_of,
            "input_digest": self.input_digest,
            "engine_version": self.engine_version,
        }


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dt.time):
        return value.isoformat()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot write {type(value).__name__} into a plan")


def canonical_json(value: Any) -> str:
    """One line of canonical JSON: sorted keys, no spaces, UTF-8 text."""
    return json.dumps(
        value,
        default=_default,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )


def plan_lines(header: PlanHeader, actions: Iterable[Action]) -> Iterator[str]:
    """The plan as JSON Lines, header first. `actions` must already be in
    plan order (see `Action.sort_key`)."""
    yield canonical_json(header.to_json())
    for action in actions:
        yield canonical_json(action.to_json())
