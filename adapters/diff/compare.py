"""Pairing the actions of two plans and saying what changed."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from adapters.ledger import step_key
from engine.plan import Action, canonical_json

# Decisions that are something to do; the others only record why not.
TO_DO = frozenset({"send", "flag", "block", "offer", "escalate"})

# What may differ between two occurrences of the same reminder, in the order
# the report lists them. "step" is a reminder whose step was renamed (or
# replaced): the same customer, invoices and due date on the same day.
ASPECTS = ("step", "moved", "channel", "copy", "decision", "details")

# A reminder's identity across the two plans: customer, invoices, kind, step.
ActionKey = tuple[str, tuple[str, ...], str, str]

# How a customer whom no segment matches shows in segment moves.
NO_SEGMENT = "(none)"


@dataclass(frozen=True)
class Occurrence:
    """One action as planned by the run of one day."""

    day: dt.date
    action: Action
    ruleset: str = ""  # the name of the ruleset that planned it

    @property
    def step_key(self) -> str | None:
        """The runner's key of this reminder whatever its channel (see
        `adapters.runner`): a message whose step key the ledger holds from
        another action is not sent. Other kinds have none."""
        action = self.action
        if action.kind != "message" or action.step is None:
            return None
        return step_key(
            self.ruleset,
            action.customer_id,
            action.invoice_ids,
            action.step,
            action.due_date,
        )

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
        """Something to do in both versions, under another action id."""
        return (
            self.old is not None
            and self.new is not None
            and self.old.action.decision in TO_DO
            and self.new.action.decision in TO_DO
            and self.old.action.id != self.new.action.id
        )

    @property
    def resends(self) -> bool:
        """Would the runner do this again after the old version did it?

        It skips an action whose id the ledger knows, and a message whose
        step key (customer, invoices, step, due date) another action holds:
        a new channel for the same step is stopped, a renamed step or a
        moved due date is not.
        """
        if not self.id_changed:
            return False
        assert self.old is not None and self.new is not None
        old_key, new_key = self.old.step_key, self.new.step_key
        return old_key is None or old_key != new_key

    def id_reason(self) -> str:
        """Which part of the idempotency key moved, in words."""
        if self.old is None or self.new is None:
            return ""
        before, after = self.old.action, self.new.action
        reasons = []
        if before.step != after.step:
            reasons.append(f"step {before.step} -> {after.step}")
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
        if self.resends:
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
    if aspect == "step":
        return f"step {old.action.step} -> {new.action.step}"
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
    if before.step != after.step:
        found.append("step")
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
    Pairs where neither side does anything are not changes. A message
    added and one removed for the same customer, invoices and due date on
    the same day are then one reminder under a renamed step (see
    `_renamed_steps`).
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
    return _renamed_steps(changes)


# A message's place in the ladder apart from its step's name.
_Slot = tuple[dt.date, str, tuple[str, ...], dt.date | None]


def _slot(occurrence: Occurrence) -> _Slot | None:
    action = occurrence.action
    if action.kind != "message" or action.decision not in TO_DO:
        return None
    return (occurrence.day, action.customer_id, action.invoice_ids, action.due_date)


def _renamed_steps(changes: list[ActionChange]) -> list[ActionChange]:
    """Merge a removed message and an added one of the same slot into one
    change of step, in plan order.

    The runner's step key holds the step's name, so the renamed reminder
    would go out again on the day the old one went: the merged change
    says so (`resends`). A pair whose ids or step keys agree is one the
    runner stops, and is left as it was.
    """
    removed: dict[_Slot, list[int]] = {}
    for index, change in enumerate(changes):
        slot = _slot(change.old) if change.change == "removed" and change.old else None
        if slot is not None:
            removed.setdefault(slot, []).append(index)

    merged: dict[int, ActionChange] = {}
    dropped: set[int] = set()
    for index, change in enumerate(changes):
        new = change.new
        if change.change != "added" or new is None:
            continue
        slot = _slot(new)
        for candidate in removed.get(slot, []) if slot else []:
            old = changes[candidate].old
            assert old is not None
            if candidate in dropped or old.action.id == new.action.id:
                continue
            if old.step_key == new.step_key:
                continue
            merged[index] = ActionChange(
                change.key, "changed", _aspects(old, new), old, new
            )
            dropped.add(candidate)
            break
    return [
        merged.get(index, change)
        for index, change in enumerate(changes)
        if index not in dropped
    ]


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
