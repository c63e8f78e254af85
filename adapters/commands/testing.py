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

import datetime as dt
import json
from pathlib import Path
from typing import Any

import click

from adapters import exitcodes
from adapters.commands.common import fail, load_compiled
from adapters.commands.planning import check_day, data_option
from adapters.commands.validating import DEFAULT_PATH
from adapters.diff import (
    DiffError,
    RevisionError,
    diff_rulesets,
    format_json,
    format_markdown,
    format_text,
    resolved_ruleset,
)
from adapters.policytest import COVERAGE_KINDS, CaseResult, TestRun, run_tests
from adapters.sources import SourceConfigError
from adapters.terminal import echo, echo_lines
from dsl.diagnostics import Diagnostic


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
    if not paths and not Path(DEFAULT_PATH).exists():
        raise click.BadParameter(
            f"no PATH given and the default, {DEFAULT_PATH}, does not exist here",
            param_hint="PATHS",
        )
    run = run_tests(paths or (Path(DEFAULT_PATH),))
    below = run.below(min_coverage) if min_coverage is not None else []

    if output_format == "json":
        click.echo(
            json.dumps(_run_json(run, min_coverage), indent=2, ensure_ascii=False)
        )
    else:
        echo_lines(_run_text(run, min_coverage, verbose))

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
        lines += [
            f"  {failure.location}: {failure.message}" for failure in result.failures
        ]

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
                for coverage, kind in (
                    run.below(minimum) if minimum is not None else []
                )
            ],
        },
    }


# ruleset diff -------------------------------------------------------------

# A longer range is rarely what a reviewer means, and costs a plan per
# customer per day.
MAX_DAYS = 366


def _date(text: str | None, option: str) -> dt.date | None:
    if text is None:
        return None
    try:
        day = dt.date.fromisoformat(text.strip())
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not an ISO date (2026-03-09)", param_hint=option
        ) from None
    return check_day(day, option)


def _time(text: str) -> dt.time:
    try:
        return dt.time.fromisoformat(text.strip())
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not a time of day (06:00)", param_hint="--at"
        ) from None


@click.command("diff")
@click.argument("old")
@click.argument("new")
@data_option
@click.option(
    "--from", "first_text", metavar="DATE", help="First day (default: tomorrow)."
)
@click.option(
    "--to",
    "last_text",
    metavar="DATE",
    help="Last day (default: six days after --from, a week in all).",
)
@click.option(
    "--at",
    "at_text",
    default="00:00",
    show_default=True,
    metavar="HH:MM",
    help="Time of each day's run, in each ruleset's zone.",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "markdown", "json"]),
    default="text",
    show_default=True,
    help="text for a terminal, markdown for a pull-request comment, json.",
)
@click.option(
    "--examples",
    type=click.IntRange(0, 1000),
    default=5,
    show_default=True,
    help="Example customers and actions shown per kind of change.",
)
@click.option(
    "--on-bad-record",
    type=click.Choice(["fail", "skip"]),
    default="fail",
    show_default=True,
    help="fail: list bad input records and write no report (exit 3);"
    " skip: list them and compare without them.",
)
def diff(
    old: str,
    new: str,
    data: str,
    first_text: str | None,
    last_text: str | None,
    at_text: str,
    output_format: str,
    examples: int,
    on_bad_record: str,
) -> None:
    """Show what changes between two versions of a ruleset, on real data.

    OLD and NEW are ruleset paths or REV:PATH, a git revision and the
    ruleset's path in it (`HEAD~1:rulesets/varejo`, `main:rulesets/varejo`;
    PATH from the top of the repository, or from here when it starts with
    ./). Both are planned for every customer of --data on every day from
    --from to --to, and the report lists segment moves, actions added,
    removed, moved, or changed in channel or copy, messages and cost per
    day and channel, and, flagged loudly, reminders whose id changes (the
    ledger would send them again).
    """
    run_time = _time(at_text)
    first = _date(first_text, "--from")
    last = _date(last_text, "--to")

    try:
        with resolved_ruleset(old) as old_path, resolved_ruleset(new) as new_path:
            for spec, path in ((old, old_path), (new, new_path)):
                if not path.exists():
                    raise click.BadParameter(f"{spec} does not exist", param_hint=spec)
            _, before = load_compiled(old_path, old)
            _, after = load_compiled(new_path, new)
            if first is None:
                today = dt.datetime.now(after.zone).date()
                first = today + dt.timedelta(days=1)
            last = last or first + dt.timedelta(days=6)
            if last < first:
                raise click.BadParameter(
                    f"{last} is before --from {first}", param_hint="--to"
                )
            if (last - first).days + 1 > MAX_DAYS:
                raise click.BadParameter(
                    f"at most {MAX_DAYS} days at a time", param_hint="--to"
                )
            report = diff_rulesets(
                before,
                after,
                data,
                first=first,
                last=last,
                run_time=run_time,
                on_error=on_bad_record,
                old_label=old,
                new_label=new,
                examples=examples,
            )
    except RevisionError as error:
        fail(str(error), exitcodes.USAGE)
    except SourceConfigError as error:
        fail(f"--data {data}: {error}", exitcodes.CONFIG_ERROR)
    except DiffError as error:
        fail(str(error), exitcodes.INPUT_ERRORS)

    if report.problems:
        for problem in report.problems:
            echo(f"bad record: {problem}", err=True)
        if on_bad_record == "fail":
            fail(
                f"{len(report.problems)} bad input record(s); no report"
                " (--on-bad-record skip compares without them)",
                exitcodes.INPUT_ERRORS,
            )
    renderers = {"text": format_text, "markdown": format_markdown, "json": format_json}
    rendered = renderers[output_format](report)
    if output_format == "json":
        click.echo(rendered)  # for programs: an escape of ours would change it
    else:
        echo(rendered)
