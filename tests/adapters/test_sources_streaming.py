"""Grouped input streams one customer at a time; ungrouped input is indexed."""

from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

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


def write_large_folder(folder: Path, customers: int) -> None:
    """Grouped files, two invoices and one payment per invoice per customer,
    with a problem at each far end of each file."""
    folder.mkdir()
    write_lines(
        folder / "customers.csv",
        iter(
            ["id\n"]
            + [f"K{c:06d}\n" for c in range(customers)]
            + ["K000000\n"]  # repeats the first customer
        ),
    )
    last = customers - 1
    invoices = ["id,customer_id,amount,due_date\n", "E0,Z1,10.00,2024-10-01\n"]
    payments = ["invoice_id,amount,paid_on\n", "X0,1.00,2024-09-01\n"]
    for c in range(customers):
        for n in range(2):
            invoices.append(f"I{c:06d}-{n},K{c:06d},10.00,2024-10-01\n")
            payments.append(f"I{c:06d}-{n},1.00,2024-09-01\n")
    invoices.append(f"I000000-0,K{last:06d},10.00,2024-10-01\n")  # a repeat
    invoices.append("E1,Z2,10.00,2024-10-01\n")
    payments.append("X1,1.00,2024-09-01\n")
    write_lines(folder / "invoices.csv", iter(invoices))
    write_lines(folder / "payments.csv", iter(payments))


LARGE = 40_000


@pytest.mark.parametrize("bits_per_id", [12.0, 0.01], ids=["default", "tiny"])
def test_problems_at_the_far_ends_of_a_large_file(
    tmp_path: Path, bits_per_id: float
) -> None:
    write_large_folder(tmp_path / "large", LARGE)
    source = open_source(str(tmp_path / "large"), SCHEMA)
    assert isinstance(source, GroupedSource)
    source.bits_per_id = bits_per_id

    delivered = sum(1 for _ in source.customers())

    last_invoice = 2 * LARGE + 3  # header, E0, the invoices, then the repeat
    assert [str(p) for p in source.problems] == [
        f"customers.csv:{LARGE + 2} (K000000): duplicate customer id 'K000000'"
        " (first at row 2)",
        "invoices.csv:2 (E0): customer 'Z1' is not in the customers",
        f"invoices.csv:{last_invoice} (I000000-0): duplicate invoice id"
        " 'I000000-0' (first at row 3)",
        f"invoices.csv:{last_invoice + 1} (E1): customer 'Z2' is not in the customers",
        "payments.csv:2 (X0): invoice 'X0' is not in the invoices",
        f"payments.csv:{2 * LARGE + 3} (X1): invoice 'X1' is not in the invoices",
    ]
    assert delivered == LARGE
    assert not source.ids_held
    assert source.max_records_held == 5


# Reads a folder with the streaming test's schema in a fresh interpreter
# and prints its peak resident size in KiB (the kernel's high-water mark).
PEAK_CHILD = """
import sys
from pathlib import Path
from adapters.sources import open_source
from tests.adapters.test_sources_streaming import SCHEMA
source = open_source(sys.argv[1], SCHEMA)
source.bits_per_id = float(sys.argv[2])
customers = sum(1 for _ in source.customers())
assert source.ids_held == (source.bits_per_id == 0), source.notes
status = Path("/proc/self/status").read_text().splitlines()
print(next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")))
"""


def peak_kib(folder: Path, bits_per_id: float) -> int:
    done = subprocess.run(
        [sys.executable, "-c", PEAK_CHILD, str(folder), str(bits_per_id)],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout.split()[-1])


@pytest.mark.skipif(
    not Path("/proc/self/status").is_file(), reason="reads /proc/self/status"
)
def test_memory_does_not_grow_with_the_customers_of_grouped_input(
    tmp_path: Path,
) -> None:
    write_large_folder(tmp_path / "small", LARGE // 10)
    write_large_folder(tmp_path / "large", LARGE)

    bounded, exact = (
        peak_kib(tmp_path / "large", bits) - peak_kib(tmp_path / "small", bits)
        for bits in (12.0, 0.0)
    )

    # 36,000 more customers and 72,000 more invoices: the filters grow by
    # 12 bits an id (160 kB); an index of every id by some 8 MB.
    assert bounded < 1_500
    assert exact > 5_000
