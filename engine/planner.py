"""From a compiled ruleset, one customer's records and an instant, a plan.

Per customer, in this order: invoices as of today and the payment history,
the scorecard, the segment (first match), credit, then per open invoice the
ladder steps whose day falls in [since, today]: suppressions, the step's
`when`, its offer or escalation, the channel, the send window; then the
frequency caps across the customer's invoices; last, the copy is rendered.

Decisions that are this module's to make, and why:

- "Today" is the as-of instant in the ruleset's zone. A step whose day is
  today is on time; one whose day lies within `delivery.catch_up` before
  today is sent late with today's window ("late, catch-up"); one before that
  but not before `since` is listed as "missed" and never sent. `since`
  defaults to today minus the catch-up grace.
- A customer that matches no segment gets no action; the explanation says
  so. A segment without a ladder gets no messages either.
- Suppression covers every step of the invoice, escalations included, and
  is listed only for steps that would have fired in the range: paid
  invoices from years ago make no noise. A credit `block` suppresses the
  customer's messages (and the offers they would carry) but not
  escalations: handing an over-limit customer to people is what a block is
  for.
- A step with `offer:` runs only when the offer applies to the invoice
  (segment listed, `when` true, at least two instalments of
  `min_instalment`); otherwise the step is skipped and the explanation says
  why. The offer action is listed whenever such a step fires, whether or not
  a channel can carry its message.
- Frequency, `same_day: combine`: messages of one step and channel whose
  windows fall on the same day become one message. Its id is the id the
  earliest invoice (by due date, then id) would have had alone, so a re-run
  after another invoice of the group was paid sends nothing twice; the
  other invoices get a "combined" entry naming that id. The copy reads as
  the earliest invoice, with `amount`, `amount_paid` and `amount_due`
  summed over the group. Steps with an offer are never combined: each offer
  is for one invoice.
- Frequency caps count sends per day of their window: on-time steps first,
  then catch-up ones, each group in plan order; what is over a cap is
  "capped". `per_week` is a rolling seven days ending on the window's day.
  The days before `since` are not in this plan, so their messages are
  estimated from the ladder: the message steps of the customer's current
  segment whose day fell there, for invoices still unsettled on that day,
  at most `per_day` a day (after combining). The engine has no ledger; this
  keeps a weekly cap meaningful in a daily run.
- Instalment offers: n is the policy's `instalments`, lowered so that each
  is at least `min_instalment`. Without interest the total is the amount
  due; with monthly interest i, it is n times the Price-table payment
  `due * i / (1 - (1 + i) ** -n)`. The total is rounded half up to cents,
  each instalment is total / n rounded half up, and the last one takes the
  remainder. The first instalment (`new_due_date`) is due one month after
  today, rolled like a due date. A `new_date` offer moves the due date by
  its days (rolled); with interest, the total grows pro rata by days / 30.
- Credit and error actions carry today as their date, so a customer is
  flagged at most once a day and a new day flags again while over limit.
- An evaluation error (division by zero, ...) anywhere in a customer's
  planning replaces that customer's actions by one "error" action with the
  expression's location; other customers are planned as usual.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from dsl import sms
from engine import ENGINE_VERSION
from engine.calendar import Opening, add_months
from engine.compiler import (
    CompiledChannel,
    CompiledOffer,
    CompiledRuleset,
    CompiledSegment,
    CompiledStep,
)
from engine.contact import Address, check_address
from engine.formatting import round_money
from engine.history import ZERO, CustomerHistory, InvoiceState, prepare_invoices
from engine.plan import Action, PlanHeader, action_id
from engine.records import CustomerRecords, RecordSource
from engine.runtime import EvaluationError
from engine.scope import Record, Scope

logger = logging.getLogger(__name__)

ON_TIME = "on time"
CATCH_UP = "late, catch-up"
MISSED = "missed"


@dataclass(frozen=True)
class ScoreLine:
    characteristic: str
    value: Any
    points: int
    band: str | None  # "1..2"; None when the value is in no band


@dataclass(frozen=True)
class StepTrace:
    invoice_id: str
    ladder: str
    step: str
    at: str  # the offset as written: "D+2 business"
    day: dt.date
    outcome: str


@dataclass
class CustomerTrace:
    """What planning one customer saw and decided, for `explain`."""

    customer_id: str
    now: dt.datetime
    since: dt.date
    invoices: list[InvoiceState] = field(default_factory=list)
    history: dict[str, Any] = field(default_factory=dict)
    exposure: Decimal = ZERO
    open_invoices: int = 0
    score_lines: list[ScoreLine] = field(default_factory=list)
    score: int | None = None
    grade: str | None = None
    segment_checks: list[tuple[str, str, bool]] = field(default_factory=list)
    segment: str | None = None
    credit: dict[str, Any] | None = None
    channels: dict[str, str] = field(default_factory=dict)
    steps: list[StepTrace] = field(default_factory=list)
    error: str | None = None

    @property
    def today(self) -> dt.date:
        return self.now.date()


@dataclass
class CustomerPlan:
    customer_id: str
    segment: str | None
    actions: list[Action]  # in plan order
    trace: CustomerTrace


@dataclass
class _Message:
    """A message step on its way to becoming an action."""

    invoice: InvoiceState
    step: CompiledStep
    day: dt.date
    timing: str
    channel: CompiledChannel | None
    address: str | None
    rejected: list[dict[str, str]]
    offer: Record | None
    decision: str = "send"
    reason: str | None = None
    opening: Opening | None = None
    moved: str | None = None  # why the window is on a later day
    group: list[_Message] = field(default_factory=list)  # combined into this one
    into: str | None = None  # the id this one was combined into

    @property
    def window_day(self) -> dt.date:
        assert self.opening is not None
        return self.opening.start.date()


def resolve_today(compiled: CompiledRuleset, as_of: dt.datetime) -> dt.datetime:
    """The as-of instant in the ruleset's zone; naive instants are refused
    because their meaning would depend on the machine."""
    if as_of.tzinfo is None or as_of.utcoffset() is None:
        raise ValueError("as_of must be an aware datetime (with a time zone)")
    return as_of.astimezone(compiled.zone)


def default_since(compiled: CompiledRuleset, today: dt.date) -> dt.date:
    return today - dt.timedelta(days=compiled.ruleset.delivery.catch_up_days)


def plan_customer(
    compiled: CompiledRuleset,
    records: CustomerRecords,
    as_of: dt.datetime,
    *,
    since: dt.date | None = None,
) -> CustomerPlan:
    """Plan one customer: a pure function of the ruleset, records and instant.

    Steps whose day lies in [since, today] are considered (default since:
    today minus the catch-up grace). Raises ValueError for a naive `as_of`.
    """
    now = resolve_today(compiled, as_of)
    start = since if since is not None else default_since(compiled, now.date())
    planner = _CustomerPlanner(compiled, records, now, start)
    try:
        actions = planner.plan()
    except EvaluationError as exc:
        actions = [planner.error_action(exc)]
    actions.sort(key=Action.sort_key)
    return CustomerPlan(
        customer_id=planner.customer_id,
        segment=planner.trace.segment,
        actions=actions,
        trace=planner.trace,
    )


class _CustomerPlanner:
    def __init__(
        self,
        compiled: CompiledRuleset,
        records: CustomerRecords,
        now: dt.datetime,
        since: dt.date,
    ) -> None:
        self.compiled = compiled
        self.ruleset = compiled.ruleset
        self.records = records
        self.customer_id: str = records.customer["id"]
        self.now = now
        self.today = now.date()
        self.since = since
        self.grace_start = default_since(compiled, self.today)
        self.trace = CustomerTrace(self.customer_id, now, since)
        self.actions: list[Action] = []
        self.invoices: list[InvoiceState] = []
        self._addresses: dict[str, Address] = {}
        self.scope = Scope(
            customer=records.customer,
            history=CustomerHistory((), (), self.today, compiled.calendar),
            today=self.today,
            now=now,
            fmt=compiled.formatter,
            calendar=compiled.calendar,
        )

    def plan(self) -> list[Action]:
        self._prepare()
        self._score()
        segment = self._segment()
        blocked = self._credit()
        if segment is not None:
            messages = self._ladder(segment, blocked)
            self._place(messages)
            self._combine(messages)
            self._cap(messages, segment)
            for message in messages:
                self.actions.append(self._message_action(message))
        return self.actions

    # -- the customer -----------------------------------------------------

    def _prepare(self) -> None:
        """Invoices as of today, history, exposure."""
        calendar = self.compiled.calendar
        self.invoices = prepare_invoices(self.records, calendar, self.today)
        history = CustomerHistory(
            self.invoices, self.records.payments, self.today, calendar
        )
        open_invoices = [s for s in self.invoices if s.is_open]
        exposure = sum((s.amount_due for s in open_invoices), ZERO)

        self.scope.history = history
        self.scope.exposure = exposure
        self.scope.open_invoices = len(open_invoices)
        self.trace.invoices = self.invoices
        self.trace.history = history.used
        self.trace.exposure = exposure
        self.trace.open_invoices = len(open_invoices)

    def _score(self) -> None:
        scorecard = self.ruleset.scorecard
        if scorecard is None:
            return
        total = 0
        for compiled in self.compiled.characteristics:
            characteristic = compiled.characteristic
            value = compiled.value(self.scope)
            band = next(
                (
                    b
                    for b in characteristic.bands
                    if (b.low is None or value >= b.low)
                    and (b.high is None or value <= b.high)
                ),
                None,
            )
            points = band.points if band is not None else 0
            total += points
            label = None if band is None else _band_label(band.low, band.high)
            self.trace.score_lines.append(
                ScoreLine(characteristic.name, value, points, label)
            )
        grade = next((g.name for g in scorecard.grades if total >= g.min_score), None)
        self.scope.score, self.scope.grade = total, grade
        self.trace.score, self.trace.grade = total, grade

    def _segment(self) -> CompiledSegment | None:
        for segment in self.compiled.segments:
            matched = bool(segment.when(self.scope))
            self.trace.segment_checks.append(
                (segment.name, segment.segment.when.source, matched)
            )
            if matched:
                self.scope.segment = segment.name
                self.trace.segment = segment.name
                return segment
        return None

    def _credit(self) -> bool:
        """Emit the credit action when exposure passes the limit; True when
        the policy blocks the customer's messages."""
        credit = self.ruleset.credit
        if credit is None or self.compiled.credit_limit is None:
            return False
        limit: Decimal = self.compiled.credit_limit(self.scope)
        exposure = self.scope.exposure
        exceeded = exposure > limit
        fmt = self.compiled.formatter
        details = {
            "exposure": fmt.round(exposure),
            "limit": fmt.round(limit),
            "headroom": fmt.round(limit - exposure),
        }
        self.trace.credit = {
            **details,
            "exceeded": exceeded,
            "rule": credit.limit.source,
        }
        if not exceeded:
            return False
        self.trace.credit["decision"] = credit.on_exceed
        self.actions.append(
            self._action(
                kind="credit",
                decision=credit.on_exceed,
                invoice_ids=tuple(s.id for s in self.invoices if s.is_open),
                due_date=None,
                id_date=self.today,
                details=details,
                why={
                    "segment": self._segment_why(),
                    "credit": {
                        "rule": credit.limit.source,
                        "reason": "exposure is above the credit limit",
                    },
                },
            )
        )
        return credit.on_exceed == "block"

    # -- the ladder -------------------------------------------------------

    def _ladder(self, segment: CompiledSegment, blocked: bool) -> list[_Message]:
        messages: list[_Message] = []
        if not segment.steps:
            return messages
        calendar = self.compiled.calendar
        for invoice in self.invoices:
            if not invoice.is_open:
                continue
            in_range: list[tuple[CompiledStep, dt.date]] = []
            for step in segment.steps:
                offset = step.step.offset
                day = calendar.shift(
                    invoice.due_effective, offset.days, business=offset.business
                )
                if self.since <= day <= self.today:
                    in_range.append((step, day))
                elif day > self.today:
                    self._trace_step(invoice, step, day, f"upcoming on {day}")
                else:
                    self._trace_step(invoice, step, day, f"before {self.since}")
            if in_range:
                messages.extend(self._invoice_steps(invoice, in_range, blocked))
        return messages

    def _invoice_steps(
        self,
        invoice: InvoiceState,
        in_range: list[tuple[CompiledStep, dt.date]],
        blocked: bool,
    ) -> list[_Message]:
        self.scope.invoice = invoice.record
        self.scope.offer = None
        suppression = next(
            (s for s in self.compiled.suppressions if s.when(self.scope)), None
        )
        messages = []
        for step, day in in_range:
            timing = self._timing(day)
            if suppression is not None:
                name = suppression.suppression.name
                self._trace_step(invoice, step, day, f"suppressed by {name}")
                self.actions.append(
                    self._step_action(
                        invoice,
                        step,
                        "suppressed",
                        {
                            "suppressed_by": name,
                            "rule": suppression.suppression.when.source,
                        },
                        day,
                        timing,
                    )
                )
                continue
            if step.when is not None and not step.when(self.scope):
                rule = step.step.when.source if step.step.when else ""
                self._trace_step(invoice, step, day, f"condition false: {rule}")
                continue
            if step.is_escalation:
                self._escalate(invoice, step, day, timing)
                continue
            if blocked:
                self._trace_step(invoice, step, day, "suppressed: credit block")
                self.actions.append(
                    self._step_action(
                        invoice,
                        step,
                        "suppressed",
                        {"suppressed_by": "credit block"},
                        day,
                        timing,
                    )
                )
                continue
            offer = None
            if step.offer is not None:
                offer, not_applicable = self._offer(step.offer, invoice)
                if offer is None:
                    self._trace_step(invoice, step, day, not_applicable)
                    continue
                if timing != MISSED:
                    self._offer_action(invoice, step, day, offer)
            message = self._choose_channel(invoice, step, day, timing, offer)
            messages.append(message)
        self.scope.invoice = None
        self.scope.offer = None
        return messages

    def _timing(self, day: dt.date) -> str:
        if day == self.today:
            return ON_TIME
        return CATCH_UP if day >= self.grace_start else MISSED

    def _escalate(
        self, invoice: InvoiceState, step: CompiledStep, day: dt.date, timing: str
    ) -> None:
        decision = "missed" if timing == MISSED else "escalate"
        self._trace_step(invoice, step, day, f"{decision} to {step.step.escalate}")
        self.actions.append(
            self._step_action(
                invoice,
                step,
                decision,
                {},
                day,
                timing,
                details={"queue": step.step.escalate},
            )
        )

    def _offer(
        self, compiled: CompiledOffer, invoice: InvoiceState
    ) -> tuple[Record | None, str]:
        """The offer's values for this invoice, or why it does not apply."""
        offer = compiled.offer
        if self.scope.segment not in offer.segments:
            return None, f"offer {offer.name} is not for segment {self.scope.segment}"
        if compiled.when is not None and not compiled.when(self.scope):
            rule = offer.when.source if offer.when else ""
            return None, f"offer {offer.name} does not apply: {rule}"
        if offer.kind == "new_date":
            return self._new_date_offer(compiled, invoice), ""
        return self._instalment_offer(compiled, invoice)

    def _instalment_offer(
        self, compiled: CompiledOffer, invoice: InvoiceState
    ) -> tuple[Record | None, str]:
        offer = compiled.offer
        digits = self.compiled.formatter.currency_digits
        due = invoice.amount_due
        count = offer.instalments or 1
        if offer.min_instalment:
            fitting = int((due / offer.min_instalment).to_integral_value(ROUND_FLOOR))
            count = min(count, fitting)
        if count < min(2, offer.instalments or 1):
            return None, (
                f"offer {offer.name} does not apply: {due} is less than two "
                f"instalments of {offer.min_instalment}"
            )
        rate = offer.interest_monthly or ZERO
        exact = due if not rate else due * rate * count / (1 - (1 + rate) ** -count)
        total = round_money(exact, digits)
        instalment = round_money(total / count, digits)
        last = total - instalment * (count - 1)
        first_due = self.compiled.calendar.roll(add_months(self.today, 1))
        return (
            {
                "instalments": count,
                "instalment_amount": instalment,
                "last_instalment": last,
                "total": total,
                "new_due_date": first_due,
                "interest_monthly": rate,
            },
            "",
        )

    def _new_date_offer(self, compiled: CompiledOffer, invoice: InvoiceState) -> Record:
        offer = compiled.offer
        days = offer.new_date_days or 0
        rate = offer.interest_monthly or ZERO
        total = round_money(
            invoice.amount_due * (1 + rate * Decimal(days) / 30),
            self.compiled.formatter.currency_digits,
        )
        return {
            "instalments": 1,
            "instalment_amount": total,
            "last_instalment": total,
            "total": total,
            "new_due_date": self.compiled.calendar.roll(
                self.today + dt.timedelta(days=days)
            ),
            "interest_monthly": rate,
        }

    def _offer_action(
        self, invoice: InvoiceState, step: CompiledStep, day: dt.date, offer: Record
    ) -> None:
        assert step.offer is not None
        details = {"offer": step.offer.offer.name, "kind": step.offer.offer.kind}
        details.update(offer)
        self.actions.append(
            self._action(
                kind="offer",
                decision="offer",
                invoice_ids=(invoice.id,),
                step=step.name,
                due_date=invoice.due_effective,
                details=details,
                why={
                    "segment": self._segment_why(),
                    "step": self._step_why(step, day, self._timing(day)),
                },
            )
        )

    # -- channels and windows ----------------------------------------------

    def _choose_channel(
        self,
        invoice: InvoiceState,
        step: CompiledStep,
        day: dt.date,
        timing: str,
        offer: Record | None,
    ) -> _Message:
        rejected: list[dict[str, str]] = []
        for channel in step.channels:
            address = self._address(channel)
            if address.problem is None:
                return _Message(
                    invoice, step, day, timing, channel, address.value, rejected, offer
                )
            rejected.append({"channel": channel.name, "reason": address.problem})
        message = _Message(invoice, step, day, timing, None, None, rejected, offer)
        message.decision = "unreachable"
        message.reason = "no channel of the step is usable"
        return message

    def _address(self, channel: CompiledChannel) -> Address:
        """Whether the customer can be reached on `channel`; evaluated once
        per customer, because channel rules see only the customer."""
        known = self._addresses.get(channel.name)
        if known is not None:
            return known
        scope = self.scope
        if channel.opt_out is not None and channel.opt_out(scope) is True:
            address = Address(None, "opted out")
        elif channel.consent is not None and channel.consent(scope) is not True:
            address = Address(None, "no consent")
        else:
            text = None if channel.address is None else channel.address(scope)
            if channel.address is None and channel.kind == "webhook":
                address = Address(None)
            else:
                address = check_address(channel.kind, text, self.compiled.phone_region)
        self._addresses[channel.name] = address
        self.trace.channels[channel.name] = (
            f"usable ({address.value})"
            if address.problem is None
            else f"rejected: {address.problem}"
        )
        return address

    def _place(self, messages: list[_Message]) -> None:
        """A send window for every message that still goes."""
        windows = self.compiled.windows
        outside = self.ruleset.delivery.outside_window
        for message in messages:
            if message.decision != "send":
                continue
            if message.timing == MISSED:
                message.decision = "missed"
                message.reason = (
                    f"its day {message.day} is before the catch-up grace "
                    f"(from {self.grace_start})"
                )
                continue
            assert message.channel is not None
            window = message.channel.window
            send_at = message.step.step.send_at
            opening = windows.current_or_later_today(
                window, self.now, not_before=send_at
            )
            if opening is not None:
                message.opening = opening
                continue
            reason = windows.closed_reason(window, self.today) or (
                f"window {window.name} has no time left today after "
                f"{self.now:%H:%M}"
                + (f" (not before {send_at:%H:%M})" if send_at else "")
            )
            if outside == "next_window":
                opening = windows.next_after_today(window, self.now, not_before=send_at)
                if opening is not None:
                    message.opening = opening
                    message.moved = reason
                    continue
                reason += "; it does not open within a year"
            message.decision = "dropped"
            message.reason = reason

    # -- frequency --------------------------------------------------------

    def _combine(self, messages: list[_Message]) -> None:
        """One message per step, channel and day when the policy combines."""
        if self.ruleset.frequency.same_day != "combine":
            return
        groups: dict[tuple[dt.date, str, str], list[_Message]] = {}
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
            carrier_id = self._message_id(carrier)
            for other in others:
                other.decision = "combined"
                other.into = carrier_id
                other.reason = f"combined into {carrier_id}"

    def _cap(self, messages: list[_Message], segment: CompiledSegment) -> None:
        """Apply per-day and per-week caps; on-time messages go first."""
        frequency = self.ruleset.frequency
        if frequency.per_day is None and frequency.per_week is None:
            return
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
        earlier = self._earlier_messages(segment) if frequency.per_week else {}
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
                        f"({planned} in this plan, {estimated} estimated "
                        "on earlier days)"
                    )
                    continue
            sent[day] += 1

    def _earlier_messages(self, segment: CompiledSegment) -> dict[dt.date, int]:
        """Messages the ladder sent on the six days before this plan's range,
        estimated from today's data (see the module docstring)."""
        first = self.today - dt.timedelta(days=6)
        if self.since <= first:
            return {}
        frequency = self.ruleset.frequency
        calendar = self.compiled.calendar
        per_day: dict[dt.date, set[str]] = {}
        count: Counter[dt.date] = Counter()
        for invoice in self.invoices:
            if not invoice.in_history or invoice.amount <= ZERO:
                continue
            if invoice.settled is not None and invoice.settled <= first:
                continue  # settled before the week began: nothing sent then
            for step in segment.steps:
                if step.is_escalation:
                    continue
                offset = step.step.offset
                day = calendar.shift(
                    invoice.due_effective, offset.days, business=offset.business
                )
                if not first <= day < self.since:
                    continue
                if invoice.settled is not None and invoice.settled <= day:
                    continue
                per_day.setdefault(day, set()).add(step.name)
                count[day] += 1
        result = {}
        for day, names in per_day.items():
            sent = len(names) if frequency.same_day == "combine" else count[day]
            if frequency.per_day is not None:
                sent = min(sent, frequency.per_day)
            result[day] = sent
        return result

    # -- actions ----------------------------------------------------------

    def _message_id(self, message: _Message) -> str:
        return action_id(
            self.ruleset.name,
            "message",
            self.customer_id,
            (message.invoice.id,),
            message.step.name,
            message.invoice.due_effective,
            message.channel.kind if message.channel else None,
        )

    def _message_action(self, message: _Message) -> Action:
        step, channel, invoice = message.step, message.channel, message.invoice
        group = [message, *message.group]
        why: dict[str, Any] = {
            "segment": self._segment_why(),
            "step": self._step_why(step, message.day, message.timing),
        }
        if message.rejected:
            why["channels_rejected"] = message.rejected
        if message.reason:
            why["reason"] = message.reason
        if message.moved:
            why["window_moved"] = message.moved
        if step.step.when is not None:
            why["rules"] = [step.step.when.source]
        details: dict[str, Any] = {}
        if message.into is not None:
            details["combined_into"] = message.into
        if message.group:
            details["combined"] = [m.invoice.id for m in group]

        rendered = None
        if message.decision == "send":
            rendered = self._render(message, group)
            if channel is not None and channel.kind == "sms":
                self._count_segments(channel, rendered, details, why)
        outcome = message.decision
        if message.decision == "send" and channel is not None:
            outcome = f"send by {channel.name}"
        elif message.reason:
            outcome = f"{message.decision}: {message.reason}"
        self._trace_step(invoice, step, message.day, outcome)

        opening = message.opening if message.decision == "send" else None
        return Action(
            id=self._message_id(message),
            kind="message",
            decision=message.decision,
            customer_id=self.customer_id,
            invoice_ids=tuple(m.invoice.id for m in group),
            segment=self.scope.segment,
            step=step.name,
            channel=channel.name if channel else None,
            channel_kind=channel.kind if channel else None,
            address=message.address,
            due_date=invoice.due_effective,
            window_start=opening.start if opening else None,
            window_end=opening.end if opening else None,
            message=rendered,
            cost=channel.channel.cost if channel and rendered else None,
            details=details,
            why=why,
        )

    def _count_segments(
        self,
        channel: CompiledChannel,
        rendered: dict[str, Any],
        details: dict[str, Any],
        why: dict[str, Any],
    ) -> None:
        """SMS length and encoding of the rendered copy, and a warning above
        the channel's `max_segments` (the message still goes: the policy
        asked for a warning, and cutting copy would change its meaning)."""
        counted = sms.count(rendered["body"])
        details["sms"] = {
            "encoding": counted.encoding,
            "length": counted.length,
            "segments": counted.segments,
        }
        limit = channel.channel.max_segments
        if limit is not None and counted.segments > limit:
            why["warnings"] = [
                f"{counted.segments} SMS segments ({counted.encoding}), "
                f"above max_segments {limit} of channel {channel.name}"
            ]

    def _render(self, message: _Message, group: list[_Message]) -> dict[str, Any]:
        assert message.channel is not None
        copy = message.step.messages[message.channel.name]
        record = message.invoice.record
        if len(group) > 1:
            record = dict(record)
            for name in ("amount", "amount_paid", "amount_due"):
                record[name] = sum((m.invoice.record[name] for m in group), ZERO)
        self.scope.invoice = record
        self.scope.offer = message.offer
        try:
            rendered: dict[str, Any] = {"body": copy.body(self.scope)}
            if copy.subject is not None:
                rendered["subject"] = copy.subject(self.scope)
            if copy.html is not None:
                rendered["html"] = copy.html(self.scope)
            if copy.variant.provider_template is not None:
                rendered["template"] = copy.variant.provider_template
            if copy.variant.language is not None:
                rendered["language"] = copy.variant.language
            if copy.params:
                rendered["params"] = [param(self.scope) for param in copy.params]
            for name, field_renderer in copy.fields:
                rendered[name] = field_renderer(self.scope)
        finally:
            self.scope.invoice = None
            self.scope.offer = None
        return rendered

    def _step_action(
        self,
        invoice: InvoiceState,
        step: CompiledStep,
        decision: str,
        reason: dict[str, Any],
        day: dt.date,
        timing: str,
        *,
        details: dict[str, Any] | None = None,
    ) -> Action:
        """A suppressed, escalated or missed step: no channel, no window."""
        why = {
            "segment": self._segment_why(),
            "step": self._step_why(step, day, timing),
            **reason,
        }
        return self._action(
            kind="escalation" if step.is_escalation else "message",
            decision=decision,
            invoice_ids=(invoice.id,),
            step=step.name,
            due_date=invoice.due_effective,
            details=details or {},
            why=why,
        )

    def _action(
        self,
        *,
        kind: str,
        decision: str,
        invoice_ids: tuple[str, ...],
        due_date: dt.date | None,
        details: dict[str, Any],
        why: dict[str, Any],
        step: str | None = None,
        id_date: dt.date | None = None,
    ) -> Action:
        # A credit action is about the customer on a day, not about the
        # invoices that happen to be open: a new invoice changes no id.
        id_invoices = () if kind == "credit" else invoice_ids
        return Action(
            id=action_id(
                self.ruleset.name,
                kind,
                self.customer_id,
                id_invoices,
                step,
                id_date or due_date,
                None,
            ),
            kind=kind,
            decision=decision,
            customer_id=self.customer_id,
            invoice_ids=invoice_ids,
            segment=self.scope.segment,
            step=step,
            channel=None,
            channel_kind=None,
            address=None,
            due_date=due_date,
            window_start=None,
            window_end=None,
            message=None,
            cost=None,
            details=details,
            why=why,
        )

    def error_action(self, error: EvaluationError) -> Action:
        """The one action of a customer whose planning failed."""
        where = str(error.location)
        self.trace.error = f"{where}: {error.message}"
        return Action(
            id=action_id(
                self.ruleset.name,
                "message",
                self.customer_id,
                (),
                None,
                self.today,
                None,
            ),
            kind="message",
            decision="error",
            customer_id=self.customer_id,
            invoice_ids=(),
            segment=self.trace.segment,
            step=None,
            channel=None,
            channel_kind=None,
            address=None,
            due_date=None,
            window_start=None,
            window_end=None,
            message=None,
            cost=None,
            details={},
            why={"error": error.message, "location": where},
        )

    def _segment_why(self) -> dict[str, Any]:
        name = self.scope.segment
        rule = next((r for n, r, matched in self.trace.segment_checks if matched), None)
        why: dict[str, Any] = {"name": name, "rule": rule}
        if self.scope.score is not None:
            why["score"] = self.scope.score
            why["grade"] = self.scope.grade
        return why

    def _step_why(
        self, step: CompiledStep, day: dt.date, timing: str
    ) -> dict[str, Any]:
        return {
            "ladder": step.ladder,
            "at": str(step.step.offset),
            "day": day,
            "timing": timing,
        }

    def _trace_step(
        self, invoice: InvoiceState, step: CompiledStep, day: dt.date, outcome: str
    ) -> None:
        self.trace.steps.append(
            StepTrace(
                invoice.id, step.ladder, step.name, str(step.step.offset), day, outcome
            )
        )


