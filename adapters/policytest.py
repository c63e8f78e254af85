"""Policy unit tests: YAML files of cases beside a ruleset, and their runner.

A test file (`*.test.yaml`, usually in the ruleset's `tests/` folder) holds
cases. Each case gives the records of one or more customers and an as-of
instant, and says what the plan must contain: segment, score, grade, credit
action, and the ladder actions with their channel, window, decision and
phrases of the message. docs/testing.md describes the format.

Reading a test file is strict in the way reading a policy is: an unknown key,
a field the ruleset does not declare or a value of the wrong type is a
diagnostic with file, line and column, never a silently ignored line.
"""

from __future__ import annotations

import datetime as dt
import difflib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar
from zoneinfo import ZoneInfo

from adapters.sources import SourceConfigError, open_source
from adapters.sources.parsing import FieldParser, ParseOptions, ValueProblem
from dsl import yamlread
from dsl.diagnostics import Diagnostic, Location, PolicyError, Severity
from dsl.loader import find_rulesets, load_ruleset
from dsl.model import Field, Ruleset
from dsl.types import MONEY
from dsl.yamlread import YMap, YNode, YScalar, YSeq
from engine.calendar import local_datetime
from engine.compiler import CompiledRuleset, CompileError, compile_ruleset
from engine.plan import DECISIONS, KINDS, Action
from engine.planner import CustomerPlan, plan_customer
from engine.records import CustomerRecords

logger = logging.getLogger(__name__)

T = TypeVar("T")

TEST_SUFFIXES = (".test.yaml", ".test.yml")

# An as-of written as a bare date is that day's first instant, as for
# `ruleset plan --as-of`: every window of the day is still ahead.
DEFAULT_RUN_TIME = dt.time(0, 0)

# Test-file diagnostics. Stable, like the policy's E codes.
UNKNOWN_KEY = "T101"
WRONG_SHAPE = "T102"
BAD_VALUE = "T103"
MISSING = "T104"
UNKNOWN_NAME = "T105"
DUPLICATE = "T106"

# Only true and false: a test file is not a spreadsheet export.
_STRICT = ParseOptions(true_words=("true",), false_words=("false",))

# Action kinds a case lists exhaustively unless it says `exact: false`;
# credit has its own expectation and offers travel with their step.
LADDER_KINDS = ("message", "escalation")


@dataclass(frozen=True)
class Expected(Generic[T]):
    """One expected value and where the test file states it."""

    value: T
    location: Location


@dataclass(frozen=True)
class ExpectedAction:
    """An action a case expects in the plan. Unset fields are not checked."""

    location: Location
    kind: str | None
    step: str | None
    invoices: tuple[str, ...] | None
    decision: str | None
    channel: Expected[str | None] | None
    window_start: Expected[dt.datetime] | None
    window_end: Expected[dt.datetime] | None
    contains: tuple[Expected[str], ...]
    reason: Expected[str] | None

    def label(self) -> str:
        parts = [self.step or self.kind or "action"]
        if self.invoices:
            parts.append(f"invoice {','.join(self.invoices)}")
        return " ".join(parts)


@dataclass(frozen=True)
class ExpectedCredit:
    location: Location
    decision: str | None  # "flag", "block", or None for no credit action
    amounts: dict[str, Expected[Any]]  # exposure, limit, headroom


@dataclass(frozen=True)
class Expectation:
    """What one customer's plan must hold."""

    location: Location
    customer_id: str
    segment: Expected[str | None] | None = None
    score: Expected[int] | None = None
    grade: Expected[str] | None = None
    credit: ExpectedCredit | None = None
    actions: tuple[ExpectedAction, ...] | None = None  # None: not checked
    actions_location: Location | None = None
    exact: bool = True


@dataclass(frozen=True)
class DataSpec:
    """A fixture data source named by `data:`, as `open_source` takes it."""

    spec: Any
    base_dir: Path
    location: Location


@dataclass(frozen=True)
class TestCase:
    name: str
    location: Location
    as_of: dt.datetime
    since: dt.date | None
    customers: tuple[CustomerRecords, ...]
    data: DataSpec | None
    expectations: tuple[Expectation, ...]


@dataclass(frozen=True)
class TestFile:
    path: Path
    ruleset_path: Path
    cases: tuple[TestCase, ...]


