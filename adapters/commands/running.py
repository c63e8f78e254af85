"""`ruleset run`: what a scheduler calls every day or every hour.

    ruleset run RULESET [--config FILE] [--data SRC] [--as-of WHEN]
                        [--dry-run] [--format text|json] ...

Flags override the run configuration (adapters/runconfig.py); without
one, data comes from `--data`, the ledger is `.ruleset/ledger.sqlite3`
and every channel goes to the outbox file `.ruleset/outbox.jsonl`.

Exit codes (adapters/exitcodes.py, docs/run.md): 0 done; 1 done, but some
sends failed or have an unknown outcome (also one left by an earlier
run and not yet resolved with `ruleset ledger resolve`), or the policy
could not be evaluated for some customers; 2 usage error; 3 bad input
records with `on_bad_record: fail` (nothing was sent); 4 invalid ruleset,
run configuration, data source or unreachable ledger; 5 another run holds
the lock; 6 stopped by SIGTERM or SIGINT.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import click

from adapters import exitcodes
from adapters.commands.common import fail, load_compiled
from adapters.commands.planning import outcome_tally, parse_as_of
from adapters.ledger import Ledger, LedgerError
from adapters.outcome import NO_SEGMENT, OutcomeTally
from adapters.providers.base import Provider
from adapters.providers.options import ProviderConfigError
from adapters.providers.registry import (
    PROVIDER_KINDS,
    build_provider,
    policy_problems,
)
from adapters.retry import RateLimiter
from adapters.runconfig import (
    DEFAULT_PROVIDER,
    OUTBOX_KIND,
    ProviderSpec,
    RunConfig,
    RunConfigError,
    load_run_config,
)
from adapters.runner import PlanInput, Route, Runner, RunnerError, RunSettings
from adapters.runreport import (
    OUT_FAILED_PERMANENT,
    OUT_FAILED_TEMPORARY,
    OUT_MISSED,
    OUT_RECORDED,
    OUT_SENT,
    OUT_SKIPPED,
    OUT_UNKNOWN,
    OUT_WAITING,
    OUT_WOULD_SEND,
    STATUS_LOCKED,
    RunReport,
)
from adapters.sources import SourceConfigError, open_source
from adapters.terminal import echo, echo_lines
from dsl.model import Ruleset
from engine.compiler import CompiledRuleset
from engine.plan import Action
from engine.planner import Plan
from engine.planner import plan as make_plan
from engine.records import RecordSource

LOG_LEVELS = ("debug", "info", "warning", "error")
# How many failures, missed steps and problems the text summary lists.
LISTED = 20

_OUTCOME_ORDER = (
    OUT_SENT,
    OUT_WOULD_SEND,
    OUT_WAITING,
    OUT_SKIPPED,
    OUT_MISSED,
    OUT_FAILED_TEMPORARY,
    OUT_FAILED_PERMANENT,
    OUT_UNKNOWN,
    OUT_RECORDED,
)


@click.command(
    epilog="Exit codes: 0 done; 1 done, but some sends failed or have an "
    "unknown outcome (until resolved: ruleset ledger resolve), or the policy "
    "failed for some customers; 2 usage error; "
    "3 bad input records, nothing sent; "
    "4 configuration error (ruleset, run configuration, data source, ledger); "
    "5 another run holds the lock; 6 stopped by SIGTERM/SIGINT (the send in "
    "flight finished, the rest left for the next run). See docs/run.md."
)
@click.argument("ruleset_path", metavar="RULESET", type=click.Path(exists=True))
@click.option(
    "--config",
    "config_path",
    metavar="FILE",
    type=click.Path(exists=True, dir_okay=False),
    help="Run configuration (YAML). Default: the embedded one.",
)
@click.option(
    "--data", metavar="SRC", help="Data source: a folder, a source.yaml or a .jsonl."
)
@click.option(
    "--ledger", metavar="URL", help="Ledger database URL, or a SQLite file path."
)
@click.option(
    "--outbox",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="Send every channel to this outbox file instead of the providers.",
)
@click.option(
    "--state-dir",
    metavar="DIR",
    type=click.Path(file_okay=False),
    help="Where the default ledger and outbox live (default: .ruleset).",
)
@click.option(
    "--as-of",
    "as_of",
    metavar="WHEN",
    help="The run's instant, in the ruleset's zone (default: now).",
)
@click.option(
    "--dry-run", is_flag=True, help="Plan and report; record and send nothing."
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Summary for people (text) or machines (json).",
)
@click.option(
    "--on-bad-record",
    type=click.Choice(["fail", "skip"]),
    help="fail: bad input records stop the run before any send (exit 3); "
    "skip: go on without them. Default: the configuration's, else fail.",
)
@click.option(
    "--resend-unknown",
    is_flag=True,
    help="Send again messages whose outcome is unknown (a crash, an answer "
    "lost after sending), even through providers without idempotency keys "
    "(at-least-once).",
)
@click.option(
    "--lock-timeout",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="How long to wait for another run's lock (default: 10).",
)
@click.option(
    "--outcome",
    "outcome_name",
    metavar="FIELD",
    help="A bool customer field (e.g. defaulted_next_month): the summary shows, "
    "per segment, how many customers have it true and the rate.",
)
@click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS),
    default="warning",
    show_default=True,
    help="info logs one line per send attempt (addresses and bodies masked).",
)
def run(
    ruleset_path: str,
    config_path: str | None,
    data: str | None,
    ledger: str | None,
    outbox: str | None,
    state_dir: str | None,
    as_of: str | None,
    dry_run: bool,
    output_format: str,
    on_bad_record: str | None,
    resend_unknown: bool,
    lock_timeout: float | None,
    outcome_name: str | None,
    log_level: str,
) -> None:
    """Plan RULESET for now and send what is due, exactly once."""
    _configure_logging(log_level)
    env = dict(os.environ)
    try:
        config = load_run_config(config_path, env).overridden(
            data=data,
            ledger=ledger,
            outbox=Path(outbox) if outbox else None,
            state_dir=Path(state_dir) if state_dir else None,
            on_bad_record=on_bad_record,
            resend_unknown=resend_unknown,
            lock_timeout=lock_timeout,
        )
    except RunConfigError as error:
        fail(str(error), exitcodes.CONFIG_ERROR)
    if config.data is None:
        raise click.UsageError("no data source: give --data or `data:` in --config")

    ruleset, compiled = load_compiled(ruleset_path)
    moment = parse_as_of(as_of, compiled.zone)
    tally = outcome_tally(ruleset, outcome_name)
    routes = _routes(config, ruleset, env)
    try:
        source = open_source(
            config.data,
            ruleset.inputs,
            on_error=config.on_bad_record,
            base_dir=Path.cwd(),
        )
        # Only the state folder is made on demand: a ledger path given
        # (flag or config) with a typo in its folder must not start afresh.
        store = Ledger.open(
            config.ledger,
            prefix=config.ledger_prefix,
            create=not dry_run,
            make_folder=config.ledger_url is None,
        )
    except SourceConfigError as error:
        _close(routes.values())
        fail(f"data source: {error}", exitcodes.CONFIG_ERROR)
    except LedgerError as error:
        _close(routes.values())
        fail(str(error), exitcodes.CONFIG_ERROR)

    progress = _Progress(enabled=output_format == "text" and sys.stderr.isatty())
    try:
        runner = _runner(ruleset, compiled, config, store, routes, progress, dry_run)
        with _stop_on_signals(runner):
            report = runner.run(
                moment, _plan_input(ruleset, compiled, source, moment, tally)
            )
    except SourceConfigError as error:
        fail(f"data source: {error}", exitcodes.CONFIG_ERROR)
    except (LedgerError, RunnerError) as error:
        fail(str(error), exitcodes.CONFIG_ERROR)
    except OSError as error:  # the state folder cannot hold the plan spool
        fail(f"state folder {config.state_dir}: {error}", exitcodes.CONFIG_ERROR)
    finally:
        progress.close()
        _close(routes.values())
        if store is not None:
            store.close()

    note = outbox_note(config, ruleset)
    if note is not None and report.status != STATUS_LOCKED:
        report.notes.insert(0, note)
    if store is not None and store.created_file is not None:
        # A fresh ledger knows of nothing sent: the operator should notice.
        report.notes.insert(0, f"new ledger created at {store.created_file}")
    if report.segments:  # the tally counted this run's planning
        report.outcome = tally
    if output_format == "json":
        click.echo(json.dumps(report.to_json(), indent=2, sort_keys=True))
    else:
        echo_lines(summary_lines(report))
    raise SystemExit(report.exit_code)


def _runner(
    ruleset: Ruleset,
    compiled: CompiledRuleset,
    config: RunConfig,
    store: Ledger | None,
    routes: Mapping[str, Route],
    progress: _Progress,
    dry_run: bool,
) -> Runner:
    return Runner(
        ruleset=ruleset.name,
        zone=compiled.zone,
        ledger=store,
        routes=routes,
        settings=RunSettings(
            dry_run=dry_run,
            on_bad_record=config.on_bad_record,
            resend_unknown=config.resend_unknown,
            lock_timeout=config.lock_timeout,
            lock_lease=config.lock_lease,
            spool_dir=config.state_dir,
        ),
        on_progress=progress,
        channel_kinds={
            name: channel.kind for name, channel in ruleset.channels.items()
        },
    )


@contextmanager
def _stop_on_signals(runner: Runner) -> Iterator[None]:
    """SIGTERM (a scheduler stopping the job) and SIGINT (Ctrl-C) ask the
    run to stop at its next safe point: the send in flight is finished and
    recorded, the summary printed, and the exit code is 6. A second signal
    ends the process at once."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may handle signals
        return
    signals = (signal.SIGTERM, signal.SIGINT)
    previous = {number: signal.getsignal(number) for number in signals}

    def stop(number: int, frame: FrameType | None) -> None:
        for each in signals:
            signal.signal(each, signal.SIG_DFL)
        runner.request_stop(signal.Signals(number).name)

    for number in signals:
        signal.signal(number, stop)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, signal.SIG_DFL if handler is None else handler)


