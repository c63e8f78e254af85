"""`ruleset run`: plan, skip what the ledger says is done, send the rest.

One run goes through these steps:

1. take the run lock (a lease row in the ledger; wait up to
   `lock_timeout`, else stop with LOCKED);
2. mark runs a kill left `running` as `interrupted`, turn actions they
   left in `sending` into `unknown` and report them (they are not sent
   again unless `resend_unknown`); every unknown outcome in the ledger is
   listed, and makes the run exit 1, until an operator resolves it
   (`ruleset ledger resolve`);
3. plan for the run's instant, passing the planner `since`: the date of
   the last completed run, or the start of the catch-up grace when that
   is earlier, so steps missed while no run happened are either sent late
   within the grace or reported as missed. A late step goes out only if
   a run would have sent it on its day but none did: no completed run
   evaluated that day, or one planned the step and did not get to send
   it. Otherwise (the segment or the data changed since) it is skipped as
   `not_due_when_run`;
4. plan everything before sending anything: actions are spooled (kept in
   memory up to a few megabytes, then in a temporary file in the state
   dir), so that bad input records can stop the run before any message
   goes out when `on_bad_record` is `fail`;
5. record every action in the ledger (`planned`, or `skipped` with the
   planner's reason), then, in plan order, claim each message whose window
   contains the current instant, hand it to its channel's provider with
   retries, and record every attempt and the outcome. The policy's
   frequency caps are checked once more against what the ledger says the
   customer was sent (any step, any channel), and a customer gets at most
   one message per invoice set and due date a day, whatever the caps: a
   step renamed, or a segment changed, between two runs of one day cannot
   remind the customer of the same invoices twice;
6. close the run row with its counts and release the lock.

Nothing here prints: the CLI renders the `RunReport`.

Test hook: the environment variable RULESET_FAULT (for example
`after_send:3`, several separated by commas) makes the process kill
itself with SIGKILL the Nth time it reaches that point: `before_claim`,
`after_claim` (claimed, provider not called yet) or `after_send` (the
provider accepted the message, the ledger does not know yet). It exists so
that tests can check crash safety with real kills; nothing else reads it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import signal
import socket
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

from adapters.ledger import (
    FAILED_PERMANENT,
    PLANNED,
    RUN_ABORTED,
    RUN_COMPLETED,
    RUN_INPUT_ERRORS,
    RUN_LOCK_LOST,
    RUN_STOPPED,
    SENDING,
    SENT,
    SKIPPED,
    UNKNOWN,
    ActionEntry,
    ActionState,
    Ledger,
    LedgerError,
    LockHolder,
    SentMessage,
    StepHolder,
    step_key,
)
from adapters.providers.base import OutboundMessage, Provider, fallback_message
from adapters.retry import (
    FAILED_TEMPORARY,
    Attempt,
    RateLimiter,
    RetryPolicy,
    deliver,
)
from adapters.runreport import (
    ALREADY_SENT,
    BEING_SENT,
    FAILED_BEFORE,
    NOT_DUE_WHEN_RUN,
    OUT_FAILED_PERMANENT,
    OUT_FAILED_TEMPORARY,
    OUT_MISSED,
    OUT_RECORDED,
    OUT_SENT,
    OUT_SKIPPED,
    OUT_UNKNOWN,
    OUT_WAITING,
    OUT_WOULD_SEND,
    STATUS_DRY_RUN,
    STATUS_LOCKED,
    STEP_SENT,
    UNKNOWN_BEFORE,
    WINDOW_CLOSED,
    ActionOutcome,
    MessageSample,
    RunReport,
    UnresolvedAction,
)
from engine.frequency import CATCH_UP
from engine.plan import Action, canonical_json
from engine.records import RecordProblem

logger = logging.getLogger(__name__)

FAULT_VARIABLE = "RULESET_FAULT"
FAULT_POINTS = ("before_claim", "after_claim", "after_send")

# Planned actions stay in memory up to this many bytes of JSON, then move
# to a temporary file: memory does not grow with the size of the plan.
SPOOL_MEMORY_BYTES = 16 * 1024 * 1024

# Planned messages the report keeps as they will read, for the summary.
SAMPLE_MESSAGES = 3

_NOT_CLAIMED = {
    SENT: ALREADY_SENT,
    FAILED_PERMANENT: FAILED_BEFORE,
    UNKNOWN: UNKNOWN_BEFORE,
    SENDING: BEING_SENT,
}


@dataclass(frozen=True)
class _Sent:
    """A message sent to a customer: what the caps and the once-a-day rule
    for an invoice set look at."""

    day: dt.date  # the day, in the ruleset's zone, of the run that sent it
    step: str | None
    reminder: tuple[tuple[str, ...], dt.date | None]  # invoices, due date


def _reminder(
    invoice_ids: Iterable[str], due_date: dt.date | None
) -> tuple[tuple[str, ...], dt.date | None]:
    """What a message reminds the customer of: its invoices and due date."""
    return tuple(sorted(invoice_ids)), due_date


# Customer -> action -> that message.
_Sends = defaultdict[str, dict[str, _Sent]]

# Actions are recorded, and looked up in the ledger, this many at a time.
_BATCH = 500

# A step skipped for these reasons was due: only the window (of a run or
# of the policy's `outside_window: drop`) kept it from going out that day.
_DUE_BUT_OUTSIDE_WINDOW = (WINDOW_CLOSED, "dropped")


class RunnerError(Exception):
    """The run cannot go on: a channel without a provider, for instance."""


@dataclass(frozen=True)
class Route:
    """How one channel's messages go out."""

    provider: Provider
    retries: RetryPolicy = field(default_factory=RetryPolicy)
    limiter: RateLimiter | None = None


