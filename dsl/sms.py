"""SMS length and encoding: how many segments a message may need.

An SMS is sent in GSM-7 when every character is in the GSM 03.38 basic
set or its extension table (an extension character, such as `€` or `{`,
takes two septets); 160 septets fit in one segment, 153 in each part of a
concatenated message. One character outside the set (`ã`, `ç`, an en dash,
a curly quote, a no-break space) turns the whole message into UCS-2: 70
UTF-16 units in one segment, 67 per part. A part never splits an escape
pair or a surrogate pair.

Locale formatting puts no-break spaces in amounts, dates and times
(`R$\xa01.234,56`, U+202F before "PM"). In plain-text copy (channel kinds
in `PLAIN_SPACE_KINDS`: SMS, voice scripts) they become plain spaces
(`plain_spaces`): one would make every SMS with an amount UCS-2, and a
phone shows no difference. The engine renders such copy through the same
function, so the counts here are the counts of what is sent.

The worst case of a template is its literal text plus, for each
placeholder, its longest rendering: a string field's declared
`max_length` (20 when it has none, with a warning), money as the currency
formatted for 1,000,000.00 (`R$ 1.000.000,00`), a date with the longest
month or weekday name its pattern can show, an int as 10 characters.

Values from the data may hold characters outside GSM-7 (names such as
João). So each SMS gets two figures: the segments when every value is
plain GSM-7 text, and the worst case when a value brings a UCS-2
character. Both are reported (`sms_estimates`); a warning is given when the
plain figure exceeds the channel's `max_segments` (W501) or when only a
non-GSM value would make it exceed (W503).

| code | meaning |
|------|---------|
| W501 | the SMS needs more segments than `max_segments` even with plain values |
| W502 | a string placeholder without `max_length`, counted as 20 characters |
| W503 | within `max_segments` only while every value is plain GSM-7 text |
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from decimal import Decimal

from babel.core import Locale
from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal

from dsl.ast import Attribute, Call, Literal, Name, Node, Template
from dsl.diagnostics import Diagnostic, Location, Severity
from dsl.model import Ruleset

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")

GSM7 = "GSM-7"
UCS2 = "UCS-2"
SINGLE = {GSM7: 160, UCS2: 70}
PART = {GSM7: 153, UCS2: 67}

UNKNOWN_STRING_LENGTH = 20
INT_LENGTH = 10
MONEY_WORST = Decimal("1000000.00")
NUMBER_WORST = Decimal("-1000000.123")
DEFAULT_DATE_PATTERN = "medium"  # what the engine shows for a bare date


# Channel kinds whose copy is plain text on a phone screen or read aloud.
# E-mail, WhatsApp and RCS show Unicode as is (a no-break space keeps "R$"
# with its amount), and webhooks hand the text to another system: they get
# what the locale formats. A fallback from RCS to SMS is SMS copy again.
PLAIN_SPACE_KINDS = frozenset({"sms", "voice"})

# The no-break spaces CLDR formats use (after a currency symbol, between
# digit groups, before a day period).
NO_BREAK_SPACES = "\xa0\u202f"
_AS_PLAIN_SPACES = str.maketrans(dict.fromkeys(NO_BREAK_SPACES, " "))


def plain_spaces(text: str) -> str:
    """`text` with every no-break space as a plain space (plain-text copy)."""
    return text.translate(_AS_PLAIN_SPACES)


def is_gsm7(char: str) -> bool:
    return char in GSM7_BASIC or char in GSM7_EXTENSION


def encoding_of(text: str) -> str:
    """GSM-7 when every character is in the GSM alphabet, else UCS-2."""
    return GSM7 if all(is_gsm7(c) for c in text) else UCS2


def _costs(text: str, encoding: str) -> list[int]:
    if encoding == GSM7:
        return [2 if c in GSM7_EXTENSION else 1 for c in text]
    return [2 if ord(c) > 0xFFFF else 1 for c in text]


@dataclass(frozen=True)
class Count:
    """The encoding, length in septets (GSM-7) or UTF-16 units (UCS-2), and
    number of segments of one message."""

    encoding: str
    length: int
    segments: int


def count(text: str, encoding: str | None = None) -> Count:
    """Segments of `text`, in its own encoding unless one is forced."""
    encoding = encoding or encoding_of(text)
    costs = _costs(text, encoding)
    length = sum(costs)
    if length <= SINGLE[encoding]:
        return Count(encoding, length, 1)
    part, used, segments = PART[encoding], 0, 1
    for cost in costs:
        if used + cost > part:  # an escape or surrogate pair stays whole
            segments += 1
            used = 0
        used += cost
    return Count(encoding, length, segments)


@dataclass(frozen=True)
class Sample:
    """The longest rendering of a placeholder, and whether some values
    could bring a character outside GSM-7."""

    text: str
    may_be_unicode: bool
    unbounded: str | None = None  # what has no declared maximum length


@dataclass(frozen=True)
class SmsEstimate:
    """Segment counts of one SMS variant of a template."""

    template: str
    channel: str
    location: Location
    plain: Count  # every value plain GSM-7 text
    worst: Count  # a value brings a UCS-2 character
    max_segments: int | None
    unicode_reason: str | None  # the literal character forcing UCS-2, if any


def sms_estimates(ruleset: Ruleset) -> list[SmsEstimate]:
    """Segment counts for every template variant sent through an SMS channel."""
    samples = _Samples(ruleset)
    estimates: list[SmsEstimate] = []
    for template in ruleset.templates.values():
        for channel_name, variant in template.variants.items():
            channel = ruleset.channels.get(channel_name)
            if channel is None or channel.kind != "sms":
                continue
            estimates.append(
                samples.estimate(
                    template.name, channel_name, variant.body, channel.max_segments
                )
            )
    return estimates


def check_sms(ruleset: Ruleset) -> list[Diagnostic]:
    """Warnings for SMS copy that may exceed its channel's `max_segments`,
    and for placeholders whose length is unknown."""
    diagnostics: list[Diagnostic] = []
    samples = _Samples(ruleset)
    for estimate in sms_estimates(ruleset):
        limit = estimate.max_segments
        figures = _figures(estimate)
        if limit is not None and estimate.plain.segments > limit:
            diagnostics.append(
                _warning(
                    estimate.location,
                    "W501",
                    f"SMS `{estimate.template}` for `{estimate.channel}` needs "
                    f"{figures}; the channel allows {limit}",
                    _reason(estimate),
                )
            )
        elif limit is not None and estimate.worst.segments > limit:
            diagnostics.append(
                _warning(
                    estimate.location,
                    "W503",
                    f"SMS `{estimate.template}` for `{estimate.channel}` needs "
                    f"{figures}; the channel allows {limit}",
                    "a name such as João switches the message to UCS-2 "
                    "(70 characters per segment)",
                )
            )
    for template in ruleset.templates.values():
        for channel_name, variant in template.variants.items():
            channel = ruleset.channels.get(channel_name)
            if channel is None or channel.kind != "sms":
                continue
            for part in variant.body.parts:
                if isinstance(part, Node):
                    sample = samples.placeholder(part)
                    if sample.unbounded is not None:
                        diagnostics.append(
                            _warning(
                                part.location,
                                "W502",
                                f"{sample.unbounded} has no `max_length`: counted "
                                f"as {UNKNOWN_STRING_LENGTH} characters in SMS "
                                "length checks",
                                "declare it in the inputs: "
                                "{type: string, max_length: 40}",
                            )
                        )
    return diagnostics


def _figures(estimate: SmsEstimate) -> str:
    plain, worst = estimate.plain, estimate.worst
    if plain == worst:
        return f"{_segments(plain)} ({plain.encoding}, up to {plain.length} characters)"
    return (
        f"{_segments(plain)} if every value is plain GSM-7 text "
        f"(up to {plain.length} characters), {worst.segments} in the worst case "
        f"(UCS-2)"
    )


def _segments(c: Count) -> str:
    return f"{c.segments} segment{'s' if c.segments != 1 else ''}"


def _reason(estimate: SmsEstimate) -> str | None:
    if estimate.unicode_reason:
        return f"{estimate.unicode_reason} makes it UCS-2 (70 characters per segment)"
    return "shorten the copy or raise max_segments"


class _Samples:
    """Worst-case renderings of placeholders for one ruleset."""

    def __init__(self, ruleset: Ruleset) -> None:
        self.ruleset = ruleset
        self.locale = Locale.parse(ruleset.locale)
        self.fields = {
            "customer": ruleset.inputs.customer,
            "invoice": ruleset.inputs.invoice,
        }
        self.names = {
            "segment": [s.name for s in ruleset.segments],
            "grade": [g.name for g in ruleset.scorecard.grades]
            if ruleset.scorecard
            else [],
        }

    def estimate(
        self, template: str, channel: str, body: Template, max_segments: int | None
    ) -> SmsEstimate:
        plain_text: list[str] = []
        unicode_values = False
        for part in body.parts:
            if isinstance(part, str):
                plain_text.append(part)
            else:
                sample = self.placeholder(part)
                plain_text.append(sample.text)
                unicode_values = unicode_values or sample.may_be_unicode
        text = plain_spaces("".join(plain_text))  # as the engine renders SMS
        plain = count(text)
        worst = count(text, UCS2) if unicode_values else plain
        return SmsEstimate(
            template,
            channel,
            body.location,
            plain,
            worst,
            max_segments,
            self._unicode_reason(body),
        )

    def _unicode_reason(self, body: Template) -> str | None:
        for part in body.parts:
            if isinstance(part, str):
                for char in plain_spaces(part):
                    if not is_gsm7(char):
                        return f"the character {_show(char)}"
            else:
                sample = self.placeholder(part)
                for char in plain_spaces(sample.text):
                    if not is_gsm7(char):
                        return f"{_show(char)} in the formatted `{_describe(part)}`"
        return None

    def placeholder(self, node: Node) -> Sample:
        """The longest text this placeholder can render to."""
        if isinstance(node, Call):
            if node.function == "money":
                return Sample(self.money(), False)
            if node.function == "number":
                return self.number(node.args[0] if node.args else None)
            if node.function == "date":
                pattern = DEFAULT_DATE_PATTERN
                if len(node.args) > 1 and isinstance(node.args[1], Literal):
                    pattern = str(node.args[1].value)
                return _date_sample(pattern, self.ruleset.locale)
            if node.function in ("upper", "lower") and node.args:
                return self.placeholder(node.args[0])
            if node.function == "coalesce" and node.args:
                options = [self.placeholder(arg) for arg in node.args]
                longest = max(options, key=lambda s: len(s.text))
                return Sample(
                    longest.text,
                    any(s.may_be_unicode for s in options),
                    next((s.unbounded for s in options if s.unbounded), None),
                )
        kind = node.type.name if node.type is not None else "string"
        if kind == "money":
            return Sample(self.money(), False)
        if kind in ("int", "decimal"):
            return self.number(node)
        if kind == "date":
            return _date_sample(DEFAULT_DATE_PATTERN, self.ruleset.locale)
        if kind == "datetime":
            return _datetime_sample(self.ruleset.locale)
        if kind == "bool":
            return Sample("false", False)
        return self.string(node)

    def money(self) -> str:
        return str(
            format_currency(MONEY_WORST, self.ruleset.currency, locale=self.locale)
        )

    def number(self, node: Node | None) -> Sample:
        if node is not None and node.type is not None and node.type.name == "int":
            return Sample("9" * INT_LENGTH, False)
        text = format_decimal(
            NUMBER_WORST, locale=self.locale, decimal_quantization=False
        )
        return Sample(str(text), False)

    def string(self, node: Node) -> Sample:
        if isinstance(node, Literal) and isinstance(node.value, str):
            return Sample(node.value, False)
        if isinstance(node, Name) and node.name in self.names:
            names = self.names[node.name] or ["x" * UNKNOWN_STRING_LENGTH]
            longest = max(names, key=len)
            return Sample(longest, any(not is_gsm7(c) for n in names for c in n))
        if isinstance(node, Attribute) and isinstance(node.target, Name):
            record = self.fields.get(node.target.name, {})
            field = record.get(node.name)
            if field is not None and field.max_length is not None:
                return Sample("x" * field.max_length, True)
        return Sample(
            "x" * UNKNOWN_STRING_LENGTH, True, unbounded=f"`{_describe(node)}`"
        )


@functools.cache
def _date_sample(pattern: str, locale: str) -> Sample:
    """The longest rendering of a date pattern over every month and weekday."""
    days = [dt.date(2025, month, 28) for month in range(1, 13)]
    days += [dt.date(2025, 12, day) for day in range(22, 32)]
    try:
        texts = [str(format_date(day, pattern, locale=locale)) for day in days]
    except (ValueError, KeyError, AttributeError):
        return Sample("x" * UNKNOWN_STRING_LENGTH, True)
    return _longest(texts)


@functools.cache
def _datetime_sample(locale: str) -> Sample:
    moments = [dt.datetime(2025, month, 28, 23, 59) for month in range(1, 13)]
    texts = [
        str(format_datetime(m, DEFAULT_DATE_PATTERN, locale=locale)) for m in moments
    ]
    return _longest(texts)


def _longest(texts: list[str]) -> Sample:
    longest = max(texts, key=len)
    # One month name with `ç` (março) is enough to make some messages UCS-2.
    unicode = any(not is_gsm7(c) for t in texts for c in plain_spaces(t))
    return Sample(longest, unicode)


def _describe(node: Node) -> str:
    if isinstance(node, Attribute) and isinstance(node.target, Name):
        return f"{node.target.name}.{node.name}"
    if isinstance(node, Name):
        return node.name
    if isinstance(node, Call):
        return f"{node.function}(...)"
    return "placeholder"


def _show(char: str) -> str:
    return f"`{char}` (U+{ord(char):04X})"


def _warning(
    location: Location, code: str, message: str, hint: str | None = None
) -> Diagnostic:
    return Diagnostic(location, Severity.WARNING, code, message, hint)