def _plan_input(
    ruleset: Ruleset,
    compiled: CompiledRuleset,
    source: RecordSource,
    moment: dt.datetime,
    tally: OutcomeTally | None,
) -> PlanInput:
    made: list[Plan] = []

    def plan_since(since: dt.date | None) -> Iterator[Action]:
        on_customer = None if tally is None else tally.add
        made.append(
            make_plan(compiled, source, moment, since=since, on_customer=on_customer)
        )
        return made[-1].actions

    return PlanInput(
        plan=plan_since,
        problems=lambda: source.problems,
        catch_up_days=ruleset.delivery.catch_up_days,
        per_day=ruleset.frequency.per_day,
        per_week=ruleset.frequency.per_week,
        notes=lambda: source.notes,
        segments=lambda: made[-1].segments if made else {},
    )


_log_handler: logging.Handler | None = None


def _configure_logging(level: str) -> None:
    """The CLI, not the library, decides where log lines go: stderr, with
    one handler that a second invocation in the same process replaces."""
    global _log_handler
    root = logging.getLogger()
    if _log_handler is not None:
        root.removeHandler(_log_handler)
    _log_handler = logging.StreamHandler(sys.stderr)
    _log_handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root.addHandler(_log_handler)
    root.setLevel(level.upper())


def _check_entry_names(config: RunConfig, ruleset: Ruleset) -> None:
    """Every provider entry is named after a channel of the ruleset (or is
    `default`): a misspelt name would leave its channel to `default`,
    often the outbox, with every message recorded as sent."""
    channels = list(ruleset.channels)
    by_lower = {name.lower(): name for name in channels + [DEFAULT_PROVIDER]}
    for name, spec in config.providers.items():
        if name == DEFAULT_PROVIDER or name in ruleset.channels:
            continue
        close = difflib.get_close_matches(name.lower(), list(by_lower), n=1)
        hint = f" (did you mean {by_lower[close[0]]!r}?)" if close else ""
        fail(
            f"{spec.key_where or spec.where or config.origin}: provider entry "
            f"{name!r} names no channel of ruleset {ruleset.name}{hint}; entries "
            f"are named after its channels ({', '.join(channels)}) or "
            f"{DEFAULT_PROVIDER!r}",
            exitcodes.CONFIG_ERROR,
        )


