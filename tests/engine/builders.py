"""Model objects built by hand, for engine tests that need no policy file."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

from dsl.diagnostics import Location
from dsl.model import Calendar, TimeRange, Window
from engine.records import CustomerRecords, RecordProblem

HERE = Location("test.yaml", 1, 1)


def calendar(
    holidays: str | None = "BR",
    *,
    subdivision: str | None = None,
    extra: tuple[str, ...] = (),
    roll: str = "next_business_day",
) -> Calendar:
    return Calendar(
        holidays=holidays,
        subdivision=subdivision,
        extra_holidays=tuple(dt.date.fromisoformat(day) for day in extra),
        due_date_roll=roll,
    )


def hours(text: str) -> TimeRange:
    """`"08:00-20:00"` -> TimeRange."""
    start, end = text.split("-")
    return TimeRange(dt.time.fromisoformat(start), dt.time.fromisoformat(end))


def window(
    name: str = "comercial",
    *,
    weekdays: str | tuple[str, ...] = "08:00-20:00",
    saturday: str | None = "09:00-14:00",
    sunday: str | None = None,
    open_on_holidays: bool = False,
) -> Window:
    """Weekdays Mon-Fri share `weekdays` (one range or several)."""
    ranges = (weekdays,) if isinstance(weekdays, str) else weekdays
    table: dict[int, tuple[TimeRange, ...]] = {
        day: tuple(hours(r) for r in ranges) for day in range(5)
    }
    if saturday:
        table[5] = (hours(saturday),)
    if sunday:
        table[6] = (hours(sunday),)
    return Window(name, table, open_on_holidays, HERE)


def money(text: str) -> Decimal:
    return Decimal(text)


def invoice(
    invoice_id: str,
    due: str,
    amount: str,
    *,
    customer_id: str = "c1",
    **fields: Any,
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": invoice_id,
        "customer_id": customer_id,
        "amount": Decimal(amount),
        "due_date": dt.date.fromisoformat(due),
    }
    for name, value in fields.items():
        if isinstance(value, str) and name.endswith(("_on", "_date")):
            value = dt.date.fromisoformat(value)
        record[name] = value
    return record


def payment(invoice_id: str, paid_on: str, amount: str) -> dict[str, Any]:
    return {
        "invoice_id": invoice_id,
        "paid_on": dt.date.fromisoformat(paid_on),
        "amount": Decimal(amount),
    }


def records(
    customer: dict[str, Any],
    invoices: Sequence[dict[str, Any]] = (),
    payments: Sequence[dict[str, Any]] = (),
) -> CustomerRecords:
    return CustomerRecords(dict(customer), list(invoices), list(payments))


class ListSource:
    """A `RecordSource` over customers held in a list (for engine tests)."""

    def __init__(self, customers: Sequence[CustomerRecords]) -> None:
        self._customers = list(customers)
        self.problems: list[RecordProblem] = []
        self.notes: list[str] = []
        self.read = 0

    def customers(self) -> Iterator[CustomerRecords]:
        for records in self._customers:
            self.read += 1
            yield records

    def digest(self) -> str:
        text = repr([(r.customer, r.invoices, r.payments) for r in self._customers])
        return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()
