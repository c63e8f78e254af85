"""YAML with positions: resolution, traps, errors and character locations."""

from __future__ import annotations

from decimal import Decimal

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from dsl import yamlread
from dsl.diagnostics import Location, Severity
from dsl.yamlread import (
    TRAP_BOOL,
    TRAP_DATE,
    TRAP_OCTAL,
    TRAP_RADIX,
    TRAP_SEXAGESIMAL,
    SourceText,
    YMap,
    YNode,
    YScalar,
    YSeq,
    parse,
    read,
    to_data,
)


@pytest.fixture(
    autouse=True,
    params=[True, False] if yamlread.USE_LIBYAML else [False],
    ids=["libyaml", "python"] if yamlread.USE_LIBYAML else ["python"],
)
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Every test runs with libyaml's parser (when present) and PyYAML's own."""
    use_libyaml: bool = request.param
    monkeypatch.setattr(yamlread, "USE_LIBYAML", use_libyaml)
    return use_libyaml


def load(text: str) -> tuple[YNode | None, list[str]]:
    root, diagnostics = parse(SourceText("f.yaml", text))
    return root, [str(d) for d in diagnostics]


def scalar(text: str, key: str = "v") -> YScalar:
    root, problems = load(text)
    assert problems == []
    assert isinstance(root, YMap)
    node = root.get(key)
    assert isinstance(node, YScalar)
    return node


def char_at(text: str, at: Location) -> str:
    return text.splitlines()[at.line - 1][at.column - 1]


# Resolution -----------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "value", "trap"),
    [
        ("true", True, None),
        ("False", False, None),
        ("yes", "yes", TRAP_BOOL),
        ("No", "No", TRAP_BOOL),
        ("OFF", "OFF", TRAP_BOOL),
        ("on", "on", TRAP_BOOL),
        ("y", "y", TRAP_BOOL),
        ("n", "n", TRAP_BOOL),
        ("42", 42, None),
        ("-7", -7, None),
        ("010", 10, TRAP_OCTAL),
        ("0o17", 15, TRAP_RADIX),
        ("0x1F", 31, TRAP_RADIX),
        ("1.50", Decimal("1.50"), None),
        ("0.05", Decimal("0.05"), None),
        ("1e3", Decimal("1e3"), None),
        ("~", None, None),
        ("null", None, None),
        ("2026-02-16", "2026-02-16", TRAP_DATE),
        ("10:00", "10:00", TRAP_SEXAGESIMAL),
        ("08:00-20:00", "08:00-20:00", None),
        (".inf", ".inf", None),
        ("D-3", "D-3", None),
    ],
)
def test_plain_scalars_resolve_as_yaml_1_2_and_note_1_1_traps(
    written: str, value: object, trap: str | None
) -> None:
    node = scalar(f"v: {written}\n")
    assert node.value == value
    assert type(node.value) is type(value)
    assert node.trap == trap


def test_numbers_are_never_float() -> None:
    root, _ = load("a: 0.1\nb: [1.25, 3]\n")
    assert root is not None
    data = to_data(root)
    assert data == {"a": Decimal("0.1"), "b": [Decimal("1.25"), 3]}
    assert not any(isinstance(v, float) for v in [data["a"], *data["b"]])


def test_quoted_scalars_are_always_strings() -> None:
    assert scalar('v: "true"\n').value == "true"
    assert scalar("v: '42'\n").value == "42"
    assert scalar('v: "2026-02-16"\n').trap is None


# Positions of nodes ---------------------------------------------------


def test_every_node_knows_its_line_and_column() -> None:
    text = "top:\n  list:\n    - a\n    - {k: v}\n  'quoted': 1\n"
    root, problems = load(text)
    assert problems == []
    assert isinstance(root, YMap)
    top = root.get("top")
    assert isinstance(top, YMap)
    assert top.location == Location("f.yaml", 2, 3)
    listed = top.get("list")
    assert isinstance(listed, YSeq)
    assert listed.items[0].location == Location("f.yaml", 3, 7)
    flow = listed.items[1]
    assert isinstance(flow, YMap)
    assert flow.location == Location("f.yaml", 4, 7)
    key = flow.key("k")
    assert key is not None and key.location == Location("f.yaml", 4, 8)
    quoted = top.key("quoted")
    assert quoted is not None and quoted.location == Location("f.yaml", 5, 3)


# Errors ---------------------------------------------------------------


def test_duplicate_keys_are_reported_with_both_places() -> None:
    _, problems = load("segments: []\nother: 1\nsegments: [x]\n")
    assert problems == [
        "f.yaml:3:1: error[E104]: duplicate key `segments` (first at line 1, "
        "column 1) (YAML keeps only one of them: merge the two)"
    ]


def test_the_first_of_duplicate_keys_is_kept() -> None:
    root, _ = load("a: 1\na: 2\n")
    assert root is not None and to_data(root) == {"a": 1}


def test_duplicate_keys_in_nested_and_flow_mappings() -> None:
    _, problems = load("x:\n  inner: {a: 1, a: 2}\n")
    assert len(problems) == 1 and problems[0].startswith("f.yaml:2:17: error[E104]")


@pytest.mark.parametrize("key", ["on", "off", "yes", "No", "Y", "n"])
def test_yaml_1_1_booleans_as_keys_are_errors(key: str) -> None:
    _, problems = load(f"a: 1\n{key}: 2\n")
    assert len(problems) == 1
    assert problems[0].startswith(f"f.yaml:2:1: error[E107]: `{key}` as a key")


def test_a_quoted_yaml_1_1_word_is_a_fine_key() -> None:
    _, problems = load('"on": 1\n')
    assert problems == []


def test_anchors_aliases_and_merge_keys_are_errors() -> None:
    text = "base: &b {x: 1}\nother:\n  <<: *b\n  z: 2\n"
    _, problems = load(text)
    assert [p.split(": ")[1] for p in problems] == [
        "error[E105]",
        "error[E105]",
        "error[E105]",
    ]
    assert problems[0].startswith("f.yaml:1:7:")  # the anchor
    assert problems[1].startswith("f.yaml:3:7:")  # the alias
    assert problems[2].startswith("f.yaml:3:3:")  # the merge key


@pytest.mark.parametrize(
    "text",
    ["v: !!python/object:os.system ls\n", "v: !custom x\n", "v: !!str 1\n"],
)
def test_explicit_tags_are_errors(text: str) -> None:
    _, problems = load(text)
    assert len(problems) == 1
    assert problems[0].startswith("f.yaml:1:4: error[E106]")


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ("a: b\n  c: d\n", 2, 4),
        ("a: [1, 2\n", 2, 1),
        ("a: 'x\n", 2, 1),
        ('a: "\\q"\n', 1, 5),  # libyaml: the backslash; PyYAML: the letter
        ("a:\n\tb: 1\n", 2, 1),
        ("- a\nb: 1\n", 2, 1),
    ],
)
def test_syntax_errors_have_a_location(text: str, line: int, column: int) -> None:
    root, diagnostics = parse(SourceText("f.yaml", text))
    assert root is None
    assert [d.code for d in diagnostics] == ["E101"]
    at = diagnostics[0].location
    assert at.line == line and at.column in (column, column + 1)


def test_a_second_document_is_an_error() -> None:
    _, problems = load("a: 1\n---\nb: 2\n")
    assert len(problems) == 1 and problems[0].startswith("f.yaml:2:1: error[E101]")


def test_control_characters_are_a_syntax_error_with_location() -> None:
    _, problems = load("a: 1\nb: x\x07\n")
    assert problems == [
        "f.yaml:2:5: error[E101]: YAML syntax: character #x0007 is not allowed in YAML"
    ]


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_an_empty_file_is_an_error(text: str) -> None:
    root, problems = load(text)
    assert root is None
    assert problems == ["f.yaml:1:1: error[E103]: the file is empty"]


def test_a_file_that_is_not_utf8_is_an_error_at_the_bad_byte() -> None:
    data = b"a: 1\nname: Jo" + b"\xe3o\n"
    root, diagnostics = read("f.yaml", data)
    assert root is None
    assert [(d.code, d.location.line, d.location.column) for d in diagnostics] == [
        ("E102", 2, 9)
    ]
    assert "0xe3" in diagnostics[0].message


@pytest.mark.parametrize(
    ("encoding", "named"),
    [
        ("utf-16", "UTF-16LE"),  # with a byte order mark
        ("utf-16-le", "UTF-16LE"),
        ("utf-16-be", "UTF-16BE"),
        ("utf-32", "UTF-32LE"),
        ("utf-32-be", "UTF-32BE"),
    ],
)
def test_a_utf16_or_utf32_file_is_named_as_such(encoding: str, named: str) -> None:
    root, diagnostics = read("f.yaml", "ruleset: x\n".encode(encoding))
    assert root is None
    [diagnostic] = diagnostics
    assert (diagnostic.code, diagnostic.location.line) == ("E102", 1)
    assert diagnostic.message == f"the file is not UTF-8 text: it is {named} text"


def test_nul_bytes_are_not_text() -> None:
    root, diagnostics = read("f.yaml", b"ruleset: x\n\x00\x01")
    assert root is None
    assert [d.code for d in diagnostics] == ["E102"]
    assert "NUL bytes" in diagnostics[0].message


def test_bom_and_crlf_do_not_shift_positions() -> None:
    data = "\ufeffa: 1\r\nb: 'x {y}'\r\n".encode()
    root, diagnostics = read("f.yaml", data)
    assert diagnostics == []
    assert isinstance(root, YMap)
    node = root.get("b")
    assert isinstance(node, YScalar)
    assert node.locate(2) == Location("f.yaml", 2, 7)


def test_diagnostics_are_errors() -> None:
    root, diagnostics = parse(SourceText("f.yaml", "a: 1\na: 2\n"))
    assert root is not None
    assert all(d.severity is Severity.ERROR for d in diagnostics)


# Character locations inside scalars ------------------------------------

STYLES = {
    "plain": "v: customer.age >= 18 and {x}\n",
    "single": "v: 'it''s {x} here'\n",
    "double": 'v: "tab\\there {x} \\u00e9 {y}"\n',
    "plain multi-line": "v: first line\n  second {x}\n\n  fourth {y}\n",
    "double multi-line": 'v: "first\n  second {x} \\\n  joined {y}"\n',
    "single multi-line": "v: 'first\n  second {x}'\n",
    "folded": "v: >\n  first line\n  second {x}\n\n  after {y}\n",
    "folded strip": "v: >-\n  first\n  second {x}\n",
    "folded more-indented": "v: >\n  a\n    indented {x}\n  b {y}\n",
    "literal": "v: |\n  one\n    two {x}\n  three {y}\n",
    "literal keep": "v: |+\n  one {x}\n\n",
    "literal indicator": "v: |2\n    lead {x}\n  back {y}\n",
    "in a list": "v: [a, 'b {x}', \"c {y}\"]\n",
}


@pytest.mark.parametrize("style", list(STYLES))
def test_every_character_of_a_scalar_is_located_exactly(style: str) -> None:
    text = STYLES[style]
    root, problems = load(text)
    assert problems == []
    assert isinstance(root, YMap)
    node = root.get("v")
    nodes = node.items if isinstance(node, YSeq) else [node]
    checked = 0
    for item in nodes:
        assert isinstance(item, YScalar)
        for offset, char in enumerate(item.text):
            if char.isspace():
                continue
            at = item.locate(offset)
            written = char_at(text, at)
            # An escape sequence is located at its backslash.
            assert written == char or (item.style == "double" and written == "\\")
            checked += 1
    assert checked > 0


def test_block_literal_lines_map_to_file_lines() -> None:
    node = scalar("k: 1\nv: |\n  one\n  two {x}\n")
    offset = node.text.index("{x}")
    assert node.locate(offset) == Location("f.yaml", 4, 7)


def test_folded_scalar_maps_to_the_right_line() -> None:
    node = scalar("v: >-\n  first\n  second {x}\n")
    assert node.text == "first second {x}"
    assert node.locate(node.text.index("{")) == Location("f.yaml", 3, 10)


def test_locating_past_the_end_points_after_the_last_character() -> None:
    node = scalar("v: 'abc'\n")
    assert node.locate(3) == Location("f.yaml", 1, 8)
    assert node.locate(-1) == Location("f.yaml", 1, 5)


def test_an_empty_scalar_is_located_at_its_start() -> None:
    node = scalar("v: ''\n")
    assert node.locate(0) == Location("f.yaml", 1, 5)


_TEXT = st.text(
    alphabet=st.characters(
        codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp", "Co", "Cn")
    ),
    min_size=1,
    max_size=60,
)


@pytest.mark.parametrize(
    "text",
    [
        # An escaped line break, then an escaped space on the next line.
        '"v": "00000\\\n  \\ 01"\n',
        # A folded line break, then an escaped space.
        '"v": "ab\n  \\ cd"\n',
        '"v": "ab\\\r\n  \\ cd"\n',
    ],
    ids=["escaped-break", "folded-break", "escaped-crlf"],
)
def test_a_continuation_line_prefix_is_never_content(text: str) -> None:
    node = scalar(text)

    escaped_space = node.locate(node.text.rindex(" "))

    assert (escaped_space.line, char_at(text, escaped_space)) == (2, "\\")
    for offset, char in enumerate(node.text):
        if not char.isspace():
            assert char_at(text, node.locate(offset)) == char, offset


@settings(max_examples=150, deadline=None)
@given(
    value=_TEXT,
    style=st.sampled_from([None, "'", '"', "|", ">"]),
    width=st.integers(min_value=10, max_value=80),
)
def test_locations_survive_any_style_pyyaml_writes(
    value: str, style: str | None, width: int
) -> None:
    """Whatever PyYAML emits for a string, our reading of it locates every
    visible character at that character (or at the escape writing it)."""
    text = yaml.dump({"v": value}, default_style=style, width=width, allow_unicode=True)
    root, problems = load(text)
    assert problems == []
    assert isinstance(root, YMap)
    node = root.get("v")
    assert isinstance(node, YScalar)
    if node.text != value:
        return  # PyYAML chose a form we resolve differently (e.g. a number)
    lines = text.splitlines()
    for offset, char in enumerate(node.text):
        if char.isspace():
            continue
        at = node.locate(offset)
        written = lines[at.line - 1][at.column - 1]
        assert written == char or written == "\\"


@pytest.mark.parametrize("depth", [200, 5000])
def test_deep_nesting_is_an_error_not_a_crash(depth: int) -> None:
    root, problems = load("a: " + "[" * depth + "]" * depth + "\n")
    assert root is None
    assert len(problems) == 1 and "error[E101]" in problems[0]


def test_nesting_up_to_the_limit_is_read() -> None:
    root, problems = load("a: " + "[" * 60 + "]" * 60 + "\n")
    assert problems == [] and root is not None
