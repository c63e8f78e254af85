"""The type checker: every type rule, every diagnostic code, and that no
input, however broken, gets past it as an exception."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsl.ast import Attribute, Node
from dsl.checker import check_expression, check_template
from dsl.diagnostics import Diagnostic, Location, Severity
from dsl.expressions import children_of
from dsl.library import (
    CODES,
    COMPUTED_INVOICE_FIELDS,
    FUNCTIONS,
    HISTORY_AGGREGATES,
    ExprContext,
)
from dsl.model import Field, InputSchema
from dsl.types import (
    BOOL,
    DATE,
    DECIMAL,
    INT,
    MONEY,
    STRING,
    Type,
    parse_type_name,
)
from engine import records
from engine.scope import History

HERE = Location("inputs.yaml", 1, 1)


def fields(**declared: str) -> dict[str, Field]:
    result = {}
    for name, type_name in declared.items():
        found = parse_type_name(type_name)
        assert found is not None, type_name
        result[name] = Field(name, found, HERE)
    return result


def make_schema() -> InputSchema:
    """A retail card's inputs, declared by hand."""
    return InputSchema(
        customer=fields(
            id="string",
            name="string",
            first_name="string",
            phone="string?",
            email="string?",
            monthly_income="money",
            credit_limit="money",
            late="int",
            rate="decimal",
            in_negotiation="bool",
            vip="bool?",
            since="date",
            last_contact="datetime?",
            grace="duration",
            tags="list[string]",
            birthday="date?",
        ),
        invoice=fields(
            id="string",
            customer_id="string",
            amount="money",
            due_date="date",
            status="string",
            payment_link="string",
            pix_code="string?",
            issued_at="datetime",
        ),
        payment=fields(invoice_id="string", amount="money", paid_on="date"),
    )


SCHEMA = make_schema()
SEGMENT = ExprContext(SCHEMA, score=True)  # segment rules, credit
SCORECARD = ExprContext(SCHEMA)  # scorecard values: no score yet
INVOICE = ExprContext(SCHEMA, per_invoice=True, score=True)  # suppress, step when
TEMPLATE = ExprContext(SCHEMA, per_invoice=True, score=True, template=True)
OFFER = dataclasses.replace(TEMPLATE, offer=True)


def in_yaml(offset: int) -> Location:
    return Location("policy.yaml", 7, 12 + offset)


def type_of(
    text: str, context: ExprContext = INVOICE, expected: Type | None = None
) -> Type:
    expr, diagnostics = check_expression(text, in_yaml, context, expected)
    assert diagnostics == [], [str(d) for d in diagnostics]
    assert expr is not None
    return expr.type


def errors(
    text: str,
    context: ExprContext = INVOICE,
    expected: Type | tuple[Type, ...] | None = None,
) -> list[Diagnostic]:
    expr, diagnostics = check_expression(text, in_yaml, context, expected)
    assert expr is None
    assert diagnostics, "expected at least one diagnostic"
    return diagnostics


def one_error(
    text: str, context: ExprContext = INVOICE, **kwargs: object
) -> Diagnostic:
    found = errors(text, context, **kwargs)  # type: ignore[arg-type]
    assert len(found) == 1, [str(d) for d in found]
    return found[0]


def offset_of(diagnostic: Diagnostic) -> int:
    return diagnostic.location.column - 12


def walk(node: Node) -> list[Node]:
    nodes = [node]
    for child in children_of(node):
        nodes.extend(walk(child))
    return nodes