@dataclass(frozen=True)
class RunSettings:
    dry_run: bool = False
    on_bad_record: str = "fail"  # "fail": input problems stop the run
    resend_unknown: bool = False
    lock_timeout: float = 10.0  # seconds to wait for another run's lock
    lock_lease: float = 300.0  # seconds a lock lasts unless renewed
    spool_dir: Path | None = None  # where a large plan is spooled


@dataclass(frozen=True)
class PlanInput:
    """Where the actions come from: `plan(since)` gives them in plan order
    (one pass); `problems()` the bad input records, `notes()` the source's
    notes and `segments()` the customers per segment once they are read."""

    plan: Callable[[dt.date | None], Iterable[Action]]
    problems: Callable[[], Sequence[RecordProblem]]
    catch_up_days: int = 0  # the ruleset's catch-up grace
    per_day: int | None = None  # the ruleset's frequency caps
    per_week: int | None = None
    notes: Callable[[], Sequence[str]] = lambda: ()
    # Customers per segment, once the plan is read.
    segments: Callable[[], Mapping[str | None, int]] = dict


class _LockLost(Exception):
    pass


class _Stopped(Exception):
    """A stop was requested (SIGTERM, SIGINT): `args[0]` says why."""


def _stopped_note(stop: _Stopped) -> str:
    return (
        f"stopped by {stop.args[0]}: the send in flight was finished and "
        "recorded, nothing more was claimed, and what was not sent stays "
        "planned for the next run"
    )


class _Heartbeat:
    """Renews the run lock's lease every third of its length from a
    thread of its own, so that a slow provider or a long Retry-After wait
    never lets it expire under a live run.

    `lost` is set when a renewal finds the lock in other hands, or when
    renewals have failed (the database unreachable) for a whole lease: the
    lock may be someone else's by then. Setting it also sets `wake`, which
    cuts the run's current wait short.
    """

    def __init__(
        self, renew: Callable[[], bool], lease: float, wake: threading.Event
    ) -> None:
        self.lost = threading.Event()
        self._renew = renew
        self._lease = lease
        self._wake = wake
        self._done = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, name="ruleset-lock-heartbeat", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def _beat(self) -> None:
        renewed = time.monotonic()
        while not self._done.wait(self._lease / 3):
            try:
                held = self._renew()
            except LedgerError as error:
                logger.warning("cannot renew the run lock: %s", error)
                held = time.monotonic() - renewed < self._lease
            else:
                renewed = time.monotonic()
            if not held:
                logger.error("the run lock is lost; this run stops claiming")
                self.lost.set()
                self._wake.set()
                return


class _Faults:
    """The RULESET_FAULT test hook (see the module docstring)."""

    def __init__(self, spec: str | None) -> None:
        self.targets: dict[str, int] = {}
        self.reached: Counter[str] = Counter()
        for part in (spec or "").split(","):
            if not part.strip():
                continue
            point, _, count = part.strip().partition(":")
            if point not in FAULT_POINTS or not count.isdigit():
                raise RunnerError(
                    f"{FAULT_VARIABLE}={spec!r}: expected POINT:N with POINT one "
                    f"of {', '.join(FAULT_POINTS)}"
                )
            self.targets[point] = int(count)

    def point(self, name: str) -> None:
        if not self.targets:
            return
        self.reached[name] += 1
        if self.targets.get(name) == self.reached[name]:
            os.kill(os.getpid(), signal.SIGKILL)


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


