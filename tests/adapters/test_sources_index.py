"""The index pass in bounded memory gives the answers of the exact index.

For grouped input the source keeps Bloom filters of the ids instead of the
ids (adapters/sources/indexing.py). Whatever the filters' size, the records
delivered, the problems (with their rows) and the notes must be those of
the exact index, which holds every id: `bits_per_id = 0` builds that one.
A tiny filter makes nearly every id a false suspect, which the
confirmation reads must clear.
"""

from __future__ import annotations

import contextlib
import json
import random
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from adapters.sources import open_source
from adapters.sources.grouping import GroupedSource
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
DEFAULT_BITS = 12.0
TINY_BITS = 0.01  # a filter of 64 bits: almost every id may have been seen
EXACT = 0.0


@dataclass
class Data:
    """Rows of the three files, without their headers."""

    customers: list[str] = field(default_factory=list)
    invoices: list[str] = field(default_factory=list)
    payments: list[str] = field(default_factory=list)

    def tables(self) -> list[tuple[str, tuple[str, ...], list[str]]]:
        return [
            ("customers", ("id",), self.customers),
            ("invoices", ("id", "customer_id", "amount", "due_date"), self.invoices),
            ("payments", ("invoice_id", "amount", "paid_on"), self.payments),
        ]

    def write(self, folder: Path) -> Path:
        """CSV files in `folder`."""
        folder.mkdir(parents=True, exist_ok=True)
        for name, columns, rows in self.tables():
            lines = [",".join(columns), *rows]
            (folder / f"{name}.csv").write_text("\n".join(lines) + "\n")
        return folder

    def write_jsonl(self, folder: Path) -> Path:
        """One JSON Lines file holding every record."""
        folder.mkdir(parents=True, exist_ok=True)
        lines = [
            json.dumps(
                {"record": name[:-1], **dict(zip(columns, row.split(","), strict=True))}
            )
            for name, columns, rows in self.tables()
            for row in rows
        ]
        path = folder / "all.jsonl"
        path.write_text("\n".join(lines) + "\n")
        return path

    def write_sqlite(self, folder: Path) -> Path:
        """SQLite tables, and the source configuration reading them."""
        folder.mkdir(parents=True, exist_ok=True)
        with contextlib.closing(sqlite3.connect(folder / "data.sqlite3")) as db:
            for name, columns, rows in self.tables():
                db.execute(f"CREATE TABLE {name} ({', '.join(columns)})")
                marks = ", ".join("?" * len(columns))
                db.executemany(
                    f"INSERT INTO {name} VALUES ({marks})",
                    [row.split(",") for row in rows],
                )
            db.commit()
        config = folder / "source.yaml"
        config.write_text(
            "kind: sql\nurl: sqlite:///data.sqlite3\ntables:\n"
            "  customers: customers\n  invoices: invoices\n  payments: payments\n"
        )
        return config


@dataclass(frozen=True)
class Reading:
    """Everything a source tells, in a form that compares."""

    records: list[tuple[str, list[tuple[str, str]], list[tuple[str, str]]]]
    problems: list[str]
    notes: list[str]
    ids_held: bool


def read(folder: Path, bits_per_id: float) -> Reading:
    """Read a source (a CSV folder, a JSON Lines file, a source.yaml)."""
    source = open_source(folder, SCHEMA)
    assert isinstance(source, GroupedSource)
    source.bits_per_id = bits_per_id
    records = [
        (
            str(r.customer["id"]),
            [(str(i["id"]), str(i["amount"])) for i in r.invoices],
            [(str(p["invoice_id"]), str(p["amount"])) for p in r.payments],
        )
        for r in source.customers()
    ]
    return Reading(
        records, [str(p) for p in source.problems], source.notes, source.ids_held
    )


def same_answers(folder: Path) -> Reading:
    """Read with the default, a tiny and no filter; all must agree."""
    exact = read(folder, EXACT)
    assert exact.ids_held
    for bits in (DEFAULT_BITS, TINY_BITS):
        bounded = read(folder, bits)
        assert bounded.records == exact.records, bits
        assert bounded.problems == exact.problems, bits
        assert bounded.notes == exact.notes, bits
    return read(folder, DEFAULT_BITS)


def test_true_duplicates_only_when_every_id_is_a_suspect(tmp_path: Path) -> None:
    data = Data()
    for number in range(2_000):
        data.customers.append(f"C{number}")
        data.invoices.append(f"F{number},C{number},10.00,2025-10-01")
        data.payments.append(f"F{number},1.00,2025-09-01")
    data.customers.insert(700, "C3")  # row 702 repeats row 5
    data.invoices.append("F10,C1999,11.00,2025-10-01")  # repeats F10 of C10
    folder = data.write(tmp_path / "data")

    tiny = read(folder, TINY_BITS)

    assert tiny.problems == [
        "customers.csv:702 (C3): duplicate customer id 'C3' (first at row 5)",
        "invoices.csv:2002 (F10): duplicate invoice id 'F10' (first at row 12)",
    ]
    assert tiny == read(folder, DEFAULT_BITS)
    assert not tiny.ids_held
    assert len(tiny.records) == 2_000


