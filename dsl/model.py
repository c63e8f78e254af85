"""The validated policy model: what `dsl` hands to `engine`.

A `Ruleset` only exists when every file of a ruleset was read, checked
against the schema and type-checked without errors. Lists keep the order of
the policy files; mappings keep their key order as written.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from dsl.ast import Node, Template
from dsl.diagnostics import Location
from dsl.types import Type

CHANNEL_KINDS = ("sms", "rcs", "whatsapp", "email", "voice", "webhook")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Expr:
    """A parsed and type-checked expression from a policy file."""

    source: str
    location: Location
    tree: Node
    type: Type


@dataclass(frozen=True)
class Field:
    name: str
    type: Type
    location: Location
    max_length: int | None = None  # declared worst case, for SMS length checks


@dataclass(frozen=True)
class InputSchema:
    """Declared fields of customer, invoice and payment records."""

    customer: dict[str, Field]
    invoice: dict[str, Field]
    payment: dict[str, Field]


@dataclass(frozen=True)
class Calendar:
    holidays: str | None  # country code for the `holidays` package ("BR")
    subdivision: str | None  # e.g. "SP"; None for national holidays only
    extra_holidays: tuple[dt.date, ...]
    due_date_roll: str  # "next_business_day" | "previous_business_day" | "none"


@dataclass(frozen=True)
class TimeRange:
    start: dt.time
    end: dt.time  # exclusive


@dataclass(frozen=True)
class Window:
    """Opening hours per weekday (0 = Monday). Closed on holidays unless
    `open_on_holidays`."""

    name: str
    hours: dict[int, tuple[TimeRange, ...]]
    open_on_holidays: bool
    location: Location


@dataclass(frozen=True)
class Delivery:
    outside_window: str  # "next_window" | "drop"
    catch_up_days: int  # a missed step may still go this many days late


@dataclass(frozen=True)
class Channel:
    name: str
    kind: str  # one of CHANNEL_KINDS
    address: Expr | None  # phone or e-mail; None for kinds that need none
    consent: Expr | None  # must be true for the channel to be usable
    opt_out: Expr | None  # true means the customer opted out
    window: str
    cost: Decimal
    max_segments: int | None  # SMS: warn above this many segments
    location: Location


@dataclass(frozen=True)
class Band:
    low: Decimal | None  # inclusive
    high: Decimal | None  # inclusive
    points: int
    location: Location


@dataclass(frozen=True)
class Characteristic:
    name: str
    value: Expr
    bands: tuple[Band, ...]
    location: Location


@dataclass(frozen=True)
class Grade:
    name: str
    min_score: int


@dataclass(frozen=True)
class Scorecard:
    characteristics: tuple[Characteristic, ...]
    grades: tuple[Grade, ...]  # highest min_score first


@dataclass(frozen=True)
class Segment:
    name: str
    when: Expr
    ladder: str | None  # the ladder name; None when the segment gets no messages
    location: Location


@dataclass(frozen=True)
class Credit:
    limit: Expr
    on_exceed: str  # "flag" | "block"
    location: Location


@dataclass(frozen=True)
class Suppression:
    name: str
    when: Expr
    location: Location


@dataclass(frozen=True)
class Frequency:
    per_day: int | None
    per_week: int | None
    same_day: str  # "combine" | "cap"


@dataclass(frozen=True)
class Offer:
    name: str
    kind: str  # "instalments" | "new_date"
    segments: tuple[str, ...]
    when: Expr | None
    instalments: int | None
    min_instalment: Decimal | None
    interest_monthly: Decimal | None
    new_date_days: int | None
    location: Location


@dataclass(frozen=True)
class Offset:
    """`D-3`, `D0`, `D+2 business`: days relative to the (rolled) due date."""

    days: int
    business: bool

    def __str__(self) -> str:
        sign = "+" if self.days > 0 else ("-" if self.days < 0 else "")
        text = f"D{sign}{abs(self.days)}" if self.days else "D0"
        return text + (" business" if self.business else "")


@dataclass(frozen=True)
class Step:
    name: str
    offset: Offset
    when: Expr | None
    channels: tuple[str, ...]
    template: str | None
    offer: str | None
    escalate: str | None  # queue name; an escalation step sends no message
    send_at: dt.time | None  # earliest wall-clock time within the window
    location: Location
    # Copy that names its day ("vence hoje"): never sent late or moved to a
    # later day's window; dropped or missed instead.
    same_day_only: bool = False


@dataclass(frozen=True)
class Ladder:
    name: str
    steps: tuple[Step, ...]
    location: Location


@dataclass(frozen=True)
class MessageTemplate:
    """One channel's variant of a template. E-mail has a subject."""

    body: Template
    subject: Template | None = None
    html: Template | None = None
    # WhatsApp Business: the pre-approved template the copy maps to.
    provider_template: str | None = None
    language: str | None = None
    params: tuple[Template, ...] = ()
    # Other channel-specific fields: RCS `title`, `button_label`,
    # `button_url`; voice `script`. Rendered into the plan's message.
    fields: dict[str, Template] = field(default_factory=dict)


@dataclass(frozen=True)
class TemplateSet:
    name: str
    variants: dict[str, MessageTemplate]  # channel name -> variant
    location: Location


@dataclass(frozen=True)
class Penalties:
    fine: Decimal | None
    interest_monthly: Decimal | None


@dataclass(frozen=True)
class Ruleset:
    name: str
    description: str | None
    timezone: str
    locale: str
    currency: str
    inputs: InputSchema
    calendar: Calendar
    windows: dict[str, Window]
    delivery: Delivery
    channels: dict[str, Channel]
    scorecard: Scorecard | None
    segments: tuple[Segment, ...]
    credit: Credit | None
    suppressions: tuple[Suppression, ...]
    frequency: Frequency
    offers: dict[str, Offer]
    penalties: Penalties
    ladders: dict[str, Ladder]
    templates: dict[str, TemplateSet]
    # Canonical digest of the policy files, for the plan header.
    digest: str = ""
    files: tuple[str, ...] = field(default=())
    # (path as locations show it, path relative to the ruleset's directory)
    # for each file: locations carry the path the ruleset was given as.
    file_paths: tuple[tuple[str, str], ...] = field(default=())

    def portable(self, location: Location) -> str:
        """`location` as `file:line:col` with the file relative to the
        ruleset's directory, as in `files`: the same text however the
        ruleset was given (relative or absolute, from any directory), so
        output that carries it stays byte-identical."""
        relative = dict(self.file_paths).get(location.path, location.path)
        return f"{relative}:{location.line}:{location.column}"