# Types of well-formed expressions ----------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", "int"),
        ("1.5", "decimal"),
        ("'a'", "string"),
        ("2026-03-01", "date"),
        ("3 days", "duration"),
        ("true", "bool"),
        ("[1, 2]", "list[int]"),
        ("[1, 2.5]", "list[decimal]"),
        ("[1, invoice.amount]", "list[money]"),
        ("[]", "list[null?]"),
        ("customer.phone", "string?"),
        ("customer.tags", "list[string]"),
        ("invoice.amount_due", "money"),
        ("invoice.days_past_due", "int"),
        ("invoice.due_date_effective", "date"),
        ("today", "date"),
        ("now", "datetime"),
        ("exposure", "money"),
        ("open_invoices", "int"),
        ("score", "int"),
        ("grade", "string"),
        ("segment", "string"),
        # arithmetic
        ("1 + 2", "int"),
        ("1 * 2", "int"),
        ("7 / 2", "decimal"),
        ("1 + 2.5", "decimal"),
        ("customer.rate * 2", "decimal"),
        ("invoice.amount + 1", "money"),
        ("invoice.amount - 0.5", "money"),
        ("invoice.amount * 0.02", "money"),
        ("0.02 * invoice.amount", "money"),
        ("invoice.amount * 2", "money"),
        ("invoice.amount / 3", "money"),
        ("invoice.amount / customer.rate", "money"),
        ("invoice.amount / customer.credit_limit", "decimal"),
        ("invoice.amount + customer.credit_limit", "money"),
        ("-invoice.amount", "money"),
        ("-1", "int"),
        ("-1.5", "decimal"),
        # dates
        ("today + 3 days", "date"),
        ("today - 6 months", "date"),
        ("3 days + today", "date"),
        ("invoice.due_date + 2 business days", "date"),
        ("invoice.due_date - customer.grace", "date"),
        ("now + 1 day", "datetime"),
        ("invoice.issued_at - 1 week", "datetime"),
        # comparisons and logic
        ("invoice.amount > 10", "bool"),
        ("invoice.amount >= 50.00", "bool"),
        ("invoice.amount == customer.credit_limit", "bool"),
        ("invoice.amount < customer.rate", "bool"),
        ("customer.late != 0", "bool"),
        ("invoice.due_date < today", "bool"),
        ("invoice.issued_at < now", "bool"),
        ("customer.name < 'M'", "bool"),
        ("customer.grace == 3 days", "bool"),
        ("customer.in_negotiation == false", "bool"),
        ("customer.phone == null", "bool"),
        ("null != customer.phone", "bool"),
        ("customer.id == null", "bool"),
        ("customer.tags == null", "bool"),
        ("invoice.status in ['paid', 'cancelled']", "bool"),
        ("invoice.status not in ['paid']", "bool"),
        ("'vip' in customer.tags", "bool"),
        ("invoice.amount in [10, 20.5]", "bool"),
        ("customer.late in []", "bool"),
        ("invoice.amount between 10 and 20.5", "bool"),
        ("invoice.due_date between today - 3 days and today", "bool"),
        ("not customer.in_negotiation", "bool"),
        ("customer.in_negotiation and score < 40 or grade == 'alto'", "bool"),
        # history
        ("history.late_count(6 months)", "int"),
        ("history.avg_days_late(1 year)", "decimal"),
        ("history.paid_total(90 days)", "money"),
        ("history.billed_total(customer.grace)", "money"),
        # functions
        ("min(customer.monthly_income * 0.3, 5000.00)", "money"),
        ("max(customer.credit_limit, 1)", "money"),
        ("min(1, 2, 3)", "int"),
        ("max(1, 2.5)", "decimal"),
        ("min(today, invoice.due_date)", "date"),
        ("abs(customer.rate)", "decimal"),
        ("abs(-3)", "int"),
        ("round(invoice.amount * 0.333, 2)", "money"),
        ("round(customer.late, -1)", "int"),
        ("coalesce(customer.phone, '')", "string"),
        ("coalesce(customer.phone, customer.email)", "string?"),
        ("coalesce(customer.phone, customer.email, 'none')", "string"),
        ("coalesce(customer.vip, false)", "bool"),
        ("coalesce(null, 1)", "int"),
        ("coalesce(customer.birthday, today)", "date"),
        ("len(customer.name)", "int"),
        ("len(customer.tags)", "int"),
        ("len([1, 2])", "int"),
        ("lower(customer.name)", "string"),
        ("upper(invoice.status)", "string"),
        ("days_between(invoice.due_date, today)", "int"),
    ],
)
def test_result_types(text: str, expected: str) -> None:
    assert str(type_of(text)) == expected