def outbox_note(config: RunConfig, ruleset: Ruleset) -> str | None:
    """Which channels go to an outbox file rather than to customers, for
    the summary: a configuration that names real providers may still
    leave some channels to a `default` outbox."""
    files: dict[str, list[str]] = {}
    for channel in ruleset.channels:
        spec = config.provider_for(channel)
        if spec is not None and spec.kind == OUTBOX_KIND:
            files.setdefault(str(spec.options.get("path")), []).append(channel)
    parts = [
        f"channel{'s' if len(names) > 1 else ''} {', '.join(names)} to the outbox "
        f"file {path}"
        for path, names in files.items()
    ]
    if not parts:
        return None
    return "; ".join(parts) + " (written there, not sent to customers)"


def _routes(
    config: RunConfig, ruleset: Ruleset, env: Mapping[str, str]
) -> dict[str, Route]:
    """A route for every channel of the ruleset; channels served by the
    same provider entry share its provider and rate limiter.

    Every entry of the configuration is built and checked whatever the
    mode, `--dry-run` and `--outbox` included (building sends nothing and
    connects nowhere), so a dry run rejects what a real run would.
    """
    _check_entry_names(config, ruleset)
    for channel in ruleset.channels:
        _check_delivers(config, ruleset, channel)
    made: list[Route] = []
    try:
        by_entry: dict[str, Route] = {}
        for spec in config.providers.values():
            by_entry[spec.name] = _route(config.resolved(spec), config, env)
            made.append(by_entry[spec.name])
        _check_policy_needs(config, ruleset, by_entry)
        if config.outbox_only or not config.providers:
            outbox = _route(config.outbox_spec(), config, env)
            made.append(outbox)
            _close(route for route in made if route is not outbox)
            return {channel: outbox for channel in ruleset.channels}
    except BaseException:
        _close(made)
        raise
    routes: dict[str, Route] = {}
    for channel in ruleset.channels:
        entry = config.configured_for(channel)
        assert entry is not None  # _check_delivers stopped the run otherwise
        routes[channel] = by_entry[entry.name]
    used = {id(route) for route in routes.values()}
    _close(route for route in made if id(route) not in used)
    return routes


