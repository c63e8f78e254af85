"""Reading test files: the keys of the format and what each means."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

from adapters.policytest.cases import (
    BAD_VALUE,
    DUPLICATE,
    MISSING,
    UNKNOWN_NAME,
    WRONG_SHAPE,
    DataSpec,
    Expectation,
    Expected,
    ExpectedAction,
    ExpectedCredit,
    TestCase,
    TestFile,
)
from adapters.policytest.reader import INVALID, NodeReader, did_you_mean, misspelt
from dsl import yamlread
from dsl.diagnostics import Diagnostic, Location, PolicyError, Severity
from dsl.model import Field, Ruleset
from dsl.types import MONEY
from dsl.yamlread import YMap, YNode, YScalar, YSeq
from engine.plan import DECISIONS, KINDS
from engine.records import CustomerRecords


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
    reader = NodeReader(ruleset)
    reader.diagnostics.extend(diagnostics)
    cases: list[TestCase] = []
    ruleset_path = ruleset_path_of(path)
    if root is not None:
        top = reader.mapping(root, "a test file", FILE_KEYS, required=("cases",))
        if top is not None:
            named = top.get("ruleset")
            target = reader.text(named, "ruleset") if named is not None else None
            if target is not None:
                ruleset_path = path.parent / target
            cases = _cases(reader, top, path)
    # A bad value under `defaults` is met once per case that uses it.
    found = set(reader.diagnostics)
    if any(d.severity is Severity.ERROR for d in found):
        raise PolicyError(list(found))
    return TestFile(path, ruleset_path, tuple(cases))


def _cases(reader: NodeReader, top: YMap, path: Path) -> list[TestCase]:
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
    reader: NodeReader,
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
    elif file_as_of is None and not misspelt(case, "as_of", CASE_KEYS):
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
        if case.get(key) is not None
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
    reader: NodeReader, case: YMap, defaults: dict[str, dict[str, YNode]]
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

    # Ids as written, so that one bad record is reported once: its invoices
    # and payments are left out quietly instead of each being "unknown".
    written_customers = [_written_id(node, "id") for node in customer_nodes]
    invoice_nodes = _items(reader, case, "invoices")
    written_invoices = [_written_id(node, "id") for node in invoice_nodes]

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

    only_customer = written_customers[0] if len(customer_nodes) == 1 else None
    invoices: dict[str, str] = {}  # invoice id -> customer id
    for node in invoice_nodes:
        implied = {"customer_id": only_customer} if only_customer else {}
        record = reader.record("invoice", node, defaults["invoice"], implied)
        if record is None:
            continue
        owner = customers.get(str(record["customer_id"]))
        if owner is None:
            if record["customer_id"] not in written_customers:
                reader.error(
                    node.location,
                    UNKNOWN_NAME,
                    f"invoice {record['id']} belongs to customer"
                    f" {record['customer_id']}, who is not in the case",
                )
            continue
        if str(record["id"]) in invoices:
            reader.error(
                node.location, DUPLICATE, f"invoice {record['id']} appears twice"
            )
            continue
        invoices[str(record["id"])] = str(record["customer_id"])
        owner.invoices.append(record)

    only_invoice = written_invoices[0] if len(invoice_nodes) == 1 else None
    for node in _items(reader, case, "payments"):
        implied = {"invoice_id": only_invoice} if only_invoice else {}
        record = reader.record("payment", node, defaults["payment"], implied)
        if record is None:
            continue
        paid = invoices.get(str(record["invoice_id"]))
        if paid is None:
            if record["invoice_id"] not in written_invoices:
                reader.error(
                    node.location,
                    UNKNOWN_NAME,
                    f"payment for invoice {record['invoice_id']}, which is not"
                    " in the case",
                )
            continue
        customers[paid].payments.append(record)
    return list(customers.values())


def _written_id(node: YNode, key: str) -> str | None:
    """The id a record node spells out, before any parsing."""
    if isinstance(node, YMap):
        value = node.get(key)
        if isinstance(value, YScalar) and value.value is not None:
            return value.text
    return None


def _items(reader: NodeReader, case: YMap, key: str) -> list[YNode]:
    node = case.get(key)
    return [] if node is None else reader.sequence(node, key)


def _expectations(
    reader: NodeReader, case: YMap, customers: list[CustomerRecords], from_data: bool
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


def _expectation(reader: NodeReader, expect: YMap, customer_id: str) -> Expectation:
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


def _credit(reader: NodeReader, node: YNode) -> ExpectedCredit | None:
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
            if parsed is not INVALID:
                amounts[key.text] = Expected(parsed, value.location)
    return ExpectedCredit(
        credit.location, None if decision in (None, "none") else decision, amounts
    )


def _action(reader: NodeReader, node: YNode) -> ExpectedAction | None:
    action = reader.mapping(node, "an expected action", ACTION_KEYS)
    if action is None:
        return None
    ruleset = reader.ruleset

    def optional(key: str, parse: Callable[[YNode], str | None]) -> str | None:
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
