"""Three record streams (customers, invoices, payments) -> `CustomerRecords`.

Readers (CSV, JSON Lines, SQL) deliver raw rows: values keyed by field
name, still as the source wrote them. This module parses them and groups
them by customer in two passes over the streams:

1. the index pass (adapters/sources/indexing.py) reads only the keys. It
   reports duplicate ids, invoices of unknown customers and payments of
   unknown invoices, wherever they are, and finds out whether invoices and
   payments come in the customers' order. For grouped input it keeps a
   Bloom filter of the ids, about 12 bits each, instead of the ids;
2. the records pass parses every row. When the streams are grouped, it
   merges them in one sweep and holds one customer's records at a time: a
   customer's invoices are the rows naming it, its payments the rows
   naming one of those invoices. When they are not grouped, it first
   collects every invoice and payment by customer, looked up in an index
   of every id (memory grows with the input; the source says so in
   `notes`).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Container, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from adapters.sources.idfilter import BITS_PER_ID
from adapters.sources.indexing import Index, KeyReader, build_index
from adapters.sources.parsing import ParseOptions, record_parsers
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


# A row with its own id and its parent's key, read once (None: unreadable):
# (invoice row, invoice id, customer id) or (payment row, invoice id, same).
_Keyed = tuple[RawRow, str | None, str | None]


class RowStream(Protocol):
    """A collection that can be read from the start as often as needed."""

    name: str

    def rows(self) -> Iterator[RawRow]: ...

    def keys(
        self, names: tuple[str, ...]
    ) -> Iterator[tuple[int | None, Sequence[object] | None]]:
        """(row, the values of `names`) of each row, None for a row that
        cannot be read: the index pass reads only these."""
        ...

    def size_hint(self) -> int | None:
        """At least the number of rows, when known without reading them."""
        ...


class EmptyStream:
    """A collection the source does not have (no payments file)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def rows(self) -> Iterator[RawRow]:
        return iter(())

    def keys(
        self, names: tuple[str, ...]
    ) -> Iterator[tuple[int | None, Sequence[object] | None]]:
        return iter(())

    def size_hint(self) -> int:
        return 0