def _band_label(low: Decimal | None, high: Decimal | None) -> str:
    if low is None and high is None:
        return "any value"
    if low is None:
        return f"<= {high}"
    if high is None:
        return f">= {low}"
    return f"{low} to {high}"


class PlanNotRead(RuntimeError):
    """The plan header was asked for before the actions were read."""


class Plan:
    """A whole plan, streamed customer by customer.

    `actions` is a one-shot iterator in plan order: customers in the order
    the source delivers them, each customer's actions by `Action.sort_key`.
    The header carries the digest of the input as read, which a source
    knows only once it has been read to the end, so `header` is available
    after `actions` is exhausted (PlanNotRead before). To write the header
    first, as `engine.plan.plan_lines` does, spool the actions and write
    the header when they are done.
    """

    def __init__(
        self,
        compiled: CompiledRuleset,
        source: RecordSource,
        as_of: dt.datetime,
        since: dt.date | None,
    ) -> None:
        self.compiled = compiled
        self.source = source
        self.as_of = resolve_today(compiled, as_of)
        self.since = since
        self.customers = 0
        self.segments: Counter[str | None] = Counter()  # customers per segment
        self._header: PlanHeader | None = None
        self.actions: Iterator[Action] = self._actions()

    def _actions(self) -> Iterator[Action]:
        for records in self.source.customers():
            customer_plan = plan_customer(
                self.compiled, records, self.as_of, since=self.since
            )
            self.customers += 1
            self.segments[customer_plan.segment] += 1
            yield from customer_plan.actions
        ruleset = self.compiled.ruleset
        self._header = PlanHeader(
            ruleset=ruleset.name,
            ruleset_digest=ruleset.digest,
            as_of=self.as_of,
            input_digest=self.source.digest(),
            engine_version=ENGINE_VERSION,
        )
        logger.debug("planned %d customers", self.customers)

    @property
    def header(self) -> PlanHeader:
        if self._header is None:
            raise PlanNotRead("read plan.actions to the end before the header")
        return self._header


def plan(
    compiled: CompiledRuleset,
    source: RecordSource,
    as_of: dt.datetime,
    *,
    since: dt.date | None = None,
) -> Plan:
    """Plan every customer of `source` as of `as_of` (an aware datetime)."""
    return Plan(compiled, source, as_of, since)
