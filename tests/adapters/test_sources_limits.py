"""Values no bill can have: absurd magnitudes and amounts of the wrong sign
are bad records with their source and row, never planned."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from adapters.sources import open_source
from adapters.sources.parsing import (
    MAX_INTEGER_DIGITS,
    FieldParser,
    ParseOptions,
    ValueProblem,
)
from dsl.diagnostics import Location
from dsl.model import Field
from dsl.types import parse_type_name
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
BRAZIL = ParseOptions(decimal=",", thousands=".")
LARGEST = "9" * MAX_INTEGER_DIGITS


def parser(type_name: str, options: ParseOptions | None = None) -> FieldParser:
    type_ = parse_type_name(type_name)
    assert type_ is not None
    field = Field("value", type_, Location("inputs.yaml", 1, 1))
    return FieldParser(field, options or ParseOptions())


@pytest.mark.parametrize("type_name", ["money", "decimal"])
@pytest.mark.parametrize(
    "raw",
    [
        "100000000000000000000000000.00",
        "-" + "1" * (MAX_INTEGER_DIGITS + 1),
        "1" + "0" * MAX_INTEGER_DIGITS,
        10**MAX_INTEGER_DIGITS,
        Decimal("1E+300"),
        1e300,  # SQLite hands NUMERIC columns over as REAL
        "1" * 50 + ".5",
    ],
    ids=repr,
)
def test_numbers_beyond_the_largest_magnitude_are_refused(
    type_name: str, raw: object
) -> None:
    with pytest.raises(ValueProblem, match="too large"):
        parser(type_name).parse(raw)


@pytest.mark.parametrize("type_name", ["money", "decimal"])
def test_the_largest_magnitude_is_accepted(type_name: str) -> None:
    assert parser(type_name).parse(LARGEST + ".99") == Decimal(LARGEST + ".99")
    assert parser(type_name).parse("-" + LARGEST) == -Decimal(LARGEST)
    assert parser(type_name).parse(int(LARGEST)) == Decimal(LARGEST)


def test_grouped_numbers_obey_the_same_limit() -> None:
    grouped = "1" + ".000" * 5 + ",00"  # sixteen digits before the comma
    with pytest.raises(ValueProblem, match="too large"):
        parser("money", BRAZIL).parse(grouped)
    assert parser("money", BRAZIL).parse("100.000.000.000.000,00") == Decimal(
        "100000000000000.00"
    )


@pytest.mark.parametrize(
    "raw", ["1" * (MAX_INTEGER_DIGITS + 1), 10**20, 1e300, Decimal("1E+40")]
)
def test_whole_numbers_beyond_the_limit_are_refused(raw: object) -> None:
    with pytest.raises(ValueProblem, match="too large"):
        parser("int").parse(raw)


def write_csv(folder: Path, invoices: str, payments: str = "") -> None:
    (folder / "customers.csv").write_text("id\nC1\nC2\n", encoding="utf-8")
    (folder / "invoices.csv").write_text(
        "id,customer_id,amount,due_date\n" + invoices, encoding="utf-8"
    )
    (folder / "payments.csv").write_text(
        "invoice_id,amount,paid_on\n" + payments, encoding="utf-8"
    )


def test_an_absurd_amount_is_a_bad_record_with_its_row(tmp_path: Path) -> None:
    write_csv(
        tmp_path,
        "F1,C1,100000000000000000000000000.00,2024-10-01\nF2,C2,120.00,2024-10-01\n",
    )
    source = open_source(tmp_path, SCHEMA)

    planned = {c.customer["id"]: c for c in source.customers()}

    assert [i["id"] for i in planned["C2"].invoices] == ["F2"]
    assert planned["C1"].invoices == []
    [problem] = source.problems
    assert (problem.source, problem.row, problem.record_id) == (
        "invoices.csv",
        2,
        "F1",
    )
    assert "too large" in problem.message


@pytest.mark.parametrize("amount", ["-250.00", "0", "0.00", "-0.01"])
def test_an_invoice_amount_must_be_positive(tmp_path: Path, amount: str) -> None:
    write_csv(tmp_path, f"F1,C1,{amount},2024-10-01\nF2,C2,0.01,2024-10-01\n")
    source = open_source(tmp_path, SCHEMA)

    planned = {c.customer["id"]: c for c in source.customers()}

    assert planned["C1"].invoices == []
    assert [i["amount"] for i in planned["C2"].invoices] == [Decimal("0.01")]
    [problem] = source.problems
    assert (problem.row, problem.record_id) == (2, "F1")
    assert "must be positive" in problem.message


def test_a_payment_may_be_zero_but_not_negative(tmp_path: Path) -> None:
    write_csv(
        tmp_path,
        "F1,C1,100.00,2024-10-01\nF2,C2,100.00,2024-10-01\n",
        "F1,0.00,2024-09-30\nF2,-40.00,2024-09-30\n",
    )
    source = open_source(tmp_path, SCHEMA)

    planned = {c.customer["id"]: c for c in source.customers()}

    assert [p["amount"] for p in planned["C1"].payments] == [Decimal("0.00")]
    assert planned["C2"].payments == []
    [problem] = source.problems
    assert (problem.source, problem.row) == ("payments.csv", 3)
    assert "must be zero or more" in problem.message


def test_a_float_payment_of_1e300_in_sqlite_is_a_bad_record(tmp_path: Path) -> None:
    database = tmp_path / "billing.db"
    with sqlite3.connect(database) as connection:
        connection.executescript(
            "CREATE TABLE customers (id TEXT);"
            "CREATE TABLE invoices (id TEXT, customer_id TEXT, amount NUMERIC,"
            " due_date TEXT);"
            "CREATE TABLE payments (invoice_id TEXT, amount REAL, paid_on TEXT);"
            "INSERT INTO customers VALUES ('C1');"
            "INSERT INTO invoices VALUES ('F1', 'C1', 100, '2024-10-01');"
            "INSERT INTO payments VALUES ('F1', 1e300, '2024-09-30');"
        )
    connection.close()
    config = {
        "kind": "sql",
        "url": f"sqlite:///{database}",
        "tables": {name: name for name in ("customers", "invoices", "payments")},
    }
    source = open_source(config, SCHEMA)

    [customer] = source.customers()

    assert customer.payments == []
    [problem] = source.problems
    assert "too large" in problem.message
    assert problem.source == "payments"


def write_jsonl(folder: Path, invoice_line: str) -> None:
    (folder / "customers.jsonl").write_text('{"id": "C1"}\n', encoding="utf-8")
    (folder / "invoices.jsonl").write_text(
        invoice_line + "\n" + '{"id": "F2", "customer_id": "C1", "amount": 20.50,'
        ' "due_date": "2024-10-01"}\n',
        encoding="utf-8",
    )
    (folder / "payments.jsonl").write_text("", encoding="utf-8")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            '{"id": "F1", "customer_id": "C1", "amount": 10.00, "amount": 1000.00,'
            ' "due_date": "2024-10-01"}',
            "the key 'amount' appears twice",
        ),
        (
            '{"id": "F1", "customer_id": "C1", "amount": 1e2,'
            ' "due_date": "2024-10-01"}',
            "scientific notation",
        ),
        (
            '{"id": "F1", "customer_id": "C1", "amount": 1.5E+3,'
            ' "due_date": "2024-10-01"}',
            "scientific notation",
        ),
        (
            '{"id": "F1", "customer_id": "C1", "amount": ' + "1" * 50 + ","
            ' "due_date": "2024-10-01"}',
            "too large",
        ),
    ],
    ids=["duplicate key", "exponent", "exponent with fraction", "50 digits"],
)
def test_json_lines_refuse_what_csv_refuses(
    tmp_path: Path, line: str, message: str
) -> None:
    write_jsonl(tmp_path, line)
    source = open_source(tmp_path, SCHEMA)

    [customer] = source.customers()

    assert [i["id"] for i in customer.invoices] == ["F2"]
    assert customer.invoices[0]["amount"] == Decimal("20.50")
    [problem] = source.problems
    assert (problem.source, problem.row) == ("invoices.jsonl", 1)
    assert message in problem.message
