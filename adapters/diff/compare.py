"""Pairing the actions of two plans and saying what changed."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from engine.plan import Action, canonical_json

# Decisions that are something to do; the others only record why not.
TO_DO = frozenset({"send", "flag", "block", "offer", "escalate"})

# What may differ between two occurrences of the same reminder, in the order
# the report lists them.
ASPECTS = ("moved", "channel", "copy", "decision", "details")

# A reminder's identity across the two plans: customer, invoices, kind, step.
ActionKey = tuple[str, tuple[str, ...], str, str]

# How a customer whom no segment matches shows in segment moves.
NO_SEGMENT = "(none)"


@dataclass(frozen=True)
class Occurrence:
    """One action as planned by the run of one day."""

    day: dt.date
    action: Action

    def summary(self) -> dict[str, Any]:
        action = self.action
        start = action.window_start
        return {
            "day": self.day,
            "id": action.id,
            "decision": action.decision,
            "channel": action.channel,
            "send_from": start,
            "segment": action.segment,
        }


@dataclass(frozen=True)
class ActionChange:
    """The same reminder in both plans, or in one of them only."""

    key: ActionKey
    change: str  # "added" | "removed" | "changed"
    aspects: tuple[str, ...]
    old: Occurrence | None
    new: Occurrence | None

    @property
    def id_changed(self) -> bool:
        return (
            self.old is not None
            and self.new is not None
            and self.old.action.decision in TO_DO
            and self.new.action.decision in TO_DO
            and self.old.action.id != self.new.action.id
        )

    def id_reason(self) -> str:
        """Which part of the idempotency key moved, in words."""
        if self.old is None or self.new is None:
            return ""
        before, after = self.old.action, self.new.action
        reasons = []
        if before.channel_kind != after.channel_kind:
            reasons.append(
                f"channel kind {before.channel_kind} -> {after.channel_kind}"
            )
        if before.due_date != after.due_date:
            reasons.append(f"due date {before.due_date} -> {after.due_date}")
        if not reasons:
            reasons.append("ruleset name or id scheme changed")
        return "; ".join(reasons)

    def where(self) -> str:
        """`customer c1, invoice f1, step lembrete`."""
        customer, invoices, kind, step = self.key
        text = f"customer {customer}"
        if invoices:
            text += f", invoice {','.join(invoices)}"
        return text + (f", step {step}" if step else f", {kind}")

    def describe(self) -> str:
        """One line for a reviewer: what happened to this reminder."""
        if self.change == "added":
            was = ""
            if self.old is not None:
                was = f", was {self.old.action.decision}{_reason_text(self.old.action)}"
            return f"{self.where()}: added ({_occurrence_text(self.new)}{was})"
        if self.change == "removed":
            now = ""
            if self.new is not None:
                now = f", now {self.new.action.decision}{_reason_text(self.new.action)}"
            return f"{self.where()}: removed ({_occurrence_text(self.old)}{now})"
        assert self.old is not None and self.new is not None  # "changed"
        return f"{self.where()}: " + "; ".join(
            _aspect_text(aspect, self.old, self.new) for aspect in self.aspects
        )

    def to_json(self) -> dict[str, Any]:
        customer, invoices, kind, step = self.key
        result: dict[str, Any] = {
            "customer": customer,
            "invoices": list(invoices),
            "kind": kind,
            "step": step or None,
            "change": self.change,
            "aspects": list(self.aspects),
            "old": self.old.summary() if self.old else None,
            "new": self.new.summary() if self.new else None,
        }
        if self.id_changed:
            result["id_change"] = self.id_reason()
        return result


def _when(occurrence: Occurrence) -> str:
    start = occurrence.action.window_start
    return start.strftime("%Y-%m-%d %H:%M") if start else occurrence.day.isoformat()


def _occurrence_text(occurrence: Occurrence | None) -> str:
    if occurrence is None:
        return ""
    action = occurrence.action
    parts = [_when(occurrence)]
    if action.channel:
        parts.append(action.channel)
    if action.decision != "send":
        parts.append(action.decision)
    return ", ".join(parts)


def _reason_text(action: Action) -> str:
    reason = action.why.get("suppressed_by") or action.why.get("reason")
    return f" ({reason})" if isinstance(reason, str) else ""


def _aspect_text(aspect: str, old: Occurrence, new: Occurrence) -> str:
    if aspect == "moved":
        return f"moved {_when(old)} -> {_when(new)}"
    if aspect == "channel":
        return f"channel {old.action.channel} -> {new.action.channel}"
    if aspect == "decision":
        return f"decision {old.action.decision} -> {new.action.decision}"
    if aspect == "copy":
        return "copy changed"
    return "details changed"


def _aspects(old: Occurrence, new: Occurrence) -> tuple[str, ...]:
    before, after = old.action, new.action
    found = []
    if old.day != new.day or before.window_start != after.window_start:
        found.append("moved")
    if before.channel != after.channel:
        found.append("channel")
    if canonical_json(before.message) != canonical_json(after.message):
        found.append("copy")
    if before.decision != after.decision:
        found.append("decision")
    if canonical_json(before.details) != canonical_json(after.details):
        found.append("details")
    return tuple(found)


def action_key(action: Action) -> ActionKey:
    return (action.customer_id, action.invoice_ids, action.kind, action.step or "")


def compare_actions(
    old: Iterable[Occurrence], new: Iterable[Occurrence]
) -> list[ActionChange]:
    """Pair the occurrences of each reminder and say what changed.

    Occurrences of one key pair up in plan order (the first old with the
    first new, ...). A reminder that is something to do on one side only is
    added or removed, even when the other side records it with a reason
    (suppressed, unreachable): that reason is what a reviewer wants to see.
    Pairs where neither side does anything are not changes.
    """
    by_key: dict[ActionKey, tuple[list[Occurrence], list[Occurrence]]] = {}
    for side, occurrences in ((0, old), (1, new)):
        for occurrence in occurrences:
            pair = by_key.setdefault(action_key(occurrence.action), ([], []))
            pair[side].append(occurrence)

    changes: list[ActionChange] = []
    for key, (olds, news) in by_key.items():
        for index in range(max(len(olds), len(news))):
            before = olds[index] if index < len(olds) else None
            after = news[index] if index < len(news) else None
            change = _change(key, before, after)
            if change is not None:
                changes.append(change)
    return changes


def _change(
    key: ActionKey, old: Occurrence | None, new: Occurrence | None
) -> ActionChange | None:
    old_does = old is not None and old.action.decision in TO_DO
    new_does = new is not None and new.action.decision in TO_DO
    if not old_does and not new_does:
        return None
    if not old_does:
        return ActionChange(key, "added", (), old, new)
    if not new_does:
        return ActionChange(key, "removed", (), old, new)
    assert old is not None and new is not None
    aspects = _aspects(old, new)
    change = ActionChange(key, "changed", aspects, old, new)
    return change if aspects or change.id_changed else None
