"""`--outcome FIELD`: do the segments separate the customers who ended
up with an outcome (defaulted the month after, reported late) from the
others?

The field is a bool customer field the data carries for analysis (the UCI
mapping's `defaulted_next_month`, Lending Club's `reported_late`). For each
segment the tally gives the customers, how many have the field true, and
that rate: a segment whose rate stands apart is doing its job; segments
with the same rate do not tell those customers apart. Customers whose
field is empty are counted apart and left out of the rate.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from dsl.model import InputSchema
from engine.planner import CustomerPlan
from engine.records import CustomerRecords

NO_SEGMENT = "(no segment)"
_PERCENT = Decimal("0.1")


class OutcomeFieldError(ValueError):
    """The field named by `--outcome` is not a bool customer field."""


def outcome_field(inputs: InputSchema, name: str) -> str:
    """The customer field `name` (`customer.` in front is allowed), checked
    to be declared as bool (or bool?)."""
    field_name = name.removeprefix("customer.")
    bools = sorted(n for n, f in inputs.customer.items() if f.type.name == "bool")
    choices = f"bool customer fields: {', '.join(bools)}" if bools else "none is bool"
    declared = inputs.customer.get(field_name)
    if declared is None:
        raise OutcomeFieldError(
            f"the ruleset declares no customer field {field_name!r} ({choices})"
        )
    if declared.type.name != "bool":
        raise OutcomeFieldError(
            f"customer.{field_name} is {declared.type}, not bool ({choices})"
        )
    return field_name


@dataclass(frozen=True)
class OutcomeRow:
    """One segment's line of the tally."""

    segment: str
    customers: int
    outcome: int  # customers with the field true
    unknown: int  # customers with the field empty

    @property
    def rate(self) -> Decimal | None:
        """Percent of the customers with a known value, to one decimal."""
        known = self.customers - self.unknown
        if not known:
            return None
        return (Decimal(100 * self.outcome) / known).quantize(_PERCENT, ROUND_HALF_UP)


@dataclass
class OutcomeTally:
    """Customers per segment, and how many of them have the customer field
    `field_name` true."""

    field_name: str
    customers: Counter[str | None] = field(default_factory=Counter)
    outcome: Counter[str | None] = field(default_factory=Counter)
    unknown: Counter[str | None] = field(default_factory=Counter)

    def add(self, records: CustomerRecords, customer_plan: CustomerPlan) -> None:
        """Count one planned customer (an `on_customer` hook of the plan)."""
        segment = customer_plan.segment
        self.customers[segment] += 1
        value = records.customer.get(self.field_name)
        if value is None:
            self.unknown[segment] += 1
        elif value is True:
            self.outcome[segment] += 1

    def rows(self) -> list[OutcomeRow]:
        """One row per segment (customers without one last), then `all`."""
        ordered = sorted(self.customers, key=lambda s: (s is None, s or ""))
        rows = [
            OutcomeRow(
                NO_SEGMENT if segment is None else segment,
                self.customers[segment],
                self.outcome[segment],
                self.unknown[segment],
            )
            for segment in ordered
        ]
        rows.append(
            OutcomeRow(
                "all",
                sum(self.customers.values()),
                sum(self.outcome.values()),
                sum(self.unknown.values()),
            )
        )
        return rows

    def lines(self) -> list[str]:
        """The tally as a table for a terminal."""
        rows = self.rows()
        with_unknown = any(row.unknown for row in rows)
        head = f"  {'segment':<24}{'customers':>10}{'true':>10}{'rate':>8}"
        lines = [
            f"Outcome {self.field_name} by segment",
            head + (f"{'empty':>8}" if with_unknown else ""),
        ]
        for row in rows:
            rate = "-" if row.rate is None else f"{row.rate}%"
            line = f"  {row.segment:<24}{row.customers:>10}{row.outcome:>10}{rate:>8}"
            lines.append(line + (f"{row.unknown:>8}" if with_unknown else ""))
        return lines

    def to_json(self) -> dict[str, Any]:
        return {
            "field": self.field_name,
            "segments": [
                {
                    "segment": row.segment,
                    "customers": row.customers,
                    "outcome": row.outcome,
                    "empty": row.unknown,
                    "rate_percent": None if row.rate is None else str(row.rate),
                }
                for row in self.rows()
            ],
        }
