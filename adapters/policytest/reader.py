"""Walking the node tree of a test file, collecting every problem."""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Mapping, Sequence
from zoneinfo import ZoneInfo

from adapters.asof import out_of_range
from adapters.policytest.cases import (
    BAD_VALUE,
    DEFAULT_RUN_TIME,
    MISSING,
    UNKNOWN_KEY,
    UNKNOWN_NAME,
    WRONG_SHAPE,
)
from adapters.sources.parsing import FieldParser, ParseOptions, ValueProblem
from dsl.diagnostics import Diagnostic, Location, Severity
from dsl.model import Field, Ruleset
from dsl.yamlread import TRAP_DATE, YMap, YNode, YScalar, YSeq
from engine.calendar import local_datetime


def did_you_mean(word: str, choices: Sequence[str]) -> str | None:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None


def misspelt(node: YMap, name: str, keys: Sequence[str]) -> bool:
    """Whether an unknown key of `node` is a misspelling of `name`, whose
    "did you mean" hint already says that `name` is missing."""
    hint = f"did you mean `{name}`?"
    return any(
        key.text not in keys and did_you_mean(key.text, keys) == hint for key, _ in node
    )


class NodeReader:
    """Walks the node tree of one test file and collects every problem."""

    def __init__(self, ruleset: Ruleset) -> None:
        self.ruleset = ruleset
        self.zone = ZoneInfo(ruleset.timezone)
        self.diagnostics: list[Diagnostic] = []

    def error(
        self, location: Location, code: str, message: str, hint: str | None = None
    ) -> None:
        self.diagnostics.append(
            Diagnostic(location, Severity.ERROR, code, message, hint)
        )

    # Shapes -------------------------------------------------------------

    def mapping(
        self,
        node: YNode,
        what: str,
        keys: Sequence[str],
        required: Sequence[str] = (),
    ) -> YMap | None:
        """`node` as a mapping with known keys only; None after an error."""
        if not isinstance(node, YMap):
            self.error(node.location, WRONG_SHAPE, f"{what} must be a mapping")
            return None
        for key, _ in node:
            if key.text not in keys:
                self.error(
                    key.location,
                    UNKNOWN_KEY,
                    f"unknown key `{key.text}` in {what}",
                    did_you_mean(key.text, keys) or f"known: {', '.join(keys)}",
                )
        for name in required:
            if node.get(name) is None and not misspelt(node, name, keys):
                self.error(node.location, MISSING, f"{what} needs `{name}`")
        return node

    def sequence(self, node: YNode, what: str) -> list[YNode]:
        if isinstance(node, YSeq):
            return node.items
        self.error(node.location, WRONG_SHAPE, f"{what} must be a list")
        return []

    def text(self, node: YNode, what: str) -> str | None:
        if isinstance(node, YScalar) and isinstance(node.value, str):
            return node.value
        if isinstance(node, YScalar) and type(node.value) is int:
            return node.text  # an id written as a number
        self.error(node.location, WRONG_SHAPE, f"{what} must be text")
        return None

    def texts(self, node: YNode, what: str) -> tuple[str, ...]:
        """A word, or a list of words."""
        if isinstance(node, YSeq):
            found = (self.text(item, what) for item in node.items)
            return tuple(item for item in found if item is not None)
        one = self.text(node, what)
        return (one,) if one is not None else ()

    def integer(self, node: YNode, what: str) -> int | None:
        if (
            isinstance(node, YScalar)
            and isinstance(node.value, int)
            and not isinstance(node.value, bool)
        ):
            return node.value
        self.error(node.location, WRONG_SHAPE, f"{what} must be a whole number")
        return None

    def boolean(self, node: YNode, what: str) -> bool | None:
        if isinstance(node, YScalar) and isinstance(node.value, bool):
            return node.value
        self.error(node.location, WRONG_SHAPE, f"{what} must be true or false")
        return None

    def name(self, node: YNode, what: str, known: Sequence[str]) -> str | None:
        """A name the ruleset defines: a segment, step, channel, grade..."""
        value = self.text(node, what)
        if value is not None and value not in known:
            self.error(
                node.location,
                UNKNOWN_NAME,
                f"{what} `{value}` is not defined by ruleset {self.ruleset.name}",
                did_you_mean(value, known) or f"known: {', '.join(known)}",
            )
            return None
        return value

    def instant(self, node: YNode, what: str) -> dt.datetime | None:
        """`"2026-03-09T08:00"` in the ruleset's zone, or with an offset.

        A bare date stands for DEFAULT_RUN_TIME on that day.
        """
        raw = node.text if isinstance(node, YScalar) else None
        if self.unquoted_date(node, what):
            return None
        if raw is not None:
            try:
                if len(raw) == 10:
                    value = dt.datetime.combine(
                        dt.date.fromisoformat(raw), DEFAULT_RUN_TIME
                    )
                else:
                    value = dt.datetime.fromisoformat(raw)
            except ValueError:
                value = None
            problem = out_of_range(value.date()) if value is not None else None
            if problem is not None:
                self.error(node.location, BAD_VALUE, f"{what}: {problem}")
                return None
            if value is not None and value.tzinfo is None:
                return local_datetime(value.date(), value.time(), self.zone)
            if value is not None:
                return value.astimezone(self.zone)
        self.error(
            node.location,
            BAD_VALUE,
            f'{what} must be a date or a date and time, e.g. "2026-03-09" or'
            f' "2026-03-09T08:00" (in {self.ruleset.timezone} unless an offset'
            " is written)",
        )
        return None

    # Records ------------------------------------------------------------

    def record(
        self,
        kind: str,
        node: YNode,
        defaults: dict[str, YNode],
        implied: Mapping[str, object],
    ) -> dict[str, object] | None:
        """One typed customer, invoice or payment record.

        Values are parsed by the same parser as the data sources, from the
        text as written, so `150.00` is Decimal("150.00") and never a float.
        """
        fields: dict[str, Field] = getattr(self.ruleset.inputs, kind)
        given = self.mapping(node, kind, list(fields))
        if given is None:
            return None
        values: dict[str, YNode] = dict(defaults)
        values.update({key.text: value for key, value in given if key.text in fields})

        record: dict[str, object] = {}
        good = True
        for name, declared in fields.items():
            value_node = values.get(name)
            if value_node is None:
                if name in implied:
                    record[name] = implied[name]
                elif declared.type.nullable:
                    record[name] = None
                else:
                    self.error(
                        given.location,
                        MISSING,
                        f"{kind} has no `{name}` (declared {declared.type});"
                        " give it here or under `defaults`",
                    )
                    good = False
                continue
            parsed = self.value(value_node, declared, kind)
            if parsed is INVALID:
                good = False
            record[name] = parsed
        return record if good else None

    def unquoted_date(self, node: YNode, what: str) -> bool:
        """Report a date written unquoted, as policies do (E108): YAML 1.1
        tools read it as a date object, not the text the case means."""
        if not (
            isinstance(node, YScalar)
            and node.style == "plain"
            and node.trap == TRAP_DATE
        ):
            return False
        self.error(
            node.location,
            BAD_VALUE,
            f"{what}: unquoted date {node.text}: YAML 1.1 tools read it as a date"
            f' object; write it quoted: "{node.text}"',
        )
        return True

    def value(self, node: YNode, declared: Field, kind: str) -> object:
        if self.unquoted_date(node, f"{kind}.{declared.name}"):
            return INVALID
        if not isinstance(node, YScalar):
            if isinstance(node, YSeq) and declared.type.name == "list":
                raw: object = [
                    item.text for item in node.items if isinstance(item, YScalar)
                ]
            else:
                self.error(
                    node.location,
                    WRONG_SHAPE,
                    f"{kind}.{declared.name} must be a single value",
                )
                return INVALID
        elif node.value is None and node.style == "plain":
            raw = None
        elif isinstance(node.value, bool):
            raw = node.value
        else:
            raw = node.text
        try:
            return FieldParser(declared, _options(self.ruleset.timezone)).parse(raw)
        except ValueProblem as problem:
            self.error(node.location, BAD_VALUE, f"{kind}.{declared.name} {problem}")
            return INVALID


INVALID = object()


def _options(zone: str) -> ParseOptions:
    return ParseOptions(true_words=("true",), false_words=("false",), timezone=zone)
