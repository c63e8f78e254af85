"""One customer's invoices as of today, and their payment-history aggregates.

The engine never sees the future: payments dated after today and a
`settled_on` after today are invisible. Per invoice:

- amount paid = payments with `paid_on` <= today; amount due = amount minus
  that, never below zero;
- settled date = `settled_on` when declared and not after today, else the
  day cumulative payments reached the amount, else unsettled. An invoice
  whose status says it is settled (`paid`, `closed`) but that has no date
  from either source counts as settled on its effective due date: there is
  no evidence that it was late. A `settled_on` after today does not count
  as a date: as of today the invoice is still unsettled. An amount of zero
  or less (a credit note) is settled from the start;
- days late = settled date (today when unsettled) minus the effective due
  date, never below zero;
- open = status (when declared) not settled, no `settled_on` up to today,
  and an amount due above zero.

Cancelled invoices were never owed and stay out of the history aggregates.
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from engine.calendar import BusinessCalendar
from engine.records import SETTLED_STATUSES, CustomerRecords
from engine.scope import Duration, Record

ZERO = Decimal(0)

# Statuses that take an invoice out of the history aggregates altogether.
NEVER_OWED_STATUSES = frozenset({"cancelled"})

T = TypeVar("T")


@dataclass(slots=True)
class InvoiceState:
    """An invoice as the engine sees it today, with its computed fields.

    Read only once built (not frozen only because frozen dataclasses are
    slow to build, and one is built per invoice per run).
    """

    source: Record  # the input record, never changed
    id: str
    due_date: dt.date
    due_effective: dt.date  # after the calendar's roll
    amount: Decimal
    amount_paid: Decimal
    amount_due: Decimal
    status: str | None  # normalised: stripped, lower case
    settled: dt.date | None  # as known today
    days_late: int
    days_past_due: int  # today - effective due date; negative before it
    is_open: bool
    in_history: bool  # counts in the history aggregates (not cancelled)
    _record: Record | None = None

    @property
    def record(self) -> Record:
        """What `invoice` is in expressions: a copy of the input record with
        the computed fields (COMPUTED_INVOICE_FIELDS). Built on first use:
        most invoices of a history are never seen by an expression."""
        if self._record is None:
            record = dict(self.source)
            record["amount_paid"] = self.amount_paid
            record["amount_due"] = self.amount_due
            record["due_date_effective"] = self.due_effective
            record["days_past_due"] = self.days_past_due
            self._record = record
        return self._record


def prepare_invoices(
    records: CustomerRecords, calendar: BusinessCalendar, today: dt.date
) -> list[InvoiceState]:
    """The customer's invoices with their amounts and dates as of today,
    ordered by effective due date, then id."""
    paid_by_invoice: dict[str, list[tuple[dt.date, Decimal]]] = {}
    for payment in records.payments:
        paid_on = payment["paid_on"]
        if paid_on <= today:
            paid_by_invoice.setdefault(payment["invoice_id"], []).append(
                (paid_on, payment["amount"])
            )

    states = [
        _invoice_state(invoice, paid_by_invoice.get(invoice["id"]), calendar, today)
        for invoice in records.invoices
    ]
    states.sort(key=lambda state: (state.due_effective, state.id))
    return states


def _invoice_state(
    invoice: Record,
    payments: list[tuple[dt.date, Decimal]] | None,
    calendar: BusinessCalendar,
    today: dt.date,
) -> InvoiceState:
    amount: Decimal = invoice["amount"]
    due_effective = calendar.roll(invoice["due_date"])
    amount_paid = ZERO
    if payments:
        if len(payments) > 1:
            payments.sort()
        amount_paid = sum((paid for _, paid in payments), ZERO)
    amount_due = amount - amount_paid if amount > amount_paid else ZERO

    raw_status = invoice.get("status")
    status = raw_status.strip().lower() if isinstance(raw_status, str) else None
    declared_settled = invoice.get("settled_on")
    settles_later = declared_settled is not None and declared_settled > today
    if settles_later:
        declared_settled = None

    settled = _settled_date(amount, payments, declared_settled)
    if settled is None and status in SETTLED_STATUSES and not settles_later:
        settled = due_effective
    if amount <= ZERO:
        settled = settled or due_effective
    days_late = ((settled or today) - due_effective).days
    settled_status = status in SETTLED_STATUSES
    return InvoiceState(
        invoice,
        invoice["id"],
        invoice["due_date"],
        due_effective,
        amount,
        amount_paid,
        amount_due,
        status,
        settled,
        days_late if days_late > 0 else 0,
        (today - due_effective).days,
        not settled_status and declared_settled is None and amount_due > ZERO,
        status not in NEVER_OWED_STATUSES,
    )


def _settled_date(
    amount: Decimal,
    payments: list[tuple[dt.date, Decimal]] | None,
    declared: dt.date | None,
) -> dt.date | None:
    if declared is not None:
        return declared
    if not payments:
        return None
    total = ZERO
    for paid_on, paid in payments:
        total += paid
        if total >= amount:
            return paid_on
    return None


class CustomerHistory:
    """Implements `engine.scope.History` for one customer.

    Every window ends today, so the invoices inside one are a suffix of the
    list sorted by effective due date: suffix sums and maxima answer each
    aggregate with one binary search. Results are cached per window and
    listed by `used` for the explanation.
    """

    def __init__(
        self,
        invoices: Iterable[InvoiceState],
        payments: Sequence[Record],
        today: dt.date,
        calendar: BusinessCalendar,
    ) -> None:
        self.today = today
        self.calendar = calendar
        owed = sorted(
            (s for s in invoices if s.in_history and s.due_effective <= today),
            key=lambda s: (s.due_effective, s.id),
        )
        self._owed = owed
        self._due_dates = [s.due_effective for s in owed]
        self._payments = payments
        self._suffixes: dict[str, list[Any]] = {}
        self._paid_dates: list[dt.date] = []
        self._results: dict[tuple[str, int, str], Any] = {}

    def invoice_count(self, window: Duration) -> int:
        count: int = self._lookup("invoice_count", window)
        return count

    def late_count(self, window: Duration) -> int:
        count: int = self._lookup("late_count", window)
        return count

    def max_days_late(self, window: Duration) -> int:
        days: int = self._lookup("max_days_late", window)
        return days

    def sum_days_late(self, window: Duration) -> int:
        days: int = self._lookup("sum_days_late", window)
        return days

    def avg_days_late(self, window: Duration) -> Decimal:
        days: Decimal = self._lookup("avg_days_late", window)
        return days

    def billed_total(self, window: Duration) -> Decimal:
        amount: Decimal = self._lookup("billed_total", window)
        return amount

    def max_billed(self, window: Duration) -> Decimal:
        amount: Decimal = self._lookup("max_billed", window)
        return amount

    def avg_billed(self, window: Duration) -> Decimal:
        amount: Decimal = self._lookup("avg_billed", window)
        return amount

    def paid_total(self, window: Duration) -> Decimal:
        key = ("paid_total", window.amount, window.unit)
        if key not in self._results:
            if "paid" not in self._suffixes:
                paid = sorted(
                    (p["paid_on"], p["amount"])
                    for p in self._payments
                    if p["paid_on"] <= self.today
                )
                self._paid_dates = [paid_on for paid_on, _ in paid]
                self._suffixes["paid"] = _suffix_of(
                    [amount for _, amount in paid], _add, ZERO
                )
            start = self.calendar.window_start(self.today, window)
            index = bisect_right(self._paid_dates, start)
            self._results[key] = self._suffixes["paid"][index]
        result: Decimal = self._results[key]
        return result

    def _lookup(self, name: str, window: Duration) -> Any:
        """An aggregate over the invoices due in (today - window, today]."""
        # A tuple of str and int hashes in C; a dataclass hashes in Python.
        key = (name, window.amount, window.unit)
        if key in self._results:
            return self._results[key]
        start_day = self.calendar.window_start(self.today, window)
        start = bisect_right(self._due_dates, start_day)
        count = len(self._due_dates) - start
        if name == "invoice_count":
            result: Any = count
        elif name == "avg_days_late":
            result = _average(Decimal(self._suffix("sum_days_late")[start]), count)
        elif name == "avg_billed":
            result = _average(self._suffix("billed_total")[start], count)
        else:
            result = self._suffix(name)[start]
        self._results[key] = result
        return result

    def _suffix(self, name: str) -> list[Any]:
        """The suffix array of one aggregate, built on first use: a policy
        reads two or three aggregates, not all of them."""
        found = self._suffixes.get(name)
        if found is None:
            value, combine, empty = _SUFFIXES[name]
            found = _suffix_of([value(s) for s in self._owed], combine, empty)
            self._suffixes[name] = found
        return found

    @property
    def used(self) -> dict[str, Any]:
        """The aggregates asked for so far: `"late_count(6 months)" -> 2`."""
        return {
            f"{name}({describe_duration(Duration(amount, unit))})": value
            for (name, amount, unit), value in self._results.items()
        }


def describe_duration(window: Duration) -> str:
    """`6 months`, `1 month`, `2 business days`."""
    unit = window.unit.replace("_", " ")
    if window.amount == 1:
        unit = unit.removesuffix("s")
    return f"{window.amount} {unit}"


def _add(first: Any, second: Any) -> Any:
    return first + second


# Per aggregate: the value of one invoice, how two combine, and the value of
# an empty window.
_SUFFIXES: dict[
    str, tuple[Callable[[InvoiceState], Any], Callable[[Any, Any], Any], Any]
] = {
    "late_count": (lambda s: int(s.days_late > 0), _add, 0),
    "max_days_late": (lambda s: s.days_late, max, 0),
    "sum_days_late": (lambda s: s.days_late, _add, 0),
    "billed_total": (lambda s: s.amount, _add, ZERO),
    "max_billed": (lambda s: s.amount, max, ZERO),
}


def _suffix_of(values: list[T], combine: Callable[[T, T], T], empty: T) -> list[T]:
    """result[i] = combine over values[i:]; result[len] = empty."""
    result = [empty] * (len(values) + 1)
    for index in range(len(values) - 1, -1, -1):
        result[index] = combine(values[index], result[index + 1])
    return result


def _average(total: Decimal, count: int) -> Decimal:
    return total / count if count else ZERO
