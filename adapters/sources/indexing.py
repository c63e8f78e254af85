"""The index pass of a grouped source: what the records pass must know first.

Before the first customer is planned, the source must know whether the
input is grouped by customer (it decides how the records pass reads),
which rows repeat a customer or invoice id, which invoices name a customer
that is not there and which payments an invoice that is not there. Every
such row is reported with its source and row, wherever it is in a file.

`build_index` finds all of it in memory that does not grow with the number
of customers when the input is grouped:

1. the customer ids go into a Bloom filter (`IdFilter`). An id the filter
   may have seen already is a *suspect* duplicate;
2. the invoices are aligned with a second read of the customers: each
   invoice belongs to the customer in hand, to one further on (the
   customers in between have no invoices), or to none. The invoice ids go
   into a second filter, with their own suspects. Suspect customer ids are
   settled by that same read of the customers: the first row of an id comes
   before its repeats;
3. the payments are aligned the same way with a second read of the
   invoices, grouped by customer, which also settles the suspect invoice
   ids.

An alignment cannot always tell a row naming a parent that is not there
from one that is out of order: the filter says "maybe there" of about 1 %
of the ids it never saw. Such rows are set aside, and one read of the
parents' ids settles them: none there, they are reported; any there, the
input is not in order, and the index is built again the exact way, with
every id in memory (`exact_index`), as it is for input that is not grouped.
The exact way gives the same answers; only memory differs.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Container, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from adapters.sources.idfilter import BITS_PER_ID, IdFilter
from adapters.sources.parsing import FieldParser, ValueProblem
from engine.records import RecordProblem

logger = logging.getLogger(__name__)

# Rows further on that stop an alignment looking for a row's parent: see
# `_Alignment._stoppers`.
_STOPPERS = 4
# Rows set aside before they are settled by a read of the parents; doubled
# after each read, so many rows naming missing parents cost few reads.
_FIRST_SETTLEMENT = 4096

# (row number, key values as text; None where unreadable)
KeyRow = tuple[int | None, tuple[str | None, ...]]
# A row naming its parent: (row number, parent key, the row's own id)
_Child = tuple[int | None, str, str]


class KeyedStream(Protocol):
    """A collection whose key fields can be read without the rest."""

    name: str

    def keys(
        self, names: tuple[str, ...]
    ) -> Iterator[tuple[int | None, Sequence[object] | None]]: ...

    def size_hint(self) -> int | None: ...


@dataclass
class Index:
    """What the index pass found."""

    grouped: bool = True
    # (collection, id) of every id more than one row carries, with the
    # problems reported for its repeats: they hold the customers concerned.
    duplicates: dict[tuple[str, str], list[RecordProblem]] = field(default_factory=dict)
    # Ids named by invoices (payments) that no customer (invoice) has.
    unknown_customers: set[str] = field(default_factory=set)
    unknown_invoices: set[str] = field(default_factory=set)
    problems: list[RecordProblem] = field(default_factory=list)
    # Built without a map of every id (see the module's docstring).
    bounded: bool = True
    # Only in the exact index: the position of each customer id, and the
    # position of each invoice id's customer (for input that is not grouped).
    customer_position: dict[str, int] = field(default_factory=dict)
    invoice_owner: dict[str, int] = field(default_factory=dict)


class KeyReader:
    """Reads the key fields of a collection's rows as text, as the records
    pass reads them (spaces dropped, null words empty)."""

    def __init__(
        self,
        streams: Mapping[str, KeyedStream],
        parsers: Mapping[str, Mapping[str, FieldParser]],
        null_words: frozenset[str],
    ) -> None:
        self._streams = streams
        self._parsers = parsers
        self._null_words = null_words

    def name(self, collection: str) -> str:
        return self._streams[collection].name

    def key(self, collection: str, name: str, raw: object) -> str | None:
        """One key value as text, or None when it cannot be read (the
        records pass reports why)."""
        if isinstance(raw, str):
            # The common case, kept fast: keys are read on every pass.
            text = raw.strip()
            return None if text in self._null_words else text
        if raw is None:
            return None
        try:
            value = self._parsers[collection][name].parse(raw)
        except ValueProblem:
            return None
        return value if isinstance(value, str) else None

    def rows(self, collection: str, names: tuple[str, ...]) -> Iterator[KeyRow]:
        """(row, the keys `names`) of each row; all None for a row that
        cannot be read."""
        unreadable = (None,) * len(names)
        null_words = self._null_words
        key = self.key
        rows = self._streams[collection].keys(names)
        # Text, the common case, is read inline: every pass reads the keys.
        if len(names) == 1:
            for number, values in rows:
                if values is None:
                    yield number, unreadable
                elif isinstance(one := values[0], str):
                    one = one.strip()
                    yield number, (None if one in null_words else one,)
                else:
                    yield number, (key(collection, names[0], one),)
        elif len(names) == 2:
            for number, values in rows:
                if values is None:
                    yield number, unreadable
                    continue
                one, two = values
                if isinstance(one, str) and isinstance(two, str):
                    one, two = one.strip(), two.strip()
                    yield (
                        number,
                        (
                            None if one in null_words else one,
                            None if two in null_words else two,
                        ),
                    )
                else:
                    yield (
                        number,
                        (
                            key(collection, names[0], one),
                            key(collection, names[1], two),
                        ),
                    )
        else:
            for number, values in rows:
                if values is None:
                    yield number, unreadable
                else:
                    yield (
                        number,
                        tuple(
                            key(collection, name, raw)
                            for name, raw in zip(names, values, strict=True)
                        ),
                    )

    def size_hint(self, collection: str) -> int:
        """At least the number of rows (counted when the stream cannot say)."""
        hint = self._streams[collection].size_hint()
        if hint is not None:
            return hint
        return sum(1 for _ in self._streams[collection].keys(()))


class _Unbounded(Exception):
    """The bounded index cannot vouch for the order: build the exact one."""


def build_index(reader: KeyReader, *, bits_per_id: float = BITS_PER_ID) -> Index:
    """The index, in bounded memory when the input is grouped by customer.

    `bits_per_id` sizes the Bloom filters; 0 builds the exact index.
    """
    if bits_per_id <= 0:
        return exact_index(reader)
    try:
        return _BoundedIndex(reader, bits_per_id).build()
    except _Unbounded as reason:
        logger.info("%s: every id is indexed in memory", reason)
    # Out of the handler: the reads the bounded index left open are closed
    # with its traceback before the exact index reads again.
    return exact_index(reader)


class _Reports:
    """Problems of the index pass, and the ids found repeated."""

    def __init__(self, index: Index) -> None:
        self.index = index

    def add(self, source: str, row: int | None, record_id: str, message: str) -> None:
        self.index.problems.append(RecordProblem(source, row, record_id, message))

    def duplicate(
        self, collection: str, source: str, row: int | None, key: str, first: int | None
    ) -> None:
        where = f" (first at row {first})" if first is not None else ""
        message = f"duplicate {collection[:-1]} id {key!r}{where}"
        problem = RecordProblem(source, row, key, message)
        self.index.problems.append(problem)
        self.index.duplicates.setdefault((collection, key), []).append(problem)


class _BoundedIndex:
    def __init__(self, reader: KeyReader, bits_per_id: float) -> None:
        self._reader = reader
        self._bits = bits_per_id
        self._index = Index()
        self._reports = _Reports(self._index)

    def build(self) -> Index:
        customer_ids, customer_suspects = self._customer_ids()
        invoice_ids, invoice_suspects = self._invoices(customer_ids, customer_suspects)
        self._payments(invoice_ids, invoice_suspects)
        return self._index

    def _customer_ids(self) -> tuple[IdFilter, set[str]]:
        ids = IdFilter(self._reader.size_hint("customers"), self._bits)
        suspects: set[str] = set()
        for _, (key,) in self._reader.rows("customers", ("id",)):
            if key is not None and ids.add(key):
                suspects.add(key)
        return ids, suspects

    def _customer_groups(self, suspects: set[str]) -> Iterator[Container[str]]:
        """Each customer id in order, as a group of one; repeats reported."""
        source = self._reader.name("customers")
        first_rows: dict[str, int | None] = {}
        for row, (key,) in self._reader.rows("customers", ("id",)):
            if key is None:
                continue
            if key in suspects:
                if key in first_rows:
                    self._reports.duplicate(
                        "customers", source, row, key, first_rows[key]
                    )
                    continue
                first_rows[key] = row
            yield (key,)

    def _existing_customers(self, keys: set[str]) -> set[str]:
        return {
            key for _, (key,) in self._reader.rows("customers", ("id",)) if key in keys
        }

    def _invoices(
        self, customer_ids: IdFilter, customer_suspects: set[str]
    ) -> tuple[IdFilter, set[str]]:
        ids = IdFilter(self._reader.size_hint("invoices"), self._bits)
        suspects: set[str] = set()

        def register(child: _Child) -> None:
            # Only an invoice of a known customer registers its id.
            if ids.add(child[2]):
                suspects.add(child[2])

        unknown = self._index.unknown_customers
        _Alignment(
            source=self._reader.name("invoices"),
            children=(
                (row, customer, invoice)
                for row, (invoice, customer) in self._reader.rows(
                    "invoices", ("id", "customer_id")
                )
                if invoice is not None and customer is not None
            ),
            groups=self._customer_groups(customer_suspects),
            may_exist=lambda key: key not in unknown and key in customer_ids,
            settle=self._existing_customers,
            describe=lambda key: f"customer {key!r} is not in the customers",
            unknown=unknown,
            reports=self._reports,
            on_match=register,
        ).run()
        return ids, suspects

    def _invoice_groups(self, suspects: set[str]) -> Iterator[Container[str]]:
        """The registered invoice ids of each customer in order; repeats
        reported."""
        source = self._reader.name("invoices")
        unknown = self._index.unknown_customers
        first_rows: dict[str, int | None] = {}
        owner: str | None = None
        group: set[str] = set()
        for row, (invoice, customer) in self._reader.rows(
            "invoices", ("id", "customer_id")
        ):
            if invoice is None or customer is None or customer in unknown:
                continue
            if customer != owner:
                if owner is not None:
                    yield group
                owner, group = customer, set()
            if invoice in suspects:
                if invoice in first_rows:
                    self._reports.duplicate(
                        "invoices", source, row, invoice, first_rows[invoice]
                    )
                    continue
                first_rows[invoice] = row
            group.add(invoice)
        if owner is not None:
            yield group

    def _existing_invoices(self, keys: set[str]) -> set[str]:
        unknown = self._index.unknown_customers
        return {
            invoice
            for _, (invoice, customer) in self._reader.rows(
                "invoices", ("id", "customer_id")
            )
            if invoice in keys and customer is not None and customer not in unknown
        }

    def _payments(self, invoice_ids: IdFilter, invoice_suspects: set[str]) -> None:
        unknown = self._index.unknown_invoices
        _Alignment(
            source=self._reader.name("payments"),
            children=(
                (row, invoice, invoice)
                for row, (invoice,) in self._reader.rows("payments", ("invoice_id",))
                if invoice is not None
            ),
            groups=self._invoice_groups(invoice_suspects),
            may_exist=lambda key: key not in unknown and key in invoice_ids,
            settle=self._existing_invoices,
            describe=lambda key: f"invoice {key!r} is not in the invoices",
            unknown=unknown,
            reports=self._reports,
        ).run()


class _Groups:
    """Parent groups in order, with one group of lookahead."""

    def __init__(self, groups: Iterator[Container[str]]) -> None:
        self._groups = groups
        self._next: Container[str] | None = None
        self._done = False

    def peek(self) -> Container[str] | None:
        if self._next is None and not self._done:
            self._next = next(self._groups, None)
            self._done = self._next is None
        return self._next

    def take(self) -> Container[str]:
        group = self.peek()
        assert group is not None  # callers peek first
        self._next = None
        return group

    def drain(self) -> None:
        """Read the rest: reading them completes the reports of repeats."""
        self._next = None
        for _ in self._groups:
            pass


def _ignore(child: _Child) -> None:
    """A match that needs no more than its place in the alignment."""


class _Alignment:
    """Rows naming a parent (children), against their parents' groups in
    the parents' order, without an index of the parents.

    A child whose parent key is in the group in hand belongs to it. One
    whose key the filter never saw names a parent that is not there. Any
    other names a parent further on, or is out of order, or names a parent
    that is not there but that the filter wrongly may have seen. The
    alignment then moves on to the group holding the key, passing groups
    no child names before it; and it stops early, setting the child aside
    as a suspect, at a group named by a child further on (`_stoppers`),
    since in order that group's children would come first.
    """

    def __init__(
        self,
        *,
        source: str,
        children: Iterator[_Child],
        groups: Iterator[Container[str]],
        may_exist: Callable[[str], bool],
        settle: Callable[[set[str]], set[str]],
        describe: Callable[[str], str],
        unknown: set[str],
        reports: _Reports,
        on_match: Callable[[_Child], None] | None = None,
    ) -> None:
        self._source = source
        self._children = children
        self._groups = _Groups(groups)
        self._may_exist = may_exist
        self._settle_keys = settle
        self._describe = describe
        self._unknown_keys = unknown
        self._reports = reports
        self._on_match = on_match
        self._pending: deque[_Child] = deque()  # children read ahead
        self._suspects: list[_Child] = []
        self._settle_at = _FIRST_SETTLEMENT

    def run(self) -> None:
        groups, pending, children = self._groups, self._pending, self._children
        match = self._on_match or _ignore
        current: Container[str] = ()
        while True:
            # Inlined: this loop runs once per row of the children's file.
            if pending:
                child = pending.popleft()
            elif (read := next(children, None)) is not None:
                child = read
            else:
                break
            parent = child[1]
            if parent in current:
                match(child)
                continue
            upcoming = groups.peek()
            if upcoming is not None and parent in upcoming:
                current = groups.take()
                match(child)
                continue
            if not self._may_exist(parent):
                self._unknown(child)
                continue
            if upcoming is None:
                self._suspect(child)
                continue
            stoppers = self._stoppers(parent)
            if any(key in current for key in stoppers):
                # The group in hand has children after this one.
                self._suspect(child)
                continue
            current = self._advance(child, stoppers)
        groups.drain()
        self._settle()

    def _stoppers(self, parent: str) -> set[str]:
        """Parent keys of the next few children naming another parent that
        may exist (read ahead; those that cannot exist are reported).

        If the child in hand names no parent, the first child further on
        that does is in the next group with children; stopping there keeps
        the groups it is about to need. Several keys, in case the next ones
        are missing parents the filter wrongly may have seen too.
        """
        keys = {key for _, key, _ in self._pending if key != parent}
        checked, possible = parent, True
        while len(keys) < _STOPPERS:
            child = next(self._children, None)
            if child is None:
                break
            key = child[1]
            if key != checked:
                checked, possible = key, self._may_exist(key)
            if not possible:
                self._unknown(child)
                continue
            self._pending.append(child)
            if key != parent:
                keys.add(key)
        return keys

    def _advance(self, child: _Child, stoppers: set[str]) -> Container[str]:
        """The group of `child`'s parent, or the group a stopper names."""
        groups = self._groups
        while (group := groups.peek()) is not None:
            if child[1] in group:
                self._match(child)
                return groups.take()
            if any(key in group for key in stoppers):
                self._suspect(child)
                return groups.take()
            groups.take()  # no child names it before the next known one
        self._suspect(child)
        return ()

    def _match(self, child: _Child) -> None:
        if self._on_match is not None:
            self._on_match(child)

    def _unknown(self, child: _Child) -> None:
        row, parent, record_id = child
        self._unknown_keys.add(parent)
        self._reports.add(self._source, row, record_id, self._describe(parent))

    def _suspect(self, child: _Child) -> None:
        self._suspects.append(child)
        if len(self._suspects) >= self._settle_at:
            self._settle()
            self._settle_at *= 2

    def _settle(self) -> None:
        """Read the parents' ids once for the children set aside: none may
        name a parent that exists."""
        if not self._suspects:
            return
        existing = self._settle_keys({key for _, key, _ in self._suspects})
        if existing:
            rows = [row for row, key, _ in self._suspects if key in existing]
            raise _Unbounded(
                f"{self._source}: row {rows[0]} is not in its customer's order"
            )
        for child in self._suspects:
            self._unknown(child)
        self._suspects.clear()


