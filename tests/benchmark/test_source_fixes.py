"""Behaviour the performance fixes in adapters/sources must keep, or fixed.

Values written as text go through a shortcut for their common spellings
(plain decimals, ISO dates); whatever it does not take is left to the
general parser, so values and problems stay the same.

The records pass works out each row's owner once, when it is first peeked
at. Before, a row at the start of a customer's group was looked at twice,
and the first row of a duplicated invoice id there counted as its own
repeat: both rows were left out, and only the second was reported.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from adapters.sources import open_source
from adapters.sources.parsing import (
    FieldParser,
    ParseOptions,
    ValueProblem,
    _parser_for,
)
from dsl.diagnostics import Location
from dsl.loader import load_ruleset
from dsl.model import Field
from dsl.types import Type

VAREJO = Path(__file__).resolve().parents[2] / "rulesets" / "varejo"
CUSTOMERS = (
    "id,name,first_name,phone,email,credit_limit,whatsapp_opt_in,"
    "sms_opt_out,in_negotiation\n"
    "C1,Ana Lima,Ana,,,100.00,true,false,false\n"
    "C2,Bruno Costa,Bruno,,,100.00,true,false,false\n"
)
INVOICE_HEADER = (
    "id,customer_id,amount,due_date,status,settled_on,payment_link,pix_code\n"
)


Invoices = dict[str, list[tuple[str, Decimal]]]
Payments = dict[str, list[Decimal]]


def _read(
    folder: Path, invoices: str, payments: str = ""
) -> tuple[Invoices, Payments, list[str]]:
    """Invoices and payments by customer, and the problems reported."""
    (folder / "customers.csv").write_text(CUSTOMERS)
    (folder / "invoices.csv").write_text(INVOICE_HEADER + invoices)
    (folder / "payments.csv").write_text("invoice_id,amount,paid_on\n" + payments)
    source = open_source(folder, load_ruleset(VAREJO).inputs)
    found_invoices: Invoices = {}
    found_payments: Payments = {}
    for records in source.customers():
        customer_id = records.customer["id"]
        found_invoices[customer_id] = [(i["id"], i["amount"]) for i in records.invoices]
        found_payments[customer_id] = [p["amount"] for p in records.payments]
    return found_invoices, found_payments, [str(p) for p in source.problems]


def test_first_row_of_a_duplicate_starting_a_group_is_kept(tmp_path: Path) -> None:
    customers, _, problems = _read(
        tmp_path,
        "F1,C1,10.00,2025-10-10,open,,l,\n"
        "F2,C2,20.00,2025-10-10,open,,l,\n"
        "F2,C2,30.00,2025-10-11,open,,l,\n",
    )

    assert customers == {
        "C1": [("F1", Decimal("10.00"))],
        "C2": [("F2", Decimal("20.00"))],
    }
    assert problems == [
        "invoices.csv:4 (F2): duplicate invoice id 'F2' (first at row 3)"
    ]


def test_payments_follow_their_invoices_across_group_boundaries(
    tmp_path: Path,
) -> None:
    customers, payments, problems = _read(
        tmp_path,
        "F1,C1,10.00,2025-10-10,open,,l,\nF2,C2,20.00,2025-10-10,open,,l,\n",
        "F1,5.00,2025-10-01\nF2,7.50,2025-10-02\nF2,1.25,2025-10-03\n",
    )

    assert problems == []
    assert customers == {
        "C1": [("F1", Decimal("10.00"))],
        "C2": [("F2", Decimal("20.00"))],
    }
    assert payments == {
        "C1": [Decimal("5.00")],
        "C2": [Decimal("7.50"), Decimal("1.25")],
    }


def test_money_places_as_written_or_as_digits(tmp_path: Path) -> None:
    customers, _, problems = _read(
        tmp_path,
        "F1,C1,9.990,2025-10-10,open,,l,\n"  # three places, the last a zero
        "F2,C1,1.234,2025-10-10,open,,l,\n"  # three places that count
        "F3,C2,12,2025-10-10,open,,l,\n",
    )

    assert customers["C1"] == [("F1", Decimal("9.990"))]
    assert customers["C2"] == [("F3", Decimal("12"))]
    assert len(problems) == 1
    assert problems[0].startswith(
        "invoices.csv:3 (F2): amount: '1.234' has more than 2"
    )


def test_repeated_ids_name_the_row_that_registered_them(tmp_path: Path) -> None:
    """The index keeps no row numbers; the first rows are found again."""
    customers, _, problems = _read(
        tmp_path,
        "F1,C9,10.00,2025-10-10,open,,l,\n"  # unknown customer: registers nothing
        "F1,C1,11.00,2025-10-10,open,,l,\n"
        "F1,C1,12.00,2025-10-10,open,,l,\n"
        "F2,C2,20.00,2025-10-10,open,,l,\n"
        "F1,C2,13.00,2025-10-10,open,,l,\n",
    )

    assert customers == {
        "C1": [("F1", Decimal("11.00"))],
        "C2": [("F2", Decimal("20.00"))],
    }
    assert problems == [
        "invoices.csv:2 (F1): customer 'C9' is not in the customers",
        "invoices.csv:4 (F1): duplicate invoice id 'F1' (first at row 3)",
        "invoices.csv:6 (F1): duplicate invoice id 'F1' (first at row 3)",
    ]


@pytest.mark.parametrize("type_name", ["money", "decimal", "date", "string"])
@pytest.mark.parametrize(
    "text",
    [
        "12",
        "12.5",
        "12.50",
        "12.500",
        "12.501",
        "-0.10",
        "+3",
        "1e3",
        "1.234,56",
        "١٢",  # Arabic-Indic digits: \d matches them, Decimal reads them
        "2025-10-07",
        "2025-02-30",
        "20251007",
        "2025-1-07",
        "abc",
    ],
)
def test_text_fast_path_answers_as_the_general_parser(
    type_name: str, text: str
) -> None:
    """Text is read by a shortcut for its common spellings; the value, or
    the problem and its wording, must be what the general parser gives."""
    field = Field(name="value", type=Type(type_name), location=Location("t", 1, 1))
    options = ParseOptions()
    general = _parser_for(field.type, options)

    try:
        expected: object = general(text)
    except ValueProblem as problem:
        expected = f"problem: {problem}"
    try:
        found: object = FieldParser(field, options).parse(text)
    except ValueProblem as problem:
        found = f"problem: {problem}"

    assert found == expected
    assert type(found) is type(expected)
