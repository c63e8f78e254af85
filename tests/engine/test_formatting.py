"""Locale formatting of money, dates and numbers in message copy."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from babel.numbers import format_currency
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.formatting import LocaleFormatter, round_money

SAO_PAULO = ZoneInfo("America/Sao_Paulo")
NBSP = "\xa0"


@pytest.fixture(scope="module")
def brl() -> LocaleFormatter:
    return LocaleFormatter("pt_BR", "BRL", SAO_PAULO)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("1234.56", f"R${NBSP}1.234,56"),
        ("600", f"R${NBSP}600,00"),
        # Half up, where Babel alone would round half to even (0,12).
        ("0.125", f"R${NBSP}0,13"),
        ("2.675", f"R${NBSP}2,68"),
        ("1000000", f"R${NBSP}1.000.000,00"),
        ("-100.005", f"-R${NBSP}100,01"),
    ],
)
def test_money_in_brazilian_portuguese(
    brl: LocaleFormatter, value: str, text: str
) -> None:
    assert brl.money(Decimal(value)) == text


def test_money_in_other_locales_and_currencies() -> None:
    usd = LocaleFormatter("en_US", "USD", ZoneInfo("America/New_York"))
    assert usd.money(Decimal("1234.565")) == "$1,234.57"
    yen = LocaleFormatter("ja_JP", "JPY", ZoneInfo("Asia/Tokyo"))
    assert yen.currency_digits == 0
    assert yen.money(Decimal("1234.5")) == "￥1,235"


def test_round_money_is_half_up() -> None:
    assert round_money(Decimal("0.005"), 2) == Decimal("0.01")
    assert round_money(Decimal("0.015"), 2) == Decimal("0.02")
    assert round_money(Decimal("-0.005"), 2) == Decimal("-0.01")
    assert round_money(Decimal("2.5"), 0) == Decimal("3")


@pytest.mark.parametrize(
    ("pattern", "text"),
    [
        ("dd/MM", "05/11"),
        ("dd/MM/yyyy", "05/11/2018"),
        ("d 'de' MMMM", "5 de novembro"),
        (None, "5 de nov. de 2018"),
    ],
)
def test_dates(brl: LocaleFormatter, pattern: str | None, text: str) -> None:
    assert brl.date(dt.date(2018, 11, 5), pattern) == text


def test_datetimes_are_shown_in_the_ruleset_zone(brl: LocaleFormatter) -> None:
    instant = dt.datetime(2018, 11, 5, 8, 0, tzinfo=dt.UTC)
    assert brl.datetime(instant, "dd/MM HH:mm") == "05/11 06:00"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("1234.5"), "1.234,5"),
        (Decimal("0.1255"), "0,126"),
        (Decimal("0.0125"), "0,013"),
        (3, "3"),
        (1234567, "1.234.567"),
    ],
)
def test_numbers(brl: LocaleFormatter, value: Decimal | int, text: str) -> None:
    assert brl.number(value) == text


LOCALES = [
    ("pt_BR", "BRL"),
    ("en_US", "USD"),
    ("ja_JP", "JPY"),
    ("de_DE", "EUR"),
    ("fr_FR", "EUR"),  # a narrow no-break space between groups
    ("en_IN", "INR"),  # groups of two above the thousands
    ("ar_EG", "EGP"),
    ("es_CL", "CLP"),
]


@settings(max_examples=300, deadline=None)
@given(
    locale=st.sampled_from(LOCALES),
    value=st.decimals(
        min_value=Decimal("-99999999999.999"),
        max_value=Decimal("99999999999.999"),
        places=3,
        allow_nan=False,
        allow_infinity=False,
    ),
)
def test_money_is_what_babel_writes_after_our_rounding(
    locale: tuple[str, str], value: Decimal
) -> None:
    name, currency = locale
    formatter = LocaleFormatter(name, currency, SAO_PAULO)
    rounded = round_money(value, formatter.currency_digits)
    assert formatter.money(value) == format_currency(rounded, currency, locale=name)
