"""Grouped input streams one customer at a time; ungrouped input is indexed."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

from adapters.sources import open_source
from adapters.sources.grouping import GroupedSource, RawRow
from engine.scope import Record
from tests.adapters.fixtures.schemas import make_schema

SCHEMA = make_schema(
    {
        "customer": {"id": "string"},
        "invoice": {
            "id": "string",
            "customer_id": "string",
            "amount": "money",
            "due_date": "date",
        },
        "payment": {"invoice_id": "string", "amount": "money", "paid_on": "date"},
    }
)
CUSTOMERS = 3_000


def invoices_of(customer: int) -> int:
    """1 to 4 invoices, varying by customer."""
    return 1 + customer % 4


def customer_lines() -> Iterator[str]:
    yield "id\n"
    for customer in range(CUSTOMERS):
        yield f"K{customer:05d}\n"


def invoice_rows() -> Iterator[tuple[str, str]]:
    for customer in range(CUSTOMERS):
        for number in range(invoices_of(customer)):
            yield f"K{customer:05d}", f"I{customer:05d}-{number}"


def write_lines(path: Path, lines: Iterator[str]) -> None:
    with path.open("w", encoding="utf-8") as stream:
        stream.writelines(lines)


def write_folder(folder: Path, *, shuffled: bool) -> None:
    folder.mkdir()
    rows = list(invoice_rows()) if shuffled else invoice_rows()
    if shuffled:
        assert isinstance(rows, list)
        random.Random(7).shuffle(rows)
    write_lines(folder / "customers.csv", customer_lines())
    write_lines(
        folder / "invoices.csv",
        iter(
            ["id,customer_id,amount,due_date\n"]
            + [f"{i},{c},10.00,2024-10-01\n" for c, i in rows]
        ),
    )
    # One payment per invoice, in the invoices' order.
    write_lines(
        folder / "payments.csv",
        iter(
            ["invoice_id,amount,paid_on\n"]
            + [f"{i},1.00,2024-09-01\n" for _, i in invoice_rows()]
        ),
    )


def test_grouped_files_hold_one_customer_at_a_time(tmp_path: Path) -> None:
    write_folder(tmp_path / "grouped", shuffled=False)
    source = open_source(str(tmp_path / "grouped"), SCHEMA)
    assert isinstance(source, GroupedSource)

    # Count the rows parsed into records, to see how far ahead the source
    # reads when it hands over a customer.
    parsed = 0
    parse = source._parse

    def counting_parse(collection: str, row: RawRow) -> Record | None:
        nonlocal parsed
        parsed += 1
        return parse(collection, row)

    source._parse = counting_parse  # type: ignore[method-assign]

    seen = 0
    largest = 0
    for records in source.customers():
        seen += 1
        if seen == 1:
            # Customer K00000 (1 invoice, 1 payment): nothing beyond it.
            assert parsed == 3
        largest = max(largest, 1 + len(records.invoices) + len(records.payments))
        # Counted while the stream is still open, not only at the end.
        assert source.max_records_held <= largest

    assert seen == CUSTOMERS
    assert source.problems == []
    # The largest customer: 1 + 4 invoices + 4 payments.
    assert largest == 9
    assert source.max_records_held == largest
    assert not any("memory" in note for note in source.notes)


def test_ungrouped_files_are_indexed_and_say_so(tmp_path: Path) -> None:
    write_folder(tmp_path / "shuffled", shuffled=True)
    source = open_source(str(tmp_path / "shuffled"), SCHEMA)
    assert isinstance(source, GroupedSource)

    by_id = {records.customer["id"]: records for records in source.customers()}

    assert len(by_id) == CUSTOMERS
    assert source.problems == []
    total = sum(invoices_of(c) for c in range(CUSTOMERS))
    # Every invoice and payment was held at once.
    assert source.max_records_held == 2 * total
    assert any("held in memory" in note for note in source.notes)
    # Grouping is still right: each customer has exactly its own invoices.
    for customer in (0, 1, 2, 2_999):
        records = by_id[f"K{customer:05d}"]
        assert sorted(i["id"] for i in records.invoices) == [
            f"I{customer:05d}-{n}" for n in range(invoices_of(customer))
        ]
        assert len(records.payments) == invoices_of(customer)


def test_customers_can_be_read_twice_with_the_same_result(tmp_path: Path) -> None:
    write_folder(tmp_path / "twice", shuffled=False)
    source = open_source(str(tmp_path / "twice"), SCHEMA)
    first = [r.customer["id"] for r in source.customers()]
    second = [r.customer["id"] for r in source.customers()]
    assert first == second
    assert len(first) == CUSTOMERS