def test_every_node_is_annotated() -> None:
    text = (
        "coalesce(customer.phone, '') != '' and invoice.amount * 2 > 10"
        " or history.late_count(6 months) between 1 and 3"
        " or invoice.status in ['paid'] or not customer.in_negotiation"
    )
    expr, diagnostics = check_expression(text, in_yaml, INVOICE, BOOL)
    assert diagnostics == [] and expr is not None
    nodes = walk(expr.tree)
    assert len(nodes) > 20
    for node in nodes:
        if isinstance(node, Attribute) or not _is_record_name(node):
            assert node.type is not None, node


def _is_record_name(node: Node) -> bool:
    return getattr(node, "name", None) in ("customer", "invoice", "history")


def test_expr_keeps_source_and_location() -> None:
    expr, _ = check_expression("customer.late == 0", in_yaml, SEGMENT, BOOL)
    assert expr is not None
    assert expr.source == "customer.late == 0"
    assert expr.location == in_yaml(0)
    assert expr.type == BOOL


# Expected types and widening ---------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected", "result"),
    [
        ("5000", MONEY, "money"),
        ("5000.00", MONEY, "money"),
        ("customer.late", DECIMAL, "decimal"),
        ("customer.rate", DECIMAL, "decimal"),
        ("invoice.amount", MONEY, "money"),
        ("customer.phone", STRING.as_nullable(), "string?"),
        ("null", STRING.as_nullable(), "string?"),
        ("customer.id", STRING.as_nullable(), "string"),
        ("customer.late", (INT, DECIMAL, MONEY), "int"),
        ("customer.rate", (INT, DECIMAL, MONEY), "decimal"),
        (
            "exposure / max(customer.credit_limit, 1.00)",
            (INT, DECIMAL, MONEY),
            "decimal",
        ),
    ],
)
def test_expected_type_and_widening(
    text: str, expected: Type | tuple[Type, ...], result: str
) -> None:
    expr, diagnostics = check_expression(text, in_yaml, INVOICE, expected)
    assert diagnostics == [] and expr is not None
    assert str(expr.type) == result


@pytest.mark.parametrize(
    ("text", "expected", "code"),
    [
        ("customer.late", BOOL, "E307"),
        ("invoice.amount", BOOL, "E307"),
        ("'true'", BOOL, "E307"),
        ("invoice.amount", DECIMAL, "E307"),  # money is not a plain number
        ("1.5", INT, "E307"),
        ("today", DATETIME := Type("datetime"), "E307"),
        ("customer.tags", STRING, "E307"),
        ("customer.vip", BOOL, "E305"),
        ("customer.phone", STRING, "E305"),
        ("coalesce(customer.phone, customer.email)", STRING, "E305"),
        ("null", BOOL, "E307"),
    ],
)
def test_wrong_result_type(text: str, expected: Type, code: str) -> None:
    diagnostic = one_error(text, expected=expected)
    assert diagnostic.code == code
    assert offset_of(diagnostic) == 0


# Names ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "offset", "hint"),
    [
        ("customer.lat == 1", 9, "customer.late"),
        ("customer.frist_name == ''", 9, "customer.first_name"),
        ("invoice.amount_du > 1", 8, "invoice.amount_due"),
        ("late == 1", 0, "customer.late"),
        ("amount_due > 1", 0, "invoice.amount_due"),
        ("tody == 2026-01-01", 0, "today"),
        ("True", 0, "true"),
        ("customer.__class__", None, None),
        ("customer", 0, "customer.<field>"),
        ("history", 0, "history.late_count(6 months)"),
        ("min", 0, "min(a, b, ...)"),
        ("today.year == 1", 6, None),
        ("customer.phone.length == 1", 15, None),
        ("offer.nonsense", None, None),
    ],
)
def test_unknown_names(text: str, offset: int | None, hint: str | None) -> None:
    context = OFFER if text.startswith("offer") else INVOICE
    diagnostic = one_error(text, context)
    if offset is None:  # rejected, wherever it points
        assert diagnostic.code in ("E201", "E301")
        return
    assert diagnostic.code == "E301"
    assert offset_of(diagnostic) == offset
    if hint is not None:
        assert diagnostic.hint is not None and hint in diagnostic.hint


