"""`ruleset plan` and `ruleset explain`.

`--as-of WHEN` is read in the ruleset's time zone:

- a date (`2024-11-15`) is that day's first instant: the plan for the whole
  day, with every window of the day still ahead (midnight that does not
  exist on a DST change day is the first minute after the gap);
- a datetime without an offset (`2024-11-15T10:30`) is wall-clock time in
  the ruleset's zone;
- a datetime with an offset or `Z` is that instant;
- nothing: the current instant.

The plan is written as canonical JSON Lines in UTF-8 whatever the locale,
header first: actions are spooled (in memory up to a few MB, then in a
temporary file) until the source has been read and its digest is known.

Exit codes (adapters/exitcodes.py): 0 plan written; 2 usage error (an
`--output` file that cannot be written among them), and for
`explain` a customer that is not in the data; 3 bad input records with
`--on-bad-record fail` (the default; the problems are listed on stderr and
no plan is written); 4 an invalid ruleset (its diagnostics on stderr) or an
unusable `--data`.
"""

from __future__ import annotations

import datetime as dt
import re
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import IO, Any
from zoneinfo import ZoneInfo

import click

from adapters import exitcodes
from adapters.asof import out_of_range
from adapters.commands.common import fail, load_compiled
from adapters.outcome import OutcomeFieldError, OutcomeTally, outcome_field
from adapters.sources import SourceConfigError, open_source
from adapters.terminal import echo, echo_lines, printable
from dsl.model import Ruleset
from engine.calendar import local_datetime
from engine.compiler import CompiledRuleset
from engine.explain import explain_customer
from engine.plan import Action, canonical_json
from engine.planner import plan as make_plan
from engine.records import RecordSource

# Actions stay in memory up to this size before the spool moves to disk.
SPOOL_BYTES = 8 * 1024 * 1024

_QUOTED = re.compile(r" '[^']*'")

# How many rendered messages the table shows.
SAMPLE_MESSAGES = 5


def parse_as_of(text: str | None, zone: ZoneInfo) -> dt.datetime:
    """An aware instant from `--as-of` (see the module docstring)."""
    if text is None:
        return dt.datetime.now(dt.UTC).astimezone(zone)
    value = text.strip()
    try:
        if len(value) == 10:
            day = dt.date.fromisoformat(value)
            return local_datetime(check_day(day, "--as-of"), dt.time(0), zone)
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not an ISO date (2024-11-15) or datetime "
            "(2024-11-15T10:30, 2024-11-15T10:30-03:00)",
            param_hint="--as-of",
        ) from None
    check_day(moment.date(), "--as-of")
    if moment.tzinfo is None:
        return local_datetime(moment.date(), moment.time(), zone)
    return moment.astimezone(zone)


def check_day(day: dt.date, option: str) -> dt.date:
    """`day`, when it is one a plan can be made for; else a usage error."""
    problem = out_of_range(day)
    if problem is not None:
        raise click.BadParameter(problem, param_hint=option)
    return day


def parse_since(text: str | None) -> dt.date | None:
    if text is None:
        return None
    try:
        day = dt.date.fromisoformat(text.strip())
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not an ISO date (2024-11-15)", param_hint="--since"
        ) from None
    return check_day(day, "--since")


def _open(data: str, ruleset: Ruleset, on_bad_record: str) -> RecordSource:
    try:
        return open_source(data, ruleset.inputs, on_error=on_bad_record)
    except SourceConfigError as error:
        fail(f"--data {data}: {error}", exitcodes.CONFIG_ERROR)


def outcome_tally(ruleset: Ruleset, name: str | None) -> OutcomeTally | None:
    """The tally `--outcome` asks for (None without it); a field that is
    not a bool customer field is a usage error."""
    if name is None:
        return None
    try:
        return OutcomeTally(outcome_field(ruleset.inputs, name))
    except OutcomeFieldError as error:
        raise click.BadParameter(str(error), param_hint="--outcome") from None


def _report_problems(source: RecordSource, on_bad_record: str) -> None:
    """List bad input records on stderr; exit 3 when they must stop us."""
    if not source.problems:
        return
    for problem in source.problems:
        echo(f"bad record: {problem}", err=True)
    count = len(source.problems)
    if any(problem.owner_unknown for problem in source.problems):
        fail(
            f"{count} bad input record(s), some of which cannot be told whose"
            " they are; no plan written",
            exitcodes.INPUT_ERRORS,
        )
    if on_bad_record == "fail":
        fail(
            f"{count} bad input record(s); no plan written "
            "(--on-bad-record skip plans without them)",
            exitcodes.INPUT_ERRORS,
        )
    echo(f"warning: {count} bad input record(s) left out", err=True)


@contextmanager
def _reading(data: str) -> Iterator[None]:
    """A source that breaks mid-read (a lost connection) is a bad --data."""
    try:
        yield
    except SourceConfigError as error:
        fail(f"--data {data}: {error}", exitcodes.CONFIG_ERROR)


