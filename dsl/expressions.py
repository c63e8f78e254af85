"""Parsing expressions and `{...}` templates into `dsl.ast` nodes.

The grammar lives in `expression.lark` (LALR, contextual lexer). The parser
turns Lark's tree into our own nodes, each carrying the location of its
first character in the policy file, computed with the caller's `locate`
function. A `locate` maps an offset in the expression text to a place in the
file; it is called with offsets from 0 to `len(text)` inclusive (the end of
the text, for "unexpected end" errors).

Syntax diagnostics:

- E201 unexpected token or character (and calls of things that are not
  functions, and expressions nested too deeply);
- E202 unexpected end of the expression;
- E203 bad literal: an invalid date, an unknown escape in a string, an
  unclosed string, an unknown duration unit;
- E204 template braces: an unclosed `{`, a stray `}`, an empty `{}`.
"""

from __future__ import annotations

import datetime as dt
import difflib
import functools
import importlib.resources
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

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

Locate = Callable[[int], Location]

# Deeper nesting than this is refused: real policies stay far below it, and
# it keeps the checker, the code generator and Python's own compiler away
# from their recursion limits. A flat chain of one operator (`a or b or c`,
# `x + y + z`) is one level, whatever its length.
MAX_DEPTH = 40

# The height of the tree once chains are folded: `a + b + c` folds to the
# left, one level per operator; `and`/`or` chains fold balanced, which
# evaluates them in the same order. Python's compiler refuses nesting much
# beyond this.
MAX_HEIGHT = 120

# `2 business days` is the only two-word unit.
DURATION_UNITS = {
    "day": "days",
    "days": "days",
    "week": "weeks",
    "weeks": "weeks",
    "month": "months",
    "months": "months",
    "year": "years",
    "years": "years",
}
_ESCAPES = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t"}

# Lark's terminal names, said in plain words for "expected ..." messages.
_VALUE_TERMINALS = frozenset(
    {"NAME", "INT", "DECIMAL", "STRING", "DATE", "TRUE", "FALSE", "NULL"}
    | {"LPAR", "LSQB", "MINUS", "NOT"}
)
_OPERATOR_TERMINALS = frozenset(
    {"OR", "AND", "COMPARE", "IN", "BETWEEN", "PLUS", "STAR", "SLASH", "DOT"}
)
_PUNCTUATION = {
    "RPAR": "')'",
    "RSQB": "']'",
    "COMMA": "','",
    "$END": "the end of the expression",
}
_CHARACTER_HINTS = {
    "=": "use == to compare",
    "&": "use `and`",
    "|": "use `or`",
    "!": "use `not`, or != to compare",
    "{": "braces are only for template placeholders",
    "}": "braces are only for template placeholders",
}


@dataclass
class Parsed:
    """A parse result with what the checker needs beyond the tree.

    `operators` gives, for each `Binary` and `Between` node, the location of
    its operator, so a type error can point at `>` rather than at the start
    of the left operand.
    """

    tree: Node | None
    diagnostics: list[Diagnostic]
    operators: dict[Node, Location] = field(default_factory=dict)


def parse_expression(text: str, locate: Locate) -> tuple[Node | None, list[Diagnostic]]:
    """Parse one expression; return its tree, or None and the diagnostics."""
    parsed = parse(text, locate)
    return parsed.tree, parsed.diagnostics


def parse(text: str, locate: Locate) -> Parsed:
    """Parse one expression, keeping operator locations for the checker."""
    try:
        lark_tree = _parser().parse(text)
    except UnexpectedInput as error:
        return Parsed(None, [_syntax_error(text, error, locate)])

    builder = _Builder(text, locate)
    try:
        node = builder.build(lark_tree)
    except _TooDeep as too_deep:
        message = f"expression nested too deeply (more than {MAX_DEPTH} levels)"
        return Parsed(None, [_error(locate(too_deep.offset), "E201", message)])

    if builder.diagnostics:
        return Parsed(None, builder.diagnostics, builder.operators)
    if _depth(node) > MAX_HEIGHT:
        message = (
            f"expression too long: its chains of + - * / nest more than"
            f" {MAX_HEIGHT} operations"
        )
        return Parsed(None, [_error(node.location, "E201", message, _SPLIT)])
    return Parsed(node, [], builder.operators)


_SPLIT = "split it, e.g. into a scorecard or several conditions"