@pytest.mark.parametrize(
    ("text", "context", "offset"),
    [
        ("invoice.amount > 1", SEGMENT, 0),
        ("segment == 'risco'", SEGMENT, 0),
        ("score > 10", SCORECARD, 0),
        ("grade == 'alto'", SCORECARD, 0),
        ("offer.total > 1", TEMPLATE, 0),
        ("payment.amount > 1", INVOICE, 0),
        ("customer.late > 1 and money(1) == ''", INVOICE, 22),
        ("date(today) == ''", SEGMENT, 0),
        ("number(1) == ''", SEGMENT, 0),
    ],
)
def test_names_not_available_here(text: str, context: ExprContext, offset: int) -> None:
    diagnostic = one_error(text, context)
    assert diagnostic.code == "E306"
    assert offset_of(diagnostic) == offset


def test_names_available_by_context() -> None:
    assert type_of("offer.instalment_amount", OFFER) == MONEY
    assert type_of("offer.new_due_date", OFFER) == DATE
    assert type_of("offer.instalments", OFFER) == INT
    assert type_of("score", SEGMENT) == INT
    assert type_of("money(invoice.amount)", TEMPLATE) == STRING
    assert type_of("date(now, 'HH:mm')", TEMPLATE) == STRING
    assert type_of("number(customer.rate)", TEMPLATE) == STRING


def test_computed_invoice_fields_match_the_engine() -> None:
    """dsl keeps its own copy of the engine's table; they must agree."""
    engine_table = {
        name: parse_type_name(type_name)
        for name, type_name in records.COMPUTED_INVOICE_FIELDS.items()
    }
    assert engine_table == COMPUTED_INVOICE_FIELDS


def test_history_aggregates_match_the_engine_port() -> None:
    methods = {name for name in vars(History) if not name.startswith("_")}
    assert methods == set(HISTORY_AGGREGATES)


def test_every_code_is_documented() -> None:
    assert sorted(CODES) == [
        "E201", "E202", "E203", "E204",
        "E301", "E302", "E303", "E304", "E305", "E306", "E307",
        "W301", "W302", "W303",
    ]  # fmt: skip


# Operators -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "offset", "words"),
    [
        ('invoice.amount > "10"', 15, "money with string"),
        ("invoice.amount > invoice.due_date", 15, "money with date"),
        ("invoice.due_date == now", 17, "date with datetime"),
        ("now > today", 4, "`today` is a date"),
        ("customer.name == 1", 14, "string with int"),
        ("customer.in_negotiation == 1", 24, "bool with int"),
        ("customer.in_negotiation < true", 24, "bool with bool"),
        ("customer.grace > 3 days", 15, "duration with duration"),
        ("customer.tags == ['a']", 14, "list[string]"),
        ("today - invoice.due_date > 3", 6, "days_between"),
        ("now - now", 4, "days_between"),
        ("invoice.amount * invoice.amount > 1", 15, "multiply money by a number"),
        ("10 / invoice.amount > 1", 3, "only money can be divided by money"),
        ("'a' + 'b' == 'ab'", 4, "add string and string"),
        ("today + 1 > today", 6, "add date and int"),
        ("3 days - today == today", 7, "subtract duration and date"),
        ("invoice.amount + 3 days > 1", 15, "add money and duration"),
        ("customer.late and true", 0, "`and` needs true or false"),
        ("true or 'x'", 8, "`or` needs true or false"),
        ("not customer.late", 0, "`not` needs true or false"),
        ("-customer.name == ''", 0, "negate"),
        ("-today == today", 0, "negate"),
        ("invoice.status in 'paid'", 18, "needs a list"),
        ("invoice.status in customer.name", 18, "needs a list"),
        ("customer.late in ['a']", 14, "int in a list of string"),
        ("invoice.status in [1, 'a']", 22, "share one type"),
        ("invoice.status in [[1]]", 19, "lists"),
        ("customer.late between 'a' and 3", 22, "int with string"),
        ("customer.late between 1 and today", 28, "int with date"),
    ],
)
def test_operand_type_errors(text: str, offset: int, words: str) -> None:
    diagnostic = one_error(text)
    assert diagnostic.code == "E302"
    assert offset_of(diagnostic) == offset
    assert words in str(diagnostic)


