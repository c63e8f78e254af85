"""Turning raw values (CSV text, JSON values, database values) into typed ones.

Every field of an input schema gets a `FieldParser` built once from its
declared type and the source's `ParseOptions`; parsing a value either
returns the typed value or raises `ValueProblem` with a message a person can
act on. Money and decimals never pass through binary floating point: text
is read digit by digit into `Decimal`.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from dsl.model import Field, InputSchema
from dsl.types import Type
from engine.scope import Duration

# Words read as booleans when the configuration does not say otherwise.
# Compared case-insensitively, after stripping spaces.
DEFAULT_TRUE_WORDS = ("true", "t", "yes", "y", "sim", "s", "1")
DEFAULT_FALSE_WORDS = ("false", "f", "no", "n", "não", "nao", "0")

# No bill, payment or rate in any currency needs more digits before the
# point; beyond it, arithmetic at Decimal's 28 digits starts rounding the
# cents away (and quantizing to them fails), so a larger value is refused as
# a bad record rather than planned wrongly.
MAX_INTEGER_DIGITS = 15

_PLAIN_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?")
_PLAIN_INT = re.compile(r"[+-]?\d+")
_DURATION = re.compile(
    r"(\d+)\s*(business[ _]days?|days?|weeks?|months?|years?)", re.IGNORECASE
)
_DURATION_UNITS = {
    "day": "days",
    "business day": "business_days",
    "week": "weeks",
    "month": "months",
    "year": "years",
}


class ValueProblem(ValueError):
    """A value that cannot become its field's type. The message says why."""


@dataclass(frozen=True)
class ParseOptions:
    """How a source writes numbers, dates and booleans.

    The defaults read what a program would write: `1234.56`, ISO dates,
    `true`/`false`. A spreadsheet exported in Brazil needs
    `decimal=","` (thousands then default to `"."`) and
    `date_format="%d/%m/%Y"`.
    """

    decimal: str = "."
    thousands: str | None = None
    date_format: str | None = None  # None: ISO 8601, "2024-10-01"
    datetime_format: str | None = None  # None: ISO 8601
    timezone: str | None = None  # zone of datetimes written without offset
    true_words: tuple[str, ...] = DEFAULT_TRUE_WORDS
    false_words: tuple[str, ...] = DEFAULT_FALSE_WORDS
    null_words: tuple[str, ...] = ("",)
    money_places: int = 2
    list_separator: str = "|"
    _true: frozenset[str] = field(init=False, repr=False, compare=False)
    _false: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_true", frozenset(w.lower() for w in self.true_words))
        object.__setattr__(
            self, "_false", frozenset(w.lower() for w in self.false_words)
        )

    def is_true(self, word: str) -> bool | None:
        """True or False for a known word, None for anything else."""
        lowered = word.lower()
        if lowered in self._true:
            return True
        if lowered in self._false:
            return False
        return None


Parser = Callable[[object], object]


class FieldParser:
    """Parses values of one declared field."""

    def __init__(
        self, field_: Field, options: ParseOptions, *, sign: Sign | None = None
    ) -> None:
        self.name = field_.name
        self.type = field_.type
        self.max_length = field_.max_length
        self.sign = sign
        self._options = options
        self._parse = _parser_for(field_.type, options)
        self._parse_text = _text_parser_for(field_.type, options, self._parse)
        # Read for every value of every row: looked up once here.
        self._nullable = field_.type.nullable
        self._null_words = frozenset(options.null_words)

    def parse(self, raw: object) -> object:
        """The typed value of `raw`, or `ValueProblem`.

        `raw` is text (CSV, text columns), a JSON value or a value a database
        driver returned. Empty text, a null word and None are "empty": None
        for a nullable field, a problem otherwise.
        """
        if isinstance(raw, str):
            raw = raw.strip()
            if raw in self._null_words:
                raw = None
        if raw is None:
            if self._nullable:
                return None
            raise ValueProblem(
                f"is empty, but the field is declared {self.type}"
                f" (declare it {self.type.as_nullable()} to allow empty values)"
            )
        value = self._parse_text(raw) if isinstance(raw, str) else self._parse(raw)
        limit = self.max_length
        if limit is not None and isinstance(value, str) and len(value) > limit:
            raise ValueProblem(
                f"{value!r} has {len(value)} characters, more than the"
                f" declared max_length {limit}"
            )
        if self.sign is not None and isinstance(value, Decimal):
            self.sign.check(value)
        return value


