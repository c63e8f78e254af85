"""A customer's messages across invoices: combining and frequency caps.

- `same_day: combine`: messages of one step and channel whose windows fall
  on the same day become one message. Its id is the id the earliest
  invoice (by effective due date, then id) would have had alone, so a
  re-run after another invoice of the group was paid sends nothing twice;
  the other invoices get a "combined" entry naming that id. The copy reads
  as the earliest invoice, with `amount`, `amount_paid` and `amount_due`
  summed over the group. Steps with an offer are never combined: each offer
  is for one invoice.
- Caps count sends per day of their window: on-time steps first, then
  catch-up ones (the most recent first), then by due date, invoice and
  step, so that a reminder already sent yesterday cannot push out today's.
  What is over a cap is "capped". `per_week` is a rolling seven days ending
  on the window's day.
- The days before the plan's `since` are not in the plan, so the messages
  sent then are estimated from the ladder: the message steps of the
  customer's current segment whose day fell there, for invoices still
  unsettled on that day, at most `per_day` a day (after combining). The
  engine has no ledger; the estimate keeps a weekly cap meaningful in a
  daily run. The runner enforces both caps once more against the ledger's
  record of what the customer was actually sent (adapters/runner.py).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from dsl.model import Frequency
from engine.calendar import BusinessCalendar, Opening
from engine.compiler import CompiledChannel, CompiledStep
from engine.history import ZERO, InvoiceState
from engine.scope import Record

ON_TIME = "on time"
CATCH_UP = "late, catch-up"
MISSED = "missed"


@dataclass
class PendingMessage:
    """A message step on its way to becoming an action."""

    invoice: InvoiceState
    step: CompiledStep
    day: dt.date  # the step's own day
    timing: str  # ON_TIME, CATCH_UP or MISSED
    channel: CompiledChannel | None
    address: str | None
    rejected: list[dict[str, str]]
    offer: Record | None
    decision: str = "send"
    reason: str | None = None
    opening: Opening | None = None
    moved: str | None = None  # why the window is on a later day
    group: list[PendingMessage] = field(default_factory=list)  # combined into it
    into: str | None = None  # the id this one was combined into

    @property
    def window_day(self) -> dt.date:
        assert self.opening is not None, "only messages with a window have a day"
        return self.opening.start.date()


def combine(
    messages: list[PendingMessage], message_id: Callable[[PendingMessage], str]
) -> None:
    """One message per step, channel and window day."""
    groups: dict[tuple[dt.date, str, str], list[PendingMessage]] = {}
    for message in messages:
        if message.decision != "send" or message.step.offer is not None:
            continue
        assert message.channel is not None
        key = (message.window_day, message.step.name, message.channel.name)
        groups.setdefault(key, []).append(message)

    for key in sorted(groups):
        group = sorted(
            groups[key], key=lambda m: (m.invoice.due_effective, m.invoice.id)
        )
        if len(group) < 2:
            continue
        carrier, others = group[0], group[1:]
        carrier.group = others
        carrier_id = message_id(carrier)
        for other in others:
            other.decision = "combined"
            other.into = carrier_id
            other.reason = f"combined into {carrier_id}"


def cap(
    messages: list[PendingMessage],
    frequency: Frequency,
    earlier: dict[dt.date, int],
) -> None:
    """Mark the sends over `per_day` or `per_week` as capped.

    `earlier` holds the messages estimated on days before the plan.
    """
    sends = [m for m in messages if m.decision == "send"]
    sends.sort(
        key=lambda m: (
            m.window_day,
            m.timing != ON_TIME,
            -m.day.toordinal(),
            m.invoice.due_effective,
            m.invoice.id,
            m.step.name,
        )
    )
    sent: Counter[dt.date] = Counter()
    for message in sends:
        day = message.window_day
        if frequency.per_day is not None and sent[day] >= frequency.per_day:
            message.decision = "capped"
            message.reason = f"over the cap of {frequency.per_day} a day"
            continue
        if frequency.per_week is not None:
            week = [day - dt.timedelta(days=n) for n in range(7)]
            planned = sum(sent[d] for d in week)
            estimated = sum(earlier.get(d, 0) for d in week)
            if planned + estimated >= frequency.per_week:
                message.decision = "capped"
                message.reason = (
                    f"over the cap of {frequency.per_week} a week "
                    f"({planned} in this plan, {estimated} estimated on earlier days)"
                )
                continue
        sent[day] += 1


def earlier_messages(
    invoices: Sequence[InvoiceState],
    steps: Sequence[CompiledStep],
    frequency: Frequency,
    calendar: BusinessCalendar,
    today: dt.date,
    since: dt.date,
) -> dict[dt.date, int]:
    """Messages the ladder sent on the six days before today that lie before
    `since`, estimated from today's data."""
    first = today - dt.timedelta(days=6)
    if since <= first:
        return {}
    names: dict[dt.date, set[str]] = {}
    count: Counter[dt.date] = Counter()
    for invoice in invoices:
        if not invoice.in_history or invoice.amount <= ZERO:
            continue
        if invoice.settled is not None and invoice.settled <= first:
            continue  # settled before the week began: nothing sent since
        for step in steps:
            if step.is_escalation:
                continue
            offset = step.step.offset
            day = calendar.shift(
                invoice.due_effective, offset.days, business=offset.business
            )
            if not first <= day < since:
                continue
            if invoice.settled is not None and invoice.settled <= day:
                continue
            names.setdefault(day, set()).add(step.name)
            count[day] += 1

    result = {}
    for day, steps_that_day in names.items():
        sent = len(steps_that_day) if frequency.same_day == "combine" else count[day]
        if frequency.per_day is not None:
            sent = min(sent, frequency.per_day)
        result[day] = sent
    return result
