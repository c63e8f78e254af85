"""Compiled expressions and templates on concrete records, with the engine's
real calendar, formatter and payment history."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsl.ast import Attribute, Name, Template
from dsl.checker import check_expression, check_template
from dsl.diagnostics import Location
from dsl.library import ExprContext
from dsl.model import Calendar, Expr
from dsl.types import BOOL, DATE, MONEY, STRING, Type
from engine.calendar import BusinessCalendar
from engine.codegen import compile_expression, compile_many, compile_template
from engine.formatting import LocaleFormatter
from engine.history import CustomerHistory, prepare_invoices
from engine.records import CustomerRecords
from engine.runtime import EvaluationError, add_months, round_half_up
from engine.scope import Duration, Scope
from tests.dsl.test_checker import make_schema

SCHEMA = make_schema()
TEMPLATES = ExprContext(SCHEMA, per_invoice=True, score=True, template=True)
OFFERS = dataclasses.replace(TEMPLATES, offer=True)
ZONE = ZoneInfo("America/Sao_Paulo")
TODAY = dt.date(2025, 3, 14)  # a Friday
CALENDAR = BusinessCalendar(Calendar("BR", None, (), "next_business_day"))
FORMATTER = LocaleFormatter("pt_BR", "BRL", ZONE)


def where(offset: int) -> Location:
    return Location("ruleset.yaml", 20, 11 + offset)


def customer(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": "c1",
        "name": "Maria da Silva",
        "first_name": "Maria",
        "phone": "+5511999990000",
        "email": None,
        "monthly_income": Decimal("4200.00"),
        "credit_limit": Decimal("1500.00"),
        "late": 2,
        "rate": Decimal("0.25"),
        "in_negotiation": False,
        "vip": None,
        "since": dt.date(2020, 1, 31),
        "last_contact": None,
        "grace": Duration(3, "days"),
        "tags": ["app", "cartao"],
        "birthday": None,
    }
    record.update(changes)
    return record


def invoice(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": "f1",
        "customer_id": "c1",
        "amount": Decimal("1234.56"),
        "due_date": dt.date(2025, 3, 17),
        "status": "open",
        "payment_link": "https://pay.example/f1",
        "pix_code": None,
        "issued_at": dt.datetime(2025, 3, 1, 9, 30, tzinfo=ZONE),
    }
    record.update(changes)
    return record


def scope(
    customer_record: dict[str, Any] | None = None,
    invoice_record: dict[str, Any] | None = None,
    *,
    invoices: list[dict[str, Any]] | None = None,
    payments: list[dict[str, Any]] | None = None,
) -> Scope:
    """A scope the way the engine builds one: history from the real records."""
    records = CustomerRecords(
        customer_record or customer(), invoices or [], payments or []
    )
    states = prepare_invoices(records, CALENDAR, TODAY)
    history = CustomerHistory(states, records.payments, TODAY, CALENDAR)
    result = Scope(
        customer=records.customer,
        history=history,
        today=TODAY,
        now=dt.datetime.combine(TODAY, dt.time(10, 0), ZONE),
        fmt=FORMATTER,
        calendar=CALENDAR,
        exposure=Decimal("800.00"),
        open_invoices=1,
    )
    result.invoice = invoice_record if invoice_record is not None else invoice()
    result.score = 55
    result.grade = "medio"
    result.segment = "ocasional"
    result.offer = {
        "instalments": 3,
        "instalment_amount": Decimal("140.00"),
        "total": Decimal("420.00"),
        "new_due_date": dt.date(2025, 4, 1),
    }
    return result


def checked(
    text: str,
    expected: Type | tuple[Type, ...] | None = None,
    context: ExprContext = OFFERS,
) -> Expr:
    expr, diagnostics = check_expression(text, where, context, expected)
    assert diagnostics == [], [str(d) for d in diagnostics]
    assert expr is not None
    return expr


def evaluate(text: str, the_scope: Scope | None = None, **kwargs: Any) -> Any:
    function = compile_expression(checked(text, **kwargs))
    return function(the_scope or scope())


def rendered(text: str, the_scope: Scope | None = None, *, html: bool = False) -> str:
    template, diagnostics = check_template(text, where, OFFERS, html=html)
    assert diagnostics == [], [str(d) for d in diagnostics]
    assert template is not None
    return compile_template(template, html=html)(the_scope or scope())


# Values -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("customer.late == 2", True),
        ("customer.late", 2),
        ("customer.name", "Maria da Silva"),
        ("invoice.amount", Decimal("1234.56")),
        ("today", TODAY),
        ("exposure", Decimal("800.00")),
        ("open_invoices", 1),
        ("score", 55),
        ("grade", "medio"),
        ("segment", "ocasional"),
        ("offer.instalments", 3),
        ("2026-03-01", dt.date(2026, 3, 1)),
        ("'it\\'s'", "it's"),
        ("-customer.late", -2),
        ("not customer.in_negotiation", True),
        ("customer.late >= 2 and customer.late < 3", True),
        ("customer.late > 2 or customer.in_negotiation", False),
        ("lower('ÁGUA')", "água"),
        ("upper(customer.first_name)", "MARIA"),
        ("len(customer.name)", 14),
        ("len(customer.tags)", 2),
        ("len(['a', 'a', 'b'])", 3),
        ("days_between(today, invoice.due_date)", 3),
        ("days_between(invoice.due_date, today)", -3),
        ("abs(-customer.late)", 2),
        ("min(3, customer.late, 5)", 2),
        ("max(today, invoice.due_date)", dt.date(2025, 3, 17)),
        ("customer.grace == 3 days", True),
    ],
)
def test_values(text: str, value: object) -> None:
    result = evaluate(text)
    assert result == value
    assert type(result) is type(value)


def test_decimal_arithmetic_is_exact() -> None:
    assert evaluate("0.1 + 0.2 == 0.3") is True
    assert evaluate("0.1 + 0.2") == Decimal("0.3")
    assert evaluate("invoice.amount * 0.02") == Decimal("24.6912")
    assert evaluate("invoice.amount - 0.56 + customer.late") == Decimal("1236.00")
    assert evaluate("invoice.amount / customer.credit_limit") == Decimal("0.82304")
    for text in ("7 / 2", "customer.late / 4", "1 / 3 * 3", "invoice.amount * 0.1"):
        assert isinstance(evaluate(text), Decimal), text
    assert evaluate("7 / 2") == Decimal("3.5")
    assert evaluate("customer.late * 3") == 6


def test_int_stands_for_money_where_money_is_expected() -> None:
    limit = evaluate("5000", expected=MONEY)
    assert limit == Decimal(5000) and isinstance(limit, Decimal)
    smaller = evaluate("min(customer.monthly_income * 1, 1000)")
    assert smaller == Decimal(1000) and isinstance(smaller, Decimal)
    assert isinstance(evaluate("max(customer.late, 1)", expected=MONEY), Decimal)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("round(2.345, 2)", Decimal("2.35")),
        ("round(2.344, 2)", Decimal("2.34")),
        ("round(-2.345, 2)", Decimal("-2.35")),
        ("round(invoice.amount, 0)", Decimal("1235")),
        ("round(1250, -2)", 1300),
        ("round(customer.late, 1)", 2),
    ],
)
def test_round_half_up(text: str, value: object) -> None:
    result = evaluate(text)
    assert result == value and type(result) is type(value)


# Dates ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("2025-01-31 + 1 month", dt.date(2025, 2, 28)),
        ("2024-01-31 + 1 month", dt.date(2024, 2, 29)),
        ("2025-03-31 - 1 month", dt.date(2025, 2, 28)),
        ("2025-01-31 + 3 months", dt.date(2025, 4, 30)),
        ("2024-02-29 + 1 year", dt.date(2025, 2, 28)),
        ("2024-02-29 - 4 years", dt.date(2020, 2, 29)),
        ("2025-12-15 + 1 month", dt.date(2026, 1, 15)),
        ("2025-01-15 - 1 month", dt.date(2024, 12, 15)),
        ("today + 3 days", dt.date(2025, 3, 17)),
        ("today - 2 weeks", dt.date(2025, 2, 28)),
        ("3 days + today", dt.date(2025, 3, 17)),
        # Friday + 1 business day is Monday; back over the weekend likewise.
        ("today + 1 business day", dt.date(2025, 3, 17)),
        ("2025-03-17 - 1 business day", dt.date(2025, 3, 14)),
        # Christmas is a national holiday in Brazil.
        ("2025-12-24 + 1 business day", dt.date(2025, 12, 26)),
        ("today + customer.grace", dt.date(2025, 3, 17)),
        ("today - customer.grace", dt.date(2025, 3, 11)),
    ],
)
def test_date_arithmetic(text: str, value: dt.date) -> None:
    assert evaluate(text) == value


def test_datetime_arithmetic_keeps_the_time_of_day() -> None:
    issued = invoice()["issued_at"]
    assert evaluate("invoice.issued_at + 1 month") == issued.replace(month=4)
    assert evaluate("invoice.issued_at + 1 day") == issued + dt.timedelta(days=1)
    # 2025-03-01 is a Saturday; the next business day is Monday the 3rd,
    # unless Carnival falls there: the calendar decides, not the generator.
    expected_day = CALENDAR.add_business_days(issued.date(), 1)
    moved = evaluate("invoice.issued_at + 1 business day")
    assert moved.date() == expected_day and moved.time() == issued.time()


def test_duration_fields_with_every_unit() -> None:
    for unit, expected in [
        ("days", dt.date(2025, 3, 16)),
        ("weeks", dt.date(2025, 3, 28)),
        ("months", dt.date(2025, 5, 14)),
        ("years", dt.date(2027, 3, 14)),
        ("business_days", dt.date(2025, 3, 18)),
    ]:
        the_scope = scope(customer(grace=Duration(2, unit)))
        assert evaluate("today + customer.grace", the_scope) == expected, unit


def test_add_months_directly() -> None:
    assert add_months(dt.date(2023, 10, 31), 4) == dt.date(2024, 2, 29)
    assert add_months(dt.date(2024, 3, 31), -13) == dt.date(2023, 2, 28)
    assert round_half_up(Decimal("0.125"), 2) == Decimal("0.13")


# Nulls, between, in --------------------------------------------------------------


def test_null_comparisons() -> None:
    empty = scope(customer(phone=None))
    full = scope(customer(phone="+5511999990000"))
    assert evaluate("customer.phone == null", empty) is True
    assert evaluate("customer.phone == null", full) is False
    assert evaluate("null != customer.phone", full) is True
    assert evaluate("customer.phone != null and customer.late > 1", full) is True
    # An empty string is a value, not null.
    assert evaluate("customer.phone == null", scope(customer(phone=""))) is False


def test_coalesce_takes_the_first_value_and_stops_there() -> None:
    text = "coalesce(customer.email, customer.phone, 'sem contato')"
    assert evaluate(text) == "+5511999990000"
    assert evaluate(text, scope(customer(phone=None))) == "sem contato"
    assert evaluate(text, scope(customer(email="m@x.br"))) == "m@x.br"
    # Later arguments are not evaluated once a value is found.
    lazy = "coalesce(customer.vip, customer.late / 0 > 1)"
    assert evaluate(lazy, scope(customer(vip=True))) is True
    with pytest.raises(EvaluationError):
        evaluate(lazy)
    # An int fallback where the result is money is still a Decimal.
    assert evaluate("coalesce(null, 5) + invoice.amount") == Decimal("1239.56")


@pytest.mark.parametrize(
    ("late", "inside"), [(0, False), (1, True), (2, True), (3, True), (4, False)]
)
def test_between_is_inclusive(late: int, inside: bool) -> None:
    assert (
        evaluate("customer.late between 1 and 3", scope(customer(late=late))) is inside
    )


def test_between_evaluates_its_value_once() -> None:
    class CountingHistory(CustomerHistory):
        calls = 0

        def late_count(self, window: Duration) -> int:
            CountingHistory.calls += 1
            return super().late_count(window)

    the_scope = scope()
    the_scope.history = CountingHistory([], [], TODAY, CALENDAR)
    assert evaluate("history.late_count(6 months) between 0 and 0", the_scope) is True
    assert CountingHistory.calls == 1


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("invoice.status in ['paid', 'open']", True),
        ("invoice.status not in ['paid', 'open']", False),
        ("invoice.status in ['paid']", False),
        ("'app' in customer.tags", True),
        ("'loja' not in customer.tags", True),
        ("customer.late in []", False),
        ("invoice.amount in [1234.56, 10]", True),
        ("customer.late in [2.0]", True),
        ("customer.late in [1, customer.late + 0]", True),
        ("today in [2025-03-14]", True),
    ],
)
def test_membership(text: str, value: bool) -> None:
    assert evaluate(text) is value


# History --------------------------------------------------------------------------


def test_history_aggregates_reach_the_real_history() -> None:
    invoices = [
        {"id": "a", "customer_id": "c1", "amount": Decimal("100.00"),
         "due_date": dt.date(2025, 1, 10), "status": "paid"},
        {"id": "b", "customer_id": "c1", "amount": Decimal("300.00"),
         "due_date": dt.date(2025, 2, 10), "status": "open"},
    ]  # fmt: skip
    payments = [
        {
            "invoice_id": "a",
            "amount": Decimal("100.00"),
            "paid_on": dt.date(2025, 1, 20),
        },
    ]
    the_scope = scope(invoices=invoices, payments=payments)
    assert evaluate("history.invoice_count(6 months)", the_scope) == 2
    assert evaluate("history.late_count(6 months)", the_scope) == 2
    assert evaluate("history.max_days_late(6 months)", the_scope) == 32
    assert evaluate("history.billed_total(6 months)", the_scope) == Decimal("400.00")
    assert evaluate("history.paid_total(1 year)", the_scope) == Decimal("100.00")
    # Only invoice b is due within (Feb 2, Mar 14]; neither within 30 days.
    assert evaluate("history.late_count(40 days)", the_scope) == 1
    assert evaluate("history.late_count(30 days)", the_scope) == 0


# Failures --------------------------------------------------------------------------


def test_division_by_zero_is_an_evaluation_error_with_a_location() -> None:
    text = "invoice.amount / (customer.late - 2) > 1"
    with pytest.raises(EvaluationError) as caught:
        evaluate(text, expected=BOOL)
    error = caught.value
    assert error.location == where(0)
    assert "division by zero" in error.message and text in error.message
    assert str(error).startswith("ruleset.yaml:20:11: ")


def test_zero_divided_by_zero_and_missing_fields() -> None:
    with pytest.raises(EvaluationError, match="not a number"):
        evaluate("0.0 / 0 > 1")
    with pytest.raises(EvaluationError, match="no field 'late'"):
        evaluate("customer.late > 1", _without("late"))
    with pytest.raises(EvaluationError, match="missing or of the wrong type"):
        evaluate("customer.late > 1", scope(customer(late=None)))


def _without(field: str) -> Scope:
    record = customer()
    del record[field]
    return scope(record)


def test_a_failure_does_not_leak_between_records() -> None:
    function = compile_expression(checked("100 / customer.late > 10"))
    assert function(scope(customer(late=5))) is True
    with pytest.raises(EvaluationError):
        function(scope(customer(late=0)))
    assert function(scope(customer(late=20))) is False


# Templates --------------------------------------------------------------------------


def test_template_renders_each_type_for_the_locale() -> None:
    text = (
        "{customer.first_name}: {money(invoice.amount)} vence"
        " {date(invoice.due_date, 'dd/MM')}; {invoice.amount} | {customer.rate} |"
        " {customer.late} | {invoice.due_date} | {customer.in_negotiation} |"
        " {customer.grace} | {offer.instalments}x {{ok}}"
    )
    nbsp = "\xa0"
    assert rendered(text) == (
        f"Maria: R${nbsp}1.234,56 vence 17/03; R${nbsp}1.234,56 | 0,25 |"
        " 2 | 17 de mar. de 2025 | false | 3 days | 3x {ok}"
    )


def test_template_without_placeholders() -> None:
    assert rendered("Olá {{cliente}}") == "Olá {cliente}"
    assert rendered("") == ""


@pytest.mark.parametrize(
    "name",
    [
        "{customer.name}",
        "Ana {invoice.amount}",
        "Zé {{x}}",
        "<script>alert(1)</script>",
        "Robert'); DROP TABLE customers;--",
        "{__import__('os')}",
    ],
)
def test_data_is_inserted_as_plain_text_never_parsed(name: str) -> None:
    the_scope = scope(customer(first_name=name))
    assert rendered("Oi {customer.first_name}!", the_scope) == f"Oi {name}!"


def test_html_templates_escape_values_not_markup() -> None:
    the_scope = scope(customer(first_name='<b onclick="x">Zé</b> & {co}'))
    text = "<p>Oi <b>{customer.first_name}</b>, {money(invoice.amount)}</p>"
    assert rendered(text, the_scope, html=True) == (
        "<p>Oi <b>&lt;b onclick=&quot;x&quot;&gt;Zé&lt;/b&gt; &amp; {co}</b>,"
        " R$\xa01.234,56</p>"
    )


def test_a_failing_placeholder_names_itself() -> None:
    template, _ = check_template(
        "A {money(invoice.amount / customer.late)} B", where, OFFERS
    )
    assert template is not None
    function = compile_template(template)
    with pytest.raises(EvaluationError) as caught:
        function(scope(customer(late=0)))
    assert caught.value.location == where(3)
    assert "money(invoice.amount / customer.late)" in caught.value.message


# Compilation -------------------------------------------------------------------------


def test_compile_many_builds_one_module() -> None:
    texts = ["customer.late == 2", "invoice.amount > 1000", "today + 1 month"]
    functions = compile_many([checked(text) for text in texts])
    assert [function(scope()) for function in functions] == [
        True,
        True,
        dt.date(2025, 4, 14),
    ]
    namespaces = {id(function.__globals__) for function in functions}
    assert len(namespaces) == 1


def test_generated_code_has_no_builtins() -> None:
    function = compile_expression(checked("len(customer.name) > 3"))
    assert function.__globals__["__builtins__"] == {}
    names = set(function.__globals__)
    assert not names & {"open", "eval", "exec", "__import__", "getattr"}


def test_field_names_are_data_not_code() -> None:
    """Even a field name no grammar allows is a dict key, never code."""
    hostile = "x'] or __import__('os').system('echo pwned') or c['"
    target = Name(where(0), "customer")
    tree = Attribute(where(0), target, hostile)
    tree.type = STRING
    function = compile_expression(Expr("<hand-built>", where(0), tree, STRING))
    assert function(scope(customer() | {hostile: "safe"})) == "safe"


def test_unchecked_trees_are_refused() -> None:
    tree = Attribute(where(0), Name(where(0), "customer"), "late")
    with pytest.raises(ValueError, match="not a checked tree"):
        compile_expression(
            Expr("customer.late", where(0), Name(where(0), "bogus"), BOOL)
        )
    template = Template(where(0), ["a", tree])
    with pytest.raises(ValueError, match="not a checked tree"):
        compile_template(template)


def test_widening_at_the_top_keeps_other_types() -> None:
    assert evaluate("invoice.due_date", expected=DATE) == dt.date(2025, 3, 17)
    assert evaluate("customer.rate", expected=MONEY) == Decimal("0.25")


# Checker and generator agree -------------------------------------------------------

PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "bool": (bool,),
    "int": (int,),
    "decimal": (Decimal,),
    "money": (Decimal,),
    "string": (str,),
    "date": (dt.date,),
}


def _typed_expressions() -> dict[str, st.SearchStrategy[str]]:
    """Random expressions of each type, mostly well-typed by construction."""

    def call(name: str, *parts: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.tuples(*parts).map(lambda args: f"{name}({', '.join(args)})")

    def infix(
        left: st.SearchStrategy[str], ops: list[str], right: st.SearchStrategy[str]
    ) -> st.SearchStrategy[str]:
        return st.tuples(left, st.sampled_from(ops), right).map(
            lambda parts: "(" + " ".join(parts) + ")"
        )

    numbers = [
        "customer.late",
        "customer.rate",
        "invoice.amount",
        "1",
        "2.5",
        "0",
        "exposure",
        "score",
        "offer.total",
        "history.late_count(6 months)",
        "history.avg_days_late(1 year)",
    ]
    spans = ["3 days", "1 month", "2 business days", "customer.grace", "1 year"]
    days = ["today", "invoice.due_date", "2024-02-29", "offer.new_due_date"]
    texts = ["customer.name", "'x'", "grade", "invoice.status"]
    truths = [
        "customer.in_negotiation",
        "true",
        "customer.phone == null",
        "customer.vip != null",
        "'app' in customer.tags",
    ]

    number = st.deferred(
        lambda: st.one_of(
            st.sampled_from(numbers),
            infix(number, ["+", "-", "*", "/"], number),
            number.map(lambda x: f"-{x}"),
            call("min", number, number),
            call("max", number, number, number),
            call("abs", number),
            call("round", number, st.just("1")),
            call("coalesce", st.just("null"), number),
            call("len", text),
            call("days_between", day, day),
        )
    )
    day = st.deferred(
        lambda: st.one_of(
            st.sampled_from(days),
            infix(day, ["+", "-"], st.sampled_from(spans)),
            call("max", day, day),
            call("coalesce", st.just("customer.birthday"), day),
        )
    )
    text = st.deferred(
        lambda: st.one_of(
            st.sampled_from(texts),
            call("lower", text),
            call("upper", text),
            call("coalesce", st.just("customer.phone"), text),
        )
    )
    truth = st.deferred(
        lambda: st.one_of(
            st.sampled_from(truths),
            infix(number, ["==", "!=", "<", ">="], number),
            infix(day, ["<", "==", ">="], day),
            infix(text, ["==", "<"], text),
            text.map(lambda x: f"{x} in ['x', 'medio']"),
            infix(truth, ["and", "or"], truth),
            truth.map(lambda x: f"not {x}"),
            st.tuples(number, number, number).map(
                lambda n: f"{n[0]} between {n[1]} and {n[2]}"
            ),
            call("coalesce", st.just("customer.vip"), truth),
        )
    )
    return {"number": number, "date": day, "string": text, "bool": truth}


TYPED = _typed_expressions()
SCOPES = [
    scope(),
    scope(
        customer(phone=None, late=0, vip=True, birthday=dt.date(2000, 2, 29)),
        invoice(amount=Decimal("0.01"), status="paid"),
    ),
]


@settings(max_examples=400, deadline=None)
@given(st.one_of(*TYPED.values()))
def test_values_have_the_checked_type(text: str) -> None:
    expr, diagnostics = check_expression(text, where, OFFERS)
    if expr is None:
        # Only the rules that random numbers can break: money * money,
        # number / money, and the depth limit.
        assert {d.code for d in diagnostics} <= {"E302", "E201"}, text
        return
    function = compile_expression(expr)
    for the_scope in SCOPES:
        try:
            value = function(the_scope)
        except EvaluationError as error:
            assert error.location == where(0)
            continue
        kinds = PYTHON_TYPES[expr.type.name]
        assert isinstance(value, kinds), (text, expr.type, value)
        assert not isinstance(value, float)
        if expr.type.name in ("int", "date"):
            assert not isinstance(value, bool | dt.datetime), (text, value)
