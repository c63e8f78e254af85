"""`ruleset validate` and `ruleset schema`.

`validate` checks every ruleset found under the paths given and reports all
problems: errors first, then warnings, each group sorted by file, line and
column. Exit status: 0 clean (warnings alone do not fail unless
`--strict`), 1 problems found, 2 usage error (a path that does not exist,
a path holding no ruleset, a bad option).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click

from adapters import exitcodes
from adapters.terminal import echo, echo_lines
from dsl.diagnostics import Diagnostic, Severity
from dsl.loader import check_ruleset, find_rulesets
from dsl.schema import policy_schema
from dsl.sms import SmsEstimate, sms_estimates

DEFAULT_PATH = "rulesets/"


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json", "github"]),
    default="text",
    show_default=True,
    help="text for people, json for machines, github for pull-request annotations.",
)
@click.option("--strict", is_flag=True, help="Warnings fail the check too.")
def validate(paths: tuple[Path, ...], output_format: str, strict: bool) -> None:
    """Check the rulesets under PATHS (default: rulesets/).

    A PATH is a ruleset file, a ruleset directory or a directory of rulesets.
    """
    if not paths and not Path(DEFAULT_PATH).exists():
        raise click.BadParameter(
            f"no PATH given and the default, {DEFAULT_PATH}, does not exist here",
            param_hint="PATHS",
        )
    rulesets = _rulesets(paths or (Path(DEFAULT_PATH),))

    diagnostics: set[Diagnostic] = set()
    estimates: list[SmsEstimate] = []
    for ruleset_path in rulesets:
        model, found = check_ruleset(ruleset_path)
        diagnostics.update(found)
        if model is not None:
            estimates.extend(sms_estimates(model))

    errors = _sorted(d for d in diagnostics if d.severity is Severity.ERROR)
    warnings = _sorted(d for d in diagnostics if d.severity is Severity.WARNING)
    summary = _summary(len(rulesets), len(errors), len(warnings))

    if output_format == "json":
        items = [_as_json(d) for d in errors + warnings]
        items += [_estimate_json(e) for e in estimates]
        click.echo(json.dumps(items, indent=2, ensure_ascii=False))
        echo(summary, err=True)
    elif output_format == "github":
        for diagnostic in errors + warnings:
            echo(_as_github(diagnostic))
        echo(summary)
    else:
        echo_lines(_as_text(diagnostic) for diagnostic in errors + warnings)
        echo(summary)

    if errors or (strict and warnings):
        click.get_current_context().exit(exitcodes.PROBLEMS)


@click.command()
def schema() -> None:
    """Print the JSON Schema of policy files, for editors.

    For the VS Code YAML extension, save it and map it to your policy files
    in `yaml.schemas`; files a ruleset references use `#/$defs/inputs` and
    `#/$defs/templates`.
    """
    click.echo(
        json.dumps(policy_schema(), indent=2, sort_keys=True, ensure_ascii=False)
    )


def _rulesets(paths: Iterable[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if not path.exists():
            raise click.BadParameter(f"{path} does not exist", param_hint="PATHS")
        rulesets = find_rulesets(path)
        if not rulesets:
            raise click.UsageError(
                f"no ruleset in {path}: no YAML file with a top-level `ruleset:` key"
            )
        found.extend(r for r in rulesets if r not in found)
    return found


def _shown(path: str) -> str:
    """A path relative to the working directory when it lies below it."""
    if not os.path.isabs(path):
        return path
    try:
        relative = Path(path).relative_to(Path.cwd())
    except ValueError:
        return path
    return str(relative)


def _sorted(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    def key(d: Diagnostic) -> tuple[str, int, int, str, str]:
        at = d.location
        return (_shown(at.path), at.line, at.column, d.code, d.message)

    return sorted(diagnostics, key=key)


def _summary(rulesets: int, errors: int, warnings: int) -> str:
    checked = f"{rulesets} ruleset{'s' if rulesets != 1 else ''}"
    if not errors and not warnings:
        return f"{checked} checked: no problems"
    return (
        f"{checked} checked: {errors} error{'s' if errors != 1 else ''}, "
        f"{warnings} warning{'s' if warnings != 1 else ''}"
    )


def _as_text(d: Diagnostic) -> str:
    at = d.location
    text = f"{_shown(at.path)}:{at.line}:{at.column}: {d.severity.value}[{d.code}]: "
    text += d.message
    return text + (f" ({d.hint})" if d.hint else "")


def _as_json(d: Diagnostic) -> dict[str, Any]:
    return {
        "path": _shown(d.location.path),
        "line": d.location.line,
        "column": d.location.column,
        "severity": d.severity.value,
        "code": d.code,
        "message": d.message,
        "hint": d.hint,
    }


def _estimate_json(e: SmsEstimate) -> dict[str, Any]:
    """SMS segment counts, as an `info` entry beside the diagnostics."""
    plain, worst = e.plain, e.worst
    return {
        "path": _shown(e.location.path),
        "line": e.location.line,
        "column": e.location.column,
        "severity": "info",
        "code": "I501",
        "message": (
            f"SMS `{e.template}` for `{e.channel}`: {plain.segments} segment(s) "
            f"({plain.encoding}, up to {plain.length}) with plain values, "
            f"{worst.segments} in the worst case ({worst.encoding})"
        ),
        "hint": None,
        "sms": {
            "template": e.template,
            "channel": e.channel,
            "encoding": plain.encoding,
            "length": plain.length,
            "segments": plain.segments,
            "worst_encoding": worst.encoding,
            "worst_segments": worst.segments,
            "max_segments": e.max_segments,
        },
    }


def _as_github(d: Diagnostic) -> str:
    """A workflow command that annotates the line in a pull request."""
    at = d.location
    level = "error" if d.severity is Severity.ERROR else "warning"
    properties = ",".join(
        f"{name}={_escape_property(str(value))}"
        for name, value in (
            ("file", _shown(at.path)),
            ("line", at.line),
            ("col", at.column),
            ("title", d.code),
        )
    )
    message = d.message + (f" ({d.hint})" if d.hint else "")
    return f"::{level} {properties}::{_escape_data(message)}"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")