@pytest.mark.parametrize(
    ("text", "offset"),
    [
        ("customer.phone == 'x'", 0),
        ("'x' == customer.phone", 7),
        ("customer.phone in ['a']", 0),
        ("len(customer.phone) > 3", 4),
        ("customer.vip and true", 0),
        ("not customer.vip", 4),
        ("customer.birthday + 1 day > today", 0),
        ("-invoice.pix_code == ''", 1),
        ("customer.birthday between today and today", 0),
        ("min(customer.birthday, today) > today", 4),
        ("upper(customer.email) == 'A'", 6),
        ("[customer.phone] == null", 1),
        ("null < 1", 0),
        ("[null]", 1),
    ],
)
def test_nullable_values_need_coalesce(text: str, offset: int) -> None:
    found = errors(text)
    assert found[0].code == "E305", [str(d) for d in found]
    assert offset_of(found[0]) == offset


def test_nullable_hint_names_the_field() -> None:
    diagnostic = one_error("customer.phone == 'x'")
    assert "`customer.phone` may be empty" in diagnostic.message
    assert diagnostic.hint is not None and "coalesce(customer.phone" in diagnostic.hint


# Functions --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code", "offset"),
    [
        ("foo(1) > 1", "E304", 0),
        ("customer.phone(1) == ''", "E304", 0),
        ("mix(1, 2) > 1", "E304", 0),
        ("history.late_cnt(6 months) > 1", "E304", 8),
        ("history.late_count > 1", "E303", 8),
        ("history.late_count() > 1", "E303", 0),
        ("history.late_count(6 months, 1 year) > 1", "E303", 0),
        ("history.late_count(6) > 1", "E303", 19),
        ("min(1) > 0", "E303", 0),
        ("abs(1, 2) > 0", "E303", 0),
        ("round(1.5) > 0", "E303", 0),
        ("round(1.5, 0.5) > 0", "E303", 11),
        ("abs('a') == 1", "E303", 4),
        ("min(1, 'a') == 1", "E303", 7),
        ("min(today, 1) == 1", "E303", 11),
        ("max('a', 'b') == 'b'", "E303", 4),
        ("max(true, false)", "E303", 4),
        ("len(1) > 0", "E303", 4),
        ("lower(1) == ''", "E303", 6),
        ("days_between(today, 3) > 0", "E303", 20),
        ("days_between(now, now) > 0", "E303", 13),
        ("coalesce(customer.phone, 1) == ''", "E303", 25),
        ("coalesce(null, null) == null", "E303", 0),
        ("coalesce(1) == 1", "E303", 0),
    ],
)
def test_function_errors(text: str, code: str, offset: int) -> None:
    diagnostics = errors(text)
    assert (diagnostics[0].code, offset_of(diagnostics[0])) == (code, offset), [
        str(d) for d in diagnostics
    ]


def test_unknown_function_hints_a_close_name() -> None:
    diagnostic = one_error("lowr(customer.name) == ''")
    assert diagnostic.hint == "did you mean `lower`?"
    aggregate = one_error("history.late_cont(6 months) > 0")
    assert aggregate.hint == "did you mean `late_count`?"


def test_every_function_is_known_to_the_checker() -> None:
    samples = {
        "min": "min(1, 2)",
        "max": "max(1, 2)",
        "abs": "abs(1)",
        "round": "round(1.25, 1)",
        "coalesce": "coalesce(customer.phone, '')",
        "len": "len('abc')",
        "lower": "lower('A')",
        "upper": "upper('a')",
        "days_between": "days_between(today, today)",
        "money": "money(1)",
        "date": "date(today, 'dd/MM')",
        "number": "number(1.5)",
    }
    assert set(samples) == set(FUNCTIONS)
    for text in samples.values():
        assert type_of(text, TEMPLATE) is not None


@pytest.mark.parametrize(
    ("text", "offset"),
    [
        ("date(invoice.due_date, invoice.status)", 23),
        ("date(invoice.due_date, 1)", 23),
        ("date(invoice.due_date, '  ')", 23),
        ("date(1, 'dd')", 5),
        ("money('a')", 6),
        ("number(today)", 7),
        ("money(customer.phone)", 6),
    ],
)
def test_template_function_errors(text: str, offset: int) -> None:
    diagnostic = one_error(text, TEMPLATE)
    assert diagnostic.code in ("E303", "E305")
    assert offset_of(diagnostic) == offset


