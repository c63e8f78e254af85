"""What one `ruleset run` did: the report the CLI renders.

Every action of the plan ends the run with one outcome (sent, waiting for
its window, skipped with a reason, missed, failed, unknown, or recorded
when it is not a message); the report counts them overall and per channel
and step, and keeps the lists a person must look at: input problems,
failures, unknown outcomes, missed steps, step conflicts, late steps that
were not due when their day was run, messages held back by the frequency
caps counted on the ledger, customers whose policy evaluation failed.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from adapters import exitcodes
from adapters.ledger import (
    RUN_INPUT_ERRORS,
    RUN_LOCK_LOST,
    RUN_STOPPED,
    LockHolder,
    RecoveredAction,
)
from adapters.masking import mask_text
from adapters.outcome import NO_SEGMENT, OutcomeTally
from engine.plan import Action
from engine.records import RecordProblem

# Report statuses besides the ledger's run statuses.
STATUS_LOCKED = "locked"  # another run held the lock: nothing was done
STATUS_DRY_RUN = "dry_run"

# Outcomes of one action in one run (the summary counts them).
OUT_SENT = "sent"
OUT_WOULD_SEND = "would_send"  # --dry-run
OUT_WAITING = "waiting"  # its window opens later: a later run sends it
OUT_SKIPPED = "skipped"
OUT_MISSED = "missed"
OUT_FAILED_TEMPORARY = "failed_temporary"
OUT_FAILED_PERMANENT = "failed_permanent"
OUT_UNKNOWN = "unknown"
OUT_RECORDED = "recorded"  # credit flags, offers, escalations: no message

# Why a message the planner said to send was not sent in this run.
ALREADY_SENT = "already_sent"
FAILED_BEFORE = "failed_permanently_before"
UNKNOWN_BEFORE = "unknown_outcome_before"
BEING_SENT = "being_sent_by_another_run"
STEP_SENT = "step_sent_on_other_channel"
WINDOW_CLOSED = "window_closed"
# The policy could not be evaluated for the customer (the planner's
# "error" decision): the customer gets nothing until it is fixed.
EVALUATION_ERROR = "error"
# A late (catch-up) step that a completed run evaluated on its day without
# planning it: the segment or the data changed since, it was never due.
NOT_DUE_WHEN_RUN = "not_due_when_run"


@dataclass
class ActionOutcome:
    """What became of one action in this run, for the report."""

    action_id: str
    customer_id: str
    step: str | None
    channel: str | None
    outcome: str
    reason: str | None = None
    error: str | None = None
    other_action: str | None = None  # the action holding the same step
    other_state: str | None = None
    due_date: dt.date | None = None
    fallback_channel: str | None = None  # it went out through this channel
    day: dt.date | None = None  # the step's own day, when it matters
    capped: bool = False  # held back: the ledger shows the cap reached
    location: str | None = None  # the policy expression that failed

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action_id,
            "customer": self.customer_id,
            "step": self.step,
            "channel": self.channel,
            "outcome": self.outcome,
            "reason": self.reason,
            "error": self.error,
            "other_action": self.other_action,
            "other_state": self.other_state,
            "fallback_channel": self.fallback_channel,
            "due_date": self.due_date.isoformat() if self.due_date else None,
            "day": self.day.isoformat() if self.day else None,
            "location": self.location,
        }


@dataclass(frozen=True)
class MessageSample:
    """One planned message as its customer would read it."""

    customer_id: str
    step: str | None
    channel: str | None
    body: str

    @classmethod
    def of(cls, action: Action) -> MessageSample:
        body = str((action.message or {}).get("body") or "")
        return cls(action.customer_id, action.step, action.channel, body)

    def to_json(self) -> dict[str, Any]:
        return {
            "customer": self.customer_id,
            "step": self.step,
            "channel": self.channel,
            "body": self.body,
        }


@dataclass(frozen=True)
class UnresolvedAction:
    """An action whose outcome is unknown until an operator resolves it."""

    action_id: str
    customer_id: str
    step: str | None
    channel: str | None
    run_id: int
    reason: str | None

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> UnresolvedAction:
        return cls(
            str(row["action_id"]),
            str(row["customer_id"]),
            row["step"],
            row["channel"],
            int(row["run_id"]),
            row["error"] or row["reason"],
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action_id,
            "customer": self.customer_id,
            "step": self.step,
            "channel": self.channel,
            "run": self.run_id,
            "reason": self.reason,
        }


@dataclass
class RunReport:
    """Everything a run did, for the summary and for schedulers."""

    ruleset: str
    as_of: dt.datetime
    dry_run: bool
    since: dt.date | None = None
    run_id: int | None = None
    status: str = "running"
    planned: Counter[str] = field(default_factory=Counter)  # by decision
    outcomes: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)  # by reason
    recorded: Counter[str] = field(default_factory=Counter)  # by decision
    by_channel_step: dict[tuple[str, str], Counter[str]] = field(default_factory=dict)
    input_problems: list[RecordProblem] = field(default_factory=list)
    recovered: list[RecoveredAction] = field(default_factory=list)
    failures: list[ActionOutcome] = field(default_factory=list)
    missed: list[ActionOutcome] = field(default_factory=list)
    conflicts: list[ActionOutcome] = field(default_factory=list)
    fallbacks: list[ActionOutcome] = field(default_factory=list)
    not_due: list[ActionOutcome] = field(default_factory=list)  # late, not due
    capped: list[ActionOutcome] = field(default_factory=list)  # by the ledger
    errors: list[ActionOutcome] = field(default_factory=list)  # evaluation
    # Every unknown outcome in the ledger once the run is done.
    unresolved: list[UnresolvedAction] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    source_notes: list[str] = field(default_factory=list)  # how data was read
    segments: dict[str | None, int] = field(default_factory=dict)  # customers
    samples: list[MessageSample] = field(default_factory=list)  # first sends
    outcome: OutcomeTally | None = None  # --outcome: the field per segment
    lock_holder: LockHolder | None = None

    def add(self, outcome: ActionOutcome) -> None:
        if outcome.error is not None:
            # Providers echo the recipient back in their errors; the
            # summary is read and stored like a log, so it gets no more.
            outcome.error = mask_text(outcome.error)
        self.outcomes[outcome.outcome] += 1
        if outcome.outcome == OUT_SKIPPED:
            self.skipped[outcome.reason or "unspecified"] += 1
        if outcome.outcome == OUT_RECORDED:
            self.recorded[outcome.reason or "unspecified"] += 1
        if outcome.outcome in (OUT_FAILED_TEMPORARY, OUT_FAILED_PERMANENT, OUT_UNKNOWN):
            self.failures.append(outcome)
        if outcome.outcome == OUT_MISSED:
            self.missed.append(outcome)
        if outcome.reason == STEP_SENT:
            self.conflicts.append(outcome)
        if outcome.fallback_channel is not None:
            self.fallbacks.append(outcome)
        if outcome.reason == NOT_DUE_WHEN_RUN:
            self.not_due.append(outcome)
        if outcome.capped:
            self.capped.append(outcome)
        if outcome.outcome == OUT_SKIPPED and outcome.reason == EVALUATION_ERROR:
            self.errors.append(outcome)
        if outcome.channel is not None or outcome.step is not None:
            key = (outcome.channel or "-", outcome.step or "-")
            self.by_channel_step.setdefault(key, Counter())[outcome.outcome] += 1

    @property
    def exit_code(self) -> int:
        if self.status in (STATUS_LOCKED, RUN_LOCK_LOST):
            return exitcodes.LOCKED
        if self.status == RUN_STOPPED:
            return exitcodes.STOPPED
        if self.status == RUN_INPUT_ERRORS:
            return exitcodes.INPUT_ERRORS
        if self.failures or self.recovered or self.errors or self.unresolved:
            return exitcodes.PROBLEMS
        return exitcodes.OK

    def counts(self) -> dict[str, Any]:
        return {
            "planned": dict(sorted(self.planned.items())),
            "outcomes": dict(sorted(self.outcomes.items())),
            "skipped": dict(sorted(self.skipped.items())),
            "recorded": dict(sorted(self.recorded.items())),
            "input_problems": len(self.input_problems),
            "recovered_unknown": len(self.recovered),
            "evaluation_errors": len(self.errors),
            "unresolved_unknown": len(self.unresolved),
        }

    def to_json(self) -> dict[str, Any]:
        holder = self.lock_holder
        return {
            "ruleset": self.ruleset,
            "as_of": self.as_of.isoformat(),
            "since": self.since.isoformat() if self.since else None,
            "dry_run": self.dry_run,
            "run_id": self.run_id,
            "status": self.status,
            "exit_code": self.exit_code,
            **self.counts(),
            "by_channel_step": [
                {"channel": channel, "step": step, **dict(sorted(counts.items()))}
                for (channel, step), counts in sorted(self.by_channel_step.items())
            ],
            "input_problem_list": [
                {
                    "source": p.source,
                    "row": p.row,
                    "record": p.record_id,
                    "message": p.message,
                }
                for p in self.input_problems
            ],
            "recovered_unknown_list": [
                {
                    "action": r.action_id,
                    "run": r.run_id,
                    "customer": r.customer_id,
                    "step": r.step,
                    "channel": r.channel,
                }
                for r in self.recovered
            ],
            "failures": [f.to_json() for f in self.failures],
            "missed": [m.to_json() for m in self.missed],
            "step_conflicts": [c.to_json() for c in self.conflicts],
            "fallbacks": [f.to_json() for f in self.fallbacks],
            "not_due_when_run": [n.to_json() for n in self.not_due],
            "capped_by_ledger": [c.to_json() for c in self.capped],
            "unresolved_unknown_list": [u.to_json() for u in self.unresolved],
            "evaluation_error_list": [
                {
                    "action": e.action_id,
                    "customer": e.customer_id,
                    "message": e.error,
                    "location": e.location,
                }
                for e in self.errors
            ],
            "notes": list(self.notes),
            "source_notes": list(self.source_notes),
            "segments": [
                {"segment": NO_SEGMENT if name is None else name, "customers": count}
                for name, count in sorted(
                    self.segments.items(), key=lambda item: (item[0] is None, item[0])
                )
            ],
            "samples": [sample.to_json() for sample in self.samples],
            "outcome": None if self.outcome is None else self.outcome.to_json(),
            "lock_holder": (
                None
                if holder is None
                else {
                    "host": holder.host,
                    "pid": holder.pid,
                    "run": holder.run_id,
                    "since": _iso(holder.acquired_at),
                    "expires": _iso(holder.expires_at),
                }
            ),
        }


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None
