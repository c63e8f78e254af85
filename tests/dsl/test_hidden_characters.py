"""W303: policy text holding a character a reviewer cannot see (a bidi
override, a zero-width space, ESC) is warned about at its exact place."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from adapters.cli import main
from dsl.diagnostics import Diagnostic, Severity
from tests.dsl.policy_text import MINI, check_text, replaced

SMS = '    sms: "Oi {customer.first_name}, pague: {invoice.payment_link}"\n'


def warnings_of(tmp_path: Path, text: str) -> list[Diagnostic]:
    ruleset, diagnostics = check_text(tmp_path, text)
    assert ruleset is not None, [str(d) for d in diagnostics]  # warnings only
    return [d for d in diagnostics if d.code == "W303"]


def place(text: str, needle: str) -> tuple[int, int]:
    """Line and column (1-based) where `needle` starts in `text`."""
    offset = text.index(needle)
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


@pytest.mark.parametrize(
    ("written", "char", "name"),
    [
        ("\u202e", "\u202e", "U+202E RIGHT-TO-LEFT OVERRIDE"),
        ("\u2067", "\u2067", "U+2067 RIGHT-TO-LEFT ISOLATE"),
        ("\u200b", "\u200b", "U+200B ZERO WIDTH SPACE"),
        ("\\u202e", "\\u202e", "U+202E RIGHT-TO-LEFT OVERRIDE"),  # YAML escape
        ("\\e[31m", "\\e", "U+001B ESCAPE"),
        ("\\a", "\\a", "U+0007 BELL"),
    ],
)
def test_a_hidden_character_in_copy_warns_at_its_column(
    tmp_path: Path, written: str, char: str, name: str
) -> None:
    copy = f'    sms: "Oi {{customer.first_name}}, {written}pague: "\n'
    text = replaced(SMS, copy)

    [warning] = warnings_of(tmp_path, text)

    assert warning.severity is Severity.WARNING
    line, column = place(text, char + ("" if char == written else written[2:]))
    assert (warning.location.line, warning.location.column) == (line, column)
    assert name in warning.message


def test_each_hidden_character_of_a_block_scalar_is_placed(tmp_path: Path) -> None:
    copy = (
        "    sms: |\n"
        "      Oi {customer.first_name},\n"
        "      \u2066pague\u2069: {invoice.payment_link}\n"
    )
    text = replaced(SMS, copy)

    found = warnings_of(tmp_path, text)

    assert [(d.location.line, d.location.column) for d in found] == [
        place(text, "\u2066"),
        place(text, "\u2069"),
    ]


def test_a_hidden_character_in_an_expression_string_warns(tmp_path: Path) -> None:
    text = replaced(
        "    when: true\n",
        "    when: 'customer.first_name != \"adm\u202eni\"'\n",
    )

    [warning] = warnings_of(tmp_path, text)

    assert (warning.location.line, warning.location.column) == place(text, "\u202e")


@pytest.mark.parametrize(
    "copy",
    [
        "Oi {customer.first_name},\\n\\tpague",  # line breaks and tabs lay out
        "Oi \U0001f468\u200d\U0001f469\u200d\U0001f467",  # joined emoji
        "R$\xa010 \u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",
    ],
)
def test_visible_text_and_joiners_do_not_warn(tmp_path: Path, copy: str) -> None:
    text = replaced(SMS, f'    sms: "{copy}"\n')

    assert warnings_of(tmp_path, text) == []


def test_validate_shows_the_warning_and_never_the_character(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text(
        MINI.replace(
            "Oi {customer.first_name}, pague", "Oi\u202e {customer.first_name}"
        ),
        encoding="utf-8",
    )

    result = CliRunner().invoke(main, ["validate", "--strict", str(tmp_path)])

    assert result.exit_code == 1
    line, column = place(MINI, "Oi {customer.first_name}, pague")
    assert f"policy.yaml:{line}:{column + 2}: warning[W303]: " in result.stdout
    assert "U+202E RIGHT-TO-LEFT OVERRIDE" in result.stdout
    assert "\u202e" not in result.stdout


def test_validate_text_escapes_policy_text_quoted_in_a_message(tmp_path: Path) -> None:
    # A bad window name is quoted in E114's message as written (through
    # YAML escapes: a raw ESC is not allowed in YAML, an escape gives it).
    text = replaced(
        "windows:\n", 'windows:\n  "\\e[2Jx\\u202e": {mon-fri: 08:00-20:00}\n'
    )
    (tmp_path / "policy.yaml").write_text(text, encoding="utf-8")

    result = CliRunner().invoke(main, ["validate", str(tmp_path)])

    assert result.exit_code == 1
    assert "\x1b" not in result.stdout and "\u202e" not in result.stdout
    assert "\\x1b[2Jx\\u202e" in result.stdout