def ruleset_path_of(path: Path) -> Path:
    """The ruleset a test file belongs to, when it does not say.

    `rulesets/x/tests/a.test.yaml` and `rulesets/x/a.test.yaml` both test
    `rulesets/x`.
    """
    folder = path.parent
    return folder.parent if folder.name == "tests" else folder


def read_ruleset_key(path: Path) -> Path:
    """The ruleset a test file names with `ruleset:`, or its default.

    Problems with the file are left to `load_test_file` to report.
    """
    try:
        root, _ = yamlread.read(str(path), path.read_bytes())
    except OSError:
        root = None
    if isinstance(root, YMap):
        node = root.get("ruleset")
        if isinstance(node, YScalar) and isinstance(node.value, str):
            return path.parent / node.value
    return ruleset_path_of(path)


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise PolicyError(
            [
                Diagnostic(
                    Location(str(path), 1, 1),
                    Severity.ERROR,
                    BAD_VALUE,
                    f"cannot read the test file: {exc.strerror}",
                )
            ]
        ) from exc


def did_you_mean(word: str, choices: Sequence[str]) -> str | None:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None


class _Reader:
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
            if node.get(name) is None:
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
        if raw is not None:
            try:
                if len(raw) == 10:
                    day = dt.date.fromisoformat(raw)
                    return local_datetime(day, DEFAULT_RUN_TIME, self.zone)
                value = dt.datetime.fromisoformat(raw)
            except ValueError:
                value = None
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
            if parsed is _INVALID:
                good = False
            record[name] = parsed
        return record if good else None

    def value(self, node: YNode, declared: Field, kind: str) -> object:
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
                return _INVALID
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
            return _INVALID


_INVALID = object()


def _options(zone: str) -> ParseOptions:
    return ParseOptions(
        true_words=_STRICT.true_words, false_words=_STRICT.false_words, timezone=zone
    )


FILE_KEYS = ("ruleset", "as_of", "defaults", "cases")
DEFAULTS_KEYS = ("customer", "invoice", "payment")
CASE_KEYS = (
    "name",
    "as_of",
    "since",
    "customer",
    "customers",
    "invoices",
    "payments",
    "data",
    "expect",
)
EXPECT_KEYS = ("customer", "segment", "score", "grade", "credit", "actions", "exact")
ACTION_KEYS = (
    "kind",
    "step",
    "invoice",
    "invoices",
    "decision",
    "channel",
    "window",
    "contains",
    "reason",
)
WINDOW_KEYS = ("start", "end")
CREDIT_KEYS = ("decision", "exposure", "limit", "headroom")
CREDIT_DECISIONS = ("none", "flag", "block")


def load_test_file(path: Path, ruleset: Ruleset) -> TestFile:
    """Read one test file against the ruleset it tests.

    Raises PolicyError with every problem found, each with its location.
    """
    root, diagnostics = yamlread.read(str(path), _read_bytes(path))
    reader = _Reader(ruleset)
    reader.diagnostics.extend(diagnostics)
    cases: list[TestCase] = []
    if root is not None:
        top = reader.mapping(root, "a test file", FILE_KEYS, required=("cases",))
        if top is not None:
            cases = _cases(reader, top, path)
    if any(d.severity is Severity.ERROR for d in reader.diagnostics):
        raise PolicyError(reader.diagnostics)
    return TestFile(path, ruleset_path_of(path), tuple(cases))


def _cases(reader: _Reader, top: YMap, path: Path) -> list[TestCase]:
    as_of_node = top.get("as_of")
    file_as_of = reader.instant(as_of_node, "as_of") if as_of_node else None

    defaults: dict[str, dict[str, YNode]] = {kind: {} for kind in DEFAULTS_KEYS}
    defaults_node = top.get("defaults")
    if defaults_node is not None:
        given = reader.mapping(defaults_node, "defaults", DEFAULTS_KEYS)
        for key, value in given or ():
            fields = getattr(reader.ruleset.inputs, key.text, None)
            record = reader.mapping(value, f"defaults.{key.text}", list(fields or ()))
            if fields is not None and record is not None:
                defaults[key.text] = {k.text: v for k, v in record if k.text in fields}

    cases: list[TestCase] = []
    names: dict[str, Location] = {}
    for node in reader.sequence(top.get("cases") or YSeq([], top.location), "cases"):
        case = _case(reader, node, path, file_as_of, defaults)
        if case is None:
            continue
        first = names.get(case.name)
        if first is not None:
            reader.error(
                case.location,
                DUPLICATE,
                f"a second case named {case.name!r} (first at line {first.line})",
            )
        names.setdefault(case.name, case.location)
        cases.append(case)
    if not cases and not reader.diagnostics:
        reader.error(top.location, MISSING, "the test file has no cases")
    return cases