# Several problems at once -----------------------------------------------------------


def test_all_problems_of_an_expression_are_reported_in_order() -> None:
    text = "customer.lat == 1 or invoice.amount > '10' or foo(2) or customer.phone"
    found = errors(text, expected=BOOL)
    assert [(d.code, offset_of(d)) for d in found] == [
        ("E301", 9),
        ("E302", 36),
        ("E304", 46),
        ("E305", 56),
    ]


def test_one_mistake_is_reported_once() -> None:
    # The unknown field makes the comparison and the `and` unknown, not wrong.
    found = errors("customer.nope + 1 > 2 and customer.nope * 3 == 1", expected=BOOL)
    assert [d.code for d in found] == ["E301", "E301"]


def test_syntax_errors_come_from_the_parser() -> None:
    diagnostic = one_error("customer.late = 0")
    assert diagnostic.code == "E201"
    assert offset_of(diagnostic) == 14


# Templates ---------------------------------------------------------------------------


def check(
    text: str, context: ExprContext = TEMPLATE, html: bool = False
) -> list[Diagnostic]:
    template, diagnostics = check_template(text, in_yaml, context, html=html)
    has_error = any(d.severity is Severity.ERROR for d in diagnostics)
    assert (template is None) == has_error
    return diagnostics


def test_template_placeholders_of_every_scalar_type_are_fine() -> None:
    text = (
        "{customer.name} {customer.late} {customer.rate} {invoice.amount}"
        " {invoice.due_date} {now} {customer.in_negotiation} {customer.grace}"
        " {money(invoice.amount_due)} {date(invoice.due_date, 'dd/MM')}"
        " {coalesce(invoice.pix_code, 'sem Pix')} {segment} {grade}"
    )
    template, diagnostics = check_template(text, in_yaml, TEMPLATE)
    assert diagnostics == []
    assert template is not None
    types = [str(part.type) for part in template.parts if isinstance(part, Node)]
    assert types == [
        "string", "int", "decimal", "money", "date", "datetime", "bool",
        "duration", "string", "string", "string", "string", "string",
    ]  # fmt: skip


def test_template_makes_formatting_functions_available() -> None:
    # Even with a context that does not say `template=True`.
    assert check("{money(invoice.amount)}", INVOICE) == []


@pytest.mark.parametrize(
    ("text", "code", "offset"),
    [
        ("Oi {customer.phone}", "E305", 4),
        ("Oi {invoice.pix_code}!", "E305", 4),
        ("{null}", "E305", 1),
        ("Tags: {customer.tags}", "E307", 7),
        ("Oi {customer.nome}", "E301", 13),
        ("Oi {offer.total}", "E306", 4),
        ("Oi {customer.name", "E204", 3),
        ("{invoice.amount > '1'}", "E302", 16),
    ],
)
def test_template_errors(text: str, code: str, offset: int) -> None:
    found = check(text)
    assert [(d.code, offset_of(d)) for d in found] == [(code, offset)]


def test_nullable_placeholder_hint() -> None:
    (diagnostic,) = check("{customer.phone}")
    assert "may be empty" in diagnostic.message
    assert diagnostic.hint == "use coalesce(customer.phone, '...')"


def test_template_reports_every_problem() -> None:
    found = check("{customer.phone} {customer.nope} } {customer.tags}")
    assert [d.code for d in found] == ["E305", "E301", "E204", "E307"]


def test_offer_templates() -> None:
    text = "Parcele em {offer.instalments}x de {money(offer.instalment_amount)}"
    assert check(text, OFFER) == []
    assert [d.code for d in check(text, TEMPLATE)] == ["E306", "E306"]


def test_html_placeholder_in_script_is_warned_about() -> None:
    text = "<p>{customer.name}</p><script>var n = '{customer.name}';</script>{grade}"
    template, diagnostics = check_template(text, in_yaml, TEMPLATE, html=True)
    assert template is not None  # a warning does not stop the policy
    assert [(d.code, d.severity, offset_of(d)) for d in diagnostics] == [
        ("W301", Severity.WARNING, text.index("{customer.name}';")),
    ]
    assert check(text, html=False) == []