class Runner:
    """Runs one ruleset's plan against a ledger and a set of channels."""

    def __init__(
        self,
        *,
        ruleset: str,
        zone: ZoneInfo,
        ledger: Ledger | None,
        routes: Mapping[str, Route],
        settings: RunSettings,
        clock: Callable[[], dt.datetime] = _utc_now,
        sleep: Callable[[float], None] | None = None,
        on_progress: Callable[[int, int], None] | None = None,
        channel_kinds: Mapping[str, str] | None = None,
    ) -> None:
        if ledger is None and not settings.dry_run:
            raise RunnerError("a run that sends needs a ledger")
        self.ruleset = ruleset
        self.zone = zone
        self.ledger = ledger
        self.routes = routes
        self.settings = settings
        self.clock = clock
        # Back-off, rate-limit and Retry-After waits; by default a wait
        # that a stop request or a lost lock cuts short.
        self.sleep = sleep
        self.on_progress = on_progress
        # The policy's channel kinds, for a provider's fallback to another
        # channel (RCS -> SMS).
        self.channel_kinds = dict(channel_kinds or {})
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.lock_name = f"run:{ruleset}"
        self._token = uuid.uuid4().hex
        self._faults = _Faults(os.environ.get(FAULT_VARIABLE))
        self._started = 0.0
        self._as_of = _utc_now()
        self._renewed = 0.0  # time.monotonic() of the last renewal
        self._heartbeat: _Heartbeat | None = None
        self._wake = threading.Event()  # set to cut a wait short
        self._stop_reason: str | None = None
        # Days (in the ruleset's zone) a completed earlier run evaluated.
        self._evaluated: frozenset[dt.date] = frozenset()
        # Late actions no run would have sent on their day -> that day.
        self._not_due: dict[str, dt.date] = {}
        # Actions a run decided not to send on their day (capped by the
        # frequency caps, unreachable, suppressed, dropped, held), with the
        # reason recorded then: when their day has passed they are reported
        # with that reason, not as missed.
        self._decided_before: dict[str, str] = {}
        self._per_day: int | None = None
        self._per_week: int | None = None

    # -- the run ------------------------------------------------------------

    def run(self, as_of: dt.datetime, source: PlanInput) -> RunReport:
        """Plan for `as_of` (aware) and send what is due now."""
        if as_of.tzinfo is None:
            raise ValueError("as_of must be an aware datetime")
        self._as_of = as_of
        self._started = time.monotonic()
        self._per_day, self._per_week = source.per_day, source.per_week
        report = RunReport(self.ruleset, as_of, self.settings.dry_run)
        if self.settings.dry_run:
            return self._dry_run(report, source)

        ledger = self._ledger()
        holder = self._acquire_lock(report)
        if holder is not None:
            report.status = STATUS_LOCKED
            report.lock_holder = holder
            return report
        self._heartbeat = _Heartbeat(
            self._renew_lease, self.settings.lock_lease, self._wake
        )
        self._heartbeat.start()
        try:
            return self._locked_run(report, source, ledger)
        finally:
            self._heartbeat.stop()
            ledger.release_lock(self.lock_name, self._token)

    def request_stop(self, reason: str) -> None:
        """Stop at the next safe point: the send in flight finishes and is
        recorded, a retry wait is cut short (its message stays planned),
        and nothing new is claimed. Safe to call from a signal handler."""
        self._stop_reason = reason
        self._wake.set()

    def _check_stop(self) -> None:
        if self._stop_reason is not None:
            raise _Stopped(self._stop_reason)

    def _wait(self, seconds: float) -> None:
        """A back-off, rate-limit or Retry-After wait; the lock stays
        renewed meanwhile (the heartbeat), and a stop request or a lost
        lock ends it early."""
        if self.sleep is not None:
            self.sleep(seconds)
        else:
            self._wake.wait(seconds)
        self._check_stop()
        self._renew()

    def _locked_run(
        self, report: RunReport, source: PlanInput, ledger: Ledger
    ) -> RunReport:
        report.since = self._since(source)
        self._evaluated = self._evaluated_days(source)
        run_id = ledger.start_run(
            self.ruleset,
            self._as_of,
            report.since,
            host=self.host,
            pid=self.pid,
            at=self.clock(),
        )
        report.run_id = run_id
        self._renew(force=True, run_id=run_id)
        for stale in ledger.mark_interrupted(self.ruleset, run_id, self.clock()):
            report.notes.append(f"run {stale} was interrupted; marked so")
        report.recovered = ledger.recover_interrupted(
            self.ruleset, run_id, self.clock()
        )

        status = RUN_ABORTED
        try:
            with self._spool() as spool:
                total = self._plan(report, source, spool)
                if self._stops(report):
                    status = RUN_INPUT_ERRORS
                else:
                    self._check_routes(spool)
                    self._note(report, spool)
                    self._send_all(report, spool, total)
                    status = RUN_COMPLETED
        except _LockLost:
            status = RUN_LOCK_LOST
            report.notes.append(
                "this run lost its lock (its lease could not be renewed in "
                "time, and another run may have taken it): it claimed nothing "
                "more and left the rest planned"
            )
        except _Stopped as stop:
            status = RUN_STOPPED
            report.notes.append(_stopped_note(stop))
        finally:
            report.status = status
            report.unresolved = [
                UnresolvedAction.of(row) for row in ledger.unresolved(self.ruleset)
            ]
            ledger.finish_run(run_id, status, report.counts(), self.clock())
        self._collect_provider_notes(report)
        return report

    def _dry_run(self, report: RunReport, source: PlanInput) -> RunReport:
        """Plan and report what a run would do; write and send nothing."""
        report.since = self._since(source)
        self._evaluated = self._evaluated_days(source)
        try:
            self._dry_plan(report, source)
        except _Stopped as stop:
            report.status = RUN_STOPPED
            report.notes.append(_stopped_note(stop))
            return report
        report.status = RUN_INPUT_ERRORS if self._stops(report) else STATUS_DRY_RUN
        if self.ledger is not None:
            report.unresolved = [
                UnresolvedAction.of(row) for row in self.ledger.unresolved(self.ruleset)
            ]
        return report

    def _dry_plan(self, report: RunReport, source: PlanInput) -> None:
        with self._spool() as spool:
            self._plan(report, source, spool)
            for batch in _batches(_read(spool)):
                self._check_stop()
                self._not_due.update(self._late_not_due(batch))
                states, holders = self._known(batch)
                sends = self._sends(batch)
                for action in batch:
                    outcome = self._decide(action, states, holders, sends)
                    if outcome.outcome == OUT_SENT:
                        outcome.outcome = OUT_WOULD_SEND
                        sends[action.customer_id][action.id] = self._sent(action)
                    report.add(outcome)

    def _stops(self, report: RunReport) -> bool:
        """Bad input records stop the run before anything is recorded."""
        if any(problem.owner_unknown for problem in report.input_problems):
            return True  # whose record it is cannot be told: `skip` cannot hold
        return bool(report.input_problems) and self.settings.on_bad_record == "fail"

    def _ledger(self) -> Ledger:
        assert self.ledger is not None
        return self.ledger

    def _since(self, source: PlanInput) -> dt.date | None:
        """The first day the planner looks at (None: its own default)."""
        if self.ledger is None:
            return None
        grace_start = self._grace_start(source)
        last = self.ledger.last_completed_as_of(self.ruleset)
        if last is None:
            # Spelled out (it is the planner's default) so that the run row
            # says which days this run evaluated.
            return grace_start
        return min(last.astimezone(self.zone).date(), grace_start)

    def _today(self) -> dt.date:
        return self._as_of.astimezone(self.zone).date()

    def _grace_start(self, source: PlanInput) -> dt.date:
        return self._today() - dt.timedelta(days=source.catch_up_days)

    def _evaluated_days(self, source: PlanInput) -> frozenset[dt.date]:
        """The days of the catch-up grace, before today, that a completed
        run evaluated (planned the ladder steps of)."""
        if self.ledger is None:
            return frozenset()
        first = self._grace_start(source)
        today = self._today()
        days: set[dt.date] = set()
        start = dt.datetime.combine(first, dt.time(), self.zone)
        for since, as_of in self.ledger.completed_runs(self.ruleset, start):
            last = as_of.astimezone(self.zone).date()
            # A run from before `since` was always recorded vouches only
            # for its own day.
            day = max(since or last, first)
            while day <= min(last, today - dt.timedelta(days=1)):
                days.add(day)
                day += dt.timedelta(days=1)
        return frozenset(days)

    def _late_not_due(self, actions: Sequence[Action]) -> dict[str, dt.date]:
        """The late (catch-up) sends among `actions` that no run would have
        sent on their day: a completed run evaluated that day and did not
        plan the step. Ask before this run records `actions`."""
        candidates: dict[str, tuple[dt.date, str]] = {}
        for action in actions:
            day = _late_day(action) if _is_send(action) else None
            key = self._entry(action).step_key
            if day is not None and day in self._evaluated and key is not None:
                candidates[action.id] = (day, key)
        if not candidates or self.ledger is None:
            return {}
        planned = self.ledger.planned_steps(
            (key for _, key in candidates.values()),
            skipped_for=_DUE_BUT_OUTSIDE_WINDOW,
        )
        return {
            action_id: day
            for action_id, (day, key) in candidates.items()
            if key not in planned
        }

    def now(self) -> dt.datetime:
        """The run's instant plus the time it has been running."""
        return self._as_of + dt.timedelta(seconds=time.monotonic() - self._started)

    # -- the lock -----------------------------------------------------------

    def _acquire_lock(self, report: RunReport) -> LockHolder | None:
        """Take the run lock, waiting up to `lock_timeout`; return the
        holder when it stays taken."""
        ledger = self._ledger()
        deadline = time.monotonic() + self.settings.lock_timeout
        while True:
            holder = ledger.try_lock(
                self.lock_name,
                self._token,
                run_id=None,
                host=self.host,
                pid=self.pid,
                at=self.clock(),
                lease=self.settings.lock_lease,
            )
            if holder is None:
                return None
            if self._is_dead(holder) and ledger.take_over_lock(
                self.lock_name,
                holder,
                self._token,
                host=self.host,
                pid=self.pid,
                at=self.clock(),
                lease=self.settings.lock_lease,
            ):
                report.notes.append(
                    f"took over the lock of run {holder.run_id} (pid {holder.pid} "
                    f"on {holder.host} is no longer running)"
                )
                return None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return holder
            time.sleep(min(0.25, remaining))

    def _is_dead(self, holder: LockHolder) -> bool:
        """A holder on this host whose process is gone. Holders on other
        hosts are waited for until their lease expires."""
        return (
            holder.host == self.host
            and holder.pid is not None
            and holder.pid != self.pid
            and not _pid_alive(holder.pid)
        )

    def _renew(self, *, force: bool = False, run_id: int | None = None) -> None:
        """Stop when the lease is lost. The heartbeat thread renews it every
        third of its length, even while a send or a wait goes on; here,
        before claiming, it is renewed when the last renewal is that old
        (or with `force`, naming `run_id` in the lock row for whoever
        waits), so no claim is made on a lease that may have lapsed."""
        if self._heartbeat is not None and self._heartbeat.lost.is_set():
            raise _LockLost()
        elapsed = time.monotonic() - self._renewed
        if not force and elapsed < self.settings.lock_lease / 3:
            return
        if not self._renew_lease(run_id):
            raise _LockLost()

    def _renew_lease(self, run_id: int | None = None) -> bool:
        """Extend the lease now; False when this run no longer holds it."""
        renewed = self._ledger().renew_lock(
            self.lock_name,
            self._token,
            at=self.clock(),
            lease=self.settings.lock_lease,
            run_id=run_id,
        )
        if renewed:
            self._renewed = time.monotonic()
        return renewed

    # -- planning -----------------------------------------------------------

    def _spool(self) -> tempfile.SpooledTemporaryFile[str]:
        spool_dir = self.settings.spool_dir
        if spool_dir is not None and not self.settings.dry_run:
            spool_dir.mkdir(parents=True, exist_ok=True)
        else:
            spool_dir = None  # a dry run leaves the state dir alone
        return tempfile.SpooledTemporaryFile(
            max_size=SPOOL_MEMORY_BYTES,
            mode="w+",
            encoding="utf-8",
            newline="\n",
            dir=None if spool_dir is None else str(spool_dir),
            prefix="ruleset-plan-",
            suffix=".jsonl",
        )

    def _plan(self, report: RunReport, source: PlanInput, spool: IO[str]) -> int:
        """Plan everything into the spool; return the number of actions."""
        total = 0
        for action in source.plan(report.since):
            spool.write(canonical_json(action.to_json()))
            spool.write("\n")
            report.planned[_planned_key(action)] += 1
            if len(report.samples) < SAMPLE_MESSAGES and _is_send(action):
                report.samples.append(MessageSample.of(action))
            total += 1
            self._check_stop()
            if not self.settings.dry_run and total % 1000 == 0:
                self._renew()
        report.input_problems = list(source.problems())
        for problem in report.input_problems:
            logger.warning("input problem: %s", problem)
        report.source_notes = list(source.notes())
        report.segments = dict(source.segments())
        return total

    def _entry(self, action: Action) -> ActionEntry:
        key = None
        if action.kind == "message" and action.step is not None:
            key = step_key(
                self.ruleset,
                action.customer_id,
                action.invoice_ids,
                action.step,
                action.due_date,
            )
        return ActionEntry(
            action_id=action.id,
            ruleset=self.ruleset,
            kind=action.kind,
            customer_id=action.customer_id,
            invoice_ids=action.invoice_ids,
            step=action.step,
            channel=action.channel,
            channel_kind=action.channel_kind,
            due_date=action.due_date,
            step_key=key,
        )

    def _note(self, report: RunReport, spool: IO[str]) -> None:
        """Record every action before the first send: planned messages as
        `planned`, everything else as `skipped` with its reason (late
        messages no run would have sent on their day, too)."""
        ledger = self._ledger()
        run_id = report.run_id
        assert run_id is not None
        for batch in _batches(_read(spool)):
            not_due = self._late_not_due(batch)
            self._not_due.update(not_due)
            # Read before the missed are recorded over what their day's run
            # wrote: a step capped then stays "capped".
            self._remember_decided(ledger.states(a.id for a in batch if _is_missed(a)))
            planned: list[ActionEntry] = []
            skipped: list[ActionEntry] = []
            reasons: dict[str, str] = {}
            errors: dict[str, str] = {}
            for action in batch:
                entry = self._entry(action)
                if _is_send(action) and action.id not in not_due:
                    planned.append(entry)
                    continue
                skipped.append(entry)
                reasons[action.id] = action.decision
                if action.id in self._decided_before and _is_missed(action):
                    reasons[action.id] = self._decided_before[action.id]
                if action.id in not_due:
                    reasons[action.id] = _not_due_reason(not_due[action.id])
                if action.decision == "error":
                    errors[action.id] = _evaluation_error(action)
            ledger.note(planned, run_id, self.clock(), state=PLANNED)
            ledger.note(
                skipped,
                run_id,
                self.clock(),
                state=SKIPPED,
                reasons=reasons,
                errors=errors,
            )
            self._renew()

    # -- sending ------------------------------------------------------------

    def _check_routes(self, spool: IO[str]) -> None:
        """Every channel with a message to send has a provider."""
        channels = {a.channel or "-" for a in _read(spool) if _is_send(a)}
        missing = sorted(channels - set(self.routes))
        if missing:
            raise RunnerError(f"no provider for channel(s): {', '.join(missing)}")

    def _send_all(self, report: RunReport, spool: IO[str], total: int) -> None:
        done = 0
        for batch in _batches(_read(spool)):
            states, holders = self._known(batch)
            sends = self._sends(batch)
            for action in batch:
                self._check_stop()
                self._renew()
                outcome = self._decide(action, states, holders, sends)
                if outcome.outcome == OUT_SENT:
                    outcome = self._send(action, outcome, report)
                    if outcome.outcome in (OUT_SENT, OUT_UNKNOWN):
                        sends[action.customer_id][action.id] = self._sent(action)
                elif outcome.reason == WINDOW_CLOSED or outcome.capped:
                    self._ledger().note(
                        [self._entry(action)],
                        self._run_id(report),
                        self.clock(),
                        state=SKIPPED,
                        reason=outcome.reason,
                    )
                report.add(outcome)
                done += 1
                if self.on_progress is not None:
                    self.on_progress(done, total)

    def _known(
        self, actions: Sequence[Action]
    ) -> tuple[dict[str, str], dict[str, StepHolder]]:
        """What the ledger knows of `actions`: their states, and the
        actions holding their steps."""
        if self.ledger is None:
            return {}, {}
        relevant = [a for a in actions if _is_send(a) or _is_missed(a)]
        found = self.ledger.states(a.id for a in relevant)
        self._remember_decided(found)
        keys = [self._entry(a).step_key for a in relevant]
        holders = self.ledger.step_holders(
            (k for k in keys if k), resend_unknown=self.settings.resend_unknown
        )
        return {key: value.state for key, value in found.items()}, holders

    def _remember_decided(self, found: Mapping[str, ActionState]) -> None:
        for action_id, known in found.items():
            reason = known.reason or ""
            if known.state == SKIPPED and (
                reason.startswith("capped") or reason in _DECIDED_ON_ITS_DAY
            ):
                self._decided_before[action_id] = reason

    def _sends(self, actions: Sequence[Action]) -> _Sends:
        """Messages the ledger holds as sent (or sending, or unknown) to the
        customers of `actions` over the last seven days: customer -> action
        -> that message."""
        sends: _Sends = defaultdict(dict)
        if self.ledger is None:
            return sends
        customers = {a.customer_id for a in actions if _is_send(a)}
        start = dt.datetime.combine(
            self._today() - dt.timedelta(days=6), dt.time(), self.zone
        )
        for sent in self.ledger.sends(self.ruleset, customers, start):
            sends[sent.customer_id][sent.action_id] = self._from_ledger(sent)
        return sends

    def _from_ledger(self, sent: SentMessage) -> _Sent:
        return _Sent(
            day=sent.as_of.astimezone(self.zone).date(),
            step=sent.step,
            reminder=_reminder(sent.invoice_ids, sent.due_date),
        )

    def _sent(self, action: Action) -> _Sent:
        """`action` as a message this run sends today."""
        return _Sent(
            day=self._today(),
            step=action.step,
            reminder=_reminder(action.invoice_ids, action.due_date),
        )

    def _reminded_today(self, action: Action, sends: _Sends) -> str | None:
        """Why `action` would repeat a message the customer got today: one
        of another step for the same invoices and due date. Two steps of a
        ladder never share a day, so this only happens after the policy or
        the customer's segment changed between two runs of one day. The
        same step on another channel is the step claim's business."""
        today = self._today()
        reminder = _reminder(action.invoice_ids, action.due_date)
        for action_id, sent in sends.get(action.customer_id, {}).items():
            if (
                action_id != action.id
                and sent.day == today
                and sent.step != action.step
                and sent.reminder == reminder
            ):
                return f"already reminded today of these invoices by step {sent.step}"
        return None

    def _over_cap(self, action: Action, sends: _Sends) -> str | None:
        """Why the customer may get no more messages now, by the caps. The
        action's own earlier try (an unknown outcome sent again) is not
        counted."""
        sent = Counter(
            message.day
            for action_id, message in sends.get(action.customer_id, {}).items()
            if action_id != action.id
        )
        today = self._today()
        if self._per_day is not None and sent[today] >= self._per_day:
            return f"capped: {sent[today]} already sent today (ledger)"
        if self._per_week is not None:
            week = sum(sent[today - dt.timedelta(days=n)] for n in range(7))
            if week >= self._per_week:
                return f"capped: {week} already sent in the last 7 days (ledger)"
        return None

    def _decide(
        self,
        action: Action,
        states: Mapping[str, str],
        holders: Mapping[str, StepHolder],
        sends: _Sends,
    ) -> ActionOutcome:
        """What to do with `action` now, given what the ledger knew before
        the batch: OUT_SENT means "send it" (after a claim)."""
        outcome = _outcome(action)
        key = self._entry(action).step_key
        if _is_missed(action):
            # The last run's day is planned again (its later windows may
            # not have been reached); what it did send is not "missed".
            decided = self._decided_before.get(action.id)
            return _missed(action, outcome, states, holders, key, decided)
        if not _is_send(action):
            return _not_a_send(action, outcome)

        state = states.get(action.id)
        holder = holders.get(key or "")
        now = self.now()
        if state in _NOT_CLAIMED and not (
            state == UNKNOWN and self.settings.resend_unknown
        ):
            outcome.outcome, outcome.reason = OUT_SKIPPED, _NOT_CLAIMED[state]
        elif holder is not None and holder.action_id != action.id:
            _held_elsewhere(outcome, holder)
        elif action.id in self._not_due:
            outcome.outcome, outcome.reason = OUT_SKIPPED, NOT_DUE_WHEN_RUN
            outcome.day = self._not_due[action.id]
        elif action.window_start is not None and now < action.window_start:
            outcome.outcome = OUT_WAITING
        elif action.window_end is not None and now >= action.window_end:
            outcome.outcome, outcome.reason = OUT_SKIPPED, WINDOW_CLOSED
        elif capped := self._over_cap(action, sends):
            outcome.outcome, outcome.reason = OUT_SKIPPED, capped
            outcome.capped = True
        elif repeated := self._reminded_today(action, sends):
            outcome.outcome, outcome.reason = OUT_SKIPPED, repeated
            outcome.capped = True
        else:
            outcome.outcome = OUT_SENT
        return outcome

    def _run_id(self, report: RunReport) -> int:
        assert report.run_id is not None
        return report.run_id

    def _send(
        self, action: Action, outcome: ActionOutcome, report: RunReport
    ) -> ActionOutcome:
        ledger = self._ledger()
        run_id = self._run_id(report)
        entry = self._entry(action)

        self._faults.point("before_claim")
        claim = ledger.claim(
            entry, run_id, self.clock(), resend_unknown=self.settings.resend_unknown
        )
        if not claim.claimed:
            outcome.outcome = OUT_SKIPPED
            if claim.other_action is not None:
                outcome.reason = STEP_SENT
                outcome.other_action = claim.other_action
                outcome.other_state = claim.other_state
            else:
                outcome.reason = _NOT_CLAIMED.get(claim.state or "", claim.state)
            return outcome
        self._faults.point("after_claim")

        route = self.routes[action.channel or "-"]
        message = outbound_message(action)
        on_fallback = False
        attempts: list[Attempt] = []

        def record(attempt: Attempt) -> None:
            attempts.append(attempt)
            if attempt.outcome == "sent":
                self._faults.point("after_send")
            final = attempt.outcome != "temporary" or attempt.retry_in is None
            if (
                not on_fallback
                and attempt.outcome == "permanent"
                and self._fallback(message, attempt.details) is not None
            ):
                final = False  # the fallback channel decides the outcome
            kept = ledger.record_attempt(
                action.id,
                run_id,
                number=attempt.number,
                started_at=attempt.started_at,
                finished_at=attempt.finished_at,
                outcome=attempt.outcome,
                provider=attempt.provider,
                provider_message_id=attempt.provider_message_id,
                error=attempt.error,
                details=attempt.details,
                final=final,
            )
            if not kept:
                report.notes.append(
                    f"{action.id}: this run no longer held it when the attempt "
                    f"ended ({attempt.outcome}); the state the run that took "
                    "over recorded was kept"
                )

        try:
            delivery = deliver(
                route.provider,
                message,
                route.retries,
                route.limiter,
                self._wait,
                first_attempt=claim.first_attempt,
                on_attempt=record,
                clock=self.clock,
                resend_unknown=self.settings.resend_unknown,
            )
            fallback = None
            if delivery.status == FAILED_PERMANENT:
                fallback = self._fallback(message, delivery.details)
            if fallback is not None:
                other, other_route = fallback
                on_fallback = True
                outcome.fallback_channel = other.channel
                delivery = deliver(
                    other_route.provider,
                    other,
                    other_route.retries,
                    other_route.limiter,
                    self._wait,
                    first_attempt=delivery.attempts[-1].number + 1,
                    on_attempt=record,
                    clock=self.clock,
                    resend_unknown=self.settings.resend_unknown,
                )
        except (_Stopped, _LockLost):
            self._abandon(action, run_id, attempts, outcome)
            report.add(outcome)
            raise

        outcome.outcome = {
            SENT: OUT_SENT,
            FAILED_TEMPORARY: OUT_FAILED_TEMPORARY,
            FAILED_PERMANENT: OUT_FAILED_PERMANENT,
        }.get(delivery.status, OUT_UNKNOWN)
        outcome.error = delivery.error
        return outcome

    def _abandon(
        self,
        action: Action,
        run_id: int,
        attempts: Sequence[Attempt],
        outcome: ActionOutcome,
    ) -> None:
        """The run stops during a wait before a retry (or before the first
        attempt, for the rate limit): the message did not go out, so it is
        given back as planned for the next run. After an attempt whose
        outcome is unknown it stays `sending`, and the next run reports it
        as unknown, as after a kill."""
        last = attempts[-1] if attempts else None
        outcome.outcome = OUT_FAILED_TEMPORARY
        if last is not None and last.details.get("outcome_unknown") is True:
            outcome.error = (
                "the run stopped while waiting to retry a send whose outcome is "
                "unknown; the next run reports it as unknown"
            )
            return
        reason = "the run stopped while waiting to send it"
        self._ledger().release(action.id, run_id, self.clock(), reason)
        outcome.error = f"not sent: {reason}; it stays planned for the next run"

    def _fallback(
        self, message: OutboundMessage, details: Mapping[str, Any]
    ) -> tuple[OutboundMessage, Route] | None:
        """The message and route a provider's fallback names (RCS that
        cannot reach a phone -> SMS), when that channel has a route here.
        It keeps the action id: the ledger shows one action, with the
        fallback's attempts after the failed one."""
        fallback = details.get("fallback")
        if not isinstance(fallback, dict) or message.extras.get("fallback_from"):
            return None  # no fallback named, or already a fallback
        channel = str(fallback.get("channel") or "")
        if channel not in self.routes or channel not in self.channel_kinds:
            return None
        other = fallback_message(message, dict(details), self.channel_kinds[channel])
        return None if other is None else (other, self.routes[channel])

    def _collect_provider_notes(self, report: RunReport) -> None:
        seen: set[int] = set()
        for route in self.routes.values():
            if id(route.provider) in seen:
                continue
            seen.add(id(route.provider))
            report.notes.extend(getattr(route.provider, "problems", ()))