def test_customers_without_invoices_and_invoices_without_payments(
    tmp_path: Path,
) -> None:
    data = Data()
    for number in range(300):
        data.customers.append(f"C{number}")
        if number % 7 < 3:
            continue  # no invoices for this one
        for invoice in range(number % 3):
            data.invoices.append(f"F{number}-{invoice},C{number},5.00,2025-10-01")
            if (number + invoice) % 4:
                data.payments.append(f"F{number}-{invoice},2.00,2025-09-01")
    reading = same_answers(data.write(tmp_path / "data"))

    assert reading.problems == []
    assert not reading.ids_held
    assert not any("memory" in note for note in reading.notes)


def test_rows_naming_missing_parents_anywhere(tmp_path: Path) -> None:
    data = Data(
        customers=["C1", "C2", "C3"],
        invoices=[
            "F0,C9,1.00,2025-10-01",  # unknown customer, first row
            "F1,C1,1.00,2025-10-01",
            "F2,C1,1.00,2025-10-01",
            "F5,C8,1.00,2025-10-01",  # unknown customer within the groups
            "F3,C3,1.00,2025-10-01",
            "F4,C7,1.00,2025-10-01",  # unknown customer, last row
        ],
        payments=[
            "X1,1.00,2025-09-01",  # unknown invoice, first row
            "F1,1.00,2025-09-01",
            "X2,1.00,2025-09-01",  # between payments of one customer
            "F2,1.00,2025-09-01",
            "X3,1.00,2025-09-01",
            "X4,1.00,2025-09-01",
            "X5,1.00,2025-09-01",
            "F0,1.00,2025-09-01",  # its invoice named an unknown customer
            "F3,1.00,2025-09-01",
            "X6,1.00,2025-09-01",  # unknown invoice, last row
        ],
    )
    reading = same_answers(data.write(tmp_path / "data"))

    assert reading.problems == [
        "invoices.csv:2 (F0): customer 'C9' is not in the customers",
        "invoices.csv:5 (F5): customer 'C8' is not in the customers",
        "invoices.csv:7 (F4): customer 'C7' is not in the customers",
        "payments.csv:2 (X1): invoice 'X1' is not in the invoices",
        "payments.csv:4 (X2): invoice 'X2' is not in the invoices",
        "payments.csv:6 (X3): invoice 'X3' is not in the invoices",
        "payments.csv:7 (X4): invoice 'X4' is not in the invoices",
        "payments.csv:8 (X5): invoice 'X5' is not in the invoices",
        "payments.csv:9 (F0): invoice 'F0' is not in the invoices",
        "payments.csv:11 (X6): invoice 'X6' is not in the invoices",
    ]
    assert reading.records == [
        ("C1", [("F1", "1.00"), ("F2", "1.00")], [("F1", "1.00"), ("F2", "1.00")]),
        ("C2", [], []),
        ("C3", [("F3", "1.00")], [("F3", "1.00")]),
    ]
    assert not reading.ids_held


@pytest.mark.parametrize(
    "payments",
    [
        # Sorted by date rather than by customer, as an export often is.
        ["F3,1.00,2025-09-01", "F1,1.00,2025-09-02", "F2,1.00,2025-09-03"],
        # One payment of the first customer after the last one's.
        ["F1,1.00,2025-09-01", "F3,1.00,2025-09-02", "F1,2.00,2025-09-03"],
        # A customer's payments split around another's.
        ["F1,1.00,2025-09-01", "F2,1.00,2025-09-02", "F1,2.00,2025-09-03"],
    ],
    ids=["by-date", "first-after-last", "split"],
)
def test_payments_out_of_order_are_held_and_delivered(
    tmp_path: Path, payments: list[str]
) -> None:
    data = Data(
        customers=["C1", "C2", "C3"],
        invoices=[
            "F1,C1,1.00,2025-10-01",
            "F2,C2,1.00,2025-10-01",
            "F3,C3,1.00,2025-10-01",
        ],
        payments=payments,
    )
    reading = same_answers(data.write(tmp_path / "data"))

    assert reading.ids_held
    assert any("held in memory" in note for note in reading.notes)
    assert reading.problems == []
    delivered = sorted(p for _, _, paid in reading.records for p in paid)
    assert delivered == sorted(
        (row.split(",")[0], row.split(",")[1]) for row in payments
    )


