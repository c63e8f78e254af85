"""What compiled expressions see at run time.

The code generator turns `customer.phone` into `s.customer["phone"]` and
`history.late_count(6 months)` into `s.history.late_count(<Duration>)`, where
`s` is a `Scope`. The names and types themselves are declared in
`dsl.library`; this module is their run-time side.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

Record = dict[str, Any]


@dataclass(frozen=True)
class Duration:
    """A calendar span: `6 months` is not 180 days, `2 business days` needs
    the ruleset's calendar."""

    amount: int
    unit: str  # "days" | "business_days" | "weeks" | "months" | "years"


class History(Protocol):
    """Payment-history aggregates over a window ending at today (inclusive).

    An invoice belongs to the window when its effective due date is within
    (today - window, today]. Days late are counted from the effective
    (rolled) due date to the day the invoice was settled, or to today when
    it is still unsettled.
    """

    def invoice_count(self, window: Duration) -> int: ...
    def late_count(self, window: Duration) -> int: ...
    def max_days_late(self, window: Duration) -> int: ...
    def avg_days_late(self, window: Duration) -> Decimal: ...
    def sum_days_late(self, window: Duration) -> int: ...
    def billed_total(self, window: Duration) -> Decimal: ...
    def max_billed(self, window: Duration) -> Decimal: ...
    def avg_billed(self, window: Duration) -> Decimal: ...
    def paid_total(self, window: Duration) -> Decimal: ...


class Formatter(Protocol):
    """Locale-aware rendering of values into message text."""

    def money(self, value: Decimal) -> str: ...
    def date(self, value: dt.date, pattern: str | None) -> str: ...
    def number(self, value: Decimal | int) -> str: ...
    def datetime(self, value: dt.datetime, pattern: str | None) -> str: ...


class BusinessCalendar(Protocol):
    def add_business_days(self, day: dt.date, count: int) -> dt.date: ...


class Scope:
    """The values one evaluation can reach. Slots keep attribute access fast."""

    __slots__ = (
        "customer",
        "invoice",
        "history",
        "today",
        "now",
        "exposure",
        "open_invoices",
        "score",
        "grade",
        "segment",
        "offer",
        "invoice_count",
        "fmt",
        "calendar",
    )

    def __init__(
        self,
        *,
        customer: Record,
        history: History,
        today: dt.date,
        now: dt.datetime,
        fmt: Formatter,
        calendar: BusinessCalendar,
        exposure: Decimal = Decimal(0),
        open_invoices: int = 0,
    ) -> None:
        self.customer = customer
        self.invoice: Record | None = None
        self.history = history
        self.today = today
        self.now = now
        self.exposure = exposure
        self.open_invoices = open_invoices
        self.score: int | None = None
        self.grade: str | None = None
        self.segment: str | None = None
        self.offer: Record | None = None
        # Invoices in the message being rendered (several when combined).
        self.invoice_count = 1
        self.fmt = fmt
        self.calendar = calendar
