"""The type checker of expressions and templates.

`check_expression` parses an expression, gives every node its type
(`node.type`), checks names against `dsl.library` and the declared inputs,
and checks the result against the type the place in the policy expects. It
reports every problem it can find, each at its exact character; codes are
listed in `dsl.library`.

Type rules, in short (docs/language.md, "Expressions"):

- `int` widens to `decimal` and `money`; `money` mixes with `decimal` and
  `int` (money * decimal = money, money / money = decimal); money * money and
  number / money are errors;
- `date +/- duration` is a date (likewise datetime); `date - date` is an
  error (use `days_between`);
- comparisons need two numbers, two dates, two datetimes or two strings;
  `==` also takes bools and durations; anything may be compared with `null`;
- a nullable value (`T?`) may only be compared with `null` or passed to
  `coalesce`; `coalesce` is non-null as soon as one argument is.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import re
from collections.abc import Iterable
from decimal import Decimal

from dsl import characters
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
from dsl.diagnostics import Diagnostic, Location, Severity
from dsl.expressions import Locate, describe, parse, parse_template_parts
from dsl.library import (
    FUNCTIONS,
    HISTORY_AGGREGATES,
    RECORDS,
    ROOT_NAMES,
    UNAVAILABLE_NAMES,
    ExprContext,
    available_names,
    is_available,
    record_fields,
)
from dsl.model import Expr
from dsl.types import (
    BOOL,
    DATE,
    DECIMAL,
    DURATION,
    INT,
    MONEY,
    NULL,
    NUMERIC,
    STRING,
    Type,
    list_of,
)

# The type of a sub-expression that already has an error: it fits anywhere,
# so one mistake is reported once, not again by every operator above it.
UNKNOWN = Type("unknown")

_ORDERED = frozenset({"date", "datetime", "string"})
_EQUATABLE = _ORDERED | {"bool", "duration"}
_EXTREMES = NUMERIC | {"date", "datetime"}
_ARITHMETIC = frozenset({"+", "-", "*", "/"})
_ORDERING = frozenset({"<", "<=", ">", ">="})
_OP_WORDS = {"+": "add", "-": "subtract", "*": "multiply", "/": "divide"}
_WIDENINGS = frozenset({("int", "decimal"), ("int", "money"), ("decimal", "money")})
_NUMERIC_RANK = {"int": 0, "decimal": 1, "money": 2}


def check_expression(
    text: str,
    locate: Locate,
    context: ExprContext,
    expected: Type | tuple[Type, ...] | None = None,
) -> tuple[Expr | None, list[Diagnostic]]:
    """Parse and type-check one expression of a policy.

    `expected` is the type (or the choice of types) the place requires,
    such as BOOL for a `when:`. The returned `Expr.type` is the result type,
    widened to the expected one where int or decimal stands for money.
    Returns None and the diagnostics when there is any error.
    """
    parsed = parse(text, locate)
    if parsed.tree is None:
        return None, parsed.diagnostics

    checker = _Checker(context, parsed.operators)
    result = checker.check(parsed.tree)
    if expected is not None and result != UNKNOWN:
        result = checker.fit(parsed.tree, result, expected)
    checker.hidden_characters(text, locate)

    diagnostics = sorted(checker.diagnostics, key=Diagnostic.sort_key)
    if _has_error(diagnostics):
        return None, diagnostics
    return Expr(text, locate(0), parsed.tree, result), diagnostics


def check_template(
    text: str, locate: Locate, context: ExprContext, *, html: bool = False
) -> tuple[Template | None, list[Diagnostic]]:
    """Parse and type-check message copy with `{expression}` placeholders.

    The formatting functions (money, date, number) are available whatever
    `context.template` says. A placeholder may hold any scalar that cannot
    be empty; lists and nullable values are errors. With `html=True` a
    placeholder inside `<script>` or `<style>` is warned about, since HTML
    escaping does not make text safe there.
    """
    parsed = parse_template_parts(text, locate)
    checker = _Checker(dataclasses.replace(context, template=True), parsed.operators)
    checker.diagnostics.extend(parsed.diagnostics)

    placeholders = [part for part in parsed.parts if isinstance(part, Node)]
    for node in placeholders:
        checker.placeholder(node)
    if html:
        for offset in parsed.placeholder_offsets:
            if _inside_raw_html(text, offset):
                checker.warn(locate(offset), "W301", _RAW_HTML_MESSAGE)
    checker.hidden_characters(text, locate)

    diagnostics = sorted(checker.diagnostics, key=Diagnostic.sort_key)
    if _has_error(diagnostics):
        return None, diagnostics
    return Template(locate(0), parsed.parts), diagnostics


_RAW_HTML_MESSAGE = (
    "placeholder inside <script> or <style>: HTML escaping does not protect "
    "the page there"
)
# Characters of copy that lay it out and that every editor shows.
_LAYOUT = frozenset("\n\r\t")

_RAW_HTML_TAG = re.compile(r"<(/?)(script|style)\b", re.IGNORECASE)


def _inside_raw_html(text: str, offset: int) -> bool:
    """True when the last script/style tag before `offset` opens one."""
    last = None
    for match in _RAW_HTML_TAG.finditer(text, 0, offset):
        last = match
    return last is not None and last.group(1) == ""


def _has_error(diagnostics: Iterable[Diagnostic]) -> bool:
    return any(d.severity is Severity.ERROR for d in diagnostics)


class _Checker:
    """One pass over a tree: annotates types and collects diagnostics."""

    def __init__(self, context: ExprContext, operators: dict[Node, Location]) -> None:
        self.context = context
        self.operators = operators
        self.diagnostics: list[Diagnostic] = []

    # Reporting ------------------------------------------------------------

    def error(
        self, location: Location, code: str, message: str, hint: str | None = None
    ) -> Type:
        self.diagnostics.append(
            Diagnostic(location, Severity.ERROR, code, message, hint)
        )
        return UNKNOWN

    def warn(self, location: Location, code: str, message: str) -> None:
        self.diagnostics.append(Diagnostic(location, Severity.WARNING, code, message))

    def hidden_characters(self, text: str, locate: Locate) -> None:
        """W303 at each character of policy text that acts unseen (a bidi
        override, a zero-width space, ESC): a reviewer reads something
        other than what is sent or compared. Line breaks and tabs are
        layout, and visible as such."""
        for offset in characters.hidden_offsets(text):
            char = text[offset]
            if char in _LAYOUT:
                continue
            message = (
                f"invisible character {characters.describe(char)}: it can hide "
                "or reorder text without a reader of the policy seeing it; "
                "remove it"
            )
            self.warn(locate(offset), "W303", message)

    def operator_at(self, node: Node) -> Location:
        return self.operators.get(node, node.location)

    # Entry points ---------------------------------------------------------

    def check(self, node: Node) -> Type:
        node.type = self.visit(node)
        return node.type

    def fit(self, node: Node, result: Type, expected: Type | tuple[Type, ...]) -> Type:
        """The result type as the place sees it, or UNKNOWN after an error."""
        choices = expected if isinstance(expected, tuple) else (expected,)
        choice = _fit(result, choices)
        if choice is None:
            wanted = " or ".join(str(choice.as_required()) for choice in choices)
            message = f"expected {wanted}, but this expression is {result}"
            hint = _fit_hint(result, choices)
            return self.error(node.location, "E307", message, hint)
        if result.nullable and not choice.nullable:
            message = f"`{describe(node)}` may be empty, and a value is required here"
            hint = "use coalesce(value, fallback)"
            return self.error(node.location, "E305", message, hint)
        return Type(choice.name, result.nullable, choice.item)

    def placeholder(self, node: Node) -> None:
        result = self.check(node)
        if result == UNKNOWN:
            return
        if result.name == "list":
            message = f"a list cannot be shown in a message: `{describe(node)}`"
            self.error(node.location, "E307", message)
        elif result.nullable:
            message = f"`{describe(node)}` may be empty"
            hint = f"use coalesce({describe(node)}, '...')"
            self.error(node.location, "E305", message, hint)

    # Nodes ----------------------------------------------------------------

    def visit(self, node: Node) -> Type:
        match node:
            case Literal():
                result = _literal_type(node.value)
            case DurationLit():
                result = DURATION
            case ListLit():
                result = self.list_literal(node)
            case Name():
                result = self.name(node)
            case Attribute():
                result = self.attribute(node)
            case Call():
                result = self.call(node)
            case Unary():
                result = self.unary(node)
            case Between():
                result = self.between(node)
            case Binary():
                result = self.binary(node)
            case _:  # pragma: no cover - the parser builds no other node
                raise TypeError(f"unknown node {node!r}")
        node.type = result
        return result

    def list_literal(self, node: ListLit) -> Type:
        item_type: Type | None = None  # None until the first item is seen
        for item in node.items:
            found = self.required(item, self.visit(item))
            if found == UNKNOWN or item_type == UNKNOWN:
                item_type = UNKNOWN
            elif found.name == "list":
                message = "a list cannot hold lists"
                item_type = self.error(item.location, "E302", message)
            elif item_type is None:
                item_type = found
            else:
                joined = _join(item_type, found)
                if joined is None:
                    message = (
                        f"list items must share one type: {found} after {item_type}"
                    )
                    joined = self.error(item.location, "E302", message)
                item_type = joined
        if item_type == UNKNOWN:
            return UNKNOWN
        # `[]` holds nothing: any value may be looked for in it, never found.
        return list_of(NULL if item_type is None else item_type)

    def name(self, node: Name) -> Type:
        root = ROOT_NAMES.get(node.name)
        if root is None:
            return self.unknown_name(node)
        if not is_available(root, self.context):
            message = f"`{node.name}` is not available here"
            return self.error(node.location, "E306", message, f"only {root.where}")
        if root.type is None:
            message = f"`{node.name}` cannot be used on its own"
            hint = (
                "name an aggregate: history.late_count(6 months)"
                if node.name == "history"
                else f"name one of its fields: {node.name}.<field>"
            )
            return self.error(node.location, "E301", message, hint)
        return root.type

    def unknown_name(self, node: Name) -> Type:
        if node.name in UNAVAILABLE_NAMES:
            message = f"`{node.name}` is not available in expressions"
            return self.error(
                node.location, "E306", message, UNAVAILABLE_NAMES[node.name]
            )
        if node.name in FUNCTIONS:
            message = f"`{node.name}` is a function"
            call = f"call it: {FUNCTIONS[node.name].signature}"
            return self.error(node.location, "E301", message, call)

        hint: str | None = None
        for record in RECORDS:
            fields = record_fields(record, self.context)
            if self.record_available(record) and node.name in fields:
                hint = f"did you mean `{record}.{node.name}`?"
                break
        if hint is None:
            words = [*available_names(self.context), "true", "false", "null"]
            hint = _did_you_mean(node.name, words)
        return self.error(node.location, "E301", f"unknown name `{node.name}`", hint)

    def record_available(self, record: str) -> bool:
        return is_available(ROOT_NAMES[record], self.context)

    def attribute(self, node: Attribute) -> Type:
        target = node.target
        at = self.operator_at(node)
        if isinstance(target, Name) and target.name in RECORDS:
            if not self.record_available(target.name):
                return self.name(target)
            target.type = None  # a record has no type of its own
            fields = record_fields(target.name, self.context)
            if node.name in fields:
                return fields[node.name]
            message = f"unknown field `{target.name}.{node.name}`"
            dotted = [f"{target.name}.{name}" for name in fields]
            hint = _did_you_mean(f"{target.name}.{node.name}", dotted)
            return self.error(at, "E301", message, hint)

        if isinstance(target, Name) and target.name == "history":
            if node.name in HISTORY_AGGREGATES:
                message = f"`history.{node.name}` needs a window"
                hint = f"history.{node.name}(6 months)"
                return self.error(at, "E303", message, hint)
            return self.unknown_aggregate(node.name, at)

        found = self.visit(target)
        if found == UNKNOWN:
            return UNKNOWN
        message = f"unknown field `{node.name}`: a {found} value has no fields"
        return self.error(at, "E301", message)

    def unknown_aggregate(self, name: str, at: Location) -> Type:
        message = f"unknown history aggregate `{name}`"
        return self.error(at, "E304", message, _did_you_mean(name, HISTORY_AGGREGATES))

    def unary(self, node: Unary) -> Type:
        operand = self.required(node.operand, self.visit(node.operand))
        if operand == UNKNOWN:
            return UNKNOWN
        if node.op == "not":
            if operand != BOOL:
                message = f"`not` needs true or false, not {operand}"
                return self.error(node.location, "E302", message)
            return BOOL
        if operand.name not in NUMERIC:
            message = f"cannot negate a {operand} value"
            return self.error(node.location, "E302", message)
        return operand

    def binary(self, node: Binary) -> Type:
        left = self.visit(node.left)
        right = self.visit(node.right)
        if node.op in ("==", "!=") and NULL in (left, right):
            return BOOL  # compared with null: the one use of a nullable value

        left = self.required(node.left, left)
        right = self.required(node.right, right)
        if UNKNOWN in (left, right):
            return UNKNOWN
        at = self.operator_at(node)

        if node.op in ("and", "or"):
            for side, found in ((node.left, left), (node.right, right)):
                if found != BOOL:
                    message = f"`{node.op}` needs true or false on both sides"
                    hint = f"`{describe(side)}` is {found}"
                    self.error(side.location, "E302", message, hint)
            return BOOL
        if node.op in _ARITHMETIC:
            return self.arithmetic(node.op, left, right, at)
        if node.op in ("in", "not in"):
            return self.membership(node, left, right, at)
        if not _comparable(left, right, ordered=node.op in _ORDERING):
            message = f"cannot compare {left} with {right}"
            return self.error(at, "E302", message, _compare_hint(left, right))
        return BOOL

    def arithmetic(self, op: str, left: Type, right: Type, at: Location) -> Type:
        result = _arithmetic(op, left, right)
        if result is not None:
            return result
        message = f"cannot {_OP_WORDS[op]} {left} and {right}"
        hint = None
        if op == "-" and left.name == right.name and left.name in ("date", "datetime"):
            hint = "use days_between(first, second)"
        elif op == "*" and left == right == MONEY:
            hint = "multiply money by a number"
        elif op == "/" and right == MONEY:
            hint = "only money can be divided by money"
        return self.error(at, "E302", message, hint)

    def membership(self, node: Binary, left: Type, right: Type, at: Location) -> Type:
        if right.name != "list":
            message = f"`{node.op}` needs a list on its right, not {right}"
            hint = 'write the values in brackets: ["a", "b"]'
            return self.error(node.right.location, "E302", message, hint)
        assert right.item is not None
        empty = right.item == NULL
        if not empty and not _comparable(left, right.item, ordered=False):
            message = f"cannot look for {left} in a list of {right.item}"
            return self.error(at, "E302", message)
        return BOOL

    def between(self, node: Between) -> Type:
        found = [
            self.required(part, self.visit(part))
            for part in (node.value, node.low, node.high)
        ]
        if UNKNOWN in found:
            return UNKNOWN
        value, low, high = found
        for bound, bound_type in ((node.low, low), (node.high, high)):
            if not _comparable(value, bound_type, ordered=True):
                message = f"cannot compare {value} with {bound_type}"
                hint = _compare_hint(value, bound_type)
                self.error(bound.location, "E302", message, hint)
        bounds = _constant(node.low), _constant(node.high)
        if _inverted(*bounds):
            self.warn(
                node.low.location,
                "W302",
                f"`between` with its low bound {bounds[0]} above its high bound"
                f" {bounds[1]} is never true: write the low bound first",
            )
        return BOOL

    # Calls ----------------------------------------------------------------

    def call(self, node: Call) -> Type:
        at = self.operator_at(node)
        if node.function.startswith("history."):
            return self.aggregate(node, node.function.removeprefix("history."), at)

        function = FUNCTIONS.get(node.function)
        if function is None:
            return self.unknown_function(node)
        if function.template_only and not self.context.template:
            message = f"{node.function}() formats a value for a message"
            return self.error(node.location, "E306", message, "only in templates")

        args = [self.visit(arg) for arg in node.args]
        count = len(args)
        too_few = count < function.min_args
        too_many = function.max_args is not None and count > function.max_args
        if too_few or too_many:
            message = f"wrong number of arguments to {node.function}(): {count}"
            return self.error(node.location, "E303", message, function.signature)
        if UNKNOWN in args:
            return UNKNOWN
        return self.apply(node, args)

    def unknown_function(self, node: Call) -> Type:
        for arg in node.args:
            self.visit(arg)
        head = node.function.split(".")[0]
        if head in RECORDS:
            message = f"`{node.function}` is a field, not a function"
            return self.error(node.location, "E304", message)
        names = [
            name
            for name, function in FUNCTIONS.items()
            if self.context.template or not function.template_only
        ]
        message = f"unknown function `{node.function}`"
        hint = _did_you_mean(node.function, names)
        return self.error(node.location, "E304", message, hint)

    def aggregate(self, node: Call, name: str, at: Location) -> Type:
        args = [self.visit(arg) for arg in node.args]
        if name not in HISTORY_AGGREGATES:
            return self.unknown_aggregate(name, at)
        signature = f"history.{name}(window), e.g. history.{name}(6 months)"
        if len(args) != 1:
            message = f"history.{name} takes one window, got {len(args)} arguments"
            return self.error(node.location, "E303", message, signature)
        if args[0] != UNKNOWN and args[0] != DURATION:
            message = f"history.{name} needs a duration, not {args[0]}"
            return self.error(node.args[0].location, "E303", message, signature)
        return HISTORY_AGGREGATES[name]

    def apply(self, node: Call, args: list[Type]) -> Type:
        """The result type of a library function, checking its arguments."""
        name = node.function
        if name == "coalesce":
            return self.coalesce(node, args)

        args = [
            self.required(arg_node, t)
            for arg_node, t in zip(node.args, args, strict=True)
        ]
        if UNKNOWN in args:
            return UNKNOWN

        if name in ("min", "max"):
            return self.extreme(node, args)
        if name in ("abs", "round", "money", "number"):
            if args[0].name not in NUMERIC:
                message = f"{name}() needs a number, not {args[0]}"
                return self.error(node.args[0].location, "E303", message)
            if name == "round" and args[1] != INT:
                message = f"round() needs a whole number of digits, not {args[1]}"
                return self.error(node.args[1].location, "E303", message)
            return STRING if name in ("money", "number") else args[0]
        if name == "len":
            if args[0].name not in ("string", "list"):
                message = f"len() needs text or a list, not {args[0]}"
                return self.error(node.args[0].location, "E303", message)
            return INT
        if name in ("lower", "upper"):
            return self.expect_args(node, args, STRING, STRING)
        if name == "days_between":
            return self.expect_args(node, args, DATE, INT)
        if name == "date":
            return self.date_format(node, args)
        raise KeyError(name)  # pragma: no cover - FUNCTIONS and apply agree

    def extreme(self, node: Call, args: list[Type]) -> Type:
        """`min` and `max`: numbers, dates or datetimes, all of one kind."""
        result: Type | None = None
        for arg_node, found in zip(node.args, args, strict=True):
            if found.name not in _EXTREMES:
                message = (
                    f"{node.function}() takes numbers, dates or datetimes, not {found}"
                )
                return self.error(arg_node.location, "E303", message)
            joined = found if result is None else _join(result, found)
            if joined is None:
                message = f"{node.function}() cannot mix {result} and {found}"
                return self.error(arg_node.location, "E303", message)
            result = joined
        assert result is not None  # FUNCTIONS asks for two arguments at least
        return result

    def expect_args(
        self, node: Call, args: list[Type], wanted: Type, result: Type
    ) -> Type:
        ok = True
        for arg_node, found in zip(node.args, args, strict=True):
            if found != wanted:
                message = f"{node.function}() needs {wanted}, not {found}"
                hint = FUNCTIONS[node.function].signature
                self.error(arg_node.location, "E303", message, hint)
                ok = False
        return result if ok else UNKNOWN

    def coalesce(self, node: Call, args: list[Type]) -> Type:
        result = NULL
        for arg_node, found in zip(node.args, args, strict=True):
            joined = _join(result, found)
            if joined is None:
                message = f"coalesce() cannot mix {result.as_required()} and {found}"
                return self.error(arg_node.location, "E303", message)
            result = joined
        if result.name == "null":
            message = "coalesce() needs at least one value that is not null"
            return self.error(node.location, "E303", message)
        if any(not found.nullable for found in args):
            return result.as_required()
        return result.as_nullable()

    def date_format(self, node: Call, args: list[Type]) -> Type:
        if args[0].name not in ("date", "datetime"):
            message = f"date() needs a date or a datetime, not {args[0]}"
            return self.error(node.args[0].location, "E303", message)
        if len(node.args) == 2:
            pattern = node.args[1]
            if not isinstance(pattern, Literal) or not isinstance(pattern.value, str):
                message = "the date pattern must be written in quotes"
                hint = "date(invoice.due_date, 'dd/MM/yyyy')"
                return self.error(pattern.location, "E303", message, hint)
            if not pattern.value.strip():
                message = "the date pattern is empty"
                return self.error(pattern.location, "E303", message, "e.g. 'dd/MM'")
        return STRING

    # Nullability ------------------------------------------------------------

    def required(self, node: Node, found: Type) -> Type:
        """`found`, or UNKNOWN after an error when it may be empty."""
        if found == UNKNOWN or not found.nullable:
            return found
        if found == NULL:
            message = "null is only for comparisons (`== null`) and coalesce()"
            return self.error(node.location, "E305", message)
        message = f"`{describe(node)}` may be empty"
        hint = f"compare it with null, or use coalesce({describe(node)}, ...)"
        return self.error(node.location, "E305", message, hint)


# Type algebra ---------------------------------------------------------------


def _literal_type(value: object) -> Type:
    if value is None:
        return NULL
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int):
        return INT
    if isinstance(value, Decimal):
        return DECIMAL
    if isinstance(value, str):
        return STRING
    if isinstance(value, dt.date):
        return DATE
    raise TypeError(f"unexpected literal {value!r}")  # pragma: no cover


def _join(first: Type, second: Type) -> Type | None:
    """The type that holds values of both, or None.

    Numbers join to the widest (int < decimal < money); null joins with
    anything into its nullable form.
    """
    nullable = first.nullable or second.nullable
    if first.name == "null":
        return second.as_nullable() if nullable else second
    if second.name == "null":
        return first.as_nullable()
    if first.name in NUMERIC and second.name in NUMERIC:
        wider = max(first.name, second.name, key=_NUMERIC_RANK.__getitem__)
        result = Type(wider)
    elif first.as_required() == second.as_required():
        result = first.as_required()
    else:
        return None
    return result.as_nullable() if nullable else result


def _constant(node: Node) -> int | Decimal | str | dt.date | None:
    """The value of a literal bound (`100`, `-1.5`, `2026-03-09`), or None."""
    if isinstance(node, Unary) and node.op == "-":
        inner = _constant(node.operand)
        return -inner if isinstance(inner, int | Decimal) else None
    if isinstance(node, Literal) and not isinstance(node.value, bool):
        return node.value
    return None


def _inverted(low: object, high: object) -> bool:
    """Both bounds are constants of one kind, and low > high."""
    numbers = (int, Decimal)
    if isinstance(low, numbers) and isinstance(high, numbers):
        return low > high
    if isinstance(low, str) and isinstance(high, str):
        return low > high
    if isinstance(low, dt.date) and isinstance(high, dt.date):
        return low > high
    return False


def _comparable(left: Type, right: Type, *, ordered: bool) -> bool:
    if left.name in NUMERIC and right.name in NUMERIC:
        return True
    if left.name != right.name:
        return False
    return left.name in (_ORDERED if ordered else _EQUATABLE)


def _arithmetic(op: str, left: Type, right: Type) -> Type | None:
    if left.name in NUMERIC and right.name in NUMERIC:
        money = MONEY in (left, right)
        if op == "*" and left == right == MONEY:
            return None
        if op == "/":
            if right == MONEY:
                return DECIMAL if left == MONEY else None
            return MONEY if money else DECIMAL
        return _join(left, right)
    if op in ("+", "-") and left.name in ("date", "datetime") and right == DURATION:
        return left
    if op == "+" and left == DURATION and right.name in ("date", "datetime"):
        return right
    return None


def _compare_hint(left: Type, right: Type) -> str | None:
    names = {left.name, right.name}
    if names == {"date", "datetime"}:
        return "compare a date with a date: `today` is a date, `now` a datetime"
    if "string" in names and names & NUMERIC:
        return "write numbers without quotes"
    return None


def _fit(result: Type, choices: tuple[Type, ...]) -> Type | None:
    """The expected type that `result` stands for, or None when none fits."""
    if result.name == "null":
        return next((choice for choice in choices if choice.nullable), None)
    for choice in choices:  # an exact match wins over a widening
        if choice.name == result.name and choice.item == result.item:
            return choice
    for choice in choices:
        if (result.name, choice.name) in _WIDENINGS:
            return choice
    return None


def _fit_hint(result: Type, choices: tuple[Type, ...]) -> str | None:
    if BOOL in choices and result.name in NUMERIC:
        return "compare it, e.g. `invoice.amount_due >= 50.00`"
    return None


def _did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None