@dataclass(frozen=True)
class Sign:
    """What sign a number of one field may have, and why."""

    allow_zero: bool
    reason: str

    def check(self, value: Decimal) -> None:
        if value > 0 or (value == 0 and self.allow_zero):
            return
        wanted = "zero or more" if self.allow_zero else "positive"
        raise ValueProblem(f"{value} must be {wanted}: {self.reason}")


# Signs the engine relies on. An invoice of zero or less is a credit, not a
# bill to remind anyone of (the UCI mapping reads such statements the same
# way); a negative payment would raise what is due behind the customer's back.
SIGNS: dict[tuple[str, str], Sign] = {
    ("invoices", "amount"): Sign(
        allow_zero=False,
        reason="a credit note or an empty bill is not an invoice to remind of",
    ),
    ("payments", "amount"): Sign(
        allow_zero=True,
        reason="a reversal is written by removing or correcting the payment",
    ),
}


def record_parsers(
    schema: InputSchema, options: ParseOptions
) -> dict[str, dict[str, FieldParser]]:
    """Parsers of every declared field, by collection (`customers`,
    `invoices`, `payments`), with the signs in `SIGNS`."""
    collections = (
        ("customers", schema.customer),
        ("invoices", schema.invoice),
        ("payments", schema.payment),
    )
    return {
        collection: {
            name: FieldParser(declared, options, sign=SIGNS.get((collection, name)))
            for name, declared in fields.items()
        }
        for collection, fields in collections
    }


def _text_parser_for(
    type_: Type, options: ParseOptions, general: Parser
) -> Callable[[str], object]:
    """A parser for stripped, non-empty text, the value of nearly every CSV
    cell: the common spelling of a text, decimal or date is read directly,
    anything else goes to `general`, which decides (and words the problem)
    exactly as it would have."""
    plain_numbers = options.decimal == "." and not options.thousands
    if type_.name == "string":
        return _same_text
    if type_.name in ("decimal", "money") and plain_numbers:
        places = options.money_places if type_.name == "money" else None
        return _plain_decimal_text(places, general)
    if type_.name == "date" and options.date_format is None:
        return _iso_date_text(general)
    return general


def _same_text(text: str) -> str:
    return text


def _plain_decimal_text(places: int | None, general: Parser) -> Callable[[str], object]:
    def parse(text: str) -> object:
        if _PLAIN_NUMBER.fullmatch(text):
            point = text.find(".")
            digits = (point if point >= 0 else len(text)) - (text[0] in "+-")
            fits = digits <= MAX_INTEGER_DIGITS
            if fits and (
                places is None or point < 0 or len(text) - point - 1 <= places
            ):
                return Decimal(text)
        return general(text)

    return parse


def _iso_date_text(general: Parser) -> Callable[[str], object]:
    def parse(text: str) -> object:
        if len(text) == 10 and text[4] == "-" and text[7] == "-":
            try:
                return dt.date.fromisoformat(text)
            except ValueError:
                pass
        return general(text)

    return parse


def _parser_for(type_: Type, options: ParseOptions) -> Parser:
    if type_.name == "list":
        assert type_.item is not None  # the dsl only builds lists with items
        return _list_parser(_parser_for(type_.item, options), options)
    builders: dict[str, Callable[[ParseOptions], Parser]] = {
        "string": lambda o: _parse_string,
        "bool": _bool_parser,
        "int": _int_parser,
        "decimal": lambda o: _decimal_parser(o, places=None),
        "money": lambda o: _decimal_parser(o, places=o.money_places),
        "date": _date_parser,
        "datetime": _datetime_parser,
        "duration": lambda o: _parse_duration,
    }
    return builders[type_.name](options)


def _describe(raw: object) -> str:
    return repr(raw) if isinstance(raw, str) else f"{raw!r} ({type(raw).__name__})"


def _parse_string(raw: object) -> str:
    if isinstance(raw, str):
        return raw
    # Numbers from JSON or an integer column, used as ids, are fine as text;
    # a boolean or a list is almost certainly the wrong column.
    if isinstance(raw, int | Decimal) and not isinstance(raw, bool):
        return str(raw)
    raise ValueProblem(f"{_describe(raw)} is not text")


def _bool_parser(options: ParseOptions) -> Parser:
    words = "/".join(options.true_words[:3] + options.false_words[:3])

    def parse(raw: object) -> bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, int) and raw in (0, 1):
            return bool(raw)  # databases without a boolean type store 0/1
        if isinstance(raw, str):
            answer = options.is_true(raw)
            if answer is not None:
                return answer
        raise ValueProblem(f"{_describe(raw)} is not a boolean (expected {words})")

    return parse


