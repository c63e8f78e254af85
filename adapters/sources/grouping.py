"""Three record streams (customers, invoices, payments) -> `CustomerRecords`.

Readers (CSV, JSON Lines, SQL) deliver raw rows: values keyed by field
name, still as the source wrote them. This module parses them and groups
them by customer in two passes over the streams:

1. the index pass reads only the keys. It gives every customer id its
   position, maps every invoice id to its customer, reports duplicate ids,
   invoices of unknown customers and payments of unknown invoices, and finds
   out whether invoices and payments come in the customers' order;
2. the records pass parses every row. When the streams are grouped, it
   merges them in one sweep and holds one customer's records at a time;
   when they are not, it first collects every invoice and payment by
   customer (memory grows with the input; the source says so in `notes`).

The index itself grows with the number of ids (a few dozen bytes each):
that is the price of detecting a duplicate id anywhere in a file.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from adapters.sources.parsing import ParseOptions, ValueProblem, record_parsers
from adapters.sources.parsing import parse_record as parse_fields
from dsl.model import InputSchema
from engine.records import CustomerRecords, RecordProblem
from engine.scope import Record

logger = logging.getLogger(__name__)

ON_ERROR = ("fail", "skip")
# The field that identifies a row of each collection in problem reports.
_ID_FIELD = {"customers": "id", "invoices": "id", "payments": "invoice_id"}


@dataclass
class RawRow:
    """One row as read: field name -> value as written in the source."""

    source: str
    row: int | None
    values: dict[str, object]
    error: str | None = None  # the row itself is malformed (cell count, JSON)


# A row and the position of the customer it belongs to (None: no usable
# owner, already reported).
_Owned = tuple[RawRow, int | None]


class RowStream(Protocol):
    """A collection that can be read from the start as often as needed."""

    name: str

    def rows(self) -> Iterator[RawRow]: ...


class EmptyStream:
    """A collection the source does not have (no payments file)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def rows(self) -> Iterator[RawRow]:
        return iter(())


@dataclass
class _Index:
    customer_position: dict[str, int] = field(default_factory=dict)
    invoice_owner: dict[str, int] = field(default_factory=dict)
    # id -> how many rows carry it; only ids seen more than once stay here.
    duplicates: dict[tuple[str, str], int] = field(default_factory=dict)
    grouped: bool = True
    problems: list[RecordProblem] = field(default_factory=list)