def _case(
    reader: _Reader,
    node: YNode,
    path: Path,
    file_as_of: dt.datetime | None,
    defaults: dict[str, dict[str, YNode]],
) -> TestCase | None:
    case = reader.mapping(node, "a case", CASE_KEYS, required=("name", "expect"))
    if case is None:
        return None
    name_node = case.get("name")
    name = reader.text(name_node, "name") if name_node else None

    as_of = file_as_of
    as_of_node = case.get("as_of")
    if as_of_node is not None:
        as_of = reader.instant(as_of_node, "as_of")
    elif file_as_of is None:
        reader.error(
            case.location, MISSING, "the case needs `as_of` (or one for the whole file)"
        )

    since: dt.date | None = None
    since_node = case.get("since")
    if since_node is not None:
        since_instant = reader.instant(since_node, "since")
        since = since_instant.date() if since_instant else None

    data: DataSpec | None = None
    customers: list[CustomerRecords] = []
    data_node = case.get("data")
    inline = [
        key
        for key in ("customer", "customers", "invoices", "payments")
        if case.get(key)
    ]
    if data_node is not None:
        data = DataSpec(yamlread.to_data(data_node), path.parent, data_node.location)
        for key in inline:
            where = case.key(key)
            assert where is not None
            reader.error(
                where.location,
                WRONG_SHAPE,
                f"`{key}` and `data` exclude each other: records come from one place",
            )
    else:
        customers = _records(reader, case, defaults)

    expectations = _expectations(reader, case, customers, data is not None)
    if name is None or as_of is None:
        return None
    return TestCase(
        name, case.location, as_of, since, tuple(customers), data, tuple(expectations)
    )


def _records(
    reader: _Reader, case: YMap, defaults: dict[str, dict[str, YNode]]
) -> list[CustomerRecords]:
    """The inline customers of a case, with their invoices and payments."""
    customer_nodes: list[YNode] = []
    one = case.get("customer")
    many = case.get("customers")
    if one is not None and many is not None:
        reader.error(
            many.location, WRONG_SHAPE, "write `customer` or `customers`, not both"
        )
    if one is not None:
        customer_nodes = [one]
    elif many is not None:
        customer_nodes = reader.sequence(many, "customers")
    else:
        reader.error(
            case.location, MISSING, "the case needs `customer`, `customers` or `data`"
        )

    customers: dict[str, CustomerRecords] = {}
    for node in customer_nodes:
        record = reader.record("customer", node, defaults["customer"], {})
        if record is None:
            continue
        key = str(record["id"])
        if key in customers:
            reader.error(node.location, DUPLICATE, f"customer {key} appears twice")
            continue
        customers[key] = CustomerRecords(record)

    only_customer = next(iter(customers)) if len(customers) == 1 else None
    invoices: dict[str, str] = {}  # invoice id -> customer id
    for node in _items(reader, case, "invoices"):
        implied = {"customer_id": only_customer} if only_customer else {}
        record = reader.record("invoice", node, defaults["invoice"], implied)
        if record is None:
            continue
        owner = customers.get(str(record["customer_id"]))
        if owner is None:
            reader.error(
                node.location,
                UNKNOWN_NAME,
                f"invoice {record['id']} belongs to customer {record['customer_id']},"
                " who is not in the case",
            )
            continue
        if str(record["id"]) in invoices:
            reader.error(
                node.location, DUPLICATE, f"invoice {record['id']} appears twice"
            )
            continue
        invoices[str(record["id"])] = str(record["customer_id"])
        owner.invoices.append(record)

    only_invoice = next(iter(invoices)) if len(invoices) == 1 else None
    for node in _items(reader, case, "payments"):
        implied = {"invoice_id": only_invoice} if only_invoice else {}
        record = reader.record("payment", node, defaults["payment"], implied)
        if record is None:
            continue
        paid = invoices.get(str(record["invoice_id"]))
        if paid is None:
            reader.error(
                node.location,
                UNKNOWN_NAME,
                f"payment for invoice {record['invoice_id']}, which is not in the case",
            )
            continue
        customers[paid].payments.append(record)
    return list(customers.values())


