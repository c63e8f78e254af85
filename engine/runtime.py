"""Helpers that compiled expressions call at run time.

The code generator (`engine.codegen`) inlines what Python does exactly
(Decimal arithmetic, comparisons, `date + timedelta`) and calls these for
the rest: calendar months, business days, rounding, rendering values that
have no locale format, cleaning text from the data before it enters a
message, and turning a failure into an `EvaluationError` that points into
the policy.
"""

from __future__ import annotations

import calendar as _calendar
import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from typing import TypeVar

from dsl.characters import is_hidden
from dsl.diagnostics import Location
from engine.scope import BusinessCalendar, Duration

Day = TypeVar("Day", dt.date, dt.datetime)

# What a compiled expression may raise on bad data: division by zero and
# other decimal traps (ArithmeticError), a date out of range (OverflowError,
# ValueError), a record without a declared field (KeyError) or with a value
# of the wrong kind (TypeError).
FAILURES: tuple[type[Exception], ...] = (
    ArithmeticError,
    ValueError,
    KeyError,
    TypeError,
)


# Data breaks no line of a message: the copy's line breaks are the
# template's. A tab would align nothing in a text message either.
_AS_SPACE = frozenset("\t\n\v\f\r\x1c\x1d\x1e\x85\u2028\u2029")


class EvaluationError(Exception):
    """An expression could not be evaluated for one record.

    `location` is where the expression is written in the policy;
    `message` says what went wrong, in the policy's words.
    """

    def __init__(self, location: Location, message: str) -> None:
        super().__init__(f"{location}: {message}")
        self.location = location
        self.message = message


def failure(location: Location, source: str, error: Exception) -> EvaluationError:
    """The `EvaluationError` for `error`, raised while evaluating `source`."""
    if isinstance(error, ZeroDivisionError):
        reason = "division by zero"
    elif isinstance(error, ArithmeticError):
        reason = "the result is not a number (for example 0 / 0)"
    elif isinstance(error, KeyError):
        reason = f"the record has no field {error.args[0]!r}"
    elif isinstance(error, TypeError):
        reason = "a value in the record is missing or of the wrong type"
    else:
        reason = str(error) or type(error).__name__
    return EvaluationError(location, f"cannot evaluate `{source}`: {reason}")


def add_months(day: Day, months: int) -> Day:
    """`day` moved by whole months, clamped to the end of a shorter month.

    Jan 31 + 1 month is Feb 28 (29 in a leap year); the time of day of a
    datetime is kept.
    """
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    last = _calendar.monthrange(year, month + 1)[1]
    return day.replace(year=year, month=month + 1, day=min(day.day, last))


def shift(day: Day, duration: Duration, sign: int, calendar: BusinessCalendar) -> Day:
    """`day + duration` (sign 1) or `day - duration` (sign -1), any unit."""
    amount = duration.amount * sign
    unit = duration.unit
    if unit == "days":
        return day + dt.timedelta(days=amount)
    if unit == "weeks":
        return day + dt.timedelta(weeks=amount)
    if unit == "months":
        return add_months(day, amount)
    if unit == "years":
        return add_months(day, amount * 12)
    if unit == "business_days":
        return add_business_days(day, amount, calendar)
    raise ValueError(f"unknown duration unit {unit!r}")


def add_business_days(day: Day, count: int, calendar: BusinessCalendar) -> Day:
    """Business days on a date, or on a datetime keeping its time of day."""
    if isinstance(day, dt.datetime):
        moved = calendar.add_business_days(day.date(), count)
        return day.replace(year=moved.year, month=moved.month, day=moved.day)
    return calendar.add_business_days(day, count)


def round_half_up(value: int | Decimal, digits: int) -> int | Decimal:
    """`round(x, digits)` as people round money: 2.345 -> 2.35.

    An int stays an int (`round(1234, -2)` is 1200).
    """
    exponent = Decimal(1).scaleb(-digits)
    rounded = Decimal(value).quantize(exponent, rounding=ROUND_HALF_UP)
    return int(rounded) if isinstance(value, int) else rounded


def message_value(text: str) -> str:
    """A text value from the data, as it may be inserted into a message.

    Line breaks and tabs become a space ("\\r\\n" one space); controls and
    invisible format characters (`dsl.characters.is_hidden`: ESC, BEL, the
    bidi overrides, zero-width spaces) are taken out, and a lone surrogate,
    which no encoding can send, becomes U+FFFD. The zero-width joiners stay.
    """
    if text.isprintable():
        return text
    text = text.replace("\r\n", " ")
    kept: list[str] = []
    for char in text:
        if char in _AS_SPACE:
            kept.append(" ")
        elif not is_hidden(char):
            kept.append(char)
        elif "\ud800" <= char <= "\udfff":
            kept.append("\ufffd")
    return "".join(kept)