class GroupedSource:
    """A `RecordSource` over three row streams.

    Read `problems` and `notes` after consuming `customers()`: bad records
    are reported there as they are met, never raised. Both on_error modes
    leave bad records out of what is yielded (the engine can only plan typed
    records); the caller decides from `problems` whether to go on.
    """

    def __init__(
        self,
        schema: InputSchema,
        options: ParseOptions,
        streams: dict[str, RowStream],
        digest: Callable[[], str],
        *,
        on_error: str = "fail",
        notes: list[str] | None = None,
    ) -> None:
        self.on_error = on_error
        self.problems: list[RecordProblem] = []
        self.notes: list[str] = list(notes or [])
        self.max_records_held = 0  # the most parsed records held at once
        self._streams = streams
        self._digest = digest
        self._parsers = record_parsers(schema, options)
        self._base_notes = list(self.notes)
        self._null_words = frozenset(options.null_words)

    def digest(self) -> str:
        return self._digest()

    def customers(self) -> Iterator[CustomerRecords]:
        self.problems = []
        self.notes = list(self._base_notes)
        self.max_records_held = 0
        index = self._index()
        self.problems.extend(index.problems)
        if not index.grouped:
            self.notes.append(
                "invoices or payments are not in the customers' order:"
                " all of them are held in memory while planning"
            )
            logger.info("%s", self.notes[-1])
        yield from self._records(index)
        self.problems.sort(key=lambda p: (p.source, p.row or 0))

    # -- pass 1 ----------------------------------------------------------

    def _key(self, collection: str, name: str, row: RawRow) -> str | None:
        """The row's key field as text, or None when it cannot be read
        (the records pass reports that)."""
        if row.error is not None or name not in row.values:
            return None
        raw = row.values[name]
        if isinstance(raw, str):
            # The common case, kept fast: keys are read on every pass.
            text = raw.strip()
            return None if text in self._null_words else text
        try:
            value = self._parsers[collection][name].parse(row.values[name])
        except ValueProblem:
            return None
        return value if isinstance(value, str) else None

    def _index(self) -> _Index:
        index = _Index()
        repeats: list[tuple[str, str, RawRow]] = []  # (collection, id, row)

        def first_seen(
            collection: str, key: str, row: RawRow, registered: dict[str, int]
        ) -> bool:
            """False (the row is a repeat) when `key` was registered before."""
            if key not in registered:
                return True
            marker = (collection, key)
            index.duplicates[marker] = index.duplicates.get(marker, 1) + 1
            repeats.append((collection, key, row))
            return False

        for row in self._streams["customers"].rows():
            key = self._key("customers", "id", row)
            if key is not None and first_seen(
                "customers", key, row, index.customer_position
            ):
                index.customer_position[key] = len(index.customer_position)

        last_owner = -1
        for row in self._streams["invoices"].rows():
            key = self._key("invoices", "id", row)
            customer = self._key("invoices", "customer_id", row)
            if key is None or customer is None:
                continue
            owner = index.customer_position.get(customer)
            if owner is None:
                self._report(row, key, f"customer {customer!r} is not in the customers")
                continue
            if first_seen("invoices", key, row, index.invoice_owner):
                index.invoice_owner[key] = owner
            index.grouped = index.grouped and owner >= last_owner
            last_owner = owner

        last_owner = -1
        for row in self._streams["payments"].rows():
            invoice = self._key("payments", "invoice_id", row)
            if invoice is None:
                continue
            owner = index.invoice_owner.get(invoice)
            if owner is None:
                self._report(
                    row, invoice, f"invoice {invoice!r} is not in the invoices"
                )
                continue
            index.grouped = index.grouped and owner >= last_owner
            last_owner = owner

        self._report_repeats(index, repeats)
        index.problems, self.problems = self.problems, []
        return index

    def _report_repeats(
        self, index: _Index, repeats: list[tuple[str, str, RawRow]]
    ) -> None:
        """Report each repeated id with the row that registered it.

        The index keeps no row numbers: for a million invoices they would
        double its size. The first rows of the few repeated ids are found
        by reading again the collections that have any.
        """
        wanted = {(collection, key) for collection, key, _ in repeats}
        first_rows: dict[tuple[str, str], int | None] = {}
        for collection in sorted({collection for collection, _ in wanted}):
            for row in self._streams[collection].rows():
                marker = (collection, self._key(collection, "id", row) or "")
                if marker not in wanted or marker in first_rows:
                    continue
                if collection == "invoices":
                    # Only a row of a known customer registers an invoice id.
                    customer = self._key("invoices", "customer_id", row)
                    if customer not in index.customer_position:
                        continue
                first_rows[marker] = row.row

        for collection, key, row in repeats:
            first = first_rows.get((collection, key))
            where = f" (first at row {first})" if first is not None else ""
            self._report(row, key, f"duplicate {collection[:-1]} id {key!r}{where}")

    def _report(self, row: RawRow, record_id: str | None, message: str) -> None:
        self.problems.append(RecordProblem(row.source, row.row, record_id, message))

    # -- pass 2 ----------------------------------------------------------

    def _records(self, index: _Index) -> Iterator[CustomerRecords]:
        occurrences: dict[tuple[str, str], int] = defaultdict(int)

        def is_repeat(collection: str, key: str) -> bool:
            """A second (third...) row of a duplicated id: reported in pass 1.
            Called once per row, in file order, so the first row is kept."""
            marker = (collection, key)
            if marker not in index.duplicates:
                return False
            occurrences[marker] += 1
            return occurrences[marker] > 1

        def belongs(collection: str, row: RawRow) -> int | None:
            """Owner position of a usable row; None (reported) otherwise."""
            # A row whose keys cannot be read was left out of the index; it
            # must not take part in the merge either.
            if collection == "invoices":
                key = self._key("invoices", "id", row)
                parent = self._key("invoices", "customer_id", row)
                positions = index.customer_position
            else:
                key = parent = self._key("payments", "invoice_id", row)
                positions = index.invoice_owner
            if key is None or parent is None:
                self._parse(collection, row)  # reports what is unreadable
                return None
            owner = positions.get(parent)
            if owner is None:
                return None  # unknown parent: reported in pass 1
            if collection == "invoices" and is_repeat(collection, key):
                return None
            return owner

        if index.grouped:
            # Each row's owner is worked out once, when it is first peeked at.
            invoices = _Lookahead(
                (row, belongs("invoices", row))
                for row in self._streams["invoices"].rows()
            )
            payments = _Lookahead(
                (row, belongs("payments", row))
                for row in self._streams["payments"].rows()
            )

            def take(
                stream: _Lookahead, collection: str, position: int
            ) -> list[RawRow]:
                taken: list[RawRow] = []
                while (item := stream.peek()) is not None:
                    row, owner = item
                    if owner is not None and owner > position:
                        break
                    stream.next()
                    if owner == position:
                        taken.append(row)
                    elif owner is not None:
                        out_of_order(collection, row)
                return taken

            def out_of_order(collection: str, row: RawRow) -> None:
                """Cannot happen once the index found the input grouped;
                reported all the same rather than lost."""
                record_id = self._key(collection, _ID_FIELD[collection], row)
                self._report(row, record_id, "left out: not in its customer's group")

            for position, row in self._customer_rows(index, is_repeat):
                group_invoices = take(invoices, "invoices", position)
                group_payments = take(payments, "payments", position)
                yield from self._assemble(row, group_invoices, group_payments)
            # Rows left over belong to no customer: reading them completes
            # the reports.
            for collection, stream in (("invoices", invoices), ("payments", payments)):
                while stream.peek() is not None:
                    row, owner = stream.next()
                    if owner is not None:
                        out_of_order(collection, row)
            return

        held: dict[str, dict[int, list[RawRow]]] = {
            "invoices": defaultdict(list),
            "payments": defaultdict(list),
        }
        for collection, buckets in held.items():
            for row in self._streams[collection].rows():
                owner = belongs(collection, row)
                if owner is not None:
                    buckets[owner].append(row)
        self.max_records_held = sum(
            len(rows) for buckets in held.values() for rows in buckets.values()
        )
        for position, row in self._customer_rows(index, is_repeat):
            yield from self._assemble(
                row,
                held["invoices"].pop(position, []),
                held["payments"].pop(position, []),
            )

    def _customer_rows(
        self, index: _Index, is_repeat: Callable[[str, str], bool]
    ) -> Iterator[tuple[int, RawRow]]:
        for row in self._streams["customers"].rows():
            key = self._key("customers", "id", row)
            if key is None:
                self._parse("customers", row)  # reports the unreadable id
                continue
            if is_repeat("customers", key):
                continue
            yield index.customer_position[key], row

    def _parse(self, collection: str, row: RawRow) -> Record | None:
        """The typed record, or None after reporting each problem in it."""
        if row.error is None:
            record, errors = parse_fields(self._parsers[collection], row.values)
            if not errors:
                return record
        else:
            errors = [row.error]
        record_id = self._key(collection, _ID_FIELD[collection], row)
        for message in errors:
            self._report(row, record_id, message)
        return None

    def _assemble(
        self, row: RawRow, invoice_rows: list[RawRow], payment_rows: list[RawRow]
    ) -> Iterator[CustomerRecords]:
        self.max_records_held = max(
            self.max_records_held, 1 + len(invoice_rows) + len(payment_rows)
        )
        customer = self._parse("customers", row)
        if customer is None:
            if invoice_rows or payment_rows:
                self._report(
                    row,
                    self._key("customers", "id", row),
                    f"customer left out, and with it {len(invoice_rows)} invoice(s)"
                    f" and {len(payment_rows)} payment(s)",
                )
            return

        invoices: list[Record] = []
        kept: set[str] = set()
        for invoice_row in invoice_rows:
            invoice = self._parse("invoices", invoice_row)
            if invoice is not None:
                invoices.append(invoice)
                kept.add(str(invoice["id"]))

        payments: list[Record] = []
        for payment_row in payment_rows:
            payment = self._parse("payments", payment_row)
            if payment is None:
                continue
            if payment["invoice_id"] not in kept:
                self._report(
                    payment_row,
                    str(payment["invoice_id"]),
                    "payment left out: its invoice was left out (see above)",
                )
                continue
            payments.append(payment)

        yield CustomerRecords(customer=customer, invoices=invoices, payments=payments)


class _Lookahead:
    """An iterator of rows and their owners, with one item of lookahead."""

    def __init__(self, items: Iterator[_Owned]) -> None:
        self._items = items
        self._next: _Owned | None = None
        self._done = False

    def peek(self) -> _Owned | None:
        if self._next is None and not self._done:
            self._next = next(self._items, None)
            self._done = self._next is None
        return self._next

    def next(self) -> _Owned:
        item = self.peek()
        assert item is not None  # callers peek first
        self._next = None
        return item
