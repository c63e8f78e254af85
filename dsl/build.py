"""Building the policy model (`dsl.model`) from a checked node tree.

The structural check (`dsl.structure`) has already reported every shape
problem, so this module reads the tree defensively: a node of the wrong
shape is skipped here, because its error is already on the list. What is
checked here is what a schema cannot say: that a time zone, locale,
currency or holiday country exists, that offsets, hours and dates mean
something, the input schema's required fields, and every expression and
template through the type checker, each in the context of its place.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import zoneinfo
from decimal import Decimal

from babel import Locale, UnknownLocaleError
from babel.numbers import is_currency

from dsl import checker
from dsl.ast import Template
from dsl.diagnostics import Diagnostic, Location, Severity
from dsl.library import COMPUTED_INVOICE_FIELDS, ExprContext
from dsl.model import (
    CHANNEL_KINDS,
    WEEKDAYS,
    Band,
    Calendar,
    Channel,
    Characteristic,
    Credit,
    Delivery,
    Expr,
    Field,
    Frequency,
    Grade,
    InputSchema,
    Ladder,
    MessageTemplate,
    Offer,
    Offset,
    Penalties,
    Ruleset,
    Scorecard,
    Segment,
    Step,
    Suppression,
    TemplateSet,
    TimeRange,
    Window,
)
from dsl.structure import suggest
from dsl.types import BOOL, DECIMAL, INT, MONEY, STRING, Type, parse_type_name
from dsl.yamlread import (
    TRAP_BOOL,
    TRAP_DATE,
    YMap,
    YNode,
    YScalar,
    as_list,
    as_map,
    text_of,
)

# Fields the engine relies on, with their types. The same table is
# engine.records.REQUIRED_FIELDS; dsl must not import engine, so the copy
# lives here and tests/dsl/test_loader.py keeps the two in step.
REQUIRED_FIELDS: dict[str, dict[str, str]] = {
    "customer": {"id": "string"},
    "invoice": {
        "id": "string",
        "customer_id": "string",
        "amount": "money",
        "due_date": "date",
    },
    "payment": {"invoice_id": "string", "amount": "money", "paid_on": "date"},
}

RECORD_KINDS = ("customer", "invoice", "payment")
OFFSET = re.compile(r"D(?:0|([+-])([0-9]+))(\s+business(?:\s+days?)?)?")
CATCH_UP = re.compile(r"([0-9]+) days?")
HOURS = re.compile(r"([0-9]{2}):([0-9]{2})-([0-9]{2}):([0-9]{2})")
TIME = re.compile(r"([0-9]{2}):([0-9]{2})")
DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
COUNTRY = re.compile(r"[A-Z]{2,3}")

# Variant fields that go into MessageTemplate.fields, rendered as they are.
EXTRA_FIELDS = ("title", "button_label", "button_url", "script")

NUMERIC = (INT, DECIMAL, MONEY)


@functools.cache
def _time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


@functools.cache
def _holiday_countries() -> dict[str, list[str]]:
    import holidays

    countries: dict[str, list[str]] = holidays.list_supported_countries()
    return countries


def parse_offset(text: str | None) -> Offset | None:
    """`D-3` -> Offset(-3, False); `D+2 business` -> Offset(2, True)."""
    match = OFFSET.fullmatch(text or "")
    if match is None:
        return None
    sign, digits, business = match.groups()
    days = int(digits) * (-1 if sign == "-" else 1) if digits else 0
    return Offset(days, business is not None)


def weekday_range(key: str) -> list[int]:
    """Weekday numbers (0 = Monday) of a day key: `mon`, `mon-fri`; none
    for a key that is not one or a range that runs backwards."""
    first, _, last = key.partition("-")
    if first not in WEEKDAYS or (last and last not in WEEKDAYS):
        return []
    start = WEEKDAYS.index(first)
    end = WEEKDAYS.index(last) if last else start
    return list(range(start, end + 1))


def _int(node: YNode | None) -> int | None:
    if isinstance(node, YScalar) and type(node.value) is int:
        return node.value
    return None


def _flag(node: YNode | None) -> bool:
    """A boolean key; absent (or not a boolean, which the schema reports)
    is false."""
    return isinstance(node, YScalar) and node.value is True


def _number(node: YNode | None) -> Decimal | None:
    if not isinstance(node, YScalar) or isinstance(node.value, bool):
        return None
    return Decimal(node.value) if isinstance(node.value, int | Decimal) else None


class ModelBuilder:
    """Reads one merged ruleset tree into a `Ruleset`, collecting diagnostics.

    `build()` returns the model only when no error was found.
    """

    def __init__(self, root: YMap) -> None:
        self.root = root
        self.diagnostics: list[Diagnostic] = []
        self._failed = False

    # Reporting ---------------------------------------------------------

    def error(
        self, location: Location, code: str, message: str, hint: str | None = None
    ) -> None:
        self._failed = True
        self.diagnostics.append(
            Diagnostic(location, Severity.ERROR, code, message, hint)
        )

    def _take(self, found: list[Diagnostic]) -> None:
        for diagnostic in found:
            if diagnostic.severity is Severity.ERROR:
                self._failed = True
            self.diagnostics.append(diagnostic)

    # Expressions -------------------------------------------------------

    def expression(
        self,
        node: YNode | None,
        context: ExprContext,
        expected: Type | tuple[Type, ...],
    ) -> Expr | None:
        """Type-check the expression written at `node` (a string, a bare
        boolean or number); None when it has errors or the node is not one."""
        if not isinstance(node, YScalar) or node.value is None:
            return None
        if isinstance(node.value, str) and node.trap == TRAP_BOOL:
            self.error(
                node.location,
                "E107",
                f"`{node.text}` is not a boolean here",
                "write true or false (YAML 1.1 reads yes/no/on/off as booleans)",
            )
            return None
        expr, found = checker.check_expression(
            node.text, node.locate, context, expected
        )
        self._take(found)
        return expr

    def template(
        self, node: YNode | None, context: ExprContext, *, html: bool = False
    ) -> Template | None:
        if not isinstance(node, YScalar) or not isinstance(node.value, str):
            return None
        template, found = checker.check_template(
            node.text, node.locate, context, html=html
        )
        self._take(found)
        return template

    # The ruleset -------------------------------------------------------

    def build(self) -> Ruleset | None:
        root = self.root
        inputs = self.inputs(as_map(root.get("inputs")))
        name = text_of(root.get("ruleset")) or ""
        description = text_of(root.get("description"))
        timezone = self.timezone(root.get("timezone"))
        locale = self.locale(root.get("locale"))
        currency = self.currency(root.get("currency"))
        calendar = self.calendar(as_map(root.get("calendar")))
        windows = self.windows(as_map(root.get("windows")))
        delivery = self.delivery(as_map(root.get("delivery")))

        base = ExprContext(inputs)
        channels = self.channels(as_map(root.get("channels")), base)
        scorecard = self.scorecard(as_map(root.get("score")), base)
        scored = ExprContext(inputs, score=scorecard is not None)
        per_invoice = ExprContext(inputs, per_invoice=True, score=scorecard is not None)
        ladders = self.ladders(as_map(root.get("ladders")), per_invoice)
        segments = self.segments(root.get("segments"), scored, ladders)
        credit = self.credit(as_map(root.get("credit")), scored)
        suppressions = self.suppressions(root.get("suppress"), per_invoice)
        frequency = self.frequency(as_map(root.get("frequency")))
        offers = self.offers(as_map(root.get("offers")), per_invoice)
        penalties = self.penalties(as_map(root.get("penalties")))
        templates = self.templates(as_map(root.get("templates")), per_invoice, ladders)

        if self._failed:
            return None
        return Ruleset(
            name=name,
            description=description,
            timezone=timezone,
            locale=locale,
            currency=currency,
            inputs=inputs,
            calendar=calendar,
            windows=windows,
            delivery=delivery,
            channels=channels,
            scorecard=scorecard,
            segments=segments,
            credit=credit,
            suppressions=suppressions,
            frequency=frequency,
            offers=offers,
            penalties=penalties,
            ladders=ladders,
            templates=templates,
        )

    # Metadata ----------------------------------------------------------

    def timezone(self, node: YNode | None) -> str:
        zone = text_of(node)
        if zone is None or node is None:
            return ""
        if zone not in _time_zones():
            self.error(
                node.location,
                "E120",
                f"unknown time zone `{zone}`",
                suggest(zone, _time_zones()) or "use an IANA name: America/Sao_Paulo",
            )
        return zone

    def locale(self, node: YNode | None) -> str:
        name = text_of(node)
        if name is None or node is None:
            return ""
        try:
            Locale.parse(name)
        except (UnknownLocaleError, ValueError, TypeError) as exc:
            self.error(
                node.location, "E121", f"unknown locale `{name}` ({exc})", "e.g. pt_BR"
            )
        return name

    def currency(self, node: YNode | None) -> str:
        code = text_of(node)
        if code is None or node is None:
            return ""
        if not is_currency(code):
            self.error(node.location, "E122", f"unknown currency `{code}`", "e.g. BRL")
        return code

    # Inputs ------------------------------------------------------------

    def inputs(self, node: YMap | None) -> InputSchema:
        records: dict[str, dict[str, Field]] = {}
        for kind in RECORD_KINDS:
            records[kind] = self.record(kind, node)
        return InputSchema(records["customer"], records["invoice"], records["payment"])

    def record(self, kind: str, inputs: YMap | None) -> dict[str, Field]:
        fields: dict[str, Field] = {}
        node = as_map(inputs.get(kind)) if inputs else None
        if node is None:
            return fields
        for key, value in node:
            declared = self.field(kind, key, value)
            if declared is not None:
                fields[key.text] = declared

        kind_key = inputs.key(kind) if inputs else None
        for name, type_name in REQUIRED_FIELDS[kind].items():
            found = fields.get(name)
            wanted = parse_type_name(type_name)
            if found is None:
                self.error(
                    kind_key.location if kind_key else node.location,
                    "E125",
                    f"`{kind}` must declare the field `{name}` ({type_name})",
                    "the engine relies on it",
                )
            elif found.type != wanted:
                self.error(
                    found.location,
                    "E125",
                    f"`{kind}.{name}` must be of type {type_name}, not {found.type}",
                )
        return fields

    def field(self, kind: str, key: YScalar, node: YNode) -> Field | None:
        if kind == "invoice" and key.text in COMPUTED_INVOICE_FIELDS:
            self.error(
                key.location,
                "E126",
                f"`invoice.{key.text}` is computed by the engine and may not be "
                "declared",
                "rename the field",
            )
            return None
        type_node: YNode | None = node
        max_length: int | None = None
        if isinstance(node, YMap):
            type_node = node.get("type")
            max_length = _int(node.get("max_length"))
        type_text = text_of(type_node)
        if type_text is None or type_node is None:
            return None
        parsed = parse_type_name(type_text.replace(" ", ""))
        if parsed is None:
            choices = [*_type_words(), *(w + "?" for w in _type_words())]
            self.error(
                type_node.location,
                "E124",
                f"unknown type `{type_text}`",
                suggest(type_text, choices)
                or "types: " + ", ".join(_type_words()) + ", list[T]; T? may be empty",
            )
            return None
        if max_length is not None and parsed.name != "string":
            self.error(
                type_node.location,
                "E124",
                f"`max_length` applies to strings, not to {parsed}",
            )
        return Field(key.text, parsed, key.location, max_length)

    # Calendar, windows, delivery --------------------------------------

    def calendar(self, node: YMap | None) -> Calendar:
        if node is None:
            return Calendar(None, None, (), "next_business_day")
        country_node = node.get("holidays")
        country = text_of(country_node)
        subdivision_node = node.get("subdivision")
        subdivision = text_of(subdivision_node)
        self.holiday_region(country_node, subdivision_node)

        extra: list[dt.date] = []
        for item in as_list(node.get("extra_holidays")):
            day = self.date(item)
            if day is not None:
                extra.append(day)
        roll = text_of(node.get("due_date_roll")) or "next_business_day"
        return Calendar(country, subdivision, tuple(sorted(set(extra))), roll)

    def holiday_region(
        self, country_node: YNode | None, subdivision_node: YNode | None
    ) -> None:
        """The country and subdivision must be known to the holidays package."""
        country = text_of(country_node)
        subdivision = text_of(subdivision_node)
        if country is None or country_node is None:
            if subdivision is not None and subdivision_node is not None:
                self.error(
                    subdivision_node.location,
                    "E123",
                    "a subdivision needs a country in `holidays`",
                )
            return
        if not COUNTRY.fullmatch(country):
            return  # a malformed code: the schema reported it
        supported = _holiday_countries()
        if country not in supported:
            self.error(
                country_node.location,
                "E123",
                f"the holidays package knows no country `{country}`",
                suggest(country, supported),
            )
        elif (
            subdivision is not None
            and subdivision_node is not None
            and subdivision not in supported[country]
        ):
            self.error(
                subdivision_node.location,
                "E123",
                f"`{subdivision}` is not a subdivision of {country}",
                suggest(subdivision, supported[country]),
            )

    def date(self, node: YNode) -> dt.date | None:
        if not isinstance(node, YScalar):
            return None
        if node.style == "plain" and node.trap == TRAP_DATE:
            self.error(
                node.location,
                "E108",
                f"unquoted date {node.text}: YAML 1.1 tools read it as a date object",
                f'write it quoted: "{node.text}"',
            )
            return None
        text = text_of(node)
        if text is None or not DATE.fullmatch(text):
            return None  # the schema reported it
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            self.error(node.location, "E119", f"`{text}` is not a date in the calendar")
            return None

    def windows(self, node: YMap | None) -> dict[str, Window]:
        windows: dict[str, Window] = {}
        if node is None:
            return windows
        for key, value in node:
            body = as_map(value)
            if body is None:
                continue
            hours: dict[int, list[TimeRange]] = {}
            for day_key, day_value in body:
                if day_key.text == "holidays":
                    continue
                days = self.days(day_key)
                ranges = [
                    r
                    for item in (as_list(day_value) or [day_value])
                    if (r := self.time_range(item)) is not None
                ]
                for day in days:
                    hours.setdefault(day, []).extend(ranges)
            open_on_holidays = text_of(body.get("holidays")) == "open"
            windows[key.text] = Window(
                key.text,
                {
                    day: tuple(sorted(ranges, key=lambda r: r.start))
                    for day, ranges in sorted(hours.items())
                },
                open_on_holidays,
                key.location,
            )
        return windows

    def days(self, key: YScalar) -> list[int]:
        """Weekday numbers (0 = Monday) of a day key: `mon`, `mon-fri`."""
        days = weekday_range(key.text)
        first, _, last = key.text.partition("-")
        if not days and first in WEEKDAYS and last in WEEKDAYS:
            self.error(
                key.location,
                "E116",
                f"day range `{key.text}` runs backwards",
                "ranges go from Monday towards Sunday, e.g. mon-fri",
            )
        return days

    def time_range(self, node: YNode) -> TimeRange | None:
        match = HOURS.fullmatch(text_of(node) or "")
        if match is None:
            return None  # the schema reported it
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        start = dt.time(h1, m1)
        # "24:00" closes at midnight; the last representable time stands in.
        end = dt.time.max if (h2, m2) == (24, 0) else dt.time(h2, m2)
        return TimeRange(start, end)

    def delivery(self, node: YMap | None) -> Delivery:
        if node is None:
            return Delivery("next_window", 0)
        outside = text_of(node.get("outside_window")) or "next_window"
        match = CATCH_UP.fullmatch(text_of(node.get("catch_up")) or "")
        return Delivery(outside, int(match.group(1)) if match else 0)

    # Channels ----------------------------------------------------------

    def channels(self, node: YMap | None, context: ExprContext) -> dict[str, Channel]:
        channels: dict[str, Channel] = {}
        if node is None:
            return channels
        for key, value in node:
            body = as_map(value)
            if body is None:
                continue
            kind = text_of(body.get("kind")) or key.text
            if kind not in CHANNEL_KINDS:
                # Reported by the cross checks (E415), with the channel's place.
                continue
            address = self.expression(
                body.get("address"), context, STRING.as_nullable()
            )
            consent = self.expression(body.get("consent"), context, BOOL)
            opt_out = self.expression(body.get("opt_out"), context, BOOL)
            channels[key.text] = Channel(
                name=key.text,
                kind=kind,
                address=address,
                consent=consent,
                opt_out=opt_out,
                window=text_of(body.get("window")) or "",
                cost=_number(body.get("cost")) or Decimal(0),
                max_segments=_int(body.get("max_segments")),
                location=key.location,
            )
        return channels

    # Score, segments, credit, suppression ------------------------------

    def scorecard(self, node: YMap | None, context: ExprContext) -> Scorecard | None:
        if node is None:
            return None
        characteristics: list[Characteristic] = []
        for item in as_list(node.get("characteristics")):
            body = as_map(item)
            if body is None:
                continue
            value = self.expression(body.get("value"), context, NUMERIC)
            bands: list[Band] = []
            for band_node in as_list(body.get("bands")):
                band = as_map(band_node)
                points = _int(band.get("points")) if band else None
                if band is None or points is None:
                    continue
                low = _number(band.get("min"))
                high = _number(band.get("max"))
                if low is not None and high is not None and low > high:
                    self.error(
                        band.location,
                        "E420",
                        f"band from {low} to {high}: min is above max",
                    )
                bands.append(Band(low, high, points, band.location))
            name = text_of(body.get("name"))
            if value is not None and name is not None:
                characteristics.append(
                    Characteristic(name, value, tuple(bands), body.location)
                )
        grades: list[Grade] = []
        for item in as_list(node.get("grades")):
            body = as_map(item)
            name = text_of(body.get("name")) if body else None
            lowest = _int(body.get("min")) if body else None
            if name is not None and lowest is not None:
                grades.append(Grade(name, lowest))
        return Scorecard(tuple(characteristics), tuple(grades))

    def segments(
        self, node: YNode | None, context: ExprContext, ladders: dict[str, Ladder]
    ) -> tuple[Segment, ...]:
        segments: list[Segment] = []
        for item in as_list(node):
            body = as_map(item)
            if body is None:
                continue
            name = text_of(body.get("name"))
            when = self.expression(body.get("when"), context, BOOL)
            if name is None or when is None:
                continue
            if body.key("ladder") is not None:
                ladder = text_of(body.get("ladder"))
            else:
                ladder = name if name in ladders else None
            segments.append(Segment(name, when, ladder, body.location))
        return tuple(segments)

    def credit(self, node: YMap | None, context: ExprContext) -> Credit | None:
        if node is None:
            return None
        limit = self.expression(node.get("limit"), context, MONEY)
        on_exceed = text_of(node.get("on_exceed")) or "flag"
        return None if limit is None else Credit(limit, on_exceed, node.location)

    def suppressions(
        self, node: YNode | None, context: ExprContext
    ) -> tuple[Suppression, ...]:
        rules: list[Suppression] = []
        for item in as_list(node):
            body = as_map(item)
            if body is None:
                continue
            name = text_of(body.get("name"))
            when = self.expression(body.get("when"), context, BOOL)
            if name is not None and when is not None:
                rules.append(Suppression(name, when, body.location))
        return tuple(rules)

    def frequency(self, node: YMap | None) -> Frequency:
        # `cap` unless a policy asks to combine: a combined reminder shows a
        # summed amount, and its copy must then be checked (E424) so that it
        # shows no single invoice's payment link beside that sum.
        if node is None:
            return Frequency(None, None, "cap")
        return Frequency(
            _int(node.get("per_day")),
            _int(node.get("per_week")),
            text_of(node.get("same_day")) or "cap",
        )

    def offers(self, node: YMap | None, context: ExprContext) -> dict[str, Offer]:
        offers: dict[str, Offer] = {}
        if node is None:
            return offers
        for key, value in node:
            body = as_map(value)
            if body is None:
                continue
            when_node = body.get("when")
            when = self.expression(when_node, context, BOOL)
            if when_node is not None and when is None:
                continue
            offers[key.text] = Offer(
                name=key.text,
                kind=text_of(body.get("kind")) or "",
                segments=tuple(
                    s for n in as_list(body.get("segments")) if (s := text_of(n))
                ),
                when=when,
                instalments=_int(body.get("instalments")),
                min_instalment=_number(body.get("min_instalment")),
                interest_monthly=_number(body.get("interest_monthly")),
                new_date_days=_int(body.get("days")),
                location=key.location,
            )
        return offers

    def penalties(self, node: YMap | None) -> Penalties:
        if node is None:
            return Penalties(None, None)
        return Penalties(
            _number(node.get("fine")), _number(node.get("interest_monthly"))
        )

    # Ladders and templates ---------------------------------------------

    def ladders(self, node: YMap | None, context: ExprContext) -> dict[str, Ladder]:
        ladders: dict[str, Ladder] = {}
        if node is None:
            return ladders
        for key, value in node:
            steps = [
                step
                for item in as_list(value)
                if (step := self.step(as_map(item), context)) is not None
            ]
            ladders[key.text] = Ladder(key.text, tuple(steps), key.location)
        return ladders

    def step(self, body: YMap | None, context: ExprContext) -> Step | None:
        if body is None:
            return None
        name = text_of(body.get("step"))
        offset = parse_offset(text_of(body.get("at")))
        when_node = body.get("when")
        when = self.expression(when_node, context, BOOL)
        send_at = self.time(body.get("send_at"))
        if name is None or offset is None or (when_node is not None and when is None):
            return None
        return Step(
            name=name,
            offset=offset,
            when=when,
            channels=tuple(
                c for n in as_list(body.get("channels")) if (c := text_of(n))
            ),
            template=text_of(body.get("template")),
            offer=text_of(body.get("offer")),
            escalate=text_of(body.get("escalate")),
            send_at=send_at,
            location=body.location,
            same_day_only=_flag(body.get("same_day_only")),
        )

    def time(self, node: YNode | None) -> dt.time | None:
        match = TIME.fullmatch(text_of(node) or "")
        if match is None:
            return None
        return dt.time(int(match.group(1)), int(match.group(2)))

    def templates(
        self, node: YMap | None, context: ExprContext, ladders: dict[str, Ladder]
    ) -> dict[str, TemplateSet]:
        templates: dict[str, TemplateSet] = {}
        if node is None:
            return templates
        # A template sees `offer.*` only when every step using it has an
        # offer: one used by both kinds of step is checked the stricter way.
        with_offer: dict[str, list[bool]] = {}
        for ladder in ladders.values():
            for step in ladder.steps:
                if step.template is not None:
                    with_offer.setdefault(step.template, []).append(
                        step.offer is not None
                    )
        for key, value in node:
            body = as_map(value)
            if body is None:
                continue
            uses = with_offer.get(key.text, [])
            offer = bool(uses) and all(uses)
            variant_context = ExprContext(
                context.inputs,
                per_invoice=True,
                score=context.score,
                offer=offer,
                template=True,
            )
            variants: dict[str, MessageTemplate] = {}
            for channel_key, variant_node in body:
                variant = self.variant(variant_node, variant_context)
                if variant is not None:
                    variants[channel_key.text] = variant
            templates[key.text] = TemplateSet(key.text, variants, key.location)
        return templates

    def variant(self, node: YNode, context: ExprContext) -> MessageTemplate | None:
        if isinstance(node, YScalar):
            body = self.template(node, context)
            return None if body is None else MessageTemplate(body)
        if not isinstance(node, YMap):
            return None

        def render(field: str) -> Template | None:
            return self.template(node.get(field), context)

        body = render("text")
        subject = render("subject")
        html = self.template(node.get("html"), context, html=True)
        params = [self.template(p, context) for p in as_list(node.get("params"))]
        fields = {
            name: template
            for name in EXTRA_FIELDS
            if node.get(name) is not None and (template := render(name)) is not None
        }
        if body is None:
            return None
        return MessageTemplate(
            body=body,
            subject=subject,
            html=html,
            provider_template=text_of(node.get("template")),
            language=text_of(node.get("language")),
            params=tuple(p for p in params if p is not None),
            fields=fields,
        )


def _type_words() -> list[str]:
    return ["bool", "int", "decimal", "money", "string", "date", "datetime", "duration"]