data_option = click.option(
    "--data",
    required=True,
    metavar="SRC",
    help="Data source: a folder, a source.yaml or a .jsonl file.",
)
as_of_option = click.option(
    "--as-of",
    "as_of",
    metavar="WHEN",
    help="Date or datetime to plan for, in the ruleset's zone (default: now).",
)
since_option = click.option(
    "--since",
    metavar="DATE",
    help="Earliest step day to consider (default: today minus the catch-up).",
)
on_bad_record_option = click.option(
    "--on-bad-record",
    type=click.Choice(["fail", "skip"]),
    default="fail",
    show_default=True,
    help="fail: list bad input records and write no plan (exit 3); "
    "skip: list them and plan without them.",
)


@click.command()
@click.argument("ruleset_path", metavar="RULESET", type=click.Path(exists=True))
@data_option
@as_of_option
@since_option
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["jsonl", "table"]),
    default="jsonl",
    show_default=True,
    help="jsonl: the canonical plan; table: a summary for people.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True),
    help="Write to this file instead of standard output.",
)
@on_bad_record_option
@click.option(
    "--outcome",
    "outcome_name",
    metavar="FIELD",
    help="With --format table: a bool customer field (e.g. defaulted_next_month); "
    "the table shows, per segment, how many customers have it true and the rate.",
)
def plan(
    ruleset_path: str,
    data: str,
    as_of: str | None,
    since: str | None,
    output_format: str,
    output: str | None,
    on_bad_record: str,
    outcome_name: str | None,
) -> None:
    """Plan the actions of RULESET for the customers in --data.

    Writes the plan as canonical JSON Lines (a header line, then one line
    per action) or, with --format table, a summary for a finance analyst.

    --as-of: a date plans that whole day (from its first instant); a
    datetime without an offset is wall-clock time in the ruleset's zone.

    --outcome FIELD (with --format table) shows, per segment, how many
    customers have a bool customer field true (defaulted_next_month in the
    UCI data): whether the segments separate the customers who defaulted.

    Exit codes: 0 plan written; 2 usage error; 3 bad input records (with
    --on-bad-record fail); 4 invalid ruleset or unusable --data.
    """
    if outcome_name is not None and output_format != "table":
        raise click.UsageError("--outcome is shown in the table: add --format table")
    ruleset, compiled = load_compiled(ruleset_path)
    moment = parse_as_of(as_of, compiled.zone)
    start = parse_since(since)
    tally = outcome_tally(ruleset, outcome_name)
    source = _open(data, ruleset, on_bad_record)
    the_plan = make_plan(
        compiled,
        source,
        moment,
        since=start,
        on_customer=None if tally is None else tally.add,
    )

    summary = Summary(compiled, outcome=tally)
    with (
        tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES, mode="w+b") as spool,
        _reading(data),
    ):
        for action in the_plan.actions:
            summary.add(action)
            if output_format == "jsonl":
                spool.write(canonical_json(action.to_json()).encode("utf-8") + b"\n")
        _report_problems(source, on_bad_record)
        summary.customers = the_plan.customers
        summary.segments = the_plan.segments
        summary.notes = list(source.notes)
        if output_format == "jsonl":
            # Standard output is the plan, byte for byte: notes go beside it.
            _echo_notes(summary.notes)
        if summary.errors:
            echo(
                f"warning: {summary.errors} customer(s) could not be planned "
                '(decision "error" in the plan)',
                err=True,
            )

        with _destination(output) as out:
            if output_format == "jsonl":
                out.write(canonical_json(the_plan.header.to_json()).encode("utf-8"))
                out.write(b"\n")
                spool.seek(0)
                while chunk := spool.read(1024 * 1024):
                    out.write(chunk)
            else:
                lines = summary.lines(the_plan.header.to_json())
                text = "".join(printable(line) + "\n" for line in lines)
                out.write(text.encode("utf-8"))


def _echo_notes(notes: list[str], qualifier: str = "") -> None:
    """The source's notes on standard error, one per line."""
    for note in notes:
        echo(f"note: data source{qualifier}: {note}", err=True)


@contextmanager
def _destination(output: str | None) -> Iterator[IO[bytes]]:
    """Bytes, so the locale never picks the encoding or the line ends.

    A file that cannot be opened, written or closed (a read-only place, a
    full disk, a special file) is a usage error naming the file.
    """
    if output is None:
        stream = sys.stdout.buffer
        yield stream
        stream.flush()
        return
    try:
        with open(output, "wb") as file:
            yield file
    except OSError as error:
        reason = error.strerror or str(error)
        fail(f"--output {output}: cannot write the file: {reason}", exitcodes.USAGE)


