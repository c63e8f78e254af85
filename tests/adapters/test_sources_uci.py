"""The UCI credit-card mapping, checked on the first real rows by hand."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
from decimal import Decimal
from pathlib import Path

import phonenumbers
import pytest

from adapters.sources import SourceConfigError, open_source
from adapters.sources.uci import PROVIDED
from engine.records import CustomerRecords
from tests.adapters.fixtures.schemas import ROOT, make_schema, varejo_schema

FIRST_ROWS = Path(__file__).parent / "fixtures" / "sources" / "uci_first_rows"
EXAMPLE = ROOT / "examples" / "uci"

# Every field the mapping can fill, declared with the type it gives.
EVERYTHING = make_schema(
    {
        record: {name: str(t) for name, t in fields.items()}
        for record, fields in PROVIDED.items()
    }
)


def by_id(spec: str | Path = FIRST_ROWS) -> dict[str, CustomerRecords]:
    source = open_source(str(spec), EVERYTHING)
    customers = {str(c.customer["id"]): c for c in source.customers()}
    assert source.problems == []
    return customers


def date(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def test_customer_1_statements_payments_and_lateness() -> None:
    # 1,20000,2,2,1,24, PAY 2,2,-1,-1,-2,-2, BILL 3913,3102,689,0,0,0,
    # PAY_AMT 0,689,0,0,0,0, target 1
    one = by_id()["1"]
    invoices = {i["id"]: i for i in one.invoices}

    # April to June bills are 0: credit balances, not invoices.
    assert list(invoices) == ["1-200507", "1-200508", "1-200509"]
    july = invoices["1-200507"]
    assert july["amount"] == Decimal("689")
    assert july["closing_date"] == date("2005-07-31")
    assert july["due_date"] == date("2005-08-10")
    assert july["status"] == "closed"
    # Due in August; August's status (PAY_2) is 2 months late.
    assert july["days_late"] == 60
    assert july["settled_on"] == date("2005-10-09")
    august = invoices["1-200508"]
    assert (august["amount"], august["due_date"]) == (
        Decimal("3102"),
        date("2005-09-10"),
    )
    assert (august["days_late"], august["settled_on"]) == (60, date("2005-11-09"))
    september = invoices["1-200509"]
    assert september["amount"] == Decimal("3913")
    assert september["due_date"] == date("2005-10-10")
    assert september["status"] == "open"
    assert september["settled_on"] is None
    assert september["days_late"] == 0
    # PAY_AMT2 (August) pays the July statement, dated on its due date.
    assert one.payments == [
        {
            "invoice_id": "1-200507",
            "customer_id": "1",
            "amount": Decimal("689"),
            "paid_on": date("2005-08-10"),
        }
    ]
    assert one.customer["credit_limit"] == Decimal("20000")
    assert one.customer["defaulted_next_month"] is True
    assert one.customer["statement_balance"] == Decimal("3913")
    assert one.customer["pay_status_sep"] == 2
    assert one.customer["pay_status_apr"] == -2
    assert one.customer["age"] == 24
    assert one.customer["sex"] == "female"


def test_customer_2_six_statements_and_the_march_payment() -> None:
    # 2,120000,2,2,2,26, PAY -1,2,0,0,0,2, BILL 2682,1725,2682,3272,3455,3261,
    # PAY_AMT 0,1000,1000,1000,0,2000, target 1
    two = by_id()["2"]
    expected = [
        # id, amount, due, days late, settled on
        ("2-200504", "3261", "2005-05-10", 0, "2005-05-10"),
        ("2-200505", "3455", "2005-06-10", 0, "2005-06-10"),
        ("2-200506", "3272", "2005-07-10", 0, "2005-07-10"),
        ("2-200507", "2682", "2005-08-10", 60, "2005-10-09"),
        ("2-200508", "1725", "2005-09-10", 0, "2005-09-10"),
    ]
    actual = [
        (
            i["id"],
            str(i["amount"]),
            i["due_date"].isoformat(),
            i["days_late"],
            i["settled_on"].isoformat() if i["settled_on"] else None,
        )
        for i in two.invoices
    ]
    assert actual[:5] == expected
    assert actual[5] == ("2-200509", "2682", "2005-10-10", 0, None)
    # PAY_AMT6 = 2000 in April pays a March bill that is not in the data.
    assert [(p["invoice_id"], p["amount"], p["paid_on"]) for p in two.payments] == [
        ("2-200505", Decimal("1000"), date("2005-06-10")),
        ("2-200506", Decimal("1000"), date("2005-07-10")),
        ("2-200507", Decimal("1000"), date("2005-08-10")),
    ]


def test_scientific_notation_credit_balance_and_orphan_payment() -> None:
    customers = by_id()
    # 7,5.00E+05,...: the file writes 500000 in scientific notation.
    assert customers["7"].customer["credit_limit"] == Decimal("500000")
    # 8: BILL_AMT5 (May) = -159 is a credit balance; PAY_AMT4 (June) = 581
    # would settle it, so that payment is left out (and counted).
    eight = customers["8"]
    assert "8-200505" not in {i["id"] for i in eight.invoices}
    assert "8-200505" not in {p["invoice_id"] for p in eight.payments}
    # PAY_AMT6..1 = 1542 (April: a March bill), 1687 (May: April's 567),
    # 581 (June: May's credit), 0, 601 (August: July's), 380 (September).
    assert [(p["invoice_id"], p["amount"], p["paid_on"]) for p in eight.payments] == [
        ("8-200504", Decimal("1687"), date("2005-05-10")),
        ("8-200507", Decimal("601"), date("2005-08-10")),
        ("8-200508", Decimal("380"), date("2005-09-10")),
    ]
    # 9: PAY_3 (July) = 2: the June statement, due 2005-07-10, is 60 days late.
    june = next(i for i in customers["9"].invoices if i["id"] == "9-200506")
    assert (june["amount"], june["days_late"]) == (Decimal("12211"), 60)
    assert june["settled_on"] == date("2005-09-08")


def test_the_notes_count_what_is_not_a_record() -> None:
    source = open_source(str(FIRST_ROWS), EVERYTHING)
    list(source.customers())
    notes = source.notes
    # Zero or negative bills among the ten rows: 1 has three, 8 one, 10 four.
    assert "8 statements with an amount <= 0" in notes[0]
    # April payments (PAY_AMT6 > 0): rows 2 to 9 and 11 -> all but 1 and 10.
    assert notes[1].startswith("8 April payments settle March 2005")
    # Payments toward a credit balance: only row 8 (June pays May's -159).
    assert notes[2].startswith("1 payments settle a statement")


def test_fake_contacts_are_deterministic_reserved_and_valid() -> None:
    first = by_id()
    again = by_id()
    assert first["3"].customer == again["3"].customer
    for records in first.values():
        customer = records.customer
        if customer["phone"] is not None:
            number = phonenumbers.parse(customer["phone"])
            assert phonenumbers.is_valid_number(number)
            assert (
                phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.MOBILE
            )
            assert customer["phone"] == f"+55119{int(customer['id']):08d}"
        if customer["email"] is not None:
            assert customer["email"].rsplit("@", 1)[1] in ("example.com", "example.org")
        assert customer["name"].startswith(customer["first_name"] + " ")
        for invoice in records.invoices:
            assert (
                invoice["payment_link"] == f"https://pague.example.com/{invoice['id']}"
            )


def test_the_varejo_schema_gets_exactly_its_fields() -> None:
    schema = varejo_schema()
    source = open_source(str(FIRST_ROWS), schema)
    records = next(iter(source.customers()))
    assert set(records.customer) == set(schema.customer)
    assert set(records.invoices[0]) == set(schema.invoice)
    assert set(records.payments[0]) == set(schema.payment)


def test_a_field_the_mapping_cannot_fill_is_a_config_error() -> None:
    schema = make_schema({"customer": {"id": "string", "monthly_incom": "money"}})
    with pytest.raises(SourceConfigError) as error:
        open_source(str(FIRST_ROWS), schema)
    assert "customer.monthly_incom" in str(error.value)
    assert "source.yaml" in str(error.value)


def test_a_required_phone_is_refused_because_some_have_none() -> None:
    schema = make_schema({"customer": {"id": "string", "phone": "string"}})
    with pytest.raises(SourceConfigError, match=r"declare it string\?"):
        open_source(str(FIRST_ROWS), schema)


def test_money_may_be_declared_decimal() -> None:
    schema = make_schema({"customer": {"id": "string", "credit_limit": "decimal"}})
    source = open_source(str(FIRST_ROWS), schema)
    assert next(iter(source.customers())).customer["credit_limit"] == Decimal(20000)


def test_bad_rows_are_reported_with_line_and_id(tmp_path: Path) -> None:
    rows = (FIRST_ROWS / "uci_credit_card_taiwan.csv").read_bytes().split(b"\r\n")
    rows[2] = rows[2].replace(b"120000", b"12O000")  # a letter O
    rows[3] = rows[1]  # ID 1 again
    rows[4] = rows[4].replace(b",0,0,0,0,0,0,", b",0,0,0,0,0,12,", 1)
    (tmp_path / "uci.csv").write_bytes(b"\r\n".join(rows))
    (tmp_path / "source.yaml").write_text("kind: uci_credit_card\nfile: uci.csv\n")

    source = open_source(str(tmp_path), EVERYTHING)
    ids = [c.customer["id"] for c in source.customers()]

    assert ids == ["1", "5", "6", "7", "8", "9", "10"]
    assert [(p.source, p.row, p.record_id) for p in source.problems] == [
        ("uci.csv", 3, "2"),
        ("uci.csv", 4, "1"),
        ("uci.csv", 5, "4"),
    ]
    assert source.problems[0].message == "LIMIT_BAL: '12O000' is not a whole number"
    assert source.problems[1].message == "duplicate ID 1"
    assert "PAY_6: 12 is not a repayment status" in source.problems[2].message


def test_limit_reads_only_the_first_customers(tmp_path: Path) -> None:
    shutil.copy(FIRST_ROWS / "uci_credit_card_taiwan.csv", tmp_path)
    (tmp_path / "source.yaml").write_text(
        "kind: uci_credit_card\nfile: uci_credit_card_taiwan.csv\nlimit: 3\n"
    )
    assert list(by_id(tmp_path)) == ["1", "2", "3"]


def test_unknown_keys_are_refused_with_a_hint(tmp_path: Path) -> None:
    (tmp_path / "source.yaml").write_text("kind: uci_credit_card\nfiles: x.csv\n")
    with pytest.raises(SourceConfigError, match="did you mean 'file'"):
        open_source(str(tmp_path), EVERYTHING)


def test_the_example_is_the_shared_file_byte_for_byte() -> None:
    data = (EXAMPLE / "uci_credit_card_taiwan.csv").read_bytes()
    assert hashlib.sha256(data).hexdigest() == (
        "0311596a909804e7727c39c89659d1e7d4b0a0509a2c5e6019aa680ed0500847"
    )


def test_the_whole_example_maps_every_row() -> None:
    source = open_source(str(EXAMPLE), EVERYTHING)
    customers = invoices = payments = defaulted = 0
    for records in source.customers():
        customers += 1
        invoices += len(records.invoices)
        payments += len(records.payments)
        defaulted += bool(records.customer["defaulted_next_month"])
    assert source.problems == []
    assert customers == 30_000
    # 180,000 statements less the 22,037 credit balances of the notes.
    assert invoices == 180_000 - 22_037
    assert "22037 statements" in source.notes[0]
    assert payments == 119_443
    assert defaulted == 6_636  # 22.1 % of 30,000, as the data documents
