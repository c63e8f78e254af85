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


@dataclass(frozen=True)
class InvoiceState:
    """An invoice as the engine sees it today, with its computed fields."""

    record: Record  # a copy of the input record plus COMPUTED_INVOICE_FIELDS
    id: str
    due_date: dt.date
    due_effective: dt.date  # after the calendar's roll
    amount: Decimal
    amount_paid: Decimal
    amount_due: Decimal
    status: str | None  # normalised: stripped, lower case
    settled: dt.date | None  # as known today
    days_late: int
    is_open: bool

    @property
    def in_history(self) -> bool:
        return self.status not in NEVER_OWED_STATUSES


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
        _invoice_state(
            invoice, sorted(paid_by_invoice.get(invoice["id"], ())), calendar, today
        )
        for invoice in records.invoices
    ]
    states.sort(key=lambda state: (state.due_effective, state.id))
    return states


def _invoice_state(
    invoice: Record,
    payments: list[tuple[dt.date, Decimal]],
    calendar: BusinessCalendar,
    today: dt.date,
) -> InvoiceState:
    amount: Decimal = invoice["amount"]
    due_effective = calendar.roll(invoice["due_date"])
    amount_paid = sum((paid for _, paid in payments), ZERO)
    amount_due = max(amount - amount_paid, ZERO)

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
    days_late = max(((settled or today) - due_effective).days, 0)

    is_open = (
        status not in SETTLED_STATUSES
        and declared_settled is None
        and amount_due > ZERO
    )
    record = dict(invoice)
    record["amount_paid"] = amount_paid
    record["amount_due"] = amount_due
    record["due_date_effective"] = due_effective
    record["days_past_due"] = (today - due_effective).days
    return InvoiceState(
        record=record,
        id=invoice["id"],
        due_date=invoice["due_date"],
        due_effective=due_effective,
        amount=amount,
        amount_paid=amount_paid,
        amount_due=amount_due,
        status=status,
        settled=settled,
        days_late=days_late,
        is_open=is_open,
    )


def _settled_date(
    amount: Decimal,
    payments: list[tuple[dt.date, Decimal]],
    declared: dt.date | None,
) -> dt.date | None:
    if declared is not None:
        return declared
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
    kept in `used` for the explanation.
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
        self.used: dict[str, Any] = {}

    def invoice_count(self, window: Duration) -> int:
        return self._cached("invoice_count", window, self._count)

    def late_count(self, window: Duration) -> int:
        return self._cached("late_count", window, self._ints("late_count"))

    def max_days_late(self, window: Duration) -> int:
        return self._cached("max_days_late", window, self._ints("max_days_late"))

    def sum_days_late(self, window: Duration) -> int:
        return self._cached("sum_days_late", window, self._ints("sum_days_late"))

    def avg_days_late(self, window: Duration) -> Decimal:
        days_late = self._ints("sum_days_late")

        def average(start: int) -> Decimal:
            return _average(Decimal(days_late[start]), self._count(start))

        return self._cached("avg_days_late", window, average)

    def billed_total(self, window: Duration) -> Decimal:
        return self._cached("billed_total", window, self._amounts("billed_total"))

    def max_billed(self, window: Duration) -> Decimal:
        return self._cached("max_billed", window, self._amounts("max_billed"))

    def avg_billed(self, window: Duration) -> Decimal:
        billed = self._amounts("billed_total")

        def average(start: int) -> Decimal:
            return _average(billed[start], self._count(start))

        return self._cached("avg_billed", window, average)

    def paid_total(self, window: Duration) -> Decimal:
        key = f"paid_total({describe_duration(window)})"
        if key not in self.used:
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
            self.used[key] = self._suffixes["paid"][index]
        result: Decimal = self.used[key]
        return result

    def _ints(self, name: str) -> list[int]:
        return self._suffix(name)

    def _amounts(self, name: str) -> list[Decimal]:
        return self._suffix(name)

    def _suffix(self, name: str) -> list[Any]:
        """The suffix array of one aggregate, built on first use: a policy
        reads two or three aggregates, not all of them."""
        found = self._suffixes.get(name)
        if found is None:
            value, combine, empty = _SUFFIXES[name]
            found = _suffix_of([value(s) for s in self._owed], combine, empty)
            self._suffixes[name] = found
        return found

    def _count(self, start: int) -> int:
        return len(self._due_dates) - start

    def _cached(
        self,
        name: str,
        window: Duration,
        values: Sequence[T] | Callable[[int], T],
    ) -> T:
        key = f"{name}({describe_duration(window)})"
        if key not in self.used:
            start_day = self.calendar.window_start(self.today, window)
            start = bisect_right(self._due_dates, start_day)
            self.used[key] = values(start) if callable(values) else values[start]
        result: T = self.used[key]
        return result


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