@dataclass
class Summary:
    """What `--format table` shows, gathered while the plan streams by."""

    compiled: CompiledRuleset
    customers: int = 0
    segments: Counter[str | None] = field(default_factory=Counter)
    decisions: Counter[tuple[str, str]] = field(default_factory=Counter)
    sends: Counter[tuple[str, str]] = field(default_factory=Counter)
    costs: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    held: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    samples: list[Action] = field(default_factory=list)
    errors: int = 0
    notes: list[str] = field(default_factory=list)  # the data source's
    outcome: OutcomeTally | None = None  # --outcome, filled while planning

    def add(self, action: Action) -> None:
        self.decisions[(action.kind, action.decision)] += 1
        if action.decision == "error":
            self.errors += 1
        if action.kind != "message":
            return
        step = action.step or "-"
        if action.decision == "send":
            key = (step, action.channel or "-")
            self.sends[key] += 1
            self.costs[key] = self.costs.get(key, Decimal(0)) + (action.cost or 0)
            if len(self.samples) < SAMPLE_MESSAGES:
                self.samples.append(action)
        else:
            self.held[(step, action.decision, _reason(action))] += 1

    def lines(self, header: dict[str, Any]) -> list[str]:
        fmt = self.compiled.formatter
        as_of = header["as_of"]
        lines = [
            f"Plan {header['ruleset']} as of {as_of:%Y-%m-%d %H:%M %z} "
            f"({self.compiled.zone.key})",
            f"Customers planned: {self.customers}",
            "",
            "Customers by segment",
        ]
        for segment, count in sorted(
            self.segments.items(), key=lambda item: (item[0] is None, item[0] or "")
        ):
            lines.append(f"  {segment or '(no segment)':<24}{count:>8}")
        if self.outcome is not None:
            lines += ["", *self.outcome.lines()]

        lines += ["", "Actions by kind and decision"]
        for (kind, decision), count in sorted(self.decisions.items()):
            lines.append(f"  {kind:<12}{decision:<12}{count:>8}")

        lines += ["", "Messages to send by step and channel"]
        lines.append(f"  {'step':<22}{'channel':<12}{'count':>8}  cost")
        for (step, channel), count in sorted(self.sends.items()):
            cost = fmt.money(self.costs[(step, channel)])
            lines.append(f"  {step:<22}{channel:<12}{count:>8}  {cost}")
        if not self.sends:
            lines.append("  none")

        if self.held:
            lines += ["", "Messages not sent, by step and reason"]
            for (step, decision, reason), count in sorted(self.held.items()):
                lines.append(f"  {step:<22}{decision:<12}{count:>8}  {reason}")

        if self.samples:
            lines += ["", "Sample messages"]
            for action in self.samples:
                body = str((action.message or {}).get("body", ""))
                body = body.replace("\r", "").replace("\n", " ⏎ ")
                lines.append(
                    f"  [{action.customer_id} {action.step} {action.channel}] {body}"
                )
        if self.notes:
            lines += ["", "Data source notes"]
            lines += [f"  {note}" for note in self.notes]
        lines += ["", f"Input digest {header['input_digest']}"]
        return lines


def _reason(action: Action) -> str:
    """A short reason that groups well: channel rejections by kind."""
    why = action.why
    if action.decision == "suppressed":
        return str(why.get("suppressed_by", ""))
    if action.decision == "unreachable":
        # "phone number '123' has the wrong length" groups without the number.
        reasons = {_QUOTED.sub("", r["reason"]) for r in why["channels_rejected"]}
        return "; ".join(sorted(reasons))
    reason = str(why.get("reason", ""))
    # Window reasons name the day; keep the part that is the same each day.
    return reason.split(" (")[0]


@click.command()
@click.argument("ruleset_path", metavar="RULESET", type=click.Path(exists=True))
@data_option
@click.option(
    "--customer",
    "customer_id",
    required=True,
    metavar="ID",
    help="The customer's id in the data.",
)
@as_of_option
@since_option
def explain(
    ruleset_path: str,
    data: str,
    customer_id: str,
    as_of: str | None,
    since: str | None,
) -> None:
    """Explain how RULESET plans one customer of --data, step by step.

    History, score points, the segment rules tried, credit, every channel
    and ladder step considered and what became of it, and the actions.

    Exit codes: 0 explained; 2 usage error or a customer not in the data;
    4 invalid ruleset or unusable --data.
    """
    ruleset, compiled = load_compiled(ruleset_path)
    moment = parse_as_of(as_of, compiled.zone)
    start = parse_since(since)
    source = _open(data, ruleset, "skip")
    with _reading(data):
        records = next(
            (r for r in source.customers() if r.customer["id"] == customer_id), None
        )
    for problem in source.problems:
        echo(f"bad record: {problem}", err=True)
    # The read stopped at this customer: counts in the notes cover the
    # records read up to it.
    _echo_notes(source.notes, " (up to this customer)")
    if records is None:
        fail(f"customer {customer_id!r} is not in {data}", exitcodes.USAGE)
    echo_lines(explain_customer(compiled, records, moment, since=start))
