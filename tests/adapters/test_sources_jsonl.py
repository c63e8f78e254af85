"""JSON Lines sources: three files, or one file with a "record" key."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest

from adapters.sources import SourceConfigError, open_source
from tests.adapters.fixtures.schemas import make_schema

SCHEMA = make_schema(
    {
        "customer": {
            "id": "string",
            "name": "string",
            "vip": "bool",
            "tags": "list[string]?",
        },
        "invoice": {
            "id": "string",
            "customer_id": "string",
            "amount": "money",
            "due_date": "date",
        },
        "payment": {"invoice_id": "string", "amount": "money", "paid_on": "date"},
    }
)


def lines(*objects: object) -> str:
    return "".join(json.dumps(o, ensure_ascii=False) + "\n" for o in objects)


def test_three_files(tmp_path: Path) -> None:
    (tmp_path / "customers.jsonl").write_text(
        lines(
            {"id": "C1", "name": "João", "vip": True, "tags": ["a", "b"]},
            {"id": 2, "name": "Bia", "vip": "não"},
        ),
        encoding="utf-8",
    )
    # 9.99 as a JSON number is read from its digits (parse_float=Decimal).
    (tmp_path / "invoices.jsonl").write_text(
        '{"id": "F1", "customer_id": "C1", "amount": 9.99, "due_date": "2024-10-01"}\n'
        "\n"
        '{"id": "F2", "customer_id": "2", "amount": "1234.50",'
        ' "due_date": "2024-10-02", "extra": {"ignored": true}}\n',
        encoding="utf-8",
    )
    (tmp_path / "payments.jsonl").write_text(
        lines({"invoice_id": "F2", "amount": 100, "paid_on": "2024-09-30"}),
        encoding="utf-8",
    )

    source = open_source(str(tmp_path), SCHEMA)
    customers = {c.customer["id"]: c for c in source.customers()}

    assert source.problems == []
    assert customers["C1"].customer == {
        "id": "C1",
        "name": "João",
        "vip": True,
        "tags": ["a", "b"],
    }
    assert str(customers["C1"].invoices[0]["amount"]) == "9.99"
    assert customers["2"].customer["tags"] is None
    assert customers["2"].customer["vip"] is False
    assert customers["2"].invoices[0]["amount"] == Decimal("1234.50")
    assert customers["2"].payments == [
        {"invoice_id": "F2", "amount": Decimal(100), "paid_on": dt.date(2024, 9, 30)}
    ]


def test_one_file_with_a_record_key(tmp_path: Path) -> None:
    path = tmp_path / "all.jsonl"
    path.write_text(
        lines(
            {"record": "customer", "id": "C1", "name": "Ana", "vip": False},
            {
                "record": "invoice",
                "id": "F1",
                "customer_id": "C1",
                "amount": "10.00",
                "due_date": "2024-10-01",
            },
            {
                "record": "payment",
                "invoice_id": "F1",
                "amount": "10.00",
                "paid_on": "2024-10-01",
            },
            {"record": "customer", "id": "C2", "name": "Bia", "vip": True},
            {"record": "refund", "id": "R1"},
        )
        + "[1, 2]\n"
        + "{not json\n",
        encoding="utf-8",
    )
    source = open_source(str(path), SCHEMA)
    customers = {c.customer["id"]: c for c in source.customers()}

    assert list(customers) == ["C1", "C2"]
    assert customers["C1"].invoices[0]["amount"] == Decimal("10.00")
    assert len(customers["C1"].payments) == 1
    # Each bad line is reported once, not by each of the three readers.
    assert [(p.source, p.row) for p in source.problems] == [
        ("all.jsonl", 5),
        ("all.jsonl", 6),
        ("all.jsonl", 7),
    ]
    assert "'refund'" in source.problems[0].message
    assert source.problems[1].message == "expected a JSON object"
    assert source.problems[2].message.startswith("not valid JSON")


def test_missing_keys_and_wrong_json_types(tmp_path: Path) -> None:
    path = tmp_path / "all.jsonl"
    path.write_text(
        lines(
            {"record": "customer", "id": "C1", "vip": True},
            {"record": "customer", "id": "C2", "name": "Bia", "vip": "maybe"},
            {"record": "customer", "id": "C3", "name": ["x"], "vip": True},
            {
                "record": "invoice",
                "id": "F1",
                "customer_id": "C9",
                "amount": 1.5,
                "due_date": "2024-10-01",
            },
        ),
        encoding="utf-8",
    )
    source = open_source(str(path), SCHEMA)
    assert list(source.customers()) == []
    assert [(p.row, p.record_id, p.message) for p in source.problems] == [
        (1, "C1", "name: missing"),
        (2, "C2", "vip: 'maybe' is not a boolean (expected true/t/yes/false/f/no)"),
        (3, "C3", "name: ['x'] (list) is not text"),
        (4, "F1", "customer 'C9' is not in the customers"),
    ]


def test_json_constants_are_not_numbers(tmp_path: Path) -> None:
    path = tmp_path / "all.jsonl"
    path.write_text(
        '{"record": "customer", "id": "C1", "name": "A", "vip": true}\n'
        '{"record": "invoice", "id": "F1", "customer_id": "C1", "amount": NaN,'
        ' "due_date": "2024-10-01"}\n',
        encoding="utf-8",
    )
    source = open_source(str(path), SCHEMA)
    customers = list(source.customers())
    assert customers[0].invoices == []
    assert source.problems[0].row == 2
    assert "not valid JSON" in source.problems[0].message


def test_jsonl_config_renames_keys_and_reads_latin1(tmp_path: Path) -> None:
    (tmp_path / "clientes.jsonl").write_bytes(
        '{"codigo": "C1", "nome": "Conceição", "vip": "sim"}\n'.encode("latin-1")
    )
    (tmp_path / "faturas.jsonl").write_text("")
    (tmp_path / "source.yaml").write_text(
        "kind: jsonl\n"
        "encoding: latin-1\n"
        "files: {customers: clientes.jsonl, invoices: faturas.jsonl}\n"
        "columns:\n"
        "  customers: {id: codigo, name: nome}\n"
    )
    source = open_source(str(tmp_path), SCHEMA)
    [only] = list(source.customers())
    assert only.customer["name"] == "Conceição"
    assert only.customer["vip"] is True


def test_a_rename_of_an_undeclared_field_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "all.jsonl").write_text("")
    (tmp_path / "source.yaml").write_text(
        "kind: jsonl\nfile: all.jsonl\ncolumns:\n  customers: {nam: nome}\n"
    )
    with pytest.raises(SourceConfigError, match="did you mean 'name'"):
        open_source(str(tmp_path), SCHEMA)


def test_a_file_that_changes_after_opening_is_reported_not_raised(
    tmp_path: Path,
) -> None:
    path = tmp_path / "all.jsonl"
    first = '{"record": "customer", "id": "C1", "name": "A", "vip": true}\n'
    path.write_text(first, encoding="utf-8")
    source = open_source(str(path), SCHEMA)
    path.write_bytes(first.encode() + b'{"record": "customer", "name": "Jo\xe3o"}\n')

    # The file is decoded in blocks: the report says where reading stopped.
    assert list(source.customers()) == []
    assert [(p.row, p.message) for p in source.problems] == [
        (1, "not valid utf-8; the rest of the file is not read")
    ]


def test_a_line_nested_too_deeply_is_a_bad_record_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "all.jsonl"
    deep = '{"record": "customer", "id": "C2", "name": ' + "[" * 50_000 + "]" * 50_000
    path.write_text(
        '{"record": "customer", "id": "C1", "name": "A", "vip": true}\n'
        + deep
        + ', "vip": true}\n',
        encoding="utf-8",
    )
    source = open_source(str(path), SCHEMA)

    assert [c.customer["id"] for c in source.customers()] == ["C1"]
    [problem] = source.problems
    assert problem.row == 2
    assert "nested deeper than 100 levels" in problem.message