class GroupedSource:
    """A `RecordSource` over three row streams.

    Read `problems` and `notes` after consuming `customers()`: bad records
    are reported there as they are met, never raised. Both on_error modes
    leave bad records out of what is yielded (the engine can only plan typed
    records); the caller decides from `problems` whether to go on.

    `bits_per_id` sizes the index pass's Bloom filters: fewer bits mean
    more ids to confirm by reading again, never a different answer; 0 keeps
    every id in memory. `ids_held` says, once `customers()` has started,
    whether the index held every id (input not grouped, or
    `bits_per_id` 0) or only the filters.
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
        self.bits_per_id: float = BITS_PER_ID
        self.ids_held = False
        self._streams = streams
        self._digest = digest
        self._parsers = record_parsers(schema, options)
        self._base_notes = list(self.notes)
        self._null_words = frozenset(options.null_words)
        self._keys = KeyReader(streams, self._parsers, self._null_words)

    def digest(self) -> str:
        return self._digest()

    def customers(self) -> Iterator[CustomerRecords]:
        self.problems = []
        self.notes = list(self._base_notes)
        self.max_records_held = 0
        index = build_index(self._keys, bits_per_id=self.bits_per_id)
        self.ids_held = not index.bounded
        self.problems.extend(index.problems)
        if not index.grouped:
            self.notes.append(
                "invoices or payments are not in the customers' order:"
                " all of them are held in memory while planning"
            )
            logger.info("%s", self.notes[-1])
            yield from self._held(index)
        else:
            yield from self._merged(index)
        self.problems.sort(key=lambda p: (p.source, p.row or 0))

    def _key(self, collection: str, name: str, row: RawRow) -> str | None:
        """The row's key field as text, or None when it cannot be read
        (`_parse` reports why). A malformed row keeps what can still be
        read of its ids (adapters/sources/csvsource.py)."""
        return self._keys.key(collection, name, row.values.get(name))

    def _report(
        self,
        row: RawRow,
        record_id: str | None,
        message: str,
        *,
        owner_unknown: bool = False,
    ) -> None:
        self.problems.append(
            RecordProblem(row.source, row.row, record_id, message, owner_unknown)
        )

    def _orphan(self, collection: str, row: RawRow) -> None:
        """Report an invoice or payment row whose ids cannot be read: it may
        be anyone's, so no customer is held for it and a `skip` run stops
        as a `fail` run does."""
        self._parse(collection, row, owner_unknown=True)

    # -- the records pass --------------------------------------------------

    def _merged(self, index: Index) -> Iterator[CustomerRecords]:
        """Grouped input: one sweep over the three streams.

        The index pass has checked that every invoice comes in its
        customer's group and every payment in its invoice's customer's
        group, or names a parent that is not there (reported, and passed
        here): the rows naming the customer in hand, then those naming one
        of its invoices, are all of its records.
        """
        is_repeat = self._repeats(index)
        repeats = bool(index.duplicates)
        invoices = _Lookahead(self._keyed("invoices"), "invoices")
        payments = _Lookahead(self._keyed("payments"), "payments")
        for customer_id, row in self._customer_rows(is_repeat):
            own_invoices: list[RawRow] = []
            invoice_ids: set[str] = set()
            holding: list[RecordProblem] = []
            taken = self._take(invoices, index.unknown_customers, (customer_id,))
            for invoice_row, invoice_id in taken:
                if repeats:
                    holding.extend(index.duplicates.get(("invoices", invoice_id), ()))
                if not (repeats and is_repeat("invoices", invoice_id)):
                    own_invoices.append(invoice_row)
                    invoice_ids.add(invoice_id)
            own_payments = [
                payment_row
                for payment_row, _ in self._take(
                    payments, index.unknown_invoices, invoice_ids
                )
            ]
            yield from self._assemble(row, own_invoices, own_payments, holding)

        # Rows left over belong to no customer: reading them completes the
        # reports. None are left once the index found the input grouped,
        # unless the files changed between the passes.
        for stream, unknown in (
            (invoices, index.unknown_customers),
            (payments, index.unknown_invoices),
        ):
            while stream.head is not None:
                self._take(stream, unknown, ())
                if (item := stream.head) is not None:
                    stream.advance()
                    self._report(
                        item[0], item[1], "left out: not in its customer's group"
                    )

    def _take(
        self, stream: _Lookahead, unknown: Container[str], owned: Container[str]
    ) -> list[tuple[RawRow, str]]:
        """The rows at the head of `stream` whose parent is in `owned`, with
        their ids. Rows naming an unknown parent (reported by the index
        pass) are passed, unreadable ones reported."""
        taken: list[tuple[RawRow, str]] = []
        while (item := stream.head) is not None:
            row, key, parent = item
            if key is None or parent is None:
                self._orphan(stream.collection, row)
            elif parent in owned:
                taken.append((row, key))
            elif parent not in unknown:
                break  # the next customer's
            stream.advance()
        return taken

    def _held(self, index: Index) -> Iterator[CustomerRecords]:
        """Input not grouped: every invoice and payment, by customer, first."""
        is_repeat = self._repeats(index)
        held: dict[str, dict[int, list[RawRow]]] = {
            "invoices": defaultdict(list),
            "payments": defaultdict(list),
        }
        holding: dict[int, list[RecordProblem]] = defaultdict(list)
        for collection, buckets in held.items():
            for row, key, parent in self._keyed(collection):
                if key is None or parent is None:
                    self._orphan(collection, row)
                    continue
                if collection == "invoices":
                    owner = index.customer_position.get(parent)
                    if owner is None:
                        continue
                    repeated = index.duplicates.get(("invoices", key))
                    if repeated:
                        holding[owner].extend(repeated)
                    if is_repeat("invoices", key):
                        continue
                else:
                    owner = index.invoice_owner.get(parent)
                    if owner is None:
                        continue
                buckets[owner].append(row)
        self.max_records_held = sum(
            len(rows) for buckets in held.values() for rows in buckets.values()
        )
        for customer_id, row in self._customer_rows(is_repeat):
            position = index.customer_position[customer_id]
            yield from self._assemble(
                row,
                held["invoices"].pop(position, []),
                held["payments"].pop(position, []),
                holding.pop(position, []),
            )

    def _repeats(self, index: Index) -> Callable[[str, str], bool]:
        occurrences: dict[tuple[str, str], int] = defaultdict(int)

        def is_repeat(collection: str, key: str) -> bool:
            """A second (third...) row of a duplicated id: reported by the
            index pass. Called once per row, in file order, so the first row
            is kept."""
            marker = (collection, key)
            if marker not in index.duplicates:
                return False
            occurrences[marker] += 1
            return occurrences[marker] > 1

        return is_repeat

    def _keyed(self, collection: str) -> Iterator[_Keyed]:
        id_field = _ID_FIELD[collection]
        parent_field = "customer_id" if collection == "invoices" else None
        null_words, key_of = self._null_words, self._keys.key
        for row in self._streams[collection].rows():
            # `_key`, inlined for text: this runs once per row.
            key = row.values.get(id_field)
            if isinstance(key, str):
                key = key.strip()
                key = None if key in null_words else key
            else:
                key = key_of(collection, id_field, key)
            if parent_field is None:
                yield row, key, key
                continue
            parent = row.values.get(parent_field)
            if isinstance(parent, str):
                parent = parent.strip()
                parent = None if parent in null_words else parent
            else:
                parent = key_of(collection, parent_field, parent)
            yield row, key, parent

    def _customer_rows(
        self, is_repeat: Callable[[str, str], bool]
    ) -> Iterator[tuple[str, RawRow]]:
        for row in self._streams["customers"].rows():
            key = self._key("customers", "id", row)
            if key is None:
                self._parse("customers", row)  # reports the unreadable id
                continue
            if is_repeat("customers", key):
                continue
            yield key, row

    def _parse(
        self, collection: str, row: RawRow, *, owner_unknown: bool = False
    ) -> Record | None:
        """The typed record, or None after reporting each problem in it."""
        if row.error is None:
            record, errors = parse_fields(self._parsers[collection], row.values)
            if not errors:
                return record
        else:
            errors = [row.error]
        record_id = self._key(collection, _ID_FIELD[collection], row)
        if owner_unknown:
            errors = [
                f"{message}; cannot tell whose record this is" for message in errors
            ]
        for message in errors:
            self._report(row, record_id, message, owner_unknown=owner_unknown)
        return None

    def _assemble(
        self,
        row: RawRow,
        invoice_rows: list[RawRow],
        payment_rows: list[RawRow],
        holding: Sequence[RecordProblem] = (),
    ) -> Iterator[CustomerRecords]:
        """The customer's records; `holding` are problems found elsewhere
        (a repeated invoice id) that hold this customer too."""
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

        # Problems met from here on are this customer's: the planner holds
        # a customer whose invoices or payments are not all known.
        first_problem = len(self.problems)
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

        yield CustomerRecords(
            customer=customer,
            invoices=invoices,
            payments=payments,
            problems=[*dict.fromkeys(holding), *self.problems[first_problem:]],
        )


class _Lookahead:
    """One collection's rows with their keys; `head` is the next one (None
    at the end)."""

    def __init__(self, items: Iterator[_Keyed], collection: str) -> None:
        self.collection = collection
        self._items = items
        self.head = next(items, None)

    def advance(self) -> None:
        self.head = next(self._items, None)
