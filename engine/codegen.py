"""Compiling checked expressions into Python functions.

Each expression becomes one small Python function of a `Scope`, written as
source text and compiled once, so evaluating a rule for a customer costs
about what the same logic written by hand would:

    customer.late == 0 and history.late_count(6 months) == 0

becomes

    def _e0(s):
        try:
            return ((s.customer['late'] == 0) and (s.history.late_count(_K0) == 0))
        except _FAILURES as error:
            raise _failure(_L0, _S0, error) from error

with `_K0 = Duration(6, 'months')` built once, outside the function.

The generated text holds no name or value that comes straight from a
policy: fields are dict keys written with `repr()`, literals are `repr()`
of Python values or constants built before compiling, and the functions
run with no builtins, only the helpers listed in `_HELPERS`. The tree must
have been checked by `dsl.checker`; an unchecked tree is a programming
error and raises ValueError.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

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
from dsl.expressions import children_of, describe
from dsl.library import FUNCTIONS, HISTORY_AGGREGATES, ROOT_NAMES
from dsl.model import Expr
from dsl.types import Type
from engine import runtime
from engine.history import describe_duration
from engine.scope import Duration, Scope

logger = logging.getLogger(__name__)

Evaluator = Callable[[Scope], Any]

# Everything generated code can reach besides its own constants.
_HELPERS: dict[str, object] = {
    "_Decimal": Decimal,
    "_FAILURES": runtime.FAILURES,
    "_failure": runtime.failure,
    "_add_months": runtime.add_months,
    "_add_business_days": runtime.add_business_days,
    "_shift": runtime.shift,
    "_round": runtime.round_half_up,
    "_duration_text": describe_duration,
    "_escape": html.escape,
    "_message_value": runtime.message_value,
    "_min": min,
    "_max": max,
    "_abs": abs,
    "_len": len,
}

# Records reached as `s.<record>[...]`; a local variable when used twice.
_RECORD_LOCALS = {"customer": "c", "invoice": "i", "offer": "o"}
_SCOPE_VALUES = frozenset(
    name for name, root in ROOT_NAMES.items() if root.type is not None
)
_COMPARISONS = frozenset({"==", "!=", "<", "<=", ">", ">="})
_DECIMALS = frozenset({"decimal", "money"})


def compile_expression(expr: Expr) -> Evaluator:
    """One checked expression as a function of a `Scope`."""
    return compile_many([expr])[0]


def compile_many(exprs: Sequence[Expr]) -> list[Evaluator]:
    """Several expressions, compiled with a single call to `compile()`."""
    module = _Module()
    names = [module.add_expression(expr) for expr in exprs]
    return module.build(names)


def compile_first_match(exprs: Sequence[Expr]) -> Callable[[Scope], int | None]:
    """Rules tried in order (segments: first match wins) as one function
    returning the position of the first that holds, or None.

    Each rule is the code `compile_expression` gives it, with its own
    location on failure; choosing costs one call however far down the list
    the match is.
    """
    module = _Module()
    name = module.add_first_match(exprs)
    chooser: Callable[[Scope], int | None] = module.build([name])[0]
    return chooser


def compile_template(
    template: Template, *, html: bool = False
) -> Callable[[Scope], str]:
    """A checked message template as a function returning the text.

    Placeholders are rendered by type: money with `fmt.money`, numbers with
    `fmt.number`, dates and datetimes with `fmt.date`/`fmt.datetime` and the
    locale's default pattern, text through `runtime.message_value` (no line
    break, control or invisible character from the data reaches the copy),
    bools as `true`/`false` (a webhook body may be JSON) and durations as
    the policy writes them (`3 days`). With `html=True` every placeholder
    value is HTML-escaped; the literal text is the author's HTML and is kept.

    Only text values are cleaned: the other kinds are formatted by us or by
    the locale's CLDR patterns, whose marks (U+200F in Hebrew amounts) are
    meant to be there.
    """
    module = _Module()
    name = module.add_template(template, html=html)
    return module.build([name])[0]


class _Module:
    """Generated functions and the constants they share, compiled together."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.constants: dict[str, object] = {}
        self.constant_names: dict[tuple[type, str], str] = {}
        self.count = 0

    def constant(self, value: object) -> str:
        """A global name bound to `value`, built once before compiling."""
        key = (type(value), repr(value))
        if key not in self.constant_names:
            name = f"_K{len(self.constant_names)}"
            self.constant_names[key] = name
            self.constants[name] = value
        return self.constant_names[key]

    def add_expression(self, expr: Expr) -> str:
        name = f"_e{self.count}"
        self.count += 1
        body = _Function(self)
        code = body.expression(expr.tree)
        if _widens(expr.tree.type, expr.type):
            code = body.as_decimal(expr.tree, code)
        location = self.constant(expr.location)
        source = self.constant(expr.source)

        self.lines.append(f"def {name}(s):")
        self.lines.extend(body.locals())
        self.lines.append("    try:")
        self.lines.append(f"        return {code}")
        self.lines.append("    except _FAILURES as error:")
        self.lines.append(
            f"        raise _failure({location}, {source}, error) from error"
        )
        return name

    def add_first_match(self, exprs: Sequence[Expr]) -> str:
        name = f"_m{self.count}"
        self.count += 1
        self.lines.append(f"def {name}(s):")
        for position, expr in enumerate(exprs):
            body = _Function(self)
            code = body.expression(expr.tree)
            location = self.constant(expr.location)
            source = self.constant(expr.source)
            self.lines.extend(body.locals())
            self.lines += [
                "    try:",
                f"        if {code}:",
                f"            return {position}",
                "    except _FAILURES as error:",
                f"        raise _failure({location}, {source}, error) from error",
            ]
        self.lines.append("    return None")
        return name

    def add_template(self, template: Template, *, html: bool) -> str:
        name = f"_t{self.count}"
        self.count += 1
        body = _Function(self)
        statements: list[str] = []
        pieces: list[str] = []

        for part in template.parts:
            if isinstance(part, str):
                pieces.append(repr(part))
                continue
            value = f"p{len(statements)}"
            rendered = body.render(part)
            if html:
                rendered = f"_escape({rendered})"
            location = self.constant(part.location)
            source = self.constant(describe(part))
            statements += [
                "    try:",
                f"        {value} = {rendered}",
                "    except _FAILURES as error:",
                f"        raise _failure({location}, {source}, error) from error",
            ]
            pieces.append(value)

        self.lines.append(f"def {name}(s):")
        self.lines.extend(body.locals())
        self.lines.extend(statements)
        joined = f"''.join(({', '.join(pieces)},))" if pieces else "''"
        self.lines.append(f"    return {joined}")
        return name

    def build(self, names: list[str]) -> list[Evaluator]:
        source = "\n".join(self.lines) + "\n"
        logger.debug("compiled %d expression functions", len(names))
        namespace: dict[str, Any] = {"__builtins__": {}}
        namespace.update(_HELPERS)
        namespace.update(self.constants)
        exec(compile(source, "<ruleset expressions>", "exec"), namespace)
        return [namespace[name] for name in names]


