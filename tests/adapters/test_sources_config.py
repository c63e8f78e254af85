"""source.yaml: strict keys, YAML traps, paths and the folder conventions."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from adapters.sources import SourceConfigError, open_source
from tests.adapters.fixtures.schemas import make_schema

SCHEMA = make_schema(
    {
        "customer": {"id": "string", "vip": "bool", "limit": "money"},
        "invoice": {
            "id": "string",
            "customer_id": "string",
            "amount": "money",
            "due_date": "date",
        },
    }
)


def folder_with(tmp_path: Path, source_yaml: str | None) -> Path:
    (tmp_path / "customers.csv").write_text("id;vip;limit\nC1;yes;1 234,5\n")
    (tmp_path / "invoices.csv").write_text("id;customer_id;amount;due_date\n")
    if source_yaml is not None:
        (tmp_path / "source.yaml").write_text(source_yaml)
    return tmp_path


def config_error(tmp_path: Path, source_yaml: str) -> str:
    folder = folder_with(tmp_path, source_yaml)
    with pytest.raises(SourceConfigError) as error:
        open_source(str(folder), SCHEMA)
    return str(error.value)


def test_yaml_words_stay_words(tmp_path: Path) -> None:
    # `yes` and `no` are text here, not YAML 1.1 booleans.
    folder = folder_with(
        tmp_path,
        "delimiter: ';'\ndecimal: comma\nthousands: space\n"
        "true_values: [yes, sim]\nfalse_values: [no, não]\n",
    )
    [only] = list(open_source(str(folder), SCHEMA).customers())
    assert only.customer == {"id": "C1", "vip": True, "limit": Decimal("1234.5")}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "delimitter: ';'\n",
            "unknown key 'delimitter' for a csv source (did you mean 'delimiter'?)",
        ),
        ("kind: cvs\n", "kind: 'cvs' is not one of csv, jsonl, sql"),
        ("decimal: virgula\n", "decimal: 'virgula' is not one of point, comma"),
        ("delimiter: ';;'\n", "delimiter: expected one character"),
        ("decimal: comma\nthousands: comma\n", "thousands and decimal separators"),
        ("timezone: America/Sao_Paolo\n", "is not an IANA time zone"),
        ("encoding: utf-16\n", "encoding: 'utf-16' is not one of"),
        ("true_values: sim\n", "true_values: expected a list of words"),
        (
            "true_values: ['sim', 'X']\nfalse_values: ['x', 'nao']\n",
            "true_values and false_values both hold 'x'",
        ),
        # Against the default false words (no, n, false, f, 0, ...).
        ("true_values: ['sim', 'no']\n", "both hold 'no'"),
        ("money_places: 12\n", "money_places: expected 0 to 8"),
        (
            "files: {customer: c.csv}\n",
            "'customer' is not customers, invoices or payments"
            " (did you mean 'customers'?)",
        ),
        ("files: {customers: nope.csv}\n", "customers: no such file"),
        (
            "delimiter: ';'\ndelimiter: ','\n",
            "duplicate key 'delimiter' (first at line 1)",
        ),
        ("delimiter: [';'\n", "not valid YAML"),
        ("- a list\n", "expected a mapping of settings"),
        (
            "columns: {customers: {vipp: v}}\n",
            "declares no customer field 'vipp' (did you mean 'vip'?)",
        ),
    ],
)
def test_configuration_mistakes_name_the_file_and_key(
    tmp_path: Path, text: str, expected: str
) -> None:
    message = config_error(tmp_path, text)
    assert expected in message
    assert "source.yaml" in message


def test_a_yaml_error_has_line_and_column(tmp_path: Path) -> None:
    message = config_error(tmp_path, "decimal: comma\ndelimiter: [';'\n")
    assert "source.yaml:3:1" in message


@pytest.mark.parametrize(
    ("text", "place", "words"),
    [
        ("delimiter: ';'\nencodng: latin-1\n", "2:1", "unknown key 'encodng'"),
        ("delimiter: ';'\ndecimal: virgula\n", "2:10", "decimal: 'virgula'"),
        ("delimiter: ';'\nmoney_places:   12\n", "2:17", "money_places: expected"),
        ("delimiter: ';'\n\ntimezone: Brasil\n", "3:11", "not an IANA time zone"),
        ("false_values: ['x']\ntrue_values: ['X']\n", "1:15", "both hold 'x'"),
    ],
)
def test_a_mistake_in_a_key_names_its_line_and_column(
    tmp_path: Path, text: str, place: str, words: str
) -> None:
    message = config_error(tmp_path, text)
    assert f"source.yaml:{place}: " in message
    assert words in message


def test_a_spec_may_be_the_yaml_file_itself(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, "delimiter: ';'\ndecimal: comma\nthousands: space\n")
    (folder / "source.yaml").rename(folder / "mine.yml")
    source = open_source(str(folder / "mine.yml"), SCHEMA)
    assert [c.customer["id"] for c in source.customers()] == ["C1"]


def test_a_mapping_resolves_paths_from_base_dir(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, None)
    config = {"delimiter": ";", "decimal": "comma", "thousands": "space"}
    source = open_source(config, SCHEMA, base_dir=folder)
    assert [c.customer["limit"] for c in source.customers()] == [Decimal("1234.5")]


def test_a_folder_must_hold_one_kind_of_files(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, None)
    (folder / "customers.jsonl").write_text("")
    with pytest.raises(SourceConfigError, match="both .csv and .jsonl"):
        open_source(str(folder), SCHEMA)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SourceConfigError, match="no customers.csv or .jsonl"):
        open_source(str(empty), SCHEMA)


def test_a_csv_file_alone_is_not_a_source(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, None)
    with pytest.raises(SourceConfigError, match="a data source is a folder"):
        open_source(str(folder / "customers.csv"), SCHEMA)


def test_jsonl_takes_file_or_files_not_both(tmp_path: Path) -> None:
    message = config_error(
        tmp_path, "kind: jsonl\nfile: all.jsonl\nfiles: {customers: c.jsonl}\n"
    )
    assert "either 'file' or 'files'" in message


def test_sql_needs_customers_and_invoices(tmp_path: Path) -> None:
    message = config_error(
        tmp_path, "kind: sql\nurl: 'sqlite:///x.db'\ntables: {customers: c}\n"
    )
    assert "no table or query for invoices" in message
    message = config_error(
        tmp_path,
        "kind: sql\nurl: 'sqlite:///x.db'\n"
        "tables: {customers: c, invoices: i}\nqueries: {invoices: 'SELECT 1'}\n",
    )
    assert "invoices has both a table and a query" in message