def parse_template(
    text: str, locate: Locate
) -> tuple[Template | None, list[Diagnostic]]:
    """Parse message copy with `{expression}` placeholders.

    `{{` and `}}` stand for literal braces. The result alternates literal
    text (str) and placeholder trees; adjacent text is merged.
    """
    parsed = parse_template_parts(text, locate)
    if any(d.severity is Severity.ERROR for d in parsed.diagnostics):
        return None, parsed.diagnostics
    return Template(locate(0), parsed.parts), parsed.diagnostics


@dataclass
class ParsedTemplate:
    """Template parts plus the operator locations of every placeholder."""

    parts: list[str | Node]
    diagnostics: list[Diagnostic]
    operators: dict[Node, Location] = field(default_factory=dict)
    # Offset in the template text of each placeholder's `{`, in order.
    placeholder_offsets: list[int] = field(default_factory=list)


def parse_template_parts(text: str, locate: Locate) -> ParsedTemplate:
    """Split a template into text and placeholders and parse each placeholder."""
    result = ParsedTemplate([], [])
    literal: list[str] = []
    index = 0

    while index < len(text):
        char = text[index]
        if char in "{}" and text.startswith(char * 2, index):
            literal.append(char)
            index += 2
            continue
        if char == "}":
            message = "stray '}': write '}}' for a literal brace"
            result.diagnostics.append(_error(locate(index), "E204", message))
            index += 1
            continue
        if char != "{":
            literal.append(char)
            index += 1
            continue

        end = _placeholder_end(text, index + 1)
        if text[end : end + 1] != "}":
            message = "unclosed '{': close the placeholder, or write '{{'"
            result.diagnostics.append(_error(locate(index), "E204", message))
            # Go on from the next `{`, if one cut this placeholder short, to
            # report the problems after it too.
            literal.append(text[index:end])
            index = end
            continue
        if literal:
            result.parts.append("".join(literal))
            literal = []
        _add_placeholder(result, text, index, end, locate)
        index = end + 1

    if literal:
        result.parts.append("".join(literal))
    return result


def _add_placeholder(
    result: ParsedTemplate, text: str, start: int, end: int, locate: Locate
) -> None:
    source = text[start + 1 : end]
    if not source.strip():
        message = "empty placeholder '{}': write '{{}}' for literal braces"
        result.diagnostics.append(_error(locate(start), "E204", message))
        return

    first = start + 1

    def locate_inside(offset: int) -> Location:
        return locate(first + offset)

    parsed = parse(source, locate_inside)
    result.diagnostics.extend(parsed.diagnostics)
    result.operators.update(parsed.operators)
    if parsed.tree is not None:
        result.parts.append(parsed.tree)
        result.placeholder_offsets.append(start)


def _placeholder_end(text: str, index: int) -> int:
    """Where a placeholder starting at `index` ends.

    That is the offset of its closing `}`, or of a `{` or the end of the
    text when it is never closed. Braces inside quoted strings do not count.
    """
    quote: str | None = None
    while index < len(text):
        char = text[index]
        if quote is not None:
            if char == "\\":
                index += 1
            elif char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char in "{}":
            return index
        index += 1
    return len(text)


class _TooDeep(Exception):
    def __init__(self, offset: int) -> None:
        self.offset = offset


