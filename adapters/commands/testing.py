"""`ruleset test` and `ruleset diff`: the policy change workflow.

`test` runs the policy unit tests (docs/testing.md). Exit status: 0 every
case passed (and coverage is at least `--min-coverage`); 1 a case failed, a
test file has mistakes, coverage is too low or no case was found; 2 usage
error; 4 a ruleset under test is invalid.

`diff` plans two versions of a ruleset over the same data and date range and
reports what changes (docs/testing.md, "ruleset diff"). Exit status: 0 the
report was written; 2 usage error (a bad revision, a bad date); 3 bad
input records with `--on-bad-record fail`; 4 an invalid ruleset or an
unusable `--data`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NoReturn

import click

from adapters import exitcodes
from adapters.commands.validating import DEFAULT_PATH
from adapters.policytest import COVERAGE_KINDS, CaseResult, TestRun, run_tests
from dsl.diagnostics import Diagnostic


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    raise SystemExit(code)


@click.command("test")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text for people, json for machines.",
)
@click.option(
    "--min-coverage",
    type=click.FloatRange(0, 100),
    metavar="PERCENT",
    help="Fail when the segments, steps, channels or suppression rules the"
    " cases exercised are below PERCENT of a ruleset's, for any of the four.",
)
@click.option("--verbose", "-v", is_flag=True, help="List passing cases too.")
def test(
    paths: tuple[Path, ...],
    output_format: str,
    min_coverage: float | None,
    verbose: bool,
) -> None:
    """Run the policy tests under PATHS (default: rulesets/).

    A PATH is a test file (*.test.yaml), a ruleset, or a folder: every test
    file below it runs against the ruleset it belongs to.
    """
    for path in paths:
        if not path.exists():
            raise click.BadParameter(f"{path} does not exist", param_hint="PATHS")
    run = run_tests(paths or (Path(DEFAULT_PATH),))
    below = run.below(min_coverage) if min_coverage is not None else []

    if output_format == "json":
        click.echo(json.dumps(_run_json(run, min_coverage), indent=2, ensure_ascii=False))
    else:
        for line in _run_text(run, min_coverage, verbose):
            click.echo(line)

    if run.ruleset_errors:
        raise SystemExit(exitcodes.CONFIG_ERROR)
    if run.failed or run.file_errors or below or not run.results:
        raise SystemExit(exitcodes.PROBLEMS)


def _run_text(run: TestRun, minimum: float | None, verbose: bool) -> list[str]:
    lines: list[str] = []
    for diagnostic in run.ruleset_errors + run.file_errors:
        lines.append(str(diagnostic))
    for result in run.results:
        if result.passed and not verbose:
            continue
        lines.append(f"{result.case.location}: {_status(result)} {result.case.name}")
        lines += [f"  {failure.location}: {failure.message}" for failure in result.failures]

    if lines:
        lines.append("")
    lines.append("coverage (exercised / defined):")
    for coverage in run.coverage:
        parts = []
        for kind in COVERAGE_KINDS:
            covered, total = coverage.counts(kind)
            parts.append(f"{kind} {covered}/{total}")
        lines.append(f"  {coverage.ruleset} ({coverage.path}): {', '.join(parts)}")
        for kind in COVERAGE_KINDS:
            missing = coverage.missing(kind)
            if missing:
                lines.append(f"    no case exercised {kind}: {', '.join(missing)}")
    if minimum is not None:
        for coverage, kind in run.below(minimum):
            lines.append(
                f"coverage of {kind} in {coverage.ruleset} is"
                f" {coverage.percent(kind):.0f}%, below --min-coverage {minimum:g}"
            )

    passed = len(run.results) - len(run.failed)
    summary = f"{len(run.results)} case(s): {passed} passed, {len(run.failed)} failed"
    if run.file_errors:
        summary += f"; {len(run.file_errors)} problem(s) in test files"
    if run.ruleset_errors:
        summary += "; a ruleset under test is invalid"
    if not run.results and not run.file_errors and not run.ruleset_errors:
        summary = "no test cases found (test files are named *.test.yaml)"
    lines.append(summary)
    return lines


def _status(result: CaseResult) -> str:
    return "PASS" if result.passed else "FAIL"


def _diagnostic_json(diagnostic: Diagnostic) -> dict[str, Any]:
    at = diagnostic.location
    return {
        "path": at.path,
        "line": at.line,
        "column": at.column,
        "code": diagnostic.code,
        "message": diagnostic.message,
        "hint": diagnostic.hint,
    }


def _run_json(run: TestRun, minimum: float | None) -> dict[str, Any]:
    return {
        "cases": [
            {
                "path": str(result.path),
                "line": result.case.location.line,
                "name": result.case.name,
                "status": "passed" if result.passed else "failed",
                "failures": [failure.to_json() for failure in result.failures],
            }
            for result in run.results
        ],
        "test_file_errors": [_diagnostic_json(d) for d in run.file_errors],
        "ruleset_errors": [_diagnostic_json(d) for d in run.ruleset_errors],
        "coverage": [coverage.to_json() for coverage in run.coverage],
        "min_coverage": minimum,
        "summary": {
            "cases": len(run.results),
            "passed": len(run.results) - len(run.failed),
            "failed": len(run.failed),
            "below_min_coverage": [
                {"ruleset": coverage.ruleset, "kind": kind}
                for coverage, kind in (run.below(minimum) if minimum is not None else [])
            ],
        },
    }