def _is_send(action: Action) -> bool:
    return action.kind == "message" and action.decision == "send"


def _batches(actions: Iterable[Action]) -> Iterator[list[Action]]:
    batch: list[Action] = []
    for action in actions:
        batch.append(action)
        if len(batch) >= _BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _late_day(action: Action) -> dt.date | None:
    """The step's own day, for a message the planner sends late."""
    step = action.why.get("step")
    if not isinstance(step, Mapping) or step.get("timing") != CATCH_UP:
        return None
    return dt.date.fromisoformat(str(step["day"]))


def _not_due_reason(day: dt.date) -> str:
    return f"not due when {day} was run; segment or data changed since"


# Plan decisions a run records as skipped on a step's own day; a later run
# that finds the day past the catch-up grace keeps them, it does not call
# the step missed.
_DECIDED_ON_ITS_DAY = frozenset(
    {"unreachable", "suppressed", "dropped", "held", "combined"}
)


def _is_missed(action: Action) -> bool:
    return action.kind == "message" and action.decision == "missed"


def _missed(
    action: Action,
    outcome: ActionOutcome,
    states: Mapping[str, str],
    holders: Mapping[str, StepHolder],
    key: str | None,
    decided: str | None = None,
) -> ActionOutcome:
    """A missed step, unless the ledger shows it was dealt with after all
    (sent, tried, or sent on another channel) or a run decided on its day
    not to send it (`decided`: the reason recorded then, e.g. capped or
    unreachable)."""
    state = states.get(action.id)
    holder = holders.get(key or "")
    if state in _NOT_CLAIMED:
        outcome.outcome, outcome.reason = OUT_SKIPPED, _NOT_CLAIMED[state]
    elif holder is not None and holder.action_id != action.id:
        _held_elsewhere(outcome, holder)
    elif decided is not None:
        outcome.outcome, outcome.reason = OUT_SKIPPED, decided
        outcome.capped = decided.startswith("capped")
    else:
        outcome.outcome = OUT_MISSED
        outcome.reason = str(action.why.get("reason") or "missed")
    return outcome