class _Builder:
    """Turns Lark's tree into `dsl.ast` nodes, collecting literal errors."""

    def __init__(self, text: str, locate: Locate) -> None:
        self.text = text
        self.locate = locate
        self.diagnostics: list[Diagnostic] = []
        self.operators: dict[Node, Location] = {}
        self.depth = 0

    def build(self, tree: Tree[Token] | Token) -> Node:
        if isinstance(tree, Token):  # pragma: no cover - the grammar wraps tokens
            raise TypeError(f"unexpected token {tree!r}")
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _TooDeep(_first_offset(tree))
        try:
            method: Callable[[list[Tree[Token] | Token]], Node] = getattr(
                self, "_" + str(tree.data)
            )
            return method(tree.children)
        finally:
            self.depth -= 1

    def at(self, token: Token) -> Location:
        return self.locate(token.start_pos or 0)

    def fail(
        self, offset: int, code: str, message: str, hint: str | None = None
    ) -> None:
        self.diagnostics.append(_error(self.locate(offset), code, message, hint))

    # Operators ----------------------------------------------------------

    def _chain(self, children: list[Tree[Token] | Token]) -> Node:
        """`a + b - c`: a flat list folded to the left."""
        node = self.build(children[0])
        for index in range(1, len(children), 2):
            op = children[index]
            assert isinstance(op, Token)
            right = self.build(children[index + 1])
            node = self.binary(str(op), node, right, op)
        return node

    _sum = _product = _chain

    def _logic(self, children: list[Tree[Token] | Token]) -> Node:
        """`a or b or c`: folded balanced, so that a long flat chain stays
        shallow. `and` and `or` are associative and still evaluate (and
        short-circuit) from left to right."""
        operands = [self.build(child) for child in children[0::2]]
        operators = [op for op in children[1::2] if isinstance(op, Token)]
        return self._balanced(operands, operators)

    def _balanced(self, operands: list[Node], operators: list[Token]) -> Node:
        if len(operands) == 1:
            return operands[0]
        middle = len(operands) // 2
        left = self._balanced(operands[:middle], operators[: middle - 1])
        right = self._balanced(operands[middle:], operators[middle:])
        op = operators[middle - 1]
        return self.binary(str(op), left, right, op)

    _or_test = _and_test = _logic

    def binary(self, op: str, left: Node, right: Node, token: Token) -> Node:
        node = Binary(left.location, op, left, right)
        self.operators[node] = self.at(token)
        return node

    def _compare(self, children: list[Tree[Token] | Token]) -> Node:
        left, op, right = children
        assert isinstance(op, Token)
        return self.binary(str(op), self.build(left), self.build(right), op)

    def _member(self, children: list[Tree[Token] | Token]) -> Node:
        left, op, right = children
        assert isinstance(op, Token)
        return self.binary("in", self.build(left), self.build(right), op)

    def _not_member(self, children: list[Tree[Token] | Token]) -> Node:
        left, op, _, right = children
        assert isinstance(op, Token)
        return self.binary("not in", self.build(left), self.build(right), op)

    def _between(self, children: list[Tree[Token] | Token]) -> Node:
        value, op, low, _, high = children
        assert isinstance(op, Token)
        built = self.build(value)
        node = Between(
            built.location,
            built,
            self.build(low),
            self.build(high),
        )
        self.operators[node] = self.at(op)
        return node

    def _negation(self, children: list[Tree[Token] | Token]) -> Node:
        op, operand = children
        assert isinstance(op, Token)
        return Unary(self.at(op), "not", self.build(operand))

    def _minus(self, children: list[Tree[Token] | Token]) -> Node:
        op, operand = children
        assert isinstance(op, Token)
        return Unary(self.at(op), "-", self.build(operand))

    # Postfix ------------------------------------------------------------

    def _attribute(self, children: list[Tree[Token] | Token]) -> Node:
        target, _, name = children
        assert isinstance(name, Token)
        built = self.build(target)
        node = Attribute(built.location, built, str(name))
        self.operators[node] = self.at(name)
        return node

    def _call(self, children: list[Tree[Token] | Token]) -> Node:
        callee, paren, arguments, _ = children
        assert isinstance(paren, Token)
        target = self.build(callee)
        args = self._arguments_of(arguments)
        function = _dotted_name(target)
        if function is None:
            self.fail(paren.start_pos or 0, "E201", "only functions can be called")
            function = "?"
        node = Call(target.location, function, args)
        if isinstance(target, Attribute):
            # Point "unknown aggregate" errors at the aggregate's name.
            self.operators[node] = self.operators[target]
        return node

    def _arguments_of(self, arguments: Tree[Token] | Token | None) -> list[Node]:
        if arguments is None:
            return []
        assert isinstance(arguments, Tree)
        return [self.build(child) for child in arguments.children]

    # Atoms --------------------------------------------------------------

    def _integer(self, children: list[Tree[Token] | Token]) -> Node:
        (token,) = children
        assert isinstance(token, Token)
        return Literal(self.at(token), int(token))

    def _decimal(self, children: list[Tree[Token] | Token]) -> Node:
        (token,) = children
        assert isinstance(token, Token)
        return Literal(self.at(token), Decimal(str(token)))

    def _string(self, children: list[Tree[Token] | Token]) -> Node:
        (token,) = children
        assert isinstance(token, Token)
        return Literal(self.at(token), self.unescape(token))

    def _date(self, children: list[Tree[Token] | Token]) -> Node:
        (token,) = children
        assert isinstance(token, Token)
        try:
            value: dt.date | None = dt.date.fromisoformat(str(token))
        except ValueError:
            message = f"{token} is not a valid date"
            self.fail(token.start_pos or 0, "E203", message, "dates are YYYY-MM-DD")
            value = None
        return Literal(self.at(token), value)

    def _true(self, children: list[Tree[Token] | Token]) -> Node:
        return self._keyword(children, True)

    def _false(self, children: list[Tree[Token] | Token]) -> Node:
        return self._keyword(children, False)

    def _null(self, children: list[Tree[Token] | Token]) -> Node:
        return self._keyword(children, None)

    def _keyword(self, children: list[Tree[Token] | Token], value: bool | None) -> Node:
        (token,) = children
        assert isinstance(token, Token)
        return Literal(self.at(token), value)

    def _duration(self, children: list[Tree[Token] | Token]) -> Node:
        amount, first, second = children
        assert isinstance(amount, Token) and isinstance(first, Token)
        node = DurationLit(self.at(amount), int(amount), "days")

        if second is None:
            unit = DURATION_UNITS.get(str(first))
            if unit is None:
                self.unknown_unit(first)
            else:
                node.unit = unit
        elif str(first) != "business":
            self.unknown_unit(first)
        elif str(second) not in ("day", "days"):
            assert isinstance(second, Token)
            message = f"`business {second}` is not a unit"
            hint = "only days can be business days: `2 business days`"
            self.fail(second.start_pos or 0, "E203", message, hint)
        else:
            node.unit = "business_days"
        return node

    def unknown_unit(self, word: Token) -> None:
        words = ["days", "weeks", "months", "years", "business"]
        close = difflib.get_close_matches(str(word), words, n=1)
        units = "days, weeks, months, years, business days"
        hint = f"did you mean `{close[0]}`?" if close else f"units: {units}"
        message = f"unknown duration unit `{word}`"
        self.fail(word.start_pos or 0, "E203", message, hint)

    def _name(self, children: list[Tree[Token] | Token]) -> Node:
        (token,) = children
        assert isinstance(token, Token)
        return Name(self.at(token), str(token))

    def _list(self, children: list[Tree[Token] | Token]) -> Node:
        bracket, arguments, _ = children
        assert isinstance(bracket, Token)
        return ListLit(self.at(bracket), self._arguments_of(arguments))

    def unescape(self, token: Token) -> str:
        """The value of a quoted string; unknown escapes are errors."""
        raw = str(token)[1:-1]
        start = (token.start_pos or 0) + 1
        out: list[str] = []
        index = 0
        while index < len(raw):
            char = raw[index]
            if char != "\\":
                out.append(char)
                index += 1
                continue
            escaped = raw[index + 1]  # the token's pattern ends no string on "\"
            if escaped in _ESCAPES:
                out.append(_ESCAPES[escaped])
            else:
                message = f"unknown escape `\\{escaped}` in a string"
                hint = "known escapes: \\\\ \\\" \\' \\n \\t"
                self.fail(start + index, "E203", message, hint)
            index += 2
        return "".join(out)


