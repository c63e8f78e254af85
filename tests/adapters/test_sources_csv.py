"""CSV folders: defaults, Brazilian spreadsheets, encodings, bad records."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from adapters.sources import SourceConfigError, open_source
from engine.records import CustomerRecords, RecordSource
from tests.adapters.fixtures.schemas import make_schema, varejo_schema

FIXTURES = Path(__file__).parent / "fixtures" / "sources"


def read_all(source: RecordSource) -> dict[str, CustomerRecords]:
    return {str(c.customer["id"]): c for c in source.customers()}


def write(folder: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(text.encode(encoding))
    return path


SMALL = make_schema(
    {
        "customer": {"id": "string", "name": "string", "limit": "money?"},
        "invoice": {
            "id": "string",
            "customer_id": "string",
            "amount": "money",
            "due_date": "date",
        },
        "payment": {"invoice_id": "string", "amount": "money", "paid_on": "date"},
    }
)


def small_folder(
    tmp_path: Path, customers: str, invoices: str, payments: str | None = None
) -> Path:
    folder = tmp_path / "data"
    write(folder, "customers.csv", customers)
    write(folder, "invoices.csv", invoices)
    if payments is not None:
        write(folder, "payments.csv", payments)
    return folder


def test_a_plain_folder_reads_every_declared_type() -> None:
    source = open_source(str(FIXTURES / "plain"), varejo_schema())
    customers = read_all(source)

    assert source.problems == []
    assert list(customers) == ["C1", "C2"]
    ana = customers["C1"]
    assert ana.customer == {
        "id": "C1",
        "name": "Ana Souza",
        "first_name": "Ana",
        "phone": "+5511900000001",
        "email": "ana@example.com",
        "credit_limit": Decimal("1500.00"),
        "whatsapp_opt_in": True,
        "sms_opt_out": False,
        "in_negotiation": False,
        # Optional and for analysis only: these files do not carry it.
        "defaulted_next_month": None,
    }
    assert [i["id"] for i in ana.invoices] == ["F1", "F2"]
    assert ana.invoices[0]["amount"] == Decimal("120.50")
    assert ana.invoices[0]["due_date"] == dt.date(2024, 10, 1)
    assert ana.invoices[0]["pix_code"] is None
    assert ana.invoices[0]["settled_on"] is None
    assert ana.invoices[1]["settled_on"] == dt.date(2024, 8, 30)
    assert ana.payments == [
        {
            "invoice_id": "F2",
            "amount": Decimal("99.99"),
            "paid_on": dt.date(2024, 8, 30),
        },
        {
            "invoice_id": "F1",
            "amount": Decimal("20.50"),
            "paid_on": dt.date(2024, 9, 20),
        },
    ]
    bruno = customers["C2"]
    assert bruno.customer["phone"] is None
    assert bruno.customer["whatsapp_opt_in"] is True
    assert bruno.invoices[0]["amount"] == Decimal("1234.56")
    assert bruno.payments == []


def test_undeclared_columns_are_ignored() -> None:
    source = open_source(str(FIXTURES / "plain"), varejo_schema())
    first = next(iter(source.customers()))
    assert "segment_hint" not in first.customer


@pytest.mark.parametrize("folder", ["excel_br", "excel_bom"])
def test_a_brazilian_spreadsheet_loads_with_exact_values(folder: str) -> None:
    source = open_source(str(FIXTURES / folder), varejo_schema())
    customers = read_all(source)

    assert source.problems == []
    joao = customers["1001"]
    assert joao.customer["name"] == "João da Silva"
    assert joao.customer["first_name"] == "João"
    assert joao.customer["credit_limit"] == Decimal("1234.56")
    assert str(joao.customer["credit_limit"]) == "1234.56"
    assert joao.customer["whatsapp_opt_in"] is True
    assert joao.customer["sms_opt_out"] is False
    assert joao.invoices[0]["amount"] == Decimal("1234.56")
    assert joao.invoices[0]["due_date"] == dt.date(2024, 10, 1)
    assert joao.payments[0]["amount"] == Decimal("234.56")
    assert joao.payments[0]["paid_on"] == dt.date(2024, 9, 20)

    maria = customers["1002"]
    assert maria.customer["name"] == "Maria da Conceição"
    assert maria.customer["first_name"] == "Conceição"
    assert str(maria.customer["credit_limit"]) == "9.99"
    assert maria.customer["phone"] is None
    assert maria.customer["email"] is None
    assert maria.invoices[0]["due_date"] == dt.date(2024, 11, 15)


def test_a_bom_does_not_stick_to_the_first_column(tmp_path: Path) -> None:
    folder = tmp_path / "bom"
    folder.mkdir()
    (folder / "customers.csv").write_bytes(b"\xef\xbb\xbfid,name\r\nC1,Ana\r\n")
    (folder / "invoices.csv").write_bytes(
        b"\xef\xbb\xbfid,customer_id,amount,due_date\r\nF1,C1,10,2024-10-01\r\n"
    )
    source = open_source(str(folder), make_schema({"customer": {"id": "string"}}))
    assert [c.customer for c in source.customers()] == [{"id": "C1"}]


def test_a_latin1_file_read_as_utf8_names_the_line(tmp_path: Path) -> None:
    folder = small_folder(tmp_path, "", "id,customer_id,amount,due_date\n")
    (folder / "customers.csv").write_bytes(
        "id,name,limit\nC1,Ana,1\nC2,Conceição,2\n".encode("latin-1")
    )
    with pytest.raises(SourceConfigError) as error:
        open_source(str(folder), SMALL)
    message = str(error.value)
    assert "customers.csv:3" in message
    assert "latin-1" in message


def test_a_missing_column_names_the_field_and_the_columns_found(tmp_path: Path) -> None:
    folder = small_folder(
        tmp_path,
        "id,name,limit\nC1,Ana,10\n",
        "id,customer_id,amount,due_dat\nF1,C1,10,2024-10-01\n",
    )
    with pytest.raises(SourceConfigError) as error:
        open_source(str(folder), SMALL)
    message = str(error.value)
    assert "invoices.csv" in message
    assert "'due_date'" in message
    assert "did you mean 'due_dat'" in message
    assert "id, customer_id, amount, due_dat" in message


def test_an_optional_field_without_a_column_is_empty_and_noted(
    tmp_path: Path,
) -> None:
    # `limit` is money?: data that does not carry it still reads.
    folder = small_folder(
        tmp_path, "id,name\nC1,Ana\n", "id,customer_id,amount,due_date\n"
    )
    source = open_source(str(folder), SMALL)

    assert read_all(source)["C1"].customer == {"id": "C1", "name": "Ana", "limit": None}
    assert (
        "customers.csv: no column for the optional customer field 'limit': it is"
        " empty for every customer"
    ) in source.notes


def test_an_optional_field_renamed_to_a_missing_column_is_an_error(
    tmp_path: Path,
) -> None:
    folder = small_folder(
        tmp_path, "id,name\nC1,Ana\n", "id,customer_id,amount,due_date\n"
    )
    write(folder, "source.yaml", "kind: csv\ncolumns:\n  customers: {limit: limite}\n")

    with pytest.raises(SourceConfigError, match="no column 'limite'"):
        open_source(str(folder), SMALL)


def test_bad_values_are_reported_with_file_row_and_id(tmp_path: Path) -> None:
    folder = small_folder(
        tmp_path,
        "id,name,limit\nC1,Ana,10\nC2,,abc\nC3,Caio,\n",
        "id,customer_id,amount,due_date\n"
        "F1,C1,10.5,2024-10-01\n"
        "F2,C1,1.234,2024-10-01\n"
        "F3,C1,7,2024-02-30\n"
        "F4,C3,7,2024-10-01\n",
        "invoice_id,amount,paid_on\nF1,1,2024-09-01\nF3,7,2024-09-01\n",
    )
    source = open_source(str(folder), SMALL)
    customers = read_all(source)

    reported = {(p.source, p.row, p.record_id, p.message) for p in source.problems}
    assert (
        "customers.csv",
        3,
        "C2",
        "name: is empty, but the field is declared string"
        " (declare it string? to allow empty values)",
    ) in reported
    assert any(
        p.row == 3 and p.message.startswith("limit: 'abc' is not a number")
        for p in source.problems
    )
    assert any(
        (p.source, p.row, p.record_id) == ("invoices.csv", 3, "F2")
        and "more than 2 decimal places" in p.message
        for p in source.problems
    )
    assert any(
        (p.source, p.row, p.record_id) == ("invoices.csv", 4, "F3")
        and "'2024-02-30' is not a date" in p.message
        for p in source.problems
    )
    # The payment of the rejected invoice F3 is not dropped silently.
    assert any(
        (p.source, p.row, p.record_id) == ("payments.csv", 3, "F3")
        and "its invoice was left out" in p.message
        for p in source.problems
    )
    # C1 is still planned with what was good; C2 is left out, C3 is fine.
    assert list(customers) == ["C1", "C3"]
    assert [i["id"] for i in customers["C1"].invoices] == ["F1"]
    assert [p["invoice_id"] for p in customers["C1"].payments] == ["F1"]
    assert customers["C3"].customer["limit"] is None


def test_duplicates_and_unknown_parents_are_reported(tmp_path: Path) -> None:
    folder = small_folder(
        tmp_path,
        "id,name,limit\nC1,Ana,1\nC2,Bia,2\nC1,Ana again,3\n",
        "id,customer_id,amount,due_date\n"
        "F1,C1,10,2024-10-01\n"
        "F1,C1,11,2024-10-02\n"
        "F2,C9,12,2024-10-01\n"
        "F3,C2,13,2024-10-01\n",
        "invoice_id,amount,paid_on\nF3,1,2024-09-01\nF8,2,2024-09-01\n",
    )
    source = open_source(str(folder), SMALL)
    customers = read_all(source)

    problems = {(p.source, p.row): p for p in source.problems}
    assert (
        problems["customers.csv", 4].message
        == "duplicate customer id 'C1' (first at row 2)"
    )
    assert (
        problems["invoices.csv", 3].message
        == "duplicate invoice id 'F1' (first at row 2)"
    )
    assert (
        problems["invoices.csv", 4].message == "customer 'C9' is not in the customers"
    )
    assert problems["payments.csv", 3].message == "invoice 'F8' is not in the invoices"
    assert len(source.problems) == 4
    assert customers["C1"].customer["name"] == "Ana"
    assert [i["amount"] for i in customers["C1"].invoices] == [Decimal("10")]
    assert [p["invoice_id"] for p in customers["C2"].payments] == ["F3"]


def test_a_row_with_the_wrong_number_of_cells_is_reported(tmp_path: Path) -> None:
    folder = small_folder(
        tmp_path,
        "id,name,limit\nC1,Ana,1\nC2,Bia\n",
        "id,customer_id,amount,due_date\n",
    )
    source = open_source(str(folder), SMALL)
    assert list(read_all(source)) == ["C1"]
    assert [(p.row, p.message) for p in source.problems] == [
        (3, "2 cells, the header has 3")
    ]


def test_skip_and_fail_both_leave_out_and_report(tmp_path: Path) -> None:
    folder = small_folder(
        tmp_path,
        "id,name,limit\nC1,Ana,x\nC2,Bia,2\n",
        "id,customer_id,amount,due_date\nF1,C1,1,2024-01-01\n",
    )
    for mode in ("fail", "skip"):
        source = open_source(str(folder), SMALL, on_error=mode)
        assert list(read_all(source)) == ["C2"]
        assert [p.record_id for p in source.problems] == ["C1", "C1"]
        assert "1 invoice(s)" in source.problems[1].message


def test_on_error_must_be_fail_or_skip(tmp_path: Path) -> None:
    with pytest.raises(SourceConfigError, match="on_error"):
        open_source(str(FIXTURES / "plain"), SMALL, on_error="ignore")


def test_a_multiline_quoted_cell_keeps_the_next_row_number(tmp_path: Path) -> None:
    folder = small_folder(
        tmp_path,
        'id,name,limit\nC1,"Ana\nSouza",1\nC2,Bia,zz\n',
        "id,customer_id,amount,due_date\n",
    )
    source = open_source(str(folder), SMALL)
    customers = read_all(source)
    assert customers["C1"].customer["name"] == "Ana\nSouza"
    assert [(p.row, p.record_id) for p in source.problems] == [(4, "C2")]


def test_a_folder_without_payments_says_so(tmp_path: Path) -> None:
    folder = small_folder(
        tmp_path, "id,name,limit\nC1,Ana,1\n", "id,customer_id,amount,due_date\n"
    )
    source = open_source(str(folder), SMALL)
    assert list(read_all(source)) == ["C1"]
    assert any("no payments file" in note for note in source.notes)


def test_the_digest_follows_the_bytes_not_the_place(tmp_path: Path) -> None:
    one = small_folder(
        tmp_path / "a", "id,name,limit\nC1,Ana,1\n", "id,customer_id,amount,due_date\n"
    )
    two = small_folder(
        tmp_path / "b", "id,name,limit\nC1,Ana,1\n", "id,customer_id,amount,due_date\n"
    )
    three = small_folder(
        tmp_path / "c", "id,name,limit\nC1,Ana,2\n", "id,customer_id,amount,due_date\n"
    )
    digests = [open_source(str(f), SMALL).digest() for f in (one, two, three)]
    assert digests[0] == digests[1]
    assert digests[0] != digests[2]
    assert digests[0].startswith("sha256:")


def test_relative_specs_use_base_dir() -> None:
    source = open_source("plain", varejo_schema(), base_dir=FIXTURES)
    assert list(read_all(source)) == ["C1", "C2"]


def test_a_missing_folder_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(SourceConfigError, match="no such file or folder"):
        open_source(str(tmp_path / "nowhere"), SMALL)


def test_a_row_without_its_id_does_not_hold_up_the_merge(tmp_path: Path) -> None:
    # F? has no id but a customer that came earlier: it must be reported
    # and must not stop C2 and C3 from getting their invoices.
    folder = small_folder(
        tmp_path,
        "id,name,limit\nC1,Ana,1\nC2,Bia,2\nC3,Caio,3\n",
        "id,customer_id,amount,due_date\n"
        "F1,C1,1,2024-10-01\n"
        "F2,C2,2,2024-10-01\n"
        ",C1,9,2024-10-01\n"
        "F3,C2,3,2024-10-01\n"
        "F4,C3,4,2024-10-01\n",
        "invoice_id,amount,paid_on\nF2,1,2024-09-01\n,1,2024-09-01\nF4,1,2024-09-01\n",
    )
    source = open_source(str(folder), SMALL)
    customers = read_all(source)

    assert [i["id"] for i in customers["C2"].invoices] == ["F2", "F3"]
    assert [i["id"] for i in customers["C3"].invoices] == ["F4"]
    assert [p["invoice_id"] for p in customers["C3"].payments] == ["F4"]
    assert [(p.source, p.row, p.message) for p in source.problems] == [
        (
            "invoices.csv",
            4,
            "id: is empty, but the field is declared string"
            " (declare it string? to allow empty values);"
            " cannot tell whose record this is",
        ),
        (
            "payments.csv",
            3,
            "invoice_id: is empty, but the field is declared string"
            " (declare it string? to allow empty values);"
            " cannot tell whose record this is",
        ),
    ]
    assert all(p.owner_unknown for p in source.problems)
    assert not any("memory" in note for note in source.notes)


def test_a_file_that_changes_after_opening_is_reported_not_raised(
    tmp_path: Path,
) -> None:
    folder = small_folder(
        tmp_path, "id,name,limit\nC1,Ana,1\n", "id,customer_id,amount,due_date\n"
    )
    source = open_source(str(folder), SMALL)
    (folder / "customers.csv").write_bytes(b"id,name,limit\nC1,Ana,1\nC2,Jo\xe3o,2\n")

    customers = read_all(source)

    # The file is decoded in blocks: the report says where reading stopped.
    assert list(customers) == []
    [problem] = source.problems
    assert (problem.source, problem.row) == ("customers.csv", 1)
    assert "the rest of the file is not read" in problem.message