def test_an_invoice_out_of_its_customers_group(tmp_path: Path) -> None:
    data = Data(
        customers=["C1", "C2", "C3"],
        invoices=[
            "F1,C1,1.00,2025-10-01",
            "F2,C2,1.00,2025-10-01",
            "F4,C1,1.00,2025-10-01",
            "F3,C3,1.00,2025-10-01",
        ],
    )
    reading = same_answers(data.write(tmp_path / "data"))

    assert reading.ids_held
    assert reading.records[0] == ("C1", [("F1", "1.00"), ("F4", "1.00")], [])


def test_a_payment_of_a_repeated_invoice_belongs_to_the_first(
    tmp_path: Path,
) -> None:
    # F1 is C1's; C2's F1 is a repeat, left out: a payment of F1 in C2's
    # place is out of its customer's order.
    data = Data(
        customers=["C1", "C2"],
        invoices=["F1,C1,1.00,2025-10-01", "F1,C2,2.00,2025-10-01"],
        payments=["F1,1.00,2025-09-01", "F1,3.00,2025-09-02"],
    )
    reading = same_answers(data.write(tmp_path / "data"))

    assert reading.records == [
        ("C1", [("F1", "1.00")], [("F1", "1.00"), ("F1", "3.00")]),
        ("C2", [], []),
    ]
    assert reading.problems == [
        "invoices.csv:3 (F1): duplicate invoice id 'F1' (first at row 2)"
    ]


def random_data(seed: int) -> Data:
    """Mostly grouped input with every kind of problem the index reports,
    and for some seeds one kind of disorder."""
    rng = random.Random(seed)
    data = Data()
    customers = [f"C{n}" for n in range(rng.randint(1, 40))]
    invoice_ids: list[str] = []
    for customer in customers:
        data.customers.append(customer)
        if rng.random() < 0.1:
            data.customers.append(customer)  # repeated id
        if rng.random() < 0.05:
            data.customers.append("")  # unreadable id
        paid: list[str] = []
        for _ in range(rng.choice((0, 0, 1, 2, 3, 5))):
            repeat = invoice_ids and rng.random() < 0.05
            invoice = rng.choice(invoice_ids) if repeat else f"F{len(invoice_ids)}"
            invoice_ids.append(invoice)
            data.invoices.append(f"{invoice},{customer},1.00,2025-10-01")
            if not repeat:  # a payment of a repeat may be out of order
                paid += [invoice] * rng.choice((0, 1, 1, 2))
        if rng.random() < 0.15:
            data.invoices.append(f"G{len(invoice_ids)},Z{seed},1.00,2025-10-01")
        for invoice in paid:
            data.payments.append(f"{invoice},0.50,2025-09-01")
            while rng.random() < 0.15:
                data.payments.append(f"X{rng.randint(0, 9)},0.50,2025-09-01")
    disorder = rng.random()
    if disorder < 0.1:
        rng.shuffle(data.payments)
    elif disorder < 0.2:
        rng.shuffle(data.invoices)
    elif disorder < 0.3 and data.payments:
        data.payments.append(data.payments.pop(0))
    return data


@pytest.mark.parametrize("seed", range(60))
def test_bounded_and_exact_indexes_agree(tmp_path: Path, seed: int) -> None:
    folder = random_data(seed).write(tmp_path / "data")
    reading = same_answers(folder)

    # Grouped input keeps the filters only.
    held = any("held in memory" in note for note in reading.notes)
    assert reading.ids_held == held


@pytest.mark.parametrize("seed", range(0, 60, 4))
@pytest.mark.parametrize("kind", ["jsonl", "sqlite"])
def test_bounded_and_exact_indexes_agree_on_jsonl_and_sql(
    tmp_path: Path, seed: int, kind: str
) -> None:
    data = random_data(seed)
    if kind == "jsonl":
        source = data.write_jsonl(tmp_path / "data")
    else:
        source = data.write_sqlite(tmp_path / "data")
    reading = same_answers(source)

    held = any("held in memory" in note for note in reading.notes)
    assert reading.ids_held == held
    # Tables are read ordered by customer: grouped whatever the rows' order.
    assert not (kind == "sqlite" and held)


def test_a_table_of_invoices_with_a_repeated_id_pays_once(tmp_path: Path) -> None:
    # Tables are read ordered by customer, payments through a join to their
    # invoices: one row per payment, under the invoice the source keeps.
    data = Data(
        customers=["C1", "C2"],
        invoices=["F1,C1,1.00,2025-10-01", "F1,C2,2.00,2025-10-01"],
        payments=["F1,1.00,2025-09-01"],
    )
    reading = same_answers(data.write_sqlite(tmp_path / "data"))

    assert reading.records == [
        ("C1", [("F1", "1.00")], [("F1", "1.00")]),
        ("C2", [], []),
    ]
    assert reading.problems == [
        "invoices:2 (F1): duplicate invoice id 'F1' (first at row 1)"
    ]
    assert not reading.ids_held
