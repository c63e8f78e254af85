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
- A step with `same_day_only` (copy that names its day: "vence hoje") goes
  on its day or not at all: a later day lists it as "missed", and when its
  day's windows are over it is "dropped", whatever `delivery` says. A
  message moved to a later window is never labelled on time: its timing
  reads "late, next window".
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
- Combining and frequency caps across the customer's messages follow
  `engine.frequency`, whose docstring says how.
- Offer terms (instalments, interest, new due date) are computed by
  `engine.offers`, whose docstring gives the formulas.
- Credit and error actions carry today as their date, so a customer is
  flagged at most once a day and a new day flags again while over limit.
- An evaluation error (division by zero, ...) anywhere in a customer's
  planning replaces that customer's actions by one "error" action with the
  expression's location; other customers are planned as usual.
- A customer whose records come with problems (a bad payment row the
  source left out, ...) is held: one "held" action naming the bad records
  and nothing else, since chasing an amount that may have been paid is
  worse than waiting a day for the record to be fixed.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from dsl import sms
from dsl.diagnostics import Location
from dsl.model import Band
from engine import ENGINE_VERSION
from engine.compiler import (
    CompiledChannel,
    CompiledOffer,
    CompiledRuleset,
    CompiledSegment,
    CompiledStep,
)
from engine.contact import Address, check_address
from engine.frequency import (
    CATCH_UP,
    MISSED,
    ON_TIME,
    PendingMessage,
    cap,
    combine,
    earlier_messages,
)
from engine.history import ZERO, CustomerHistory, InvoiceState, prepare_invoices
from engine.offers import offer_terms
from engine.plan import Action, PlanHeader, action_id
from engine.records import CustomerRecords, RecordSource
from engine.runtime import EvaluationError
from engine.scope import Record, Scope

logger = logging.getLogger(__name__)

# What planning may raise on values out of any sane range: decimal traps
# (InvalidOperation when a sum outgrows the precision, ...), a date beyond
# year 9999 (OverflowError, ValueError).
DATA_FAILURES: tuple[type[Exception], ...] = (ArithmeticError, ValueError)

# Data sources refuse amounts with more than 15 digits before the point
# (adapters.sources.parsing); the engine holds records from any source to
# the same bound, so that every sum it makes keeps its cents.
AMOUNT_LIMIT = Decimal(10) ** 15

# The timing of an on-time message that the send window moved to a later day.
NEXT_WINDOW = "late, next window"
ONLY_ITS_DAY = "only valid on its day"


@dataclass(frozen=True)
class ScoreLine:
    characteristic: str
    value: Any
    points: int
    band: Band | None  # None when the value is in no band

    @property
    def band_label(self) -> str | None:
        """`1 to 2`, `>= 3`, `<= 0`; None when the value is in no band."""
        if self.band is None:
            return None
        low, high = self.band.low, self.band.high
        if low is None and high is None:
            return "any value"
        if low is None:
            return f"<= {high}"
        if high is None:
            return f">= {low}"
        return f"{low} to {high}"


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
    aggregates: CustomerHistory | None = None
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

    @property
    def history(self) -> dict[str, Any]:
        """The history aggregates the policy asked for, by name."""
        return {} if self.aggregates is None else self.aggregates.used


