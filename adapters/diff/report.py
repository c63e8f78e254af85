"""The diff report, built one customer at a time."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from adapters.diff.compare import (
    ASPECTS,
    NO_SEGMENT,
    ActionChange,
    Occurrence,
    compare_actions,
)
from engine.plan import Action


@dataclass
class Volume:
    """Messages to send and their cost, for one day and channel."""

    old_messages: int = 0
    old_cost: Decimal = Decimal(0)
    new_messages: int = 0
    new_cost: Decimal = Decimal(0)


@dataclass(frozen=True)
class CustomerDay:
    """One ruleset's plan for one customer on one day."""

    day: dt.date
    segment: str | None
    actions: Sequence[Action]


@dataclass
class DiffReport:
    """Everything `ruleset diff` says, built one customer at a time.

    Counts cover every customer; examples keep the first `examples` of each
    kind in the source's order, so the report stays small on big data.
    """

    old_label: str
    new_label: str
    first_day: dt.date
    last_day: dt.date
    run_time: dt.time
    examples: int = 5
    currency: str = ""
    # The rulesets' names: part of every action id and step key.
    old_ruleset: str = ""
    new_ruleset: str = ""
    # How the text and Markdown reports write an amount (the plan's way).
    money: Callable[[Decimal], str] = str
    customers: int = 0
    segment_moves: Counter[tuple[str, str]] = field(default_factory=Counter)
    segment_examples: dict[tuple[str, str], list[str]] = field(
        default_factory=lambda: defaultdict(list)
    )
    change_counts: Counter[str] = field(default_factory=Counter)
    change_examples: dict[str, list[ActionChange]] = field(
        default_factory=lambda: defaultdict(list)
    )
    resends: int = 0
    resend_examples: list[ActionChange] = field(default_factory=list)
    # Reminders under a new id that the runner's step key still stops.
    held_by_step: int = 0
    volume: dict[tuple[dt.date, str], Volume] = field(
        default_factory=lambda: defaultdict(Volume)
    )
    # Customer-days a version could not plan (an evaluation error), by side.
    errors: Counter[str] = field(default_factory=Counter)
    error_examples: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # the data source's

    def add_customer(
        self, customer_id: str, old: Sequence[CustomerDay], new: Sequence[CustomerDay]
    ) -> None:
        """Fold one customer's daily plans, old and new, into the report."""
        self.customers += 1
        self._add_segments(customer_id, old, new)
        for side, days in (("old", old), ("new", new)):
            for plan in days:
                self._add_volume(side, plan)
                self._add_errors(side, customer_id, plan)

        changes = compare_actions(
            (
                Occurrence(day.day, action, self.old_ruleset)
                for day in old
                for action in day.actions
            ),
            (
                Occurrence(day.day, action, self.new_ruleset)
                for day in new
                for action in day.actions
            ),
        )
        for change in changes:
            categories = [change.change] if change.change != "changed" else []
            categories.extend(change.aspects)
            for category in categories:
                self.change_counts[category] += 1
                examples = self.change_examples[category]
                if len(examples) < self.examples:
                    examples.append(change)
            if change.resends:
                self.resends += 1
                if len(self.resend_examples) < self.examples:
                    self.resend_examples.append(change)
            elif change.id_changed:
                self.held_by_step += 1

    def _add_segments(
        self, customer_id: str, old: Sequence[CustomerDay], new: Sequence[CustomerDay]
    ) -> None:
        # A customer counts once, under the first day the two segments differ.
        for before, after in zip(old, new, strict=True):
            if before.segment != after.segment:
                move = (before.segment or NO_SEGMENT, after.segment or NO_SEGMENT)
                self.segment_moves[move] += 1
                if len(self.segment_examples[move]) < self.examples:
                    self.segment_examples[move].append(customer_id)
                return

    def _add_errors(self, side: str, customer_id: str, plan: CustomerDay) -> None:
        for action in plan.actions:
            if action.decision != "error":
                continue
            self.errors[side] += 1
            if len(self.error_examples) < self.examples:
                label = self.old_label if side == "old" else self.new_label
                self.error_examples.append(
                    f"{label}: customer {customer_id} on {plan.day}:"
                    f" {action.why.get('location')}: {action.why.get('error')}"
                )

    def _add_volume(self, side: str, plan: CustomerDay) -> None:
        for action in plan.actions:
            if action.kind != "message" or action.decision != "send":
                continue
            cell = self.volume[(plan.day, action.channel or "")]
            cost = action.cost or Decimal(0)
            if side == "old":
                cell.old_messages += 1
                cell.old_cost += cost
            else:
                cell.new_messages += 1
                cell.new_cost += cost

    @property
    def segment_changes(self) -> int:
        return sum(self.segment_moves.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "old": self.old_label,
            "new": self.new_label,
            "from": self.first_day,
            "to": self.last_day,
            "run_time": self.run_time,
            "currency": self.currency,
            "customers": self.customers,
            "segments": [
                {
                    "from": move[0],
                    "to": move[1],
                    "customers": count,
                    "examples": list(self.segment_examples[move]),
                }
                for move, count in sorted(self.segment_moves.items())
            ],
            "actions": {
                category: {
                    "count": self.change_counts[category],
                    "examples": [
                        change.to_json() for change in self.change_examples[category]
                    ],
                }
                for category in ("added", "removed", *ASPECTS)
            },
            # Reminders the runner would send again: the name is older
            # than the step key, and CI scripts read it.
            "id_changes": {
                "count": self.resends,
                "examples": [change.to_json() for change in self.resend_examples],
                "held_by_step": self.held_by_step,
            },
            "volume": [
                {
                    "day": day,
                    "channel": channel,
                    "old_messages": cell.old_messages,
                    "new_messages": cell.new_messages,
                    "old_cost": cell.old_cost,
                    "new_cost": cell.new_cost,
                }
                for (day, channel), cell in sorted(self.volume.items())
            ],
            "errors": {
                "old": self.errors["old"],
                "new": self.errors["new"],
                "examples": list(self.error_examples),
            },
            "problems": list(self.problems),
            "notes": list(self.notes),
        }