def _check_policy_needs(
    config: RunConfig, ruleset: Ruleset, by_entry: Mapping[str, Route]
) -> None:
    """What each configured provider needs from the policy is there (a
    WhatsApp template mapping on every WhatsApp variant, say); otherwise
    every such message would fail permanently at send time."""
    problems: list[str] = []
    for channel in ruleset.channels:
        entry = config.configured_for(channel)
        route = None if entry is None else by_entry.get(entry.name)
        if route is not None:
            problems.extend(policy_problems(route.provider, ruleset, channel))
    if problems:
        for problem in problems:
            echo(problem, err=True)
        fail(
            f"{ruleset.name}: the policy lacks what the configured providers "
            f"need ({len(problems)} problem(s) above)",
            exitcodes.CONFIG_ERROR,
        )


def _check_delivers(config: RunConfig, ruleset: Ruleset, channel: str) -> None:
    """The configuration gives `channel` a provider of a suitable kind."""
    spec = config.configured_for(channel)
    if spec is None:
        fail(
            f"{config.origin}: channel {channel!r} of ruleset {ruleset.name} "
            f"has no provider (add providers.{channel} or providers.default)",
            exitcodes.CONFIG_ERROR,
        )
    kind = ruleset.channels[channel].kind
    delivers = PROVIDER_KINDS.get(spec.kind, ())
    if kind not in delivers:
        fail(
            f"{spec.where or config.origin}: provider {spec.name!r} "
            f"(kind {spec.kind}) cannot deliver channel {channel!r} of kind "
            f"{kind}; it delivers {', '.join(delivers) or 'nothing known'}",
            exitcodes.CONFIG_ERROR,
        )


def _route(spec: ProviderSpec, config: RunConfig, env: Mapping[str, str]) -> Route:
    """The provider of one entry, built and checked, with its retries and
    rate limiter."""
    try:
        provider: Provider = build_provider(spec.name, spec.options, env)
    except ProviderConfigError as error:
        fail(f"{spec.where or config.origin}: {error}", exitcodes.CONFIG_ERROR)
    limiter = RateLimiter.parse(spec.rate_limit) if spec.rate_limit else None
    return Route(provider, spec.retries or config.retries, limiter)


def _close(routes: Iterable[Route]) -> None:
    closed: set[int] = set()
    for route in routes:
        if id(route.provider) not in closed:
            closed.add(id(route.provider))
            route.provider.close()