def _items(reader: _Reader, case: YMap, key: str) -> list[YNode]:
    node = case.get(key)
    return [] if node is None else reader.sequence(node, key)


def _expectations(
    reader: _Reader, case: YMap, customers: list[CustomerRecords], from_data: bool
) -> list[Expectation]:
    node = case.get("expect")
    if node is None:
        return []
    nodes = node.items if isinstance(node, YSeq) else [node]
    known = [str(c.customer["id"]) for c in customers]
    found: list[Expectation] = []
    for item in nodes:
        expect = reader.mapping(item, "expect", EXPECT_KEYS)
        if expect is None:
            continue
        customer_node = expect.get("customer")
        customer_id: str | None = None
        if customer_node is not None:
            customer_id = reader.text(customer_node, "customer")
            if customer_id is not None and not from_data and customer_id not in known:
                reader.error(
                    customer_node.location,
                    UNKNOWN_NAME,
                    f"customer {customer_id} is not in the case",
                    did_you_mean(customer_id, known),
                )
        elif len(known) == 1:
            customer_id = known[0]
        elif known or from_data:
            reader.error(
                expect.location,
                MISSING,
                "the case has several customers: say which one with `customer:`",
            )
        if customer_id is not None:
            found.append(_expectation(reader, expect, customer_id))
    return found


def _expectation(reader: _Reader, expect: YMap, customer_id: str) -> Expectation:
    ruleset = reader.ruleset
    segment: Expected[str | None] | None = None
    node = expect.get("segment")
    if node is not None:
        if isinstance(node, YScalar) and node.value is None and node.style == "plain":
            segment = Expected(None, node.location)
        else:
            names = [s.name for s in ruleset.segments]
            value = reader.name(node, "segment", names)
            segment = Expected(value, node.location) if value else None

    score: Expected[int] | None = None
    node = expect.get("score")
    if node is not None:
        number = reader.integer(node, "score")
        score = Expected(number, node.location) if number is not None else None

    grade: Expected[str] | None = None
    node = expect.get("grade")
    if node is not None:
        grades = [g.name for g in ruleset.scorecard.grades] if ruleset.scorecard else []
        value = reader.name(node, "grade", grades)
        grade = Expected(value, node.location) if value else None

    node = expect.get("credit")
    credit = _credit(reader, node) if node is not None else None

    actions: tuple[ExpectedAction, ...] | None = None
    actions_key = expect.key("actions")
    node = expect.get("actions")
    if node is not None:
        parsed = (_action(reader, item) for item in reader.sequence(node, "actions"))
        actions = tuple(action for action in parsed if action is not None)

    exact = True
    node = expect.get("exact")
    if node is not None:
        exact = reader.boolean(node, "exact") is not False
    return Expectation(
        expect.location,
        customer_id,
        segment,
        score,
        grade,
        credit,
        actions,
        actions_key.location if actions_key else None,
        exact,
    )


def _credit(reader: _Reader, node: YNode) -> ExpectedCredit | None:
    if isinstance(node, YScalar):
        decision = reader.name(node, "credit", CREDIT_DECISIONS)
        if decision is None:
            return None
        return ExpectedCredit(
            node.location, None if decision == "none" else decision, {}
        )
    credit = reader.mapping(node, "credit", CREDIT_KEYS, required=("decision",))
    if credit is None:
        return None
    decision_node = credit.get("decision")
    decision = (
        reader.name(decision_node, "credit decision", CREDIT_DECISIONS)
        if decision_node
        else None
    )
    amounts: dict[str, Expected[Any]] = {}
    for key, value in credit:
        if key.text in ("exposure", "limit", "headroom"):
            declared = Field(key.text, MONEY, value.location)
            parsed = reader.value(value, declared, "credit")
            if parsed is not _INVALID:
                amounts[key.text] = Expected(parsed, value.location)
    return ExpectedCredit(
        credit.location, None if decision in (None, "none") else decision, amounts
    )


