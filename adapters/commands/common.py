"""What every command does at the CLI boundary: fail with a message and an
exit code, and load a ruleset or exit 4 with its diagnostics."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

from adapters import exitcodes
from adapters.terminal import echo
from dsl.diagnostics import PolicyError
from dsl.loader import load_ruleset
from dsl.model import Ruleset
from engine.compiler import CompiledRuleset, CompileError, compile_ruleset


def fail(message: str, code: int) -> NoReturn:
    """`error: message` on standard error, then exit with `code`."""
    echo(f"error: {message}", err=True)
    raise SystemExit(code)


def load_compiled(
    path: str | Path, label: str | None = None
) -> tuple[Ruleset, CompiledRuleset]:
    """Load and compile a ruleset, or exit 4 with its diagnostics.

    `label` names the ruleset in the error (default: its path), so a diff
    can speak of `HEAD~1:rulesets/varejo` rather than a temporary folder.
    """
    name = str(path) if label is None else label
    try:
        ruleset = load_ruleset(path)
    except PolicyError as error:
        for diagnostic in error.diagnostics:
            echo(str(diagnostic), err=True)
        fail(f"{name}: the ruleset is not valid", exitcodes.CONFIG_ERROR)
    try:
        return ruleset, compile_ruleset(ruleset)
    except CompileError as error:
        fail(f"{name}: {error}", exitcodes.CONFIG_ERROR)
