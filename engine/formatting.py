"""Locale formatting of values inside message copy.

Babel knows how `pt_BR` writes money and dates (`R$ 1.234,56`, with the
no-break space CLDR puts after the symbol); it is always called with an
explicit locale, so the process locale never leaks into a plan. Babel rounds
half to even; money is therefore rounded half up to the currency's digits by
us first, and Babel only lays out the digits it is given.
"""

from __future__ import annotations

import copy
import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_datetime
from babel.numbers import (
    NumberPattern,
    format_currency,
    format_decimal,
    get_currency_precision,
    get_currency_symbol,
)

# A date or datetime placeholder without a pattern uses CLDR's "medium"
# form: unambiguous in every locale (5 de nov. de 2018, Nov 5, 2018).
DEFAULT_DATE_PATTERN = "medium"

# Formatted amounts kept; the cache starts over when full.
MONEY_CACHE = 65536

# `number(x)` shows at most this many decimals, rounded half up.
NUMBER_DIGITS = 3


def round_money(value: Decimal, digits: int) -> Decimal:
    """Round half up to `digits` decimals: 0.125 -> 0.13 (Babel would say
    0.12)."""
    return value.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)


class LocaleFormatter:
    """Implements `engine.scope.Formatter` for one locale, currency and zone."""

    def __init__(self, locale: str, currency: str, zone: ZoneInfo) -> None:
        self.locale = Locale.parse(locale)
        self.currency = currency
        self.currency_digits = int(get_currency_precision(currency))
        self.zone = zone
        self._money: dict[Decimal, str] = {}
        self._symbol = str(get_currency_symbol(currency, self.locale))
        self._pattern = _symbol_only_pattern(self.locale, self.currency_digits)

    def round(self, value: Decimal) -> Decimal:
        """Money rounded half up to the currency's digits."""
        return round_money(value, self.currency_digits)

    def money(self, value: Decimal) -> str:
        try:
            rounded = self.round(value)
        except ArithmeticError:
            # Too many digits to hold to the cent: no bill has such an
            # amount, and the planner refuses one before any copy is made;
            # an explanation still shows what the record holds.
            return f"{value} {self.currency}"
        text = self._money.get(rounded)
        if text is None:
            text = self._format_money(rounded)
            if len(self._money) >= MONEY_CACHE:
                self._money.clear()
            self._money[rounded] = text
        return text

    def _format_money(self, rounded: Decimal) -> str:
        """What `babel.numbers.format_currency` writes, three times faster.

        format_currency looks up the currency's display name (and its plural
        rules) for every amount, even when the pattern shows only the symbol.
        The locale's pattern is applied here with the currency's digits and
        the symbol put in afterwards; patterns with a name (¤¤¤), a code (¤¤)
        or quoted text go through format_currency itself.
        """
        if self._pattern is None:
            return str(format_currency(rounded, self.currency, locale=self.locale))
        return str(self._pattern.apply(rounded, self.locale)).replace("¤", self._symbol)

    def date(self, value: dt.date, pattern: str | None) -> str:
        return str(format_date(value, pattern or DEFAULT_DATE_PATTERN, self.locale))

    def datetime(self, value: dt.datetime, pattern: str | None) -> str:
        return str(
            format_datetime(
                value,
                pattern or DEFAULT_DATE_PATTERN,
                tzinfo=self.zone,
                locale=self.locale,
            )
        )

    def number(self, value: Decimal | int) -> str:
        if isinstance(value, Decimal):
            exponent = value.as_tuple().exponent
            if isinstance(exponent, int) and exponent < -NUMBER_DIGITS:
                value = round_money(value, NUMBER_DIGITS)
        return str(
            format_decimal(value, locale=self.locale, decimal_quantization=False)
        )


def _symbol_only_pattern(locale: Locale, digits: int) -> NumberPattern | None:
    """The locale's standard currency pattern fixed to `digits` decimals, or
    None when it shows more than the symbol (see `_format_money`)."""
    pattern = locale.currency_formats["standard"]
    text = pattern.pattern
    if "¤¤" in text or "'" in text:
        return None
    fixed: NumberPattern = copy.copy(pattern)
    fixed.frac_prec = (digits, digits)
    return fixed