class _Function:
    """Python source for the body of one generated function."""

    def __init__(self, module: _Module) -> None:
        self.module = module
        self.record_uses: dict[str, int] = {}
        self.temporaries = 0

    def locals(self) -> list[str]:
        """`c = s.customer` for each record the body reads more than once."""
        return [
            f"    {_RECORD_LOCALS[record]} = s.{record}"
            for record, uses in self.record_uses.items()
            if uses > 1
        ]

    def expression(self, node: Node) -> str:
        self.count_records(node)
        return self.emit(node)

    def render(self, node: Node) -> str:
        """A template placeholder as text, formatted by its type."""
        self.count_records(node)
        code = self.emit(node)
        kind = _type_of(node).name
        if kind == "money":
            return f"s.fmt.money({code})"
        if kind in ("int", "decimal"):
            return f"s.fmt.number({code})"
        if kind == "date":
            return f"s.fmt.date({code}, None)"
        if kind == "datetime":
            return f"s.fmt.datetime({code}, None)"
        if kind == "bool":
            return f"('true' if {code} else 'false')"
        if kind == "duration":
            return f"_duration_text({code})"
        if kind == "string":
            return f"_message_value({code})"
        raise ValueError(f"a {kind} value cannot be rendered")

    def count_records(self, node: Node) -> None:
        stack = [node]
        while stack:
            current = stack.pop()
            if isinstance(current, Attribute) and isinstance(current.target, Name):
                record = current.target.name
                if record in _RECORD_LOCALS:
                    self.record_uses[record] = self.record_uses.get(record, 0) + 1
            stack.extend(children_of(current))

    def record(self, name: str) -> str:
        if self.record_uses.get(name, 0) > 1:
            return _RECORD_LOCALS[name]
        return f"s.{name}"

    def as_decimal(self, node: Node, code: str) -> str:
        """`code` as a Decimal, where an int stands for money or a decimal."""
        if isinstance(node, Literal) and isinstance(node.value, int):
            return self.module.constant(Decimal(node.value))
        return f"_Decimal({code})"

    def widened(self, node: Node, result: Type | None) -> str:
        code = self.emit(node)
        if _widens(node.type, result):
            return self.as_decimal(node, code)
        return code

    # Nodes ------------------------------------------------------------------

    def emit(self, node: Node) -> str:
        match node:
            case Literal():
                return self.literal(node.value)
            case DurationLit():
                return self.module.constant(Duration(node.amount, node.unit))
            case ListLit():
                return self.list_literal(node)
            case Name(name=name) if name in _SCOPE_VALUES:
                return f"s.{name}"
            case Attribute(target=Name(name=record), name=field) if (
                record in _RECORD_LOCALS
            ):
                return f"{self.record(record)}[{field!r}]"
            case Call():
                return self.call(node)
            case Unary(op="not", operand=operand):
                return f"(not {self.emit(operand)})"
            case Unary(op="-", operand=operand):
                return f"(-{self.emit(operand)})"
            case Between(value=value, low=low, high=high):
                return f"({self.emit(low)} <= {self.emit(value)} <= {self.emit(high)})"
            case Binary():
                return self.binary(node)
        raise ValueError(f"cannot compile {describe(node)!r}: not a checked tree")

    def literal(self, value: object) -> str:
        if value is None or isinstance(value, bool | int | str):
            return repr(value)
        if isinstance(value, Decimal | dt.date):
            return self.module.constant(value)
        raise ValueError(f"unexpected literal {value!r}")

    def list_literal(self, node: ListLit, *, as_set: bool = False) -> str:
        """A list: a constant when every item is a literal.

        On the right of `in` the constant is a frozenset, which answers in
        one step; elsewhere (`len([...])`) a tuple, which keeps duplicates.
        """
        values = [item.value for item in node.items if isinstance(item, Literal)]
        if len(values) == len(node.items):
            return self.module.constant(frozenset(values) if as_set else tuple(values))
        items = [self.emit(item) for item in node.items]
        return "(" + "".join(f"{item}, " for item in items) + ")"

    def binary(self, node: Binary) -> str:
        op, left, right = node.op, node.left, node.right
        if op in ("==", "!=") and "null" in (_type_of(left).name, _type_of(right).name):
            return self.null_test(op, left, right)
        if op in ("in", "not in") and isinstance(right, ListLit):
            items = self.list_literal(right, as_set=True)
            return f"({self.emit(left)} {op} {items})"
        if op in ("and", "or", "in", "not in") or op in _COMPARISONS:
            return f"({self.emit(left)} {op} {self.emit(right)})"

        left_type, right_type = _type_of(left), _type_of(right)
        if left_type.name in ("date", "datetime") or right_type.name in (
            "date",
            "datetime",
        ):
            return self.date_arithmetic(node)
        if op == "/" and left_type.name == right_type.name == "int":
            # Whole numbers divide into a Decimal, never into a float.
            return f"({self.as_decimal(left, self.emit(left))} / {self.emit(right)})"
        return f"({self.emit(left)} {op} {self.emit(right)})"

    def null_test(self, op: str, left: Node, right: Node) -> str:
        value = right if _type_of(left).name == "null" else left
        if _type_of(value).name == "null":
            return repr(op == "==")  # null == null
        test = "is" if op == "==" else "is not"
        return f"({self.emit(value)} {test} None)"

    def date_arithmetic(self, node: Binary) -> str:
        day, span = node.left, node.right
        if _type_of(day).name == "duration":
            day, span = span, day  # `3 days + today`
        sign = -1 if node.op == "-" else 1
        code = self.emit(day)

        if not isinstance(span, DurationLit):
            return f"_shift({code}, {self.emit(span)}, {sign}, s.calendar)"
        amount = span.amount * sign
        if span.unit in ("days", "weeks"):
            delta = dt.timedelta(**{span.unit: span.amount})
            return f"({code} {node.op} {self.module.constant(delta)})"
        if span.unit == "months":
            return f"_add_months({code}, {amount})"
        if span.unit == "years":
            return f"_add_months({code}, {amount * 12})"
        if _type_of(day).name == "date":
            return f"s.calendar.add_business_days({code}, {amount})"
        return f"_add_business_days({code}, {amount}, s.calendar)"

    def call(self, node: Call) -> str:
        name, args = node.function, node.args
        if name.startswith("history."):
            aggregate = name.removeprefix("history.")
            if aggregate not in HISTORY_AGGREGATES or len(args) != 1:
                raise ValueError(f"cannot compile {name!r}: not a checked tree")
            return f"s.history.{aggregate}({self.emit(args[0])})"
        if name not in FUNCTIONS:
            raise ValueError(f"cannot compile {name!r}: not a checked tree")

        result = node.type
        if name in ("min", "max", "abs"):
            codes = [self.widened(arg, result) for arg in args]
            return f"_{name}({', '.join(codes)})"
        if name == "coalesce":
            return self.coalesce(args, result)
        if name == "round":
            return f"_round({self.emit(args[0])}, {self.emit(args[1])})"
        if name == "len":
            return f"_len({self.emit(args[0])})"
        if name in ("lower", "upper"):
            return f"{self.emit(args[0])}.{name}()"
        if name == "days_between":
            return f"({self.emit(args[1])} - {self.emit(args[0])}).days"
        if name == "money":
            return f"s.fmt.money({self.widened(args[0], Type('money'))})"
        if name == "number":
            return f"s.fmt.number({self.emit(args[0])})"
        # date(value, pattern)
        value = self.emit(args[0])
        pattern = self.emit(args[1]) if len(args) == 2 else "None"
        method = "datetime" if _type_of(args[0]).name == "datetime" else "date"
        return f"s.fmt.{method}({value}, {pattern})"

    def coalesce(self, args: list[Node], result: Type | None) -> str:
        """`coalesce(a, b, c)`: the first value that is not None, lazily."""
        code = self.widened(args[-1], result)
        for arg in reversed(args[:-1]):
            if _type_of(arg).name == "null":
                continue  # `coalesce(null, x)` is x
            temporary = f"_v{self.temporaries}"
            self.temporaries += 1
            test = f"({temporary} := {self.emit(arg)}) is not None"
            value = temporary
            if _widens(arg.type, result):
                value = f"_Decimal({temporary})"
            code = f"({value} if {test} else {code})"
        return code


def _type_of(node: Node) -> Type:
    if node.type is None:
        raise ValueError(f"cannot compile {describe(node)!r}: not a checked tree")
    return node.type


def _widens(found: Type | None, wanted: Type | None) -> bool:
    """True where an int value stands for a decimal or money one."""
    return (
        found is not None
        and wanted is not None
        and found.name == "int"
        and wanted.name in _DECIMALS
    )