def _held_elsewhere(outcome: ActionOutcome, holder: StepHolder) -> None:
    outcome.outcome, outcome.reason = OUT_SKIPPED, STEP_SENT
    outcome.other_action = holder.action_id
    outcome.other_state = holder.state


def _planned_key(action: Action) -> str:
    return (
        action.decision
        if action.kind == "message"
        else f"{action.kind}:{action.decision}"
    )


def _outcome(action: Action) -> ActionOutcome:
    return ActionOutcome(
        action_id=action.id,
        customer_id=action.customer_id,
        step=action.step,
        channel=action.channel,
        outcome=OUT_SKIPPED,
        due_date=action.due_date,
    )


def _evaluation_error(action: Action) -> str:
    """An error action's message, after the policy location that failed."""
    message = str(action.why.get("error") or "the policy could not be evaluated")
    location = action.why.get("location")
    return f"{location}: {message}" if location else message


def _not_a_send(action: Action, outcome: ActionOutcome) -> ActionOutcome:
    if action.decision == "error":
        outcome.outcome, outcome.reason = OUT_SKIPPED, action.decision
        outcome.error = str(action.why.get("error") or "")
        location = action.why.get("location")
        outcome.location = None if location is None else str(location)
        return outcome
    if action.kind != "message":
        outcome.outcome, outcome.reason = OUT_RECORDED, action.decision
    elif action.decision == "missed":
        outcome.outcome = OUT_MISSED
        outcome.reason = str(action.why.get("reason") or "missed")
    else:
        outcome.outcome, outcome.reason = OUT_SKIPPED, action.decision
    return outcome


