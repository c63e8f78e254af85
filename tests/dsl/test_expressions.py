"""Parsing expressions and templates: literals, precedence, positions, errors."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from dsl.ast import (
    Attribute,
    Between,
    Binary,
    Call,
    DurationLit,
    ListLit,
    Literal,
    Name,
    Node,
    Template,
    Unary,
)
from dsl.diagnostics import Diagnostic, Location
from dsl.expressions import (
    MAX_DEPTH,
    MAX_HEIGHT,
    parse_expression,
    parse_template,
)

# An expression that is a YAML scalar starting at line 7, column 12.
LINE, COLUMN = 7, 12


def in_yaml(offset: int) -> Location:
    return Location("policy.yaml", LINE, COLUMN + offset)


def at_start(offset: int) -> Location:
    return Location("x.yaml", 1, 1 + offset)


def parse(text: str) -> Node:
    node, diagnostics = parse_expression(text, in_yaml)
    assert diagnostics == [], [str(d) for d in diagnostics]
    assert node is not None
    return node


def parse_error(text: str) -> Diagnostic:
    node, diagnostics = parse_expression(text, in_yaml)
    assert node is None
    assert len(diagnostics) == 1, [str(d) for d in diagnostics]
    return diagnostics[0]


def column_of(diagnostic: Diagnostic) -> int:
    """The offset in the expression text a diagnostic points at."""
    assert diagnostic.location.line == LINE
    return diagnostic.location.column - COLUMN


def shape(node: Node) -> str:
    """The tree as a fully parenthesised prefix form, to test precedence."""
    match node:
        case Literal(value=value):
            return "null" if value is None else repr(value)
        case DurationLit(amount=amount, unit=unit):
            return f"<{amount} {unit}>"
        case ListLit(items=items):
            return "[" + " ".join(shape(item) for item in items) + "]"
        case Name(name=name):
            return name
        case Attribute(target=target, name=name):
            return f"{shape(target)}.{name}"
        case Call(function=function, args=args):
            return f"{function}(" + " ".join(shape(arg) for arg in args) + ")"
        case Unary(op=op, operand=operand):
            return f"({op} {shape(operand)})"
        case Binary(op=op, left=left, right=right):
            return f"({op} {shape(left)} {shape(right)})"
        case Between(value=value, low=low, high=high):
            return f"(between {shape(value)} {shape(low)} {shape(high)})"
    raise AssertionError(node)


# Literals -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("42", 42),
        ("0", 0),
        ("50.00", Decimal("50.00")),
        ("0.1", Decimal("0.1")),
        ('"text"', "text"),
        ("'text'", "text"),
        ('""', ""),
        ("'it\\'s'", "it's"),
        ('"say \\"hi\\""', 'say "hi"'),
        ('"a\\\\b"', "a\\b"),
        ('"line\\nbreak\\ttab"', "line\nbreak\ttab"),
        ("'{not a placeholder}'", "{not a placeholder}"),
        ("true", True),
        ("false", False),
        ("null", None),
        ("2026-03-01", dt.date(2026, 3, 1)),
        ("2024-02-29", dt.date(2024, 2, 29)),
    ],
)
def test_literal_values(text: str, value: object) -> None:
    node = parse(text)
    assert isinstance(node, Literal)
    assert node.value == value
    assert type(node.value) is type(value)


def test_decimal_literal_keeps_its_digits() -> None:
    node = parse("50.00")
    assert isinstance(node, Literal)
    assert str(node.value) == "50.00"


@pytest.mark.parametrize(
    ("text", "amount", "unit"),
    [
        ("3 days", 3, "days"),
        ("1 day", 1, "days"),
        ("2 weeks", 2, "weeks"),
        ("1 week", 1, "weeks"),
        ("6 months", 6, "months"),
        ("1 month", 1, "months"),
        ("1 year", 1, "years"),
        ("10 years", 10, "years"),
        ("2 business days", 2, "business_days"),
        ("1 business day", 1, "business_days"),
        ("0 days", 0, "days"),
    ],
)
def test_duration_literals(text: str, amount: int, unit: str) -> None:
    node = parse(text)
    assert isinstance(node, DurationLit)
    assert (node.amount, node.unit) == (amount, unit)


def test_list_literals() -> None:
    node = parse('["paid", "cancelled"]')
    assert isinstance(node, ListLit)
    values = [item.value for item in node.items]  # type: ignore[attr-defined]
    assert values == ["paid", "cancelled"]
    empty = parse("[]")
    assert isinstance(empty, ListLit) and empty.items == []
    assert shape(parse("[1 + 2, customer.id]")) == "[(+ 1 2) customer.id]"


def test_keywords_are_plain_names_after_a_dot() -> None:
    # A declared field may be called `in` or `days`: after `.` only names count.
    assert shape(parse("customer.in == customer.days")) == (
        "(== customer.in customer.days)"
    )
    assert shape(parse("today")) == "today"  # not `to` + `day`
    assert shape(parse("notes and order")) == "(and notes order)"


# Precedence -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a or b and c", "(or a (and b c))"),
        ("a and b or c", "(or (and a b) c)"),
        ("not a and b", "(and (not a) b)"),
        ("not a == b", "(not (== a b))"),
        ("not not a", "(not (not a))"),
        ("a == b and c != d", "(and (== a b) (!= c d))"),
        ("a + b * c", "(+ a (* b c))"),
        ("a * b + c", "(+ (* a b) c)"),
        ("a - b - c", "(- (- a b) c)"),
        ("a / b / c", "(/ (/ a b) c)"),
        ("a - b + c", "(+ (- a b) c)"),
        ("-a * b", "(* (- a) b)"),
        ("- -a", "(- (- a))"),
        ("-a.b", "(- a.b)"),
        ("(a + b) * c", "(* (+ a b) c)"),
        ("a + b < c * d", "(< (+ a b) (* c d))"),
        ("a <= b", "(<= a b)"),
        ("a >= b", "(>= a b)"),
        ("a > b", "(> a b)"),
        ("a in [1, 2] or b", "(or (in a [1 2]) b)"),
        ("a not in [1] and b", "(and (not in a [1]) b)"),
        ("not a in b", "(not (in a b))"),
        ("a between 1 and 2", "(between a 1 2)"),
        ("a between b + 1 and c * 2 and d", "(and (between a (+ b 1) (* c 2)) d)"),
        ("a or b between 1 and 2", "(or a (between b 1 2))"),
        ("today + 3 days", "(+ today <3 days>)"),
        ("today - 2 business days", "(- today <2 business_days>)"),
        (
            "history.late_count(6 months) >= 3",
            "(>= history.late_count(<6 months>) 3)",
        ),
        ("min(a, b + 1) > 0", "(> min(a (+ b 1)) 0)"),
        ("f()", "f()"),
        ("a.b.c", "a.b.c"),
        ("2026-03-01 - 2026", "(- datetime.date(2026, 3, 1) 2026)"),
        ("2026-3-1", "(- (- 2026 3) 1)"),
    ],
)
def test_precedence(text: str, expected: str) -> None:
    assert shape(parse(text)) == expected


# Positions --------------------------------------------------------------------


def test_every_node_points_at_its_first_character() -> None:
    text = "customer.late >= 3 or history.late_count(6 months) > -1"
    node = parse(text)
    assert isinstance(node, Binary) and node.op == "or"
    left, right = node.left, node.right
    assert isinstance(left, Binary) and isinstance(right, Binary)
    assert left.location == in_yaml(0)
    assert isinstance(left.right, Literal) and left.right.location == in_yaml(17)
    call = right.left
    assert isinstance(call, Call) and call.location == in_yaml(22)
    assert call.args[0].location == in_yaml(text.index("6 months"))
    minus = right.right
    assert isinstance(minus, Unary) and minus.location == in_yaml(text.index("-1"))


def test_positions_follow_the_locate_function_across_lines() -> None:
    # A folded YAML scalar: the second line of the text starts at line 8, col 5.
    text = "customer.late >= 3 and\ncustomer.late = 2"
    newline = text.index("\n")

    def locate(offset: int) -> Location:
        if offset <= newline:
            return Location("p.yaml", 7, 12 + offset)
        return Location("p.yaml", 8, 5 + offset - newline - 1)

    _, diagnostics = parse_expression(text, locate)
    assert [str(d.location) for d in diagnostics] == ["p.yaml:8:19"]


# Syntax errors ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code", "offset", "words"),
    [
        ("customer.late = 0", "E201", 14, "=="),
        ("a && b", "E201", 2, "and"),
        ("a || b", "E201", 2, "or"),
        ("a ! b", "E201", 2, "not"),
        ("a and ) b", "E201", 6, "expected a value"),
        ("a < b < c", "E201", 6, "between"),
        ("a == b == c", "E201", 7, "chain"),
        ("x not 3", "E201", 6, "`in`"),
        ("1 +* 2", "E201", 3, "expected a value"),
        ("f(1, )", "E201", 5, "expected a value"),
        ("[1, 2,]", "E201", 6, "expected a value"),
        ("a b", "E201", 2, "an operator"),
        ("(1)(2)", "E201", 3, "only functions"),
        ("customer.id(1)(2)", "E201", 14, "only functions"),
        ("{customer.id}", "E201", 0, "placeholder"),
        ("a and", "E202", 5, "expected a value"),
        ("a and   ", "E202", 5, "end of the expression"),
        ("(1 + 2", "E202", 6, "')'"),
        ("min(1, 2", "E202", 8, "')'"),
        ("[1, 2", "E202", 5, "']'"),
        ("x between 1", "E202", 11, "`and`"),
        ("customer.", "E202", 9, "a field name"),
        ("", "E202", 0, "empty"),
        ("   ", "E202", 0, "empty"),
        ("2026-02-30", "E203", 0, "not a valid date"),
        ("due > 2025-13-01", "E203", 6, "2025-13-01"),
        ('"a\\qb"', "E203", 2, "escape"),
        ('"never closed', "E203", 0, "not closed"),
        ("a == 'open", "E203", 5, "not closed"),
        ("3 dayz", "E203", 2, "`days`"),
        ("2 busines days", "E203", 2, "`business`"),
        ("2 business weeks", "E203", 11, "business days"),
        ("6 monthly", "E203", 2, "unit"),
    ],
)
def test_syntax_errors(text: str, code: str, offset: int, words: str) -> None:
    diagnostic = parse_error(text)
    assert diagnostic.code == code
    assert column_of(diagnostic) == offset
    assert words in str(diagnostic)


def test_syntax_messages_use_plain_words() -> None:
    for text in ("a and ) b", "(1 + 2", "a b", "x between 1", "customer."):
        message = str(parse_error(text))
        for terminal in ("RPAR", "LPAR", "NAME", "$END", "COMPARE", "RSQB"):
            assert terminal not in message, message


def test_several_literal_errors_are_all_reported() -> None:
    _, diagnostics = parse_expression("2026-02-30 < 2026-02-31 + 3 dayz", in_yaml)
    assert [(d.code, column_of(d)) for d in diagnostics] == [
        ("E203", 0),
        ("E203", 13),
        ("E203", 28),
    ]


@pytest.mark.parametrize(
    ("text", "offset"),
    [
        ("customer.__class__", 9),
        ('__import__("os")', 0),
        ("().__class__", 1),
        ("customer._secret", 9),
        ("customer.id.__globals__", 12),
        ("(lambda: 1)()", 7),
        ("[c for c in customer]", 3),
        ('open("/etc/passwd").read', 0),  # parses: rejected by the checker
        ("customer['id']", 8),
        ("exec('1')", 0),
        ("1; import os", 1),
        ("x if y else z", 2),
    ],
)
def test_python_cannot_be_spelled(text: str, offset: int) -> None:
    node, diagnostics = parse_expression(text, in_yaml)
    if node is not None:
        # Names and calls parse, but only as names of the fixed library.
        assert isinstance(node, Attribute | Call)
        return
    assert len(diagnostics) == 1
    assert diagnostics[0].code in ("E201", "E202")
    assert column_of(diagnostics[0]) == offset


def test_deep_nesting_is_refused_not_crashed() -> None:
    diagnostic = parse_error("-" * 500 + "1")
    assert diagnostic.code == "E201" and "nested too deeply" in diagnostic.message
    assert "nested too deeply" in parse_error("not " * 100 + "true").message
    # Parentheses alone add no depth to the tree.
    assert shape(parse("(" * 500 + "1" + ")" * 500)) == "1"
    # A flat chain is one level of nesting, whatever its length; a chain of
    # arithmetic folds one level per operator, up to MAX_HEIGHT.
    assert parse_expression(" + ".join(["1"] * MAX_HEIGHT), in_yaml)[1] == []
    chain = parse_error(" + ".join(["1"] * (MAX_HEIGHT + 2)))
    assert chain.code == "E201" and "expression too long" in chain.message


@pytest.mark.parametrize("op", ["or", "and"])
def test_a_long_flat_logic_chain_is_not_deep(op: str) -> None:
    names = [f"customer.f{n}" for n in range(1000)]
    node, diagnostics = parse_expression(f" {op} ".join(names), in_yaml)
    assert diagnostics == []
    # Folded balanced, in the order written: the leaves read left to right.
    leaves: list[str] = []
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, Binary):
            assert current.op == op
            stack += [current.right, current.left]
        else:
            assert isinstance(current, Attribute)
            leaves.append(current.name)
    assert leaves == [f"f{n}" for n in range(1000)]
    # Real nesting still counts: 41 parenthesised levels of `not (a or b)`.
    deep = "not (customer.a or " * (MAX_DEPTH + 1) + "true" + ")" * (MAX_DEPTH + 1)
    assert "nested too deeply" in parse_error(deep).message


# Templates --------------------------------------------------------------------


def parse_ok(text: str) -> Template:
    template, diagnostics = parse_template(text, in_yaml)
    assert diagnostics == [], [str(d) for d in diagnostics]
    assert template is not None
    return template


def test_template_parts() -> None:
    template = parse_ok("Oi {customer.first_name}, pague {money(invoice.amount)}.")
    assert template.location == in_yaml(0)
    texts = [part if isinstance(part, str) else shape(part) for part in template.parts]
    assert texts == [
        "Oi ",
        "customer.first_name",
        ", pague ",
        "money(invoice.amount)",
        ".",
    ]


def test_template_placeholders_point_into_the_file() -> None:
    text = "Oi {customer.first_name}! {date(invoice.due_date, 'dd/MM')}"
    template = parse_ok(text)
    first, second = (part for part in template.parts if isinstance(part, Node))
    assert first.location == in_yaml(4)
    assert isinstance(second, Call)
    assert second.args[1].location == in_yaml(text.index("'dd/MM'"))


def test_template_literal_braces() -> None:
    template = parse_ok("{{customer.name}} {{ }} }} {{")
    assert template.parts == ["{customer.name} { } } {"]
    assert parse_ok("").parts == []
    assert parse_ok("plain text").parts == ["plain text"]


def test_braces_inside_quoted_strings_do_not_close_a_placeholder() -> None:
    template = parse_ok('a {coalesce(customer.phone, \'}{\')} b {"\\"}"} c')
    values = [p.args[1].value for p in template.parts if isinstance(p, Call)]
    assert values == ["}{"]
    literal = [p for p in template.parts if isinstance(p, Literal)]
    assert [p.value for p in literal] == ['"}']


def test_template_text_with_newlines_and_markup_is_kept() -> None:
    text = "<p>Olá,\n{customer.name}</p>\n"
    template = parse_ok(text)
    assert template.parts[0] == "<p>Olá,\n"
    assert template.parts[2] == "</p>\n"


@pytest.mark.parametrize(
    ("text", "offsets"),
    [
        ("Oi {customer.name", [3]),
        ("Oi customer.name}", [16]),
        ("Oi {}", [3]),
        ("Oi {  }", [3]),
        ("{a {b}", [0]),
        ("} {", [0, 2]),
        ("x {'}", [2]),
    ],
)
def test_template_brace_errors(text: str, offsets: list[int]) -> None:
    template, diagnostics = parse_template(text, in_yaml)
    assert template is None
    assert [d.code for d in diagnostics] == ["E204"] * len(offsets)
    assert [column_of(d) for d in diagnostics] == offsets


def test_template_reports_every_placeholder_error() -> None:
    text = "{customer.name ==} and {2026-02-30} and }"
    template, diagnostics = parse_template(text, in_yaml)
    assert template is None
    assert [(d.code, column_of(d)) for d in diagnostics] == [
        ("E202", 17),
        ("E203", 24),
        ("E204", 40),
    ]


def test_template_errors_inside_a_placeholder_point_at_the_character() -> None:
    _, diagnostics = parse_template("Valor: {invoice.amount = 3}", at_start)
    assert [(d.code, d.location.column) for d in diagnostics] == [("E201", 24)]