def _normalize_number(text: str, options: ParseOptions) -> str:
    """`1.234,56` -> `1234.56` per the options; ValueProblem on bad grouping."""
    body = text
    if options.thousands and options.thousands in body:
        integer, point, fraction = body.partition(options.decimal)
        sign = integer[:1] if integer[:1] in "+-" else ""
        groups = integer[len(sign) :].split(options.thousands)
        well_grouped = (
            1 <= len(groups[0]) <= 3
            and groups[0].isdigit()
            and all(len(g) == 3 and g.isdigit() for g in groups[1:])
        )
        if not well_grouped:
            raise ValueProblem(
                f"{text!r} is not a number: {options.thousands!r} separates"
                " thousands, in groups of three digits"
            )
        body = sign + "".join(groups) + (point + fraction)
    if options.decimal != ".":
        if "." in body:
            raise ValueProblem(
                f"{text!r} is not a number: the decimal separator is"
                f" {options.decimal!r}"
            )
        body = body.replace(options.decimal, ".")
    return body


def _decimal_parser(options: ParseOptions, *, places: int | None) -> Parser:
    example = "1234" + options.decimal + "56"

    def parse(raw: object) -> Decimal:
        written = None  # decimal places as written, when raw is text
        if isinstance(raw, bool):
            raise ValueProblem(f"{_describe(raw)} is not a number")
        if isinstance(raw, int):
            value = Decimal(raw)
        elif isinstance(raw, Decimal):
            value = raw
        elif isinstance(raw, float):
            # Only database drivers hand us floats (SQLite stores NUMERIC
            # columns as REAL). repr() is the shortest text that reads back
            # as the same float, i.e. the digits that were stored; a value
            # that was never exact shows up as too many decimal places below.
            value = Decimal(repr(raw))
        elif isinstance(raw, str):
            body = _normalize_number(raw, options)
            if not _PLAIN_NUMBER.fullmatch(body):
                raise ValueProblem(f"{raw!r} is not a number (expected e.g. {example})")
            value = Decimal(body)
            point = body.find(".")  # the pattern allows no exponent
            written = 0 if point < 0 else len(body) - point - 1
        else:
            raise ValueProblem(f"{_describe(raw)} is not a number")
        if not value.is_finite():
            raise ValueProblem(f"{_describe(raw)} is not a finite number")
        _check_magnitude(raw, value)
        # Text with no more places than allowed needs no look at the digits.
        if (
            places is not None
            and (written is None or written > places)
            and _decimal_places(value) > places
        ):
            raise ValueProblem(
                f"{_describe(raw)} has more than {places} decimal places"
                " (rounding money is a business decision: round it at the"
                " source, or set money_places)"
            )
        return value

    return parse


def _check_magnitude(raw: object, value: Decimal) -> None:
    if value != 0 and value.adjusted() >= MAX_INTEGER_DIGITS:
        raise ValueProblem(
            f"{_describe(raw)} is too large: more than {MAX_INTEGER_DIGITS}"
            " digits before the decimal point"
        )


def _decimal_places(value: Decimal) -> int:
    """Decimal places that carry a digit: 9.990 has 2, 1E+3 has 0."""
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # callers pass finite values
    places = -exponent
    if places <= 0:
        return 0
    trailing = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    return max(places - trailing, 0)


def _int_parser(options: ParseOptions) -> Parser:
    def parse(raw: object) -> int:
        value = whole(raw)
        if len(str(abs(value))) > MAX_INTEGER_DIGITS:
            raise ValueProblem(
                f"{_describe(raw)} is too large: more than {MAX_INTEGER_DIGITS} digits"
            )
        return value

    def whole(raw: object) -> int:
        if isinstance(raw, bool):
            raise ValueProblem(f"{_describe(raw)} is not a whole number")
        if isinstance(raw, int):
            return raw
        if isinstance(raw, float) and math.isfinite(raw) and raw.is_integer():
            return int(raw)
        if isinstance(raw, Decimal) and raw.is_finite() and raw == raw.to_integral():
            if raw.adjusted() >= MAX_INTEGER_DIGITS:
                raise ValueProblem(f"{_describe(raw)} is too large")
            return int(raw)
        if isinstance(raw, str):
            body = _normalize_number(raw, options)
            # Python refuses to convert more than 4300 digits: not an int here.
            if _PLAIN_INT.fullmatch(body) and len(body) <= 4000:
                return int(body)
        raise ValueProblem(f"{_describe(raw)} is not a whole number")

    return parse