def _dotted_name(node: Node) -> str | None:
    """`history.late_count` for a chain of names, None for anything else."""
    if isinstance(node, Name):
        return node.name
    if isinstance(node, Attribute):
        target = _dotted_name(node.target)
        return None if target is None else f"{target}.{node.name}"
    return None


def _first_offset(tree: Tree[Token]) -> int:
    for token in tree.scan_values(lambda value: isinstance(value, Token)):
        return int(token.start_pos or 0)
    return 0


def _depth(node: Node) -> int:
    """Height of the tree; iterative, so a long `a + a + ...` chain is safe."""
    deepest = 0
    stack: list[tuple[Node, int]] = [(node, 1)]
    while stack:
        current, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children_of(current))
    return deepest


def children_of(node: Node) -> list[Node]:
    """The direct sub-expressions of a node, in source order."""
    match node:
        case Attribute(target=target):
            return [target]
        case Call(args=args):
            return list(args)
        case ListLit(items=items):
            return list(items)
        case Unary(operand=operand):
            return [operand]
        case Binary(left=left, right=right):
            return [left, right]
        case Between(value=value, low=low, high=high):
            return [value, low, high]
    return []


def _error(
    location: Location, code: str, message: str, hint: str | None = None
) -> Diagnostic:
    return Diagnostic(location, Severity.ERROR, code, message, hint)