def _action(reader: _Reader, node: YNode) -> ExpectedAction | None:
    action = reader.mapping(node, "an expected action", ACTION_KEYS)
    if action is None:
        return None
    ruleset = reader.ruleset

    def optional(key: str, parse: Callable[[YNode], T | None]) -> T | None:
        value = action.get(key)
        return parse(value) if value is not None else None

    kind = optional("kind", lambda n: reader.name(n, "kind", KINDS))
    steps = sorted(
        {s.name for ladder in ruleset.ladders.values() for s in ladder.steps}
    )
    step = optional("step", lambda n: reader.name(n, "step", steps))
    decision = optional("decision", lambda n: reader.name(n, "decision", DECISIONS))

    invoices: tuple[str, ...] | None = None
    one, many = action.get("invoice"), action.get("invoices")
    if one is not None and many is not None:
        reader.error(
            many.location, WRONG_SHAPE, "write `invoice` or `invoices`, not both"
        )
    if one is not None or many is not None:
        chosen = one if one is not None else many
        assert chosen is not None
        invoices = tuple(sorted(reader.texts(chosen, "invoices")))

    channel: Expected[str | None] | None = None
    node_channel = action.get("channel")
    if node_channel is not None:
        if isinstance(node_channel, YScalar) and node_channel.value is None:
            channel = Expected(None, node_channel.location)
        else:
            value = reader.name(node_channel, "channel", list(ruleset.channels))
            channel = Expected(value, node_channel.location) if value else None

    start: Expected[dt.datetime] | None = None
    end: Expected[dt.datetime] | None = None
    window = action.get("window")
    if window is not None:
        bounds = reader.mapping(window, "window", WINDOW_KEYS)
        for key, bound in bounds or ():
            instant = reader.instant(bound, f"window.{key.text}")
            if instant is not None and key.text == "start":
                start = Expected(instant, bound.location)
            elif instant is not None:
                end = Expected(instant, bound.location)

    contains: list[Expected[str]] = []
    phrases = action.get("contains")
    if phrases is not None:
        items = phrases.items if isinstance(phrases, YSeq) else [phrases]
        for item in items:
            text = reader.text(item, "contains")
            if text is not None:
                contains.append(Expected(text, item.location))

    reason: Expected[str] | None = None
    reason_node = action.get("reason")
    if reason_node is not None:
        text = reader.text(reason_node, "reason")
        reason = Expected(text, reason_node.location) if text else None

    if step is None and kind is None and action.get("step") is None:
        reader.error(
            action.location, MISSING, "an expected action needs `step` or `kind`"
        )
    return ExpectedAction(
        action.location,
        kind,
        step,
        invoices,
        decision,
        channel,
        start,
        end,
        tuple(contains),
        reason,
    )


# Running cases --------------------------------------------------------------

COVERAGE_KINDS = ("segments", "steps", "channels", "suppressions")

# What each action kind does when nothing else is said.
_DEFAULT_DECISION = {
    "message": "send",
    "escalation": "escalate",
    "offer": "offer",
}


@dataclass(frozen=True)
class Failure:
    """One way a case's plan differs from what the case expects."""

    location: Location
    message: str

    def to_json(self) -> dict[str, Any]:
        at = self.location
        return {
            "path": at.path,
            "line": at.line,
            "column": at.column,
            "message": self.message,
        }


@dataclass(frozen=True)
class CaseResult:
    path: Path
    case: TestCase
    failures: tuple[Failure, ...]

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclass
class Coverage:
    """What the cases of one ruleset exercised, out of what it defines.

    A segment counts when a case's customer was placed in it; a step
    (`ladder.step`) when it planned something to do (a send, an offer, an
    escalation); a channel when a message was sent through it; a
    suppression rule when it suppressed a step.
    """

    ruleset: str
    path: Path
    defined: dict[str, tuple[str, ...]]
    exercised: dict[str, set[str]] = field(
        default_factory=lambda: {kind: set() for kind in COVERAGE_KINDS}
    )

    @classmethod
    def of(cls, ruleset: Ruleset, path: Path) -> Coverage:
        steps = tuple(
            f"{ladder.name}.{step.name}"
            for ladder in ruleset.ladders.values()
            for step in ladder.steps
        )
        return cls(
            ruleset.name,
            path,
            {
                "segments": tuple(s.name for s in ruleset.segments),
                "steps": steps,
                "channels": tuple(ruleset.channels),
                "suppressions": tuple(s.name for s in ruleset.suppressions),
            },
        )

    def record(self, plan: CustomerPlan) -> None:
        if plan.segment is not None:
            self.exercised["segments"].add(plan.segment)
        for action in plan.actions:
            step = action.why.get("step")
            if action.decision in ("send", "offer", "escalate") and isinstance(
                step, dict
            ):
                self.exercised["steps"].add(f"{step.get('ladder')}.{action.step}")
            if action.decision == "send" and action.channel:
                self.exercised["channels"].add(action.channel)
            rule = action.why.get("suppressed_by")
            if action.decision == "suppressed" and isinstance(rule, str):
                self.exercised["suppressions"].add(rule)

    def missing(self, kind: str) -> list[str]:
        return [name for name in self.defined[kind] if name not in self.exercised[kind]]

    def counts(self, kind: str) -> tuple[int, int]:
        defined = self.defined[kind]
        return len(defined) - len(self.missing(kind)), len(defined)

    def percent(self, kind: str) -> float:
        covered, total = self.counts(kind)
        return 100.0 if total == 0 else 100.0 * covered / total

    def to_json(self) -> dict[str, Any]:
        return {
            "ruleset": self.ruleset,
            "path": str(self.path),
            **{
                kind: {
                    "covered": self.counts(kind)[0],
                    "total": self.counts(kind)[1],
                    "percent": round(self.percent(kind), 1),
                    "missing": self.missing(kind),
                }
                for kind in COVERAGE_KINDS
            },
        }


