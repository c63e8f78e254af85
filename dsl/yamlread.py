"""Reading policy YAML with the position of every node.

PyYAML's parser gives events with start and end marks; this module builds its
own small node tree from them (`YMap`, `YSeq`, `YScalar`), so that every key
and value keeps its place in the file and every string scalar can map a
character offset back to a line and column (`YScalar.locate`). That is what
lets an error inside an expression point at its exact column.

Plain scalars are resolved as YAML 1.2 (core schema): only `true`/`false`
are booleans, nothing is a date, numbers are `int` or `Decimal` (never
float). Words that YAML 1.1 tools read differently (`yes`, `no`, `on`,
`off`, `y`, `n`, unquoted dates, `010`) stay strings or numbers but carry a
`trap` note, so that the structural check can say why a value is wrong.

Anchors, aliases, merge keys and explicit tags are errors: a policy reads
top to bottom, with nothing defined elsewhere.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import yaml

from dsl.diagnostics import Diagnostic, Location, Severity

# Trap kinds: how a YAML 1.1 reader would see a plain scalar differently.
TRAP_BOOL = "bool"  # yes/no/on/off/y/n: booleans in YAML 1.1
TRAP_DATE = "date"  # 2026-02-16: a date in YAML 1.1, a string here
TRAP_OCTAL = "octal"  # 010: octal 8 in YAML 1.1, 10 here
TRAP_RADIX = "radix"  # 0x10, 0o10: 16 and 8 in YAML 1.2, text in YAML 1.1
TRAP_SEXAGESIMAL = "sexagesimal"  # 10:00 is 600 in YAML 1.1

_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_TRUE = frozenset({"true", "True", "TRUE"})
_FALSE = frozenset({"false", "False", "FALSE"})
_YAML11_BOOLS = frozenset({"yes", "no", "on", "off", "y", "n"})

_INT = re.compile(r"[-+]?[0-9]+")
_OCT = re.compile(r"0o[0-7]+")
_HEX = re.compile(r"0x[0-9a-fA-F]+")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_YAML11_DATE = re.compile(r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}([Tt ]|$)")
_YAML11_SEXAGESIMAL = re.compile(r"[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?")

_STYLES = {
    None: "plain",
    "": "plain",
    "'": "single",
    '"': "double",
    "|": "literal",
    ">": "folded",
}

Scalar = str | int | Decimal | bool | None

# A policy nests a handful of levels; a limit keeps a pathological file from
# exhausting the stack in the checks that walk the tree.
MAX_DEPTH = 64


class _TooDeep(Exception):
    def __init__(self, location: Location) -> None:
        super().__init__(str(location))
        self.location = location


class SourceText:
    """The decoded text of one file and where its lines start."""

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.text = text
        # PyYAML counts these as line breaks; so must we, or lines drift.
        self._line_starts = [0] + [
            m.end() for m in re.finditer("\n|\x85|\u2028|\u2029", text)
        ]

    def location(self, index: int) -> Location:
        """The 1-based line and column of the character at `index`."""
        line = bisect.bisect_right(self._line_starts, index) - 1
        return Location(self.path, line + 1, index - self._line_starts[line] + 1)


@dataclass(eq=False)
class YScalar:
    """A scalar with its resolved value, the text as written, and its place."""

    value: Scalar
    text: str  # the scalar's content after quotes and escapes are processed
    style: str  # "plain", "single", "double", "literal" or "folded"
    location: Location
    trap: str | None = None
    _source: SourceText | None = field(default=None, repr=False)
    _start: int = field(default=0, repr=False)  # index of the first source char
    _end: int = field(default=0, repr=False)
    _positions: list[int] | None = field(default=None, repr=False)

    def locate(self, offset: int) -> Location:
        """Where the character at `offset` of `text` is written in the file.

        Exact for every style: quoted escapes, folded lines and block
        scalars are followed through the source text.
        """
        if self._source is None:
            return self.location.shifted(offset)
        if self._positions is None:
            self._positions = self._align()
        positions = self._positions
        if not positions:
            return self._source.location(self._content_begin())
        if offset < 0:
            offset = 0
        if offset < len(positions):
            return self._source.location(positions[offset])
        return self._source.location(positions[-1] + 1)

    def _content_begin(self) -> int:
        assert self._source is not None
        src = self._source.text
        if self.style in ("single", "double"):
            return self._start + 1
        if self.style in ("literal", "folded"):
            newline = src.find("\n", self._start, self._end)
            return self._end if newline < 0 else newline + 1
        return self._start

    def _align(self) -> list[int]:
        """Source index of each character of `text`, by walking both at once.

        A character of the value is found at the next source character
        that equals it, skipping only what YAML removes: indentation and
        folded line breaks, the second quote of `''`, escaped line breaks.
        An escape sequence (`\\u00e9`) maps to its backslash.
        """
        assert self._source is not None
        src = self._source.text
        i = self._content_begin()
        end = self._end - 1 if self.style in ("single", "double") else self._end
        double = self.style == "double"
        single = self.style == "single"
        # In a flow scalar the next line's leading white space is never
        # content (an escaped space, `\ `, is written after it).
        flow = self.style in ("plain", "single", "double")
        positions: list[int] = []
        for ch in self.text:
            while i < end:
                s = src[i]
                if double and s == "\\" and i + 1 < end:
                    escaped = src[i + 1]
                    if escaped in "\n\r":
                        i = _line_prefix_end(src, i + 1, end)
                        continue
                    positions.append(i)
                    i += {"x": 4, "u": 6, "U": 10}.get(escaped, 2)
                    break
                if s == ch or (ch.isspace() and s.isspace()):
                    positions.append(i)
                    i = _line_prefix_end(src, i, end) if flow and s in "\n\r" else i + 1
                    break
                if s.isspace() or (single and s == "'"):
                    i += 1
                    continue
                # Something this walk does not model: count from the start
                # rather than point at a wrong character far away.
                return self._linear()
            else:
                positions.append(max(i, 0))
        return positions

    def _linear(self) -> list[int]:
        begin = self._content_begin()
        return [begin + k for k in range(len(self.text))]


def _line_prefix_end(src: str, newline: int, end: int) -> int:
    """The index after the line break at `newline` (CR, LF or CRLF) and the
    spaces and tabs that start the next line."""
    i = newline + 1
    if src[newline] == "\r" and i < end and src[i] == "\n":
        i += 1
    while i < end and src[i] in " \t":
        i += 1
    return i


@dataclass(eq=False)
class YSeq:
    items: list[YNode]
    location: Location


@dataclass(eq=False)
class YMap:
    """A mapping whose keys are scalars; duplicate keys were reported and
    only the first of them is kept."""

    items: list[tuple[YScalar, YNode]]
    location: Location

    def get(self, key: str) -> YNode | None:
        for k, v in self.items:
            if k.text == key:
                return v
        return None

    def key(self, key: str) -> YScalar | None:
        for k, _ in self.items:
            if k.text == key:
                return k
        return None

    def keys(self) -> list[str]:
        return [k.text for k, _ in self.items]

    def __iter__(self) -> Iterator[tuple[YScalar, YNode]]:
        return iter(self.items)


YNode = YScalar | YSeq | YMap


def as_map(node: YNode | None) -> YMap | None:
    """The node if it is a mapping (a wrong shape was reported elsewhere)."""
    return node if isinstance(node, YMap) else None


def as_list(node: YNode | None) -> list[YNode]:
    """The items if the node is a list, else none."""
    return node.items if isinstance(node, YSeq) else []


def text_of(node: YNode | None) -> str | None:
    """The value if the node is a string scalar."""
    if isinstance(node, YScalar) and isinstance(node.value, str):
        return node.value
    return None


def to_data(node: YNode) -> Any:
    """Plain Python data (dict, list, scalars) for the JSON Schema check."""
    if isinstance(node, YScalar):
        return node.value
    if isinstance(node, YSeq):
        return [to_data(item) for item in node.items]
    return {k.text: to_data(v) for k, v in node.items}


def resolve_plain(text: str) -> tuple[Scalar, str | None]:
    """YAML 1.2 core resolution of a plain scalar, plus its YAML 1.1 trap."""
    if text in _NULLS:
        return None, None
    if text in _TRUE:
        return True, None
    if text in _FALSE:
        return False, None
    if text.lower() in _YAML11_BOOLS:
        return text, TRAP_BOOL
    if _INT.fullmatch(text):
        digits = text.lstrip("+-")
        trap = TRAP_OCTAL if len(digits) > 1 and digits[0] == "0" else None
        return int(text), trap
    if _OCT.fullmatch(text):
        return int(text[2:], 8), TRAP_RADIX
    if _HEX.fullmatch(text):
        return int(text[2:], 16), TRAP_RADIX
    if _FLOAT.fullmatch(text):
        return Decimal(text), None
    if _YAML11_DATE.match(text):
        return text, TRAP_DATE
    if _YAML11_SEXAGESIMAL.fullmatch(text):
        return text, TRAP_SEXAGESIMAL
    return text, None


class _EventLoader(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser):
    """PyYAML's reader, scanner and parser, without its composer and
    constructor: we build nodes from the events ourselves."""

    def __init__(self, text: str) -> None:
        yaml.reader.Reader.__init__(self, text)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)


def _event_parser(text: str) -> Any:
    """libyaml's parser when PyYAML was built with it (several times faster;
    its marks also count characters), else the pure-Python one."""
    if USE_LIBYAML:
        return _CParser(text)
    return _EventLoader(text)


try:
    from yaml._yaml import CParser as _CParser

    USE_LIBYAML = True
except ImportError:  # PyYAML built without libyaml
    USE_LIBYAML = False


class _Builder:
    def __init__(self, source: SourceText) -> None:
        self.source = source
        self.diagnostics: list[Diagnostic] = []
        # PyYAML's parser methods carry no type hints.
        self.loader: Any = _event_parser(source.text)

    def error(
        self, location: Location, code: str, message: str, hint: str = ""
    ) -> None:
        self.diagnostics.append(
            Diagnostic(location, Severity.ERROR, code, message, hint or None)
        )

    def mark(self, mark: Any) -> Location:
        return self.source.location(mark.index)

    def document(self) -> YNode | None:
        loader = self.loader
        loader.get_event()  # StreamStart
        if loader.check_event(yaml.StreamEndEvent):
            return None
        loader.get_event()  # DocumentStart
        root = self.node()
        end = loader.get_event()  # DocumentEnd
        if not loader.check_event(yaml.StreamEndEvent):
            extra = loader.peek_event()
            self.error(
                self.mark(extra.start_mark),
                "E101",
                "a policy file holds one YAML document; found a second one",
                "remove the `---` line",
            )
        del end
        return root

    def node(self, depth: int = 0) -> YNode:
        event = self.loader.get_event()
        location = self.mark(event.start_mark)
        if depth > MAX_DEPTH:
            raise _TooDeep(location)
        if isinstance(event, yaml.AliasEvent):
            self.error(
                location,
                "E105",
                f"alias `*{event.anchor}`: anchors and aliases are not allowed",
                "write the value out in full",
            )
            return YScalar(None, "", "plain", location)
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            self.error(
                location,
                "E105",
                f"anchor `&{anchor}`: anchors and aliases are not allowed",
                "write the value out in full where it is used",
            )
        tag = getattr(event, "tag", None)
        if tag is not None:
            self.error(location, "E106", f"explicit tag `{tag}` is not allowed")
        if isinstance(event, yaml.ScalarEvent):
            return self.scalar(event, location)
        if isinstance(event, yaml.SequenceStartEvent):
            items: list[YNode] = []
            while not self.loader.check_event(yaml.SequenceEndEvent):
                items.append(self.node(depth + 1))
            self.loader.get_event()
            return YSeq(items, location)
        assert isinstance(event, yaml.MappingStartEvent)
        return self.mapping(location, depth)

    def scalar(self, event: Any, location: Location) -> YScalar:
        style = _STYLES.get(event.style, "plain")
        text: str = event.value
        if style == "plain":
            value, trap = resolve_plain(text)
        else:
            value, trap = text, None
        return YScalar(
            value,
            text,
            style,
            location,
            trap,
            _source=self.source,
            _start=event.start_mark.index,
            _end=event.end_mark.index,
        )

    def mapping(self, location: Location, depth: int) -> YMap:
        items: list[tuple[YScalar, YNode]] = []
        seen: dict[str, YScalar] = {}
        while not self.loader.check_event(yaml.MappingEndEvent):
            key_node = self.node(depth + 1)
            value = self.node(depth + 1)
            if not isinstance(key_node, YScalar):
                self.error(
                    key_node.location,
                    "E112",
                    "a key must be a plain word, not a list or a mapping",
                )
                continue
            key = key_node.text
            if key_node.style == "plain" and key == "<<":
                self.error(
                    key_node.location,
                    "E105",
                    "merge keys (`<<`) are not allowed",
                    "write the keys out in full",
                )
                continue
            if key_node.trap == TRAP_BOOL:
                self.error(
                    key_node.location,
                    "E107",
                    f"`{key}` as a key is read as a boolean by YAML 1.1 tools",
                    f'quote it ("{key}") or use another name',
                )
            first = seen.get(key)
            if first is not None:
                where = first.location
                self.error(
                    key_node.location,
                    "E104",
                    f"duplicate key `{key}` (first at line {where.line}, "
                    f"column {where.column})",
                    "YAML keeps only one of them: merge the two",
                )
                continue
            seen[key] = key_node
            items.append((key_node, value))
        self.loader.get_event()
        return YMap(items, location)


# Byte order marks of the encodings an editor may save a file in instead of
# UTF-8. UTF-32 first: its little-endian mark starts with UTF-16's.
_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32LE"),
    (b"\x00\x00\xfe\xff", "UTF-32BE"),
    (b"\xff\xfe", "UTF-16LE"),
    (b"\xfe\xff", "UTF-16BE"),
)


def wide_encoding(data: bytes) -> str | None:
    """The UTF-16 or UTF-32 encoding `data` is written in, told by its byte
    order mark or, without one, by the NUL byte beside each ASCII letter;
    None for anything else."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return encoding
    if len(data) >= 4 and data[0] and not any(data[1:4]):
        return "UTF-32LE"
    if len(data) >= 4 and not any(data[0:3]) and data[3]:
        return "UTF-32BE"
    if len(data) >= 2 and data[0] and not data[1]:
        return "UTF-16LE"
    if len(data) >= 2 and not data[0] and data[1]:
        return "UTF-16BE"
    return None