@dataclass
class CustomerPlan:
    customer_id: str
    segment: str | None
    actions: list[Action]  # in plan order
    trace: CustomerTrace


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
    if records.problems:
        actions = [planner.held_action()]
        return CustomerPlan(planner.customer_id, None, actions, planner.trace)
    try:
        actions = planner.plan()
    except EvaluationError as exc:
        actions = [planner.error_action(exc.message, exc.location)]
    except DATA_FAILURES as exc:
        # Arithmetic outside compiled expressions (sums of amounts, rounding,
        # a date pushed past year 9999) can fail on values no source should
        # deliver; it stays this customer's problem, as an expression's would.
        logger.debug("planning customer %s failed", planner.customer_id, exc_info=True)
        message = f"cannot plan this customer: {_reason(exc)}"
        actions = [planner.error_action(message)]
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
        self._addresses: dict[str, Address] = {}
        self.invoices: list[InvoiceState] = []

    def _facts(self) -> None:
        """Invoices as of today, history and exposure: facts, no policy yet.
        Part of planning, so that arithmetic failing on a record's values
        ends in this customer's error action."""
        calendar = self.compiled.calendar
        records = self.records
        self.invoices = prepare_invoices(records, calendar, self.today)
        history = CustomerHistory(self.invoices, records.payments, self.today, calendar)
        open_invoices = [s for s in self.invoices if s.is_open]
        exposure = sum((s.amount_due for s in open_invoices), ZERO)
        self.scope = Scope(
            customer=records.customer,
            history=history,
            today=self.today,
            now=self.now,
            fmt=self.compiled.formatter,
            calendar=calendar,
            exposure=exposure,
            open_invoices=len(open_invoices),
        )
        self.trace.invoices = self.invoices
        self.trace.aggregates = history
        self.trace.exposure = exposure
        self.trace.open_invoices = len(open_invoices)
        _check_amounts(records)

    def plan(self) -> list[Action]:
        self._facts()
        self._score()
        segment = self._segment()
        blocked = self._credit()
        if segment is not None:
            messages = self._ladder(segment, blocked)
            self._place(messages)
            self._limit(messages, segment)
            for message in messages:
                self.actions.append(self._message_action(message))
        return self.actions

    # -- the customer -----------------------------------------------------

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
            self.trace.score_lines.append(
                ScoreLine(characteristic.name, value, points, band)
            )
        grade = next((g.name for g in scorecard.grades if total >= g.min_score), None)
        self.scope.score, self.scope.grade = total, grade
        self.trace.score, self.trace.grade = total, grade

    def _segment(self) -> CompiledSegment | None:
        choose = self.compiled.choose_segment
        if choose is None:
            return self._segment_rule_by_rule()
        try:
            first = choose(self.scope)
        except EvaluationError:
            # Rule by rule again, so the trace shows the rules tried before
            # the one that fails; it raises the same error.
            return self._segment_rule_by_rule()

        # One call chose; the rules before the match were tried and failed.
        segments = self.compiled.segments
        tried = segments if first is None else segments[: first + 1]
        for position, segment in enumerate(tried):
            self.trace.segment_checks.append(
                (segment.name, segment.segment.when.source, position == first)
            )
        if first is None:
            return None
        return self._enter(segments[first])

    def _segment_rule_by_rule(self) -> CompiledSegment | None:
        for segment in self.compiled.segments:
            matched = bool(segment.when(self.scope))
            self.trace.segment_checks.append(
                (segment.name, segment.segment.when.source, matched)
            )
            if matched:
                return self._enter(segment)
        return None

    def _enter(self, segment: CompiledSegment) -> CompiledSegment:
        self.scope.segment = segment.name
        self.trace.segment = segment.name
        return segment

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

    def _ladder(self, segment: CompiledSegment, blocked: bool) -> list[PendingMessage]:
        messages: list[PendingMessage] = []
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
    ) -> list[PendingMessage]:
        self.scope.invoice = invoice.record
        self.scope.offer = None
        suppression = next(
            (s for s in self.compiled.suppressions if s.when(self.scope)), None
        )
        messages = []
        for step, day in in_range:
            timing = self._timing(step, day)
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

    def _timing(self, step: CompiledStep, day: dt.date) -> str:
        if day == self.today:
            return ON_TIME
        if day >= self.grace_start and not step.step.same_day_only:
            return CATCH_UP
        return MISSED

    def _missed_reason(self, step: CompiledStep, day: dt.date) -> str:
        if day >= self.grace_start:
            return f"its day {day} has passed and the step is {ONLY_ITS_DAY}"
        return f"its day {day} is before the catch-up grace (from {self.grace_start})"

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
        return offer_terms(
            offer,
            invoice.amount_due,
            self.today,
            self.compiled.calendar,
            self.compiled.formatter.currency_digits,
        )

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
                    "step": self._step_why(step, day, self._timing(step, day)),
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
    ) -> PendingMessage:
        rejected: list[dict[str, str]] = []
        for channel in step.channels:
            address = self._address(channel)
            if address.problem is None:
                return PendingMessage(
                    invoice, step, day, timing, channel, address.value, rejected, offer
                )
            rejected.append({"channel": channel.name, "reason": address.problem})
        message = PendingMessage(
            invoice, step, day, timing, None, None, rejected, offer
        )
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

    def _place(self, messages: list[PendingMessage]) -> None:
        """A send window for every message that still goes."""
        windows = self.compiled.windows
        outside = self.ruleset.delivery.outside_window
        for message in messages:
            if message.timing == MISSED:
                # Whether or not a channel was left, the step's day is gone.
                message.decision = "missed"
                message.reason = self._missed_reason(message.step, message.day)
                continue
            if message.decision != "send":
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
            if message.step.step.same_day_only:
                reason += f"; the step is {ONLY_ITS_DAY}"
            elif outside == "next_window":
                opening = windows.next_after_today(window, self.now, not_before=send_at)
                if opening is not None:
                    message.opening = opening
                    message.moved = reason
                    continue
                reason += "; it does not open within a year"
            message.decision = "dropped"
            message.reason = reason

    def _limit(self, messages: list[PendingMessage], segment: CompiledSegment) -> None:
        """Combine and cap across the customer's invoices (engine.frequency)."""
        frequency = self.ruleset.frequency
        if frequency.same_day == "combine":
            combine(messages, self._message_id)
        if frequency.per_day is None and frequency.per_week is None:
            return
        if not any(message.decision == "send" for message in messages):
            return  # caps only ever hold sends back: nothing to count
        earlier = {}
        if frequency.per_week is not None:
            earlier = earlier_messages(
                self.invoices,
                segment.steps,
                frequency,
                self.compiled.calendar,
                self.today,
                self.since,
            )
        cap(messages, frequency, earlier)

    # -- actions ----------------------------------------------------------

    def _message_id(self, message: PendingMessage) -> str:
        return action_id(
            self.ruleset.name,
            "message",
            self.customer_id,
            (message.invoice.id,),
            message.step.name,
            message.invoice.due_effective,
            message.channel.kind if message.channel else None,
        )

    def _message_action(self, message: PendingMessage) -> Action:
        step, channel, invoice = message.step, message.channel, message.invoice
        group = [message, *message.group]
        timing = message.timing
        if message.moved and timing == ON_TIME:
            timing = NEXT_WINDOW
        why: dict[str, Any] = {
            "segment": self._segment_why(),
            "step": self._step_why(step, message.day, timing),
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
        cost = None
        if message.decision == "send":
            assert channel is not None
            rendered = self._render(message, group)
            cost = channel.channel.cost
            if channel.kind in sms.PLAIN_SPACE_KINDS:
                rendered = _plain_text(rendered)
            if channel.kind == "sms":
                # Providers charge an SMS per segment: `cost` is per segment.
                cost *= self._count_segments(channel, rendered, details, why)
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
            cost=cost,
            details=details,
            why=why,
        )

    def _count_segments(
        self,
        channel: CompiledChannel,
        rendered: dict[str, Any],
        details: dict[str, Any],
        why: dict[str, Any],
    ) -> int:
        """SMS length and encoding of the rendered copy, and a warning above
        the channel's `max_segments` (the message still goes: the policy
        asked for a warning, and cutting copy would change its meaning).
        Returns the number of segments."""
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
        return counted.segments

    def _render(
        self, message: PendingMessage, group: list[PendingMessage]
    ) -> dict[str, Any]:
        assert message.channel is not None
        copy = message.step.messages[message.channel.name]
        record = message.invoice.record
        if len(group) > 1:
            record = dict(record)
            for name in ("amount", "amount_paid", "amount_due"):
                record[name] = sum((m.invoice.record[name] for m in group), ZERO)
        self.scope.invoice = record
        self.scope.offer = message.offer
        self.scope.invoice_count = len(group)
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
            self.scope.invoice_count = 1
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

    def error_action(self, message: str, location: Location | None = None) -> Action:
        """The one action of a customer whose planning failed; `location` is
        the policy expression that failed, when one did."""
        why: dict[str, Any] = {"error": message}
        if location is None:
            self.trace.error = message
        else:
            where = self.ruleset.portable(location)
            why["location"] = where
            self.trace.error = f"{where}: {message}"
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
            why=why,
        )

    def held_action(self) -> Action:
        """The one action of a customer with a bad input record: what they
        owe is not known (a payment may be missing), so no message, offer,
        escalation or credit decision is made until the record is fixed."""
        problems = self.records.problems
        places = ", ".join(
            dict.fromkeys(
                p.source if p.row is None else f"{p.source}:{p.row}" for p in problems
            )
        )
        reason = f"bad input record at {places}"
        self.trace.error = f"held: {reason}"
        return Action(
            id=action_id(
                self.ruleset.name,
                "message",
                self.customer_id,
                (),
                "(held)",
                self.today,
                None,
            ),
            kind="message",
            decision="held",
            customer_id=self.customer_id,
            invoice_ids=tuple(str(i["id"]) for i in self.records.invoices),
            segment=None,
            step=None,
            channel=None,
            channel_kind=None,
            address=None,
            due_date=None,
            window_start=None,
            window_end=None,
            message=None,
            cost=None,
            details={"records": [str(p) for p in problems]},
            why={"reason": reason},
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

    `on_customer`, when given, sees each customer's records and plan as
    they go by (an analysis that needs more than the actions, such as the
    segment of customers who get none).
    """

    def __init__(
        self,
        compiled: CompiledRuleset,
        source: RecordSource,
        as_of: dt.datetime,
        since: dt.date | None,
        on_customer: Callable[[CustomerRecords, CustomerPlan], None] | None = None,
    ) -> None:
        self.compiled = compiled
        self.source = source
        self.as_of = resolve_today(compiled, as_of)
        self.since = since
        self.on_customer = on_customer
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
            if self.on_customer is not None:
                self.on_customer(records, customer_plan)
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
    on_customer: Callable[[CustomerRecords, CustomerPlan], None] | None = None,
) -> Plan:
    """Plan every customer of `source` as of `as_of` (an aware datetime)."""
    return Plan(compiled, source, as_of, since, on_customer)


def _check_amounts(records: CustomerRecords) -> None:
    """ValueError for an amount no bill can have: from `AMOUNT_LIMIT` on,
    sums no longer hold every cent, so nothing is planned from them."""
    for kind, rows in (("invoice", records.invoices), ("payment", records.payments)):
        for row in rows:
            amount = row["amount"]
            if abs(amount) >= AMOUNT_LIMIT:
                ident = row["id"] if kind == "invoice" else row["invoice_id"]
                raise ValueError(
                    f"{kind} {ident}: amount {amount} is out of range"
                    " (more than 15 digits before the decimal point)"
                )


def _reason(error: Exception) -> str:
    if isinstance(error, ArithmeticError):
        return "an amount or a date is out of range (arithmetic failed)"
    return str(error) or type(error).__name__


def _plain_text(rendered: dict[str, Any]) -> dict[str, Any]:
    """Plain-text copy (SMS, a voice script) with its no-break spaces as
    plain spaces, by the rule `dsl.sms` counts segments with."""
    return {
        name: sms.plain_spaces(value) if isinstance(value, str) else value
        for name, value in rendered.items()
    }