def run_case(
    compiled: CompiledRuleset, path: Path, case: TestCase, coverage: Coverage
) -> CaseResult:
    """Plan the case's customers and compare each plan with its expectation."""
    failures: list[Failure] = []
    plans: dict[str, CustomerPlan] = {}
    for records in _case_customers(compiled, case, failures):
        planned = plan_customer(compiled, records, case.as_of, since=case.since)
        plans[planned.customer_id] = planned
        coverage.record(planned)

    for expectation in case.expectations:
        plan = plans.get(expectation.customer_id)
        if plan is None:
            failures.append(
                Failure(
                    expectation.location,
                    f"customer {expectation.customer_id} is not in the case's data",
                )
            )
            continue
        failures.extend(check_plan(expectation, plan, compiled.ruleset.timezone))
    return CaseResult(path, case, tuple(failures))


def _case_customers(
    compiled: CompiledRuleset, case: TestCase, failures: list[Failure]
) -> list[CustomerRecords]:
    if case.data is None:
        return list(case.customers)
    where = case.data.location
    try:
        source = open_source(
            case.data.spec,
            compiled.ruleset.inputs,
            on_error="fail",
            base_dir=case.data.base_dir,
        )
        customers = list(source.customers())
    except SourceConfigError as exc:
        failures.append(Failure(where, f"data: {exc}"))
        return []
    failures.extend(Failure(where, f"data: {problem}") for problem in source.problems)
    return customers


def check_plan(
    expectation: Expectation, plan: CustomerPlan, zone: str
) -> list[Failure]:
    """Every difference between one customer's plan and its expectation."""
    failures: list[Failure] = []
    shown = _Shown(ZoneInfo(zone))

    def compare(expected: Expected[Any] | None, got: Any, what: str) -> None:
        if expected is not None and expected.value != got:
            failures.append(
                Failure(
                    expected.location,
                    f"{what}: expected {shown(expected.value)}, got {shown(got)}",
                )
            )

    compare(expectation.segment, plan.segment, "segment")
    compare(expectation.score, plan.trace.score, "score")
    compare(expectation.grade, plan.trace.grade, "grade")
    if expectation.credit is not None:
        failures.extend(_check_credit(expectation.credit, plan, shown))
    if expectation.actions is not None:
        failures.extend(_check_actions(expectation, plan, shown))
    return failures


class _Shown:
    """Values as a failure message shows them: instants in the ruleset's
    zone, nothing as `nothing`."""

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone

    def __call__(self, value: Any) -> str:
        if value is None:
            return "nothing"
        if isinstance(value, dt.datetime):
            return value.astimezone(self.zone).isoformat(timespec="minutes")
        return str(value)

    def action(self, action: Action) -> str:
        parts = [action.step or action.kind]
        if action.invoice_ids:
            parts.append(f"invoice {','.join(action.invoice_ids)}")
        text = " ".join(parts) + f": {action.decision}"
        if action.channel:
            text += f" by {action.channel}"
        if action.window_start:
            text += f" from {self(action.window_start)}"
        reason = action_reason(action)
        return text + (f" ({reason})" if reason else "")


