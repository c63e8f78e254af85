"""Text -> typed values, one rule at a time."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from adapters.sources.parsing import (
    FieldParser,
    ParseOptions,
    ValueProblem,
    parse_record,
)
from dsl.diagnostics import Location
from dsl.model import Field
from dsl.types import parse_type_name
from engine.scope import Duration

BRAZIL = ParseOptions(
    decimal=",",
    thousands=".",
    date_format="%d/%m/%Y",
    true_words=("sim", "s"),
    false_words=("não", "n"),
)


def parser(
    type_name: str, options: ParseOptions | None = None, **extra: int
) -> FieldParser:
    type_ = parse_type_name(type_name)
    assert type_ is not None
    field = Field(
        "value", type_, Location("inputs.yaml", 1, 1), extra.get("max_length")
    )
    return FieldParser(field, options or ParseOptions())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1234.56", "1234.56"),
        ("-10", "-10"),
        ("+7.5", "7.5"),
        ("0.10", "0.10"),
        (" 42 ", "42"),
        ("9.990", "9.990"),  # the exact text; trailing zero within 2 places
    ],
)
def test_money_with_a_decimal_point(text: str, expected: str) -> None:
    value = parser("money").parse(text)
    assert isinstance(value, Decimal)
    assert str(value) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.234,56", "1234.56"),
        ("9,99", "9.99"),
        ("1.000.000", "1000000"),
        ("-3,5", "-3.5"),
    ],
)
def test_money_with_a_decimal_comma(text: str, expected: str) -> None:
    assert str(parser("money", BRAZIL).parse(text)) == expected


@pytest.mark.parametrize(
    "text", ["1.23,4", "12.34", "1,2,3", "1.2345,00", "abc", "1e5", "NaN"]
)
def test_bad_numbers_with_a_decimal_comma(text: str) -> None:
    with pytest.raises(ValueProblem, match="is not a number"):
        parser("money", BRAZIL).parse(text)


@pytest.mark.parametrize("text", ["1,234.56", "12,5", "Infinity", "", "1.2.3", "0x10"])
def test_bad_numbers_with_a_decimal_point(text: str) -> None:
    with pytest.raises(ValueProblem):
        parser("money").parse(text)


def test_money_refuses_more_places_than_configured() -> None:
    with pytest.raises(ValueProblem, match="more than 2 decimal places"):
        parser("money").parse("5202.6426724643")
    options = ParseOptions(money_places=4)
    assert parser("money", options).parse("5202.6427") == Decimal("5202.6427")
    # A plain decimal keeps any precision.
    assert str(parser("decimal").parse("5202.6426724643")) == "5202.6426724643"


def test_values_from_json_and_databases() -> None:
    money = parser("money")
    assert money.parse(Decimal("9.99")) == Decimal("9.99")
    assert money.parse(12) == Decimal(12)
    # SQLite hands NUMERIC columns back as floats: read from their repr.
    assert str(money.parse(9.99)) == "9.99"
    with pytest.raises(ValueProblem, match="more than 2 decimal places"):
        money.parse(0.1 + 0.2)
    with pytest.raises(ValueProblem):
        money.parse(True)


@pytest.mark.parametrize(("text", "expected"), [("7", 7), ("-3", -3), ("1.234", 1234)])
def test_ints(text: str, expected: int) -> None:
    assert parser("int", BRAZIL).parse(text) == expected


@pytest.mark.parametrize("raw", ["1.5", "x", True, Decimal("1.5")])
def test_bad_ints(raw: object) -> None:
    with pytest.raises(ValueProblem, match="not a whole number"):
        parser("int").parse(raw)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("FALSE", False),
        ("Sim", True),
        ("não", False),
        ("nao", False),
        ("1", True),
        ("0", False),
        ("y", True),
        ("N", False),
    ],
)
def test_default_boolean_words(text: str, expected: bool) -> None:
    assert parser("bool").parse(text) is expected


def test_configured_boolean_words_replace_the_defaults() -> None:
    words = parser("bool", BRAZIL)
    assert words.parse("S") is True
    assert words.parse("Não") is False
    with pytest.raises(ValueProblem, match="is not a boolean"):
        words.parse("true")


def test_dates() -> None:
    assert parser("date").parse("2024-10-01") == dt.date(2024, 10, 1)
    assert parser("date", BRAZIL).parse("01/10/2024") == dt.date(2024, 10, 1)
    assert parser("date").parse(dt.date(2024, 1, 2)) == dt.date(2024, 1, 2)
    assert parser("date").parse(dt.datetime(2024, 1, 2)) == dt.date(2024, 1, 2)
    for bad in ("20241001", "2024-02-30", "01/10/2024", "2024-10-01T10:00"):
        with pytest.raises(ValueProblem, match="is not a date"):
            parser("date").parse(bad)
    with pytest.raises(ValueProblem, match=r"expected %d/%m/%Y"):
        parser("date", BRAZIL).parse("2024-10-01")


def test_datetimes_need_an_offset_or_a_zone() -> None:
    value = parser("datetime").parse("2024-10-01T09:30:00-03:00")
    assert value == dt.datetime(2024, 10, 1, 12, 30, tzinfo=dt.UTC)
    with pytest.raises(ValueProblem, match="no UTC offset"):
        parser("datetime").parse("2024-10-01T09:30:00")
    zoned = parser("datetime", ParseOptions(timezone="America/Sao_Paulo"))
    local = zoned.parse("2024-10-01 09:30")
    assert local == dt.datetime(
        2024, 10, 1, 9, 30, tzinfo=ZoneInfo("America/Sao_Paulo")
    )


def test_durations_and_lists() -> None:
    assert parser("duration").parse("2 business days") == Duration(2, "business_days")
    assert parser("duration").parse("1 month") == Duration(1, "months")
    with pytest.raises(ValueProblem, match="not a duration"):
        parser("duration").parse("soon")
    assert parser("list[string]").parse("a | b|c") == ["a", "b", "c"]
    assert parser("list[int]").parse([1, 2]) == [1, 2]
    with pytest.raises(ValueProblem):
        parser("list[int]").parse("1|x")


def test_strings_and_max_length() -> None:
    assert parser("string").parse("  João ") == "João"
    assert parser("string").parse(123) == "123"
    with pytest.raises(ValueProblem, match="is not text"):
        parser("string").parse(True)
    with pytest.raises(ValueProblem, match="more than the declared max_length 3"):
        parser("string", max_length=3).parse("João")


def test_empty_values() -> None:
    assert parser("string?").parse("") is None
    assert parser("money?").parse("   ") is None
    assert parser("date?").parse(None) is None
    nulls = ParseOptions(null_words=("", "NULL", "-"))
    assert parser("int?", nulls).parse("NULL") is None
    with pytest.raises(ValueProblem, match="declare it money\\? to allow"):
        parser("money").parse("")


def test_parse_record_reports_every_bad_field() -> None:
    fields = {
        name: parser(type_name)
        for name, type_name in (
            ("id", "string"),
            ("amount", "money"),
            ("due", "date"),
            ("note", "string?"),
        )
    }
    record, errors = parse_record(fields, {"id": "F1", "amount": "x", "due": "nope"})
    assert errors == [
        "amount: 'x' is not a number (expected e.g. 1234.56)",
        "due: 'nope' is not a date (expected YYYY-MM-DD)",
    ]
    assert record["note"] is None
    _, missing = parse_record(fields, {"id": "F1"})
    assert missing == ["amount: missing", "due: missing"]


def test_extreme_values_are_problems_not_crashes() -> None:
    long_money = "1" + "0" * 13 + ".001"
    with pytest.raises(ValueProblem, match="more than 2 decimal places"):
        parser("money").parse(long_money)
    # Kept digit for digit: no rounding to the context's 28 digits.
    assert str(parser("money").parse("1" + "0" * 14 + ".10")) == "1" + "0" * 14 + ".10"
    # Beyond 15 digits before the point, no amount is plausible.
    with pytest.raises(ValueProblem, match="too large"):
        parser("money").parse("1" + "0" * 40 + ".10")
    for raw in ("9" * 5000, float("inf"), float("nan"), Decimal("Infinity")):
        with pytest.raises(ValueProblem, match="not a whole number"):
            parser("int").parse(raw)
    assert parser("int").parse(Decimal("12.000")) == 12
    assert parser("int").parse(3.0) == 3