# Robustness: nothing gets past as an exception ----------------------------------------

VALID = [
    "history.late_count(12 months) == 0 and customer.tenure >= 6 months",
    "history.late_count(6 months) >= 3 or history.max_days_late(12 months) > 30",
    "min(customer.monthly_income * 0.3, 5000.00)",
    "invoice.status in ['paid', 'cancelled', 'disputed']",
    "coalesce(customer.phone, '') != '' and not customer.in_negotiation",
    "invoice.amount_due between 50.00 and 1000 and today - 3 days > 2026-01-31",
    "days_between(invoice.due_date, today) >= -3 and score < 40",
    "round(exposure / max(customer.credit_limit, 1.00), 2) > 0.9",
]
TEMPLATES = [
    "Oi {customer.first_name}, {money(invoice.amount_due)} vence"
    " {date(invoice.due_date, 'dd/MM')}. {{Pix}}: {invoice.payment_link}",
]
ALPHABET = st.sampled_from(
    list("abcdefghijklmnopqrstuvwxyz_0123456789.,()[]{}'\"\\+-*/<>=! \n\t?")
    + ["and", "or", "not", "in", "between", "null", "days", "business", "customer."]
    + ["invoice.", "history.", "2026-02-30", "1.5", "é", "\x00"]
)


def _assert_diagnostics_only(text: str) -> None:
    for context in (SEGMENT, INVOICE, OFFER):
        expr, diagnostics = check_expression(text, in_yaml, context, BOOL)
        assert (expr is None) == any(d.severity is Severity.ERROR for d in diagnostics)
        for diagnostic in diagnostics:
            assert diagnostic.location.line == 7
            assert 12 <= diagnostic.location.column <= 12 + len(text)
    template, diagnostics = check_template(text, in_yaml, TEMPLATE, html=True)
    assert (template is None) == any(d.severity is Severity.ERROR for d in diagnostics)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=60))
def test_random_text_gives_diagnostics_not_exceptions(text: str) -> None:
    _assert_diagnostics_only(text)


@settings(max_examples=300, deadline=None)
@given(st.lists(ALPHABET, max_size=30).map("".join))
def test_random_tokens_give_diagnostics_not_exceptions(text: str) -> None:
    _assert_diagnostics_only(text)


@st.composite
def mutated(draw: st.DrawFn) -> str:
    """A valid expression with a few characters deleted, replaced or added."""
    text = draw(st.sampled_from(VALID + TEMPLATES))
    for _ in range(draw(st.integers(1, 4))):
        index = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["delete", "replace", "insert"]))
        piece = draw(ALPHABET)
        if action == "delete":
            text = text[:index] + text[index + 1 :]
        elif action == "replace":
            text = text[:index] + piece + text[index + 1 :]
        else:
            text = text[:index] + piece + text[index:]
    return text


@settings(max_examples=400, deadline=None)
@given(mutated())
def test_mutated_expressions_give_diagnostics_not_exceptions(text: str) -> None:
    _assert_diagnostics_only(text)


@pytest.mark.parametrize(
    "text",
    [
        "customer.late between 100 and 0",
        "invoice.amount between 20.5 and -3",
        "invoice.amount between -1 and -2",
        "invoice.due_date between 2026-03-09 and 2026-03-01",
        "customer.name between 'z' and 'a'",
    ],
)
def test_between_with_constant_bounds_the_wrong_way_warns(text: str) -> None:
    expr, diagnostics = check_expression(text, in_yaml, INVOICE, BOOL)
    assert expr is not None  # a warning, not an error
    [warning] = diagnostics
    assert (warning.code, warning.severity) == ("W302", Severity.WARNING)
    assert warning.location.column == in_yaml(text.index(" between ") + 9).column
    assert "never true" in warning.message


@pytest.mark.parametrize(
    "text",
    [
        "customer.late between 0 and 100",
        "customer.late between 3 and 3",
        "invoice.amount between -2 and -1",
        "customer.late between customer.late and 0",  # not constant
    ],
)
def test_between_with_bounds_in_order_is_quiet(text: str) -> None:
    assert check_expression(text, in_yaml, INVOICE, BOOL)[1] == []
