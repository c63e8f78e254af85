"""The structural check: a policy's node tree against the JSON Schema.

Every schema error becomes a diagnostic at the node it concerns: an unknown
key at the key itself, with a "did you mean" hint (`suppres:` must never
silently switch suppression off), a wrong type at the value, a missing key
at the mapping that lacks it. All errors are reported, not the first.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Iterable, Iterator
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from dsl.diagnostics import Diagnostic, Location, Severity
from dsl.schema import shared_schema
from dsl.yamlread import (
    TRAP_BOOL,
    TRAP_DATE,
    TRAP_OCTAL,
    TRAP_RADIX,
    TRAP_SEXAGESIMAL,
    YMap,
    YNode,
    YScalar,
    YSeq,
    to_data,
)

# Patterns of names (segments, channels, the ruleset, ...): E114, not E116.
_NAME_PATTERNS = frozenset({"^[a-z][a-z0-9_]*$", "^[a-z][a-z0-9_-]*$"})

_DECIMAL_COMMA = re.compile(r"-?[0-9]+,[0-9]+")

_TYPE_WORDS = {
    "string": "text",
    "number": "a number",
    "integer": "a whole number",
    "boolean": "true or false",
    "object": "a mapping",
    "array": "a list",
    "null": "null",
}


@functools.cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(shared_schema())


def check_structure(root: YNode) -> list[Diagnostic]:
    """Diagnostics for everything in `root` the policy schema does not allow."""
    diagnostics: list[Diagnostic] = []
    for error in _validator().iter_errors(to_data(root)):
        diagnostics.extend(_diagnose(error, root))
    diagnostics.extend(_octal_traps(root))
    return diagnostics


def describe(node: YNode) -> str:
    """A few words for what a node holds: `text "abc"`, `a mapping`."""
    if isinstance(node, YMap):
        return "a mapping"
    if isinstance(node, YSeq):
        return "a list"
    value = node.value
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the boolean {node.text}"
    if isinstance(value, str):
        return f'text "{_short(node.text)}"'
    return f"the number {node.text}"


def trap_hint(node: YNode) -> str | None:
    """Why a YAML 1.1 reader would see this scalar differently, if it would."""
    if not isinstance(node, YScalar):
        return None
    if node.trap == TRAP_BOOL:
        return (
            f"YAML 1.1 tools read `{node.text}` as a boolean: quote it if text is meant"
        )
    if node.trap == TRAP_DATE:
        return "write dates quoted"
    if node.trap == TRAP_SEXAGESIMAL:
        return f"YAML 1.1 reads {node.text} as a number in base 60: quote it"
    return None


def node_at(root: YNode, path: Iterable[str | int]) -> YNode:
    """The node at a JSON path, or the deepest one that exists."""
    node = root
    for step in path:
        if isinstance(node, YMap) and isinstance(step, str):
            child = node.get(step)
        elif isinstance(node, YSeq) and isinstance(step, int):
            child = node.items[step] if step < len(node.items) else None
        else:
            child = None
        if child is None:
            break
        node = child
    return node


def suggest(word: str, choices: Iterable[str]) -> str | None:
    """`did you mean ...?` for the closest choice, if one is close enough."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None