def outbound_message(action: Action) -> OutboundMessage:
    """The provider's view of a message action."""
    message = dict(action.message or {})
    body = message.pop("body", None)
    subject = message.pop("subject", None)
    html = message.pop("html", None)
    return OutboundMessage(
        action_id=action.id,
        channel=action.channel or "",
        channel_kind=action.channel_kind or "",
        customer_id=action.customer_id,
        address=action.address or "",
        body=body or "",
        subject=subject,
        html=html,
        extras=message,
    )


def _read(spool: IO[str]) -> Iterator[Action]:
    spool.seek(0)
    for line in spool:
        yield action_from_json(json.loads(line, parse_float=Decimal))
    spool.seek(0, os.SEEK_END)


def action_from_json(data: Mapping[str, Any]) -> Action:
    """An action back from its plan line (`Action.to_json`)."""
    window = data.get("window")
    cost = data.get("cost")
    return Action(
        id=data["id"],
        kind=data["kind"],
        decision=data["decision"],
        customer_id=data["customer"],
        invoice_ids=tuple(data["invoices"]),
        segment=data.get("segment"),
        step=data.get("step"),
        channel=data.get("channel"),
        channel_kind=data.get("channel_kind"),
        address=data.get("address"),
        due_date=_date(data.get("due_date")),
        window_start=_datetime(window["start"]) if window else None,
        window_end=_datetime(window.get("end")) if window else None,
        message=data.get("message"),
        cost=None if cost is None else Decimal(str(cost)),
        details=dict(data.get("details") or {}),
        why=dict(data.get("why") or {}),
    )


def _date(text: str | None) -> dt.date | None:
    return None if text is None else dt.date.fromisoformat(text)


def _datetime(text: str | None) -> dt.datetime | None:
    return None if text is None else dt.datetime.fromisoformat(text)