def _date_parser(options: ParseOptions) -> Parser:
    fmt = options.date_format
    expected = fmt or "YYYY-MM-DD"

    def parse(raw: object) -> dt.date:
        if isinstance(raw, dt.datetime):
            # A DATETIME column used for a date: only midnight is a date.
            if raw.time() == dt.time(0) and raw.tzinfo is None:
                return raw.date()
            raise ValueProblem(f"{raw.isoformat()} is a date and time, not a date")
        if isinstance(raw, dt.date):
            return raw
        if isinstance(raw, str):
            try:
                if fmt is None:
                    # fromisoformat also takes "20241001"; require the dashes.
                    if len(raw) == 10 and raw[4] == "-" and raw[7] == "-":
                        return dt.date.fromisoformat(raw)
                else:
                    return dt.datetime.strptime(raw, fmt).date()
            except ValueError:
                pass
        raise ValueProblem(f"{_describe(raw)} is not a date (expected {expected})")

    return parse


def _datetime_parser(options: ParseOptions) -> Parser:
    fmt = options.datetime_format
    zone = ZoneInfo(options.timezone) if options.timezone else None
    expected = fmt or "ISO 8601, e.g. 2024-10-01T09:30:00-03:00"

    def parse(raw: object) -> dt.datetime:
        value: dt.datetime | None = None
        if isinstance(raw, dt.datetime):
            value = raw
        elif isinstance(raw, str):
            try:
                if fmt is None:
                    value = dt.datetime.fromisoformat(raw)
                else:
                    value = dt.datetime.strptime(raw, fmt)
            except ValueError:
                value = None
        if value is None:
            raise ValueProblem(
                f"{_describe(raw)} is not a date and time (expected {expected})"
            )
        if value.tzinfo is None:
            if zone is None:
                raise ValueProblem(
                    f"{_describe(raw)} has no UTC offset; write one, or set the"
                    " source's timezone"
                )
            value = value.replace(tzinfo=zone)
        return value

    return parse


def _parse_duration(raw: object) -> Duration:
    if isinstance(raw, str):
        match = _DURATION.fullmatch(raw)
        if match:
            unit = match.group(2).lower().replace("_", " ").rstrip("s")
            return Duration(int(match.group(1)), _DURATION_UNITS[unit])
    raise ValueProblem(
        f"{_describe(raw)} is not a duration (expected e.g. '3 days', '2 months')"
    )


def _list_parser(item: Parser, options: ParseOptions) -> Parser:
    def parse(raw: object) -> list[object]:
        items: Iterable[object]
        if isinstance(raw, list):
            items = raw
        elif isinstance(raw, str):
            items = [part.strip() for part in raw.split(options.list_separator)]
        else:
            raise ValueProblem(f"{_describe(raw)} is not a list")
        return [item(value) for value in items]

    return parse


def json_number(text: str) -> Decimal:
    """A JSON number with a fraction or an exponent, read from its digits
    (`parse_float` of `json.loads`). Scientific notation is refused, as it
    is in CSV text: `1e2` for a bill of 100 is a sign of a bad export."""
    if "e" in text or "E" in text:
        raise ValueError(
            f"the number {text} is in scientific notation; write it out"
            ' (e.g. 100 or "100.00")'
        )
    return Decimal(text)


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are all different (`object_pairs_hook`):
    with a key written twice, which value is meant cannot be known."""
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"the key {key!r} appears twice in an object")
        obj[key] = value
    return obj


def parse_record(
    parsers: dict[str, FieldParser], raw: dict[str, Any]
) -> tuple[dict[str, object], list[str]]:
    """Parse every declared field of one raw record.

    Returns the typed record and one message per bad field (all of them, so
    a person fixes a row in one go). A field absent from `raw` is missing:
    None when nullable, a problem otherwise.
    """
    record: dict[str, object] = {}
    errors: list[str] = []
    for name, parser in parsers.items():
        if name not in raw:
            if parser.type.nullable:
                record[name] = None
            else:
                errors.append(f"{name}: missing")
            continue
        try:
            record[name] = parser.parse(raw[name])
        except ValueProblem as problem:
            errors.append(f"{name}: {problem}")
    return record, errors