def _check_credit(
    expected: ExpectedCredit, plan: CustomerPlan, shown: _Shown
) -> list[Failure]:
    credit = [a for a in plan.actions if a.kind == "credit"]
    got = credit[0] if credit else None
    if expected.decision is None:
        if got is None:
            return []
        return [
            Failure(expected.location, f"credit: expected none, got {got.decision}")
        ]
    if got is None:
        return [
            Failure(
                expected.location,
                f"credit: expected {expected.decision}, got no credit action"
                f" ({_credit_state(plan)})",
            )
        ]
    failures = []
    if got.decision != expected.decision:
        failures.append(
            Failure(
                expected.location,
                f"credit: expected {expected.decision}, got {got.decision}",
            )
        )
    for name, amount in expected.amounts.items():
        value = got.details.get(name)
        if value != amount.value:
            failures.append(
                Failure(
                    amount.location,
                    f"credit {name}: expected {amount.value}, got {shown(value)}",
                )
            )
    return failures


def _credit_state(plan: CustomerPlan) -> str:
    credit = plan.trace.credit
    if credit is None:
        return "the ruleset has no credit rule"
    return f"exposure {credit['exposure']} within limit {credit['limit']}"


def action_reason(action: Action) -> str:
    """Why an action does nothing, in the plan's words."""
    why = action.why
    for key in ("suppressed_by", "reason", "error"):
        value = why.get(key)
        if isinstance(value, str):
            return value
    return ""


def _check_actions(
    expectation: Expectation, plan: CustomerPlan, shown: _Shown
) -> list[Failure]:
    assert expectation.actions is not None
    failures: list[Failure] = []
    unused = list(plan.actions)
    for expected in expectation.actions:
        candidates = [a for a in unused if _identifies(expected, a)]
        if not candidates:
            planned = [shown.action(a) for a in plan.actions if a.kind != "credit"]
            failures.append(
                Failure(
                    expected.location,
                    f"expected {expected.label()}, but the plan has none;"
                    f" planned: {'; '.join(planned) or 'nothing'}",
                )
            )
            continue
        scored = [(_differences(expected, a, shown), a) for a in candidates]
        differences, chosen = min(scored, key=lambda pair: len(pair[0]))
        unused.remove(chosen)
        failures.extend(
            Failure(location, f"{expected.label()}: {text}")
            for location, text in differences
        )

    if expectation.exact:
        where = expectation.actions_location or expectation.location
        failures.extend(
            Failure(where, f"unexpected action {shown.action(action)}")
            for action in unused
            if action.kind in LADDER_KINDS
        )
    return failures


def _identifies(expected: ExpectedAction, action: Action) -> bool:
    if expected.kind is not None and action.kind != expected.kind:
        return False
    if expected.kind is None and action.kind not in LADDER_KINDS:
        return False
    if expected.step is not None and action.step != expected.step:
        return False
    return (
        expected.invoices is None
        or tuple(sorted(action.invoice_ids)) == expected.invoices
    )


def _differences(
    expected: ExpectedAction, action: Action, shown: _Shown
) -> list[tuple[Location, str]]:
    found: list[tuple[Location, str]] = []
    decision = expected.decision
    if decision is None and expected.reason is None:
        decision = _DEFAULT_DECISION.get(action.kind)
    if decision is not None and action.decision != decision:
        reason = action_reason(action)
        found.append(
            (
                expected.location,
                f"decision: expected {decision}, got {action.decision}"
                + (f" ({reason})" if reason else ""),
            )
        )
    for bound, got, what in (
        (expected.channel, action.channel, "channel"),
        (expected.window_start, action.window_start, "window start"),
        (expected.window_end, action.window_end, "window end"),
    ):
        if bound is not None and bound.value != got:
            found.append(
                (
                    bound.location,
                    f"{what}: expected {shown(bound.value)}, got {shown(got)}",
                )
            )
    text = _message_text(action)
    for phrase in expected.contains:
        if _spaced(phrase.value) not in text:
            said = f"it says: {text!r}" if text else "it has no message"
            found.append(
                (phrase.location, f"message should contain {phrase.value!r}; {said}")
            )
    if expected.reason is not None:
        reason = action_reason(action)
        if expected.reason.value not in reason:
            found.append(
                (
                    expected.reason.location,
                    f"reason: expected {expected.reason.value!r},"
                    f" got {reason or 'no reason'!r}",
                )
            )
    return found


def _spaced(text: str) -> str:
    """Text with every kind of space as a plain space.

    Locale formatting puts no-break spaces inside amounts (`R$ 150,00`); a
    test written with an ordinary space still matches.
    """
    return " ".join(text.split())


