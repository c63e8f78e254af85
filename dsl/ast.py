"""The syntax tree of policy expressions.

The parser builds these nodes from the Lark tree; the type checker annotates
them (`node.type`), and the engine's code generator turns a checked tree into
Python source. Every node keeps the location of its first character in the
policy file, so a problem inside an expression points at its own column.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from dsl.diagnostics import Location
from dsl.types import Type


@dataclass(eq=False)
class Node:
    location: Location
    # Set by the type checker; None until then.
    type: Type | None = field(default=None, init=False)


@dataclass(eq=False)
class Literal(Node):
    """bool, int, Decimal, str, date or None, exactly as written."""

    value: bool | int | Decimal | str | dt.date | None


@dataclass(eq=False)
class DurationLit(Node):
    """`3 days`, `6 months`, `2 business days`, `1 year`."""

    amount: int
    unit: str  # "days", "business_days", "weeks", "months", "years"


@dataclass(eq=False)
class ListLit(Node):
    items: list[Node]


@dataclass(eq=False)
class Name(Node):
    """A root name: `customer`, `invoice`, `history`, `today`, `score`, ..."""

    name: str


@dataclass(eq=False)
class Attribute(Node):
    """`customer.phone`: only declared fields, never Python attributes."""

    target: Node
    name: str


@dataclass(eq=False)
class Call(Node):
    """`min(a, b)` or `history.late_count(6 months)`.

    `function` is the full dotted name (`"min"`, `"history.late_count"`);
    only names in the fixed function library are accepted.
    """

    function: str
    args: list[Node]


@dataclass(eq=False)
class Unary(Node):
    op: str  # "not", "-"
    operand: Node


@dataclass(eq=False)
class Binary(Node):
    """Arithmetic, comparison, `and`, `or`, `in`, `not in`."""

    op: str  # "+", "-", "*", "/", "==", "!=", "<", "<=", ">", ">=",
    # "and", "or", "in", "not in"
    left: Node
    right: Node


@dataclass(eq=False)
class Between(Node):
    """`x between a and b`, inclusive on both ends."""

    value: Node
    low: Node
    high: Node


@dataclass(eq=False)
class Template:
    """A message template: literal text and `{expression}` placeholders."""

    location: Location
    parts: list[str | Node]
