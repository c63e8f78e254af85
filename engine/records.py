"""The records the engine plans from, and the port that delivers them.

Records are plain dicts whose values already have the declared types
(Decimal for money, `datetime.date` for dates, None for an empty nullable
field). Adapters parse; the engine never sees text it must convert.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from engine.scope import Record

# Fields the engine itself relies on; a ruleset's input schema must declare
# them with these types (checked by `dsl`).
REQUIRED_FIELDS = {
    "customer": {"id": "string"},
    "invoice": {
        "id": "string",
        "customer_id": "string",
        "amount": "money",
        "due_date": "date",
    },
    "payment": {"invoice_id": "string", "amount": "money", "paid_on": "date"},
}

# Optional fields with a meaning to the engine when declared:
#   invoice.status      string; "paid", "cancelled" and "closed" are settled
#                       (closed: the balance was carried into a later bill)
#   invoice.settled_on  date?; when the invoice stopped being due, if known
SETTLED_STATUSES = frozenset({"paid", "cancelled", "closed"})

# Fields the engine computes per invoice; a schema may not declare them.
COMPUTED_INVOICE_FIELDS = {
    "amount_paid": "money",  # payments applied up to today
    "amount_due": "money",  # amount - amount_paid, never below zero
    "due_date_effective": "date",  # due date after the calendar's roll
    "days_past_due": "int",  # today - effective due date; negative before
}


@dataclass
class CustomerRecords:
    """Everything the engine may know about one customer.

    Planning is a pure function of one of these, the ruleset and the
    instant, which is what lets customers be planned in parallel.
    """

    customer: Record
    invoices: list[Record] = field(default_factory=list)
    payments: list[Record] = field(default_factory=list)
    # Bad records of this customer that the source left out (a payment that
    # did not parse, ...): the planner holds such a customer, since what
    # it owes is not known.
    problems: list[RecordProblem] = field(default_factory=list)


@dataclass(frozen=True)
class RecordProblem:
    """A bad input record: where it came from and what is wrong with it."""

    source: str  # file name, table or query name
    row: int | None  # 1-based row or line number within the source
    record_id: str | None
    message: str
    # No id of the row can be read, so no customer can be held for it: any
    # of them might be the one it belongs to.
    owner_unknown: bool = False

    def __str__(self) -> str:
        where = self.source if self.row is None else f"{self.source}:{self.row}"
        ident = f" ({self.record_id})" if self.record_id else ""
        return f"{where}{ident}: {self.message}"


class RecordSource(Protocol):
    """A data source, as the engine sees it.

    `customers()` yields one `CustomerRecords` per customer. Bad records are
    not yielded; each is reported through `problems` (never dropped
    silently), and the run configuration decides whether a run goes on.
    """

    problems: list[RecordProblem]

    @property
    def notes(self) -> list[str]:
        """What a person should know about how the records were read (a
        mapping convention applied, records held in memory), as of the
        records read so far. The engine ignores them; the CLI shows them."""
        ...

    def customers(self) -> Iterator[CustomerRecords]: ...

    def digest(self) -> str:
        """A digest of the input as read, for the plan header."""
        ...