@functools.cache
def _parser() -> Lark:
    grammar = importlib.resources.files("dsl").joinpath("expression.lark")
    return Lark(
        grammar.read_text(encoding="utf-8"),
        parser="lalr",
        lexer="contextual",
        maybe_placeholders=True,
    )


# Syntax errors -------------------------------------------------------------


def _syntax_error(text: str, error: UnexpectedInput, locate: Locate) -> Diagnostic:
    if isinstance(error, UnexpectedCharacters):
        return _bad_character(text, error.pos_in_stream or 0, locate)

    if not isinstance(error, UnexpectedToken):  # UnexpectedEOF: Earley only
        return _error(locate(len(text.rstrip())), "E202", "unexpected end")
    token = error.token
    # `accepts` is exact where `expected` may merge states of the LALR table.
    acceptable = set(error.accepts or error.expected)
    expected = _expected_words(acceptable)
    if token.type == "$END":
        offset = len(text.rstrip())
        message = "unexpected end of the expression"
        if not text.strip():
            message = "empty expression"
        return _error(locate(offset), "E202", message, f"expected {expected}")

    message = f"unexpected {_describe(token)}"
    hint = f"expected {expected}"
    if token.type == "COMPARE" and "COMPARE" not in acceptable:
        hint += "; comparisons do not chain, use `between` or `and`"
    return _error(locate(token.start_pos or 0), "E201", message, hint)


def _bad_character(text: str, offset: int, locate: Locate) -> Diagnostic:
    char = text[offset]
    if char in "'\"":
        message = "string is not closed"
        hint = f"end it with {char} on the same line"
        return _error(locate(offset), "E203", message, hint)
    if char == "_":
        return _error(locate(offset), "E201", "names cannot start with '_'")
    message = f"unexpected character {char!r}"
    return _error(locate(offset), "E201", message, _CHARACTER_HINTS.get(char))


def _describe(token: Token) -> str:
    if token.type == "NAME":
        return f"name `{token}`"
    if token.type == "STRING":
        return f"string {token}"
    if token.type in ("INT", "DECIMAL"):
        return f"number {token}"
    if token.type == "DATE":
        return f"date {token}"
    return f"`{token}`"


def _expected_words(expected: set[str]) -> str:
    if expected == {"IN"}:
        return "`in`"  # after `not` in `x not in [...]`
    words: list[str] = []
    if expected & _VALUE_TERMINALS:
        words.append("a field name" if expected == {"NAME"} else "a value")
    if "AND" in expected and "OR" not in expected:
        words.append("`and`")  # the second half of `x between a and b`
    elif expected & _OPERATOR_TERMINALS:
        words.append("an operator")
    words.extend(
        _PUNCTUATION[name] for name in sorted(expected) if name in _PUNCTUATION
    )
    if not words:
        words = [f"`{name.lower()}`" for name in sorted(expected)]
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]


def describe(node: Node) -> str:
    """The expression back as text, shortened, for messages."""
    text = _unparse(node)
    return text if len(text) <= 40 else text[:37] + "..."


def _unparse(node: Node) -> str:
    match node:
        case Literal(value=None):
            return "null"
        case Literal(value=bool() as flag):
            return "true" if flag else "false"
        case Literal(value=str() as text):
            return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
        case Literal(value=value):
            return str(value)
        case DurationLit(amount=amount, unit=unit):
            return f"{amount} {unit.replace('_', ' ')}"
        case ListLit(items=items):
            return "[" + ", ".join(_unparse(item) for item in items) + "]"
        case Name(name=name):
            return name
        case Attribute(target=target, name=name):
            return f"{_unparse(target)}.{name}"
        case Call(function=function, args=args):
            return f"{function}({', '.join(_unparse(arg) for arg in args)})"
        case Unary(op="not", operand=operand):
            return f"not {_unparse(operand)}"
        case Unary(op=op, operand=operand):
            return f"{op}{_unparse(operand)}"
        case Binary(op=op, left=left, right=right):
            return f"{_unparse(left)} {op} {_unparse(right)}"
        case Between(value=value, low=low, high=high):
            return f"{_unparse(value)} between {_unparse(low)} and {_unparse(high)}"
    return "?"  # pragma: no cover - every node kind is listed above