def _message_text(action: Action) -> str:
    """Every text part of a rendered message (subject first), as one line."""
    message = action.message or {}
    parts = [message.get("subject"), message.get("body")]
    parts += [v for k, v in sorted(message.items()) if k not in ("subject", "body")]
    flat: list[str] = []
    for part in parts:
        if isinstance(part, str):
            flat.append(part)
        elif isinstance(part, list):
            flat.extend(str(item) for item in part)
    return _spaced(" ".join(flat))


# A whole run ------------------------------------------------------------------


@dataclass
class TestRun:
    """The outcome of `ruleset test`: results, unreadable files, coverage."""

    results: list[CaseResult] = field(default_factory=list)
    # Test files that could not be read: their cases did not run.
    file_errors: list[Diagnostic] = field(default_factory=list)
    # Rulesets that do not load: nothing of theirs ran.
    ruleset_errors: list[Diagnostic] = field(default_factory=list)
    coverage: list[Coverage] = field(default_factory=list)

    @property
    def failed(self) -> list[CaseResult]:
        return [result for result in self.results if not result.passed]

    def below(self, minimum: float) -> list[tuple[Coverage, str]]:
        """The (ruleset, kind) pairs whose coverage is under `minimum` %."""
        return [
            (coverage, kind)
            for coverage in self.coverage
            for kind in COVERAGE_KINDS
            if coverage.percent(kind) < minimum
        ]


def is_test_file(path: Path) -> bool:
    return path.name.endswith(TEST_SUFFIXES)


def find_test_files(path: Path) -> list[Path]:
    """Test files at or under `path`, in name order; hidden folders skipped."""
    if path.is_file():
        if is_test_file(path):
            return [path]
        # A single-file ruleset: tests beside it or in tests/ may name it.
        folders = [path.parent, path.parent / "tests"]
        return sorted(
            p
            for folder in folders
            if folder.is_dir()
            for p in folder.iterdir()
            if is_test_file(p)
        )
    found = [
        p
        for p in path.rglob("*")
        if is_test_file(p)
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(path).parts)
    ]
    return sorted(found)


def run_tests(paths: Sequence[Path]) -> TestRun:
    """Run every test file at or under `paths` against its ruleset.

    Rulesets found under `paths` without any test file are still loaded, so
    that coverage reports them as untested. Raises FileNotFoundError for a
    path that does not exist.
    """
    run = TestRun()
    by_ruleset: dict[Path, tuple[Path, list[Path]]] = {}
    for path in paths:
        for ruleset_path in find_rulesets(path) if not is_test_file(path) else []:
            by_ruleset.setdefault(ruleset_path.resolve(), (ruleset_path, []))
        for test_path in find_test_files(path):
            ruleset_path = read_ruleset_key(test_path)
            entry = by_ruleset.setdefault(ruleset_path.resolve(), (ruleset_path, []))
            if test_path not in entry[1]:
                entry[1].append(test_path)

    for ruleset_path, test_paths in by_ruleset.values():
        _run_ruleset(run, ruleset_path, test_paths)
    return run


def _run_ruleset(run: TestRun, ruleset_path: Path, test_paths: list[Path]) -> None:
    if not ruleset_path.exists():
        for test_path in test_paths:
            run.file_errors.append(
                Diagnostic(
                    Location(str(test_path), 1, 1),
                    Severity.ERROR,
                    UNKNOWN_NAME,
                    f"tests the ruleset {ruleset_path}, which does not exist",
                    "set `ruleset:` to the ruleset's path, relative to this file",
                )
            )
        return
    try:
        ruleset = load_ruleset(ruleset_path)
    except PolicyError as error:
        run.ruleset_errors.extend(error.diagnostics)
        return
    try:
        compiled = compile_ruleset(ruleset)
    except CompileError as error:
        where = Location(str(ruleset_path), 1, 1)
        run.ruleset_errors.append(
            Diagnostic(where, Severity.ERROR, "E000", f"cannot compile: {error}")
        )
        return
    coverage = Coverage.of(ruleset, ruleset_path)
    run.coverage.append(coverage)

    for test_path in test_paths:
        try:
            test_file = load_test_file(test_path, ruleset)
        except PolicyError as error:
            run.file_errors.extend(error.diagnostics)
            continue
        for case in test_file.cases:
            run.results.append(run_case(compiled, test_path, case, coverage))