def decode(path: str, data: bytes) -> tuple[SourceText | None, list[Diagnostic]]:
    """UTF-8 text of a policy file (a leading BOM is dropped), or a diagnostic.

    UTF-16 and UTF-32 files, and files with NUL bytes (not text at all),
    are E102 too, with what they are.
    """
    wide = wide_encoding(data)
    if wide is not None or b"\x00" in data:
        found = f"{wide} text" if wide else "binary data (NUL bytes)"
        return None, [
            Diagnostic(
                Location(path, 1, 1),
                Severity.ERROR,
                "E102",
                f"the file is not UTF-8 text: it is {found}",
                "save it as UTF-8",
            )
        ]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        good = data[: exc.start].decode("utf-8", errors="replace")
        at = SourceText(path, good).location(len(good))
        return None, [
            Diagnostic(
                at,
                Severity.ERROR,
                "E102",
                f"the file is not UTF-8 text (byte 0x{data[exc.start]:02x})",
                "save it as UTF-8",
            )
        ]
    text = text.removeprefix("\ufeff")
    # PyYAML handles \r\n itself, but our line table must agree with it.
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return SourceText(path, text), []


def parse(source: SourceText) -> tuple[YNode | None, list[Diagnostic]]:
    """The node tree of one YAML document, or diagnostics.

    An empty file (or one with only comments) is an error: E103.
    """
    try:
        builder = _Builder(source)
        root = builder.document()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = source.location(mark.index) if mark else Location(source.path, 1, 1)
        message = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.problem:
            message = f"{exc.context}: {exc.problem}"
        return None, [*builder.diagnostics, _syntax(at, message)]
    except _TooDeep as exc:
        message = f"nested deeper than {MAX_DEPTH} levels"
        return None, [_syntax(exc.location, message)]
    except yaml.reader.ReaderError as exc:
        # Raised before any node is built: the reader checks the whole text.
        at = source.location(exc.position)
        message = f"character #x{exc.character:04x} is not allowed in YAML"
        return None, [_syntax(at, message)]
    if root is None:
        return None, [
            Diagnostic(
                Location(source.path, 1, 1),
                Severity.ERROR,
                "E103",
                "the file is empty",
            )
        ]
    return root, builder.diagnostics


def read(path: str, data: bytes) -> tuple[YNode | None, list[Diagnostic]]:
    """Decode and parse the bytes of the file shown as `path`."""
    source, problems = decode(path, data)
    if source is None:
        return None, problems
    return parse(source)


def _syntax(at: Location, message: str) -> Diagnostic:
    return Diagnostic(at, Severity.ERROR, "E101", f"YAML syntax: {message}")