def _diagnose(error: ValidationError, root: YNode) -> Iterator[Diagnostic]:
    node = node_at(root, error.absolute_path)
    keyword = error.validator
    schema: Any = error.schema
    rule: Any = error.validator_value

    if "propertyNames" in error.absolute_schema_path:
        # The instance is the offending key; the path stops at its mapping.
        key_node = node.key(str(error.instance)) if isinstance(node, YMap) else None
        where = key_node.location if key_node else node.location
        reason = schema.get("errorMessage", "not a valid name")
        yield _error(where, "E114", f"invalid name `{error.instance}`: {reason}")
        return

    if keyword == "additionalProperties" and isinstance(node, YMap):
        yield from _unknown_keys(node, schema)
        return

    if keyword == "required" and isinstance(node, YMap):
        for key in rule:
            if node.get(key) is None:
                yield _error(node.location, "E111", f"missing required key `{key}`")
        return

    if keyword == "type":
        wanted = rule
        words = [wanted] if isinstance(wanted, str) else list(wanted)
        expected = " or ".join(_TYPE_WORDS.get(w, w) for w in words)
        message = f"expected {expected}, found {describe(node)}"
        hint = trap_hint(node)
        if isinstance(node, YScalar) and _DECIMAL_COMMA.fullmatch(node.text):
            hint = f"write decimals with a point: {node.text.replace(',', '.')}"
        yield _error(node.location, "E112", message, hint)
        return

    if keyword == "enum":
        allowed = [str(v) for v in rule]
        found = node.text if isinstance(node, YScalar) else describe(node)
        message = f"`{found}` is not allowed here; use one of: {', '.join(allowed)}"
        hint = trap_hint(node) or suggest(str(found), allowed)
        yield _error(node.location, "E113", message, hint)
        return

    if keyword == "pattern" and rule in _NAME_PATTERNS:
        found = node.text if isinstance(node, YScalar) else str(error.instance)
        reason = schema.get("errorMessage", "not a valid name")
        yield _error(node.location, "E114", f"invalid name `{found}`: {reason}")
        return

    if keyword == "pattern":
        reason = schema.get("errorMessage") or f"must match {rule}"
        found = node.text if isinstance(node, YScalar) else str(error.instance)
        message = f'"{_short(found)}": {reason}'
        yield _error(node.location, "E116", message, trap_hint(node))
        return

    if keyword in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        bound = {
            "minimum": "at least",
            "maximum": "at most",
            "exclusiveMinimum": "more than",
            "exclusiveMaximum": "less than",
        }[str(keyword)]
        message = f"{describe(node)} is out of range: must be {bound} "
        yield _error(node.location, "E115", message + str(rule))
        return

    if keyword in ("minItems", "maxItems"):
        count = rule
        message = (
            f"needs at least {count} item{'s' if count != 1 else ''}"
            if keyword == "minItems"
            else f"holds at most {count} items"
        )
        yield _error(node.location, "E115", message)
        return

    yield _error(node.location, "E112", error.message)


def _unknown_keys(node: YMap, schema: dict[str, Any]) -> Iterator[Diagnostic]:
    known = list(schema.get("properties", {}))
    patterns = [re.compile(p) for p in schema.get("patternProperties", {})]
    # Keys matched by a pattern (days of a window) are listed by example.
    examples = list(schema.get("x-key-examples", []))
    for key_node, _ in node:
        key = key_node.text
        if key in known or any(p.search(key) for p in patterns):
            continue
        hint = suggest(key, known + examples)
        if hint is None and known and len(known) <= 12:
            hint = "known keys: " + ", ".join(known + examples)
        yield _error(key_node.location, "E110", f"unknown key `{key}`", hint)


def _octal_traps(node: YNode) -> Iterator[Diagnostic]:
    """Numbers not written in plain decimal: 010, 0x10, 0o10."""
    if isinstance(node, YScalar):
        if node.trap == TRAP_OCTAL:
            yield _error(
                node.location,
                "E109",
                f"`{node.text}` has a leading zero: YAML 1.1 reads it as octal",
                f"write {int(node.text)}",
            )
        elif node.trap == TRAP_RADIX:
            base = 16 if node.text.startswith("0x") else 8
            yield _error(
                node.location,
                "E109",
                f"`{node.text}` is a number in base {base} ({node.value}), and"
                " text to YAML 1.1 tools",
                f"write {node.value} in decimal, or quote it if text is meant",
            )
        return
    children = node.items if isinstance(node, YSeq) else [v for _, v in node.items]
    for child in children:
        yield from _octal_traps(child)


def _error(
    location: Location, code: str, message: str, hint: str | None = None
) -> Diagnostic:
    return Diagnostic(location, Severity.ERROR, code, message, hint)


def _short(text: str, limit: int = 40) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"
