"""Property tests: whatever a policy file holds, validation ends in
diagnostics or success, never in an exception."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsl.diagnostics import Diagnostic, Severity
from dsl.loader import check_ruleset
from tests.dsl.policy_text import MINI

ROOT = Path(__file__).resolve().parents[2]
VAREJO = ROOT / "rulesets" / "varejo"

FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def assert_well_formed(
    result: tuple[object, list[Diagnostic]], files: set[str]
) -> None:
    ruleset, diagnostics = result
    for diagnostic in diagnostics:
        assert diagnostic.location.path in files
        assert diagnostic.location.line >= 1 and diagnostic.location.column >= 1
        assert diagnostic.code[0] in "EW" and diagnostic.message
    if any(d.severity is Severity.ERROR for d in diagnostics):
        assert ruleset is None
    else:
        assert ruleset is not None


def check_bytes(scratch: Path, data: bytes) -> None:
    path = scratch / "policy.yaml"
    path.write_bytes(data)
    assert_well_formed(check_ruleset(path), {str(path)})


@FUZZ
@given(st.binary(max_size=400))
def test_random_bytes(scratch: Path, data: bytes) -> None:
    check_bytes(scratch, data)


@FUZZ
@given(
    st.text(
        alphabet=st.sampled_from(list(":-{}[]#&*!|>'\"%@`,? \n\tab1")), max_size=200
    )
)
def test_random_yaml_punctuation(scratch: Path, text: str) -> None:
    check_bytes(scratch, text.encode())


_KEYS = st.sampled_from(
    [
        "ruleset",
        "timezone",
        "segments",
        "ladders",
        "channels",
        "templates",
        "inputs",
        "name",
        "when",
        "at",
        "step",
        "window",
        "mon-fri",
        "customer",
        "invoice",
        "payment",
        "id",
        "sms",
        "on",
    ]
)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 300),
    st.text(max_size=12),
    st.sampled_from(["D-3", "true", "08:00-20:00", "money", "string?", "2 days"]),
)
_DOCUMENTS = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(_KEYS, inner, max_size=5)
    ),
    max_leaves=25,
)


@FUZZ
@given(_DOCUMENTS)
def test_random_documents(scratch: Path, document: object) -> None:
    check_bytes(scratch, yaml.safe_dump(document, allow_unicode=True).encode())


def _mutate(text: str, data: st.DataObject) -> str:
    """One of a few edits people make by mistake, at a random place."""
    lines = text.splitlines(keepends=True)
    index = data.draw(st.integers(0, len(lines) - 1), label="line")
    kind = data.draw(
        st.sampled_from(["delete", "duplicate", "indent", "dedent", "insert", "swap"]),
        label="kind",
    )
    if kind == "delete":
        del lines[index]
    elif kind == "duplicate":
        lines.insert(index, lines[index])
    elif kind == "indent":
        lines[index] = "  " + lines[index]
    elif kind == "dedent":
        lines[index] = (
            lines[index][2:] if lines[index].startswith("  ") else lines[index]
        )
    elif kind == "swap":
        other = data.draw(st.integers(0, len(lines) - 1), label="other")
        lines[index], lines[other] = lines[other], lines[index]
    else:
        line = lines[index]
        at = data.draw(st.integers(0, len(line)), label="column")
        piece = data.draw(
            st.sampled_from(
                [
                    "x",
                    "{",
                    "}",
                    ":",
                    " ",
                    '"',
                    "'",
                    "no",
                    "1",
                    ".",
                    "(",
                    "ã",
                    "&a",
                    "*a",
                ]
            ),
            label="piece",
        )
        lines[index] = line[:at] + piece + line[at:]
    return "".join(lines)


@FUZZ
@given(st.data())
def test_mutated_small_policies(scratch: Path, data: st.DataObject) -> None:
    text = MINI
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        text = _mutate(text, data)
    check_bytes(scratch, text.encode())


@pytest.fixture(scope="module")
def varejo_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("varejo") / "varejo"
    shutil.copytree(VAREJO, target)
    return target


@FUZZ
@given(st.data(), st.sampled_from(["ruleset.yaml", "templates.yaml", "inputs.yaml"]))
def test_mutated_example_policy(
    varejo_copy: Path, data: st.DataObject, name: str
) -> None:
    original = (VAREJO / name).read_text(encoding="utf-8")
    path = varejo_copy / name
    path.write_text(_mutate(original, data), encoding="utf-8")
    try:
        files = {
            str(varejo_copy / n)
            for n in ("ruleset.yaml", "templates.yaml", "inputs.yaml")
        }
        files |= {str(p) for p in varejo_copy.glob("*.yaml")}
        assert_well_formed(check_ruleset(varejo_copy), files | {str(varejo_copy)})
    finally:
        path.write_text(original, encoding="utf-8")


_EXPRESSION_PIECES = st.sampled_from(
    [
        "customer.",
        "invoice.",
        "amount",
        "first_name",
        "history.late_count(",
        "6 months",
        ")",
        "(",
        " and ",
        " or ",
        "not ",
        " == ",
        " >= ",
        "50.00",
        '"x"',
        "null",
        "true",
        "[1, 2]",
        " in ",
        "__class__",
        "{",
        "}",
        "coalesce(",
        ", ",
    ]
)


@FUZZ
@given(st.lists(_EXPRESSION_PIECES, max_size=8), st.sampled_from(["when", "template"]))
def test_random_expressions_in_their_places(
    scratch: Path, pieces: list[str], place: str
) -> None:
    expression = "".join(pieces).replace("'", "")
    quoted = "'" + expression + "'"
    if place == "when":
        text = MINI.replace("    when: true\n", f"    when: {quoted}\n")
    else:
        text = MINI.replace('      subject: "Fatura"', f"      subject: {quoted}")
    check_bytes(scratch, text.encode())


def test_the_deepest_document_the_reader_accepts_is_checked(scratch: Path) -> None:
    nested = "[" * 63 + "]" * 63
    check_bytes(
        scratch, f"ruleset: x\ndescription: {nested}\nsegments: {nested}\n".encode()
    )