class _Progress:
    """A progress bar on stderr while sending, only on a terminal."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self._bar: Any = None
        self._shown = 0

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self._bar is None:
            self._bar = click.progressbar(
                length=total, label="sending", file=sys.stderr
            ).__enter__()
        self._bar.update(done - self._shown)
        self._shown = done

    def close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None


def summary_lines(report: RunReport) -> list[str]:
    """The run summary as a person reads it."""
    lines = [_headline(report)]
    if report.status == STATUS_LOCKED:
        holder = report.lock_holder
        if holder is not None:
            lines.append(
                f"another run holds the lock: run {holder.run_id} on {holder.host} "
                f"(pid {holder.pid}) since {holder.acquired_at:%Y-%m-%d %H:%M:%S} UTC"
                if holder.acquired_at
                else "another run holds the lock"
            )
        return lines

    planned = sum(report.planned.values())
    lines.append(f"planned: {planned} action(s){_counts(report.planned)}")
    results = [
        f"{name} {report.outcomes[name]}"
        for name in _OUTCOME_ORDER
        if report.outcomes.get(name)
    ]
    if results:
        lines.append("outcome: " + ", ".join(results))
    if report.skipped:
        lines.append("skipped: " + _pairs(report.skipped))
    if report.recorded:
        lines.append("recorded (no message): " + _pairs(report.recorded))
    if report.by_channel_step:
        lines.append("by channel and step:")
        for (channel, step), counts in sorted(report.by_channel_step.items()):
            lines.append(f"  {channel:<12} {step:<16} {_pairs(counts)}")
    if report.segments:
        customers = sum(report.segments.values())
        lines.append(f"customers by segment ({customers}):")
        for name, count in sorted(
            report.segments.items(), key=lambda item: (item[0] is None, item[0])
        ):
            lines.append(f"  {name or NO_SEGMENT:<24}{count:>8}")
    if report.outcome is not None:
        lines.extend(report.outcome.lines())
    if report.samples:
        lines.append("sample messages:")
        for sample in report.samples:
            body = sample.body.replace("\r", "").replace("\n", " ⏎ ")
            lines.append(
                f"  [{sample.customer_id} {sample.step} {sample.channel}] {body}"
            )

    _section(lines, "input problems", [str(p) for p in report.input_problems])
    _section(
        lines,
        "policy evaluation failed (these customers get no messages until it is fixed)",
        [
            f"customer {e.customer_id}: "
            + (f"{e.location}: " if e.location else "")
            + f"{e.error}"
            for e in report.errors
        ],
    )
    _section(
        lines,
        "unknown outcome after an interrupted run (not sent again; "
        "--resend-unknown to send)",
        [
            f"{r.action_id} customer {r.customer_id} {r.channel}/{r.step} "
            f"(run {r.run_id})"
            for r in report.recovered
        ],
    )
    _section(
        lines,
        "unknown outcome, unresolved: exit 1 until resolved "
        "(ruleset ledger resolve ACTION --as sent|failed)",
        [
            f"{u.action_id} customer {u.customer_id} {u.channel}/{u.step} "
            f"(run {u.run_id}): {u.reason}"
            for u in report.unresolved
        ],
    )
    _section(
        lines,
        "failed",
        [
            f"{f.action_id} customer {f.customer_id} {f.channel}/{f.step}: "
            f"{f.outcome}: {f.error}"
            for f in report.failures
        ],
    )
    _section(
        lines,
        "missed (their day passed beyond the catch-up grace; not sent)",
        [
            f"{m.action_id} customer {m.customer_id} step {m.step} due {m.due_date}"
            for m in report.missed
        ],
    )
    _section(
        lines,
        "same step already sent, or maybe sent, on another channel",
        [
            f"{c.action_id} customer {c.customer_id} {c.channel}/{c.step}: "
            f"the step is held by {c.other_action} ({c.other_state})"
            for c in report.conflicts
        ],
    )
    _section(
        lines,
        "sent through a fallback channel",
        [
            f"{f.action_id} customer {f.customer_id} {f.channel} -> "
            f"{f.fallback_channel}: {f.outcome}"
            for f in report.fallbacks
        ],
    )
    _section(
        lines,
        "late steps not sent: not due when their day was run "
        "(segment or data changed since)",
        [
            f"{n.action_id} customer {n.customer_id} step {n.step} "
            f"of {n.day} (due {n.due_date})"
            for n in report.not_due
        ],
    )
    _section(
        lines,
        "held back by the frequency caps, or as a second reminder of the same "
        "invoices today: the ledger shows the customer's messages already sent "
        "(a renamed step or a new channel is a new action)",
        [
            f"{c.action_id} customer {c.customer_id} {c.channel}/{c.step}: {c.reason}"
            for c in report.capped
        ],
    )
    _section(lines, "notes", report.notes)
    _section(lines, "data source notes", report.source_notes)
    if report.status == "input_errors":
        lines.append(
            "nothing was sent: bad input records and on_bad_record is fail "
            "(--on-bad-record skip goes on without them)"
        )
    return lines


def _headline(report: RunReport) -> str:
    what = "dry run" if report.dry_run else f"run {report.run_id or '-'}"
    since = f" (since {report.since})" if report.since else ""
    return (
        f"{report.ruleset}: {what} as of {report.as_of:%Y-%m-%d %H:%M %z}{since}: "
        f"{report.status}"
    )


def _counts(counter: Mapping[str, int]) -> str:
    return f" ({_pairs(counter)})" if counter else ""


def _pairs(counter: Mapping[str, int]) -> str:
    return ", ".join(f"{key} {value}" for key, value in sorted(counter.items()))


def _section(lines: list[str], title: str, items: list[str]) -> None:
    if not items:
        return
    lines.append(f"{title} ({len(items)}):")
    lines.extend(f"  {item}" for item in items[:LISTED])
    if len(items) > LISTED:
        lines.append(f"  ... and {len(items) - LISTED} more (--format json lists all)")