def exact_index(reader: KeyReader) -> Index:
    """The index with every customer id and invoice id in memory: the
    position of each customer, and of each invoice's customer. Needed for
    input that is not grouped, whose records pass must look owners up."""
    index = Index(bounded=False)
    reports = _Reports(index)
    repeats: list[tuple[str, str, int | None]] = []  # (collection, id, row)

    def first_seen(
        collection: str, key: str, row: int | None, known: Container[str]
    ) -> bool:
        """False (the row is a repeat) when `key` was registered before."""
        if key not in known:
            return True
        repeats.append((collection, key, row))
        return False

    positions = index.customer_position
    for row, (key,) in reader.rows("customers", ("id",)):
        if key is not None and first_seen("customers", key, row, positions):
            positions[key] = len(positions)

    source = reader.name("invoices")
    owners = index.invoice_owner
    last_owner = -1
    for row, (invoice, customer) in reader.rows("invoices", ("id", "customer_id")):
        if invoice is None or customer is None:
            continue
        owner = positions.get(customer)
        if owner is None:
            index.unknown_customers.add(customer)
            reports.add(
                source, row, invoice, f"customer {customer!r} is not in the customers"
            )
            continue
        if first_seen("invoices", invoice, row, owners):
            owners[invoice] = owner
        index.grouped = index.grouped and owner >= last_owner
        last_owner = owner

    source = reader.name("payments")
    last_owner = -1
    for row, (invoice,) in reader.rows("payments", ("invoice_id",)):
        if invoice is None:
            continue
        owner = owners.get(invoice)
        if owner is None:
            index.unknown_invoices.add(invoice)
            reports.add(
                source, row, invoice, f"invoice {invoice!r} is not in the invoices"
            )
            continue
        index.grouped = index.grouped and owner >= last_owner
        last_owner = owner

    _report_repeats(reader, index, reports, repeats)
    return index


def _report_repeats(
    reader: KeyReader,
    index: Index,
    reports: _Reports,
    repeats: list[tuple[str, str, int | None]],
) -> None:
    """Report each repeated id with the row that registered it.

    The exact index keeps no row numbers: for a million invoices they would
    double its size. The first rows of the few repeated ids are found by
    reading again the collections that have any.
    """
    wanted = {(collection, key) for collection, key, _ in repeats}
    first_rows: dict[tuple[str, str], int | None] = {}
    for collection in sorted({collection for collection, _ in wanted}):
        names = ("id", "customer_id") if collection == "invoices" else ("id",)
        for row, keys in reader.rows(collection, names):
            marker = (collection, keys[0] or "")
            if marker not in wanted or marker in first_rows:
                continue
            # Only a row of a known customer registers an invoice id.
            if collection == "invoices" and keys[1] not in index.customer_position:
                continue
            first_rows[marker] = row

    for collection, key, row in repeats:
        source = reader.name(collection)
        reports.duplicate(
            collection, source, row, key, first_rows.get((collection, key))
        )
