"""What a policy test file says: cases, records and expectations."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from dsl.diagnostics import Location
from engine.records import CustomerRecords

T = TypeVar("T")

TEST_SUFFIXES = (".test.yaml", ".test.yml")

# An as-of written as a bare date is that day's first instant, as for
# `ruleset plan --as-of`: every window of the day is still ahead.
DEFAULT_RUN_TIME = dt.time(0, 0)

# Test-file diagnostics. Stable, like the policy's E codes.
UNKNOWN_KEY = "T101"
WRONG_SHAPE = "T102"
BAD_VALUE = "T103"
MISSING = "T104"
UNKNOWN_NAME = "T105"
DUPLICATE = "T106"
NOT_COMPILED = "T107"  # the engine refused a ruleset the loader accepted

# Action kinds a case lists exhaustively unless it says `exact: false`;
# credit has its own expectation and offers travel with their step.
LADDER_KINDS = ("message", "escalation")


@dataclass(frozen=True)
class Expected(Generic[T]):
    """One expected value and where the test file states it."""

    value: T
    location: Location


@dataclass(frozen=True)
class ExpectedAction:
    """An action a case expects in the plan. Unset fields are not checked."""

    location: Location
    kind: str | None
    step: str | None
    invoices: tuple[str, ...] | None
    decision: str | None
    channel: Expected[str | None] | None
    window_start: Expected[dt.datetime] | None
    window_end: Expected[dt.datetime] | None
    contains: tuple[Expected[str], ...]
    reason: Expected[str] | None

    def label(self) -> str:
        parts = [self.step or self.kind or "action"]
        if self.invoices:
            parts.append(f"invoice {','.join(self.invoices)}")
        return " ".join(parts)


@dataclass(frozen=True)
class ExpectedCredit:
    location: Location
    decision: str | None  # "flag", "block", or None for no credit action
    amounts: dict[str, Expected[Any]]  # exposure, limit, headroom


@dataclass(frozen=True)
class Expectation:
    """What one customer's plan must hold."""

    location: Location
    customer_id: str
    segment: Expected[str | None] | None = None
    score: Expected[int] | None = None
    grade: Expected[str] | None = None
    credit: ExpectedCredit | None = None
    actions: tuple[ExpectedAction, ...] | None = None  # None: not checked
    actions_location: Location | None = None
    exact: bool = True


@dataclass(frozen=True)
class DataSpec:
    """A fixture data source named by `data:`, as `open_source` takes it."""

    spec: Any
    base_dir: Path
    location: Location


@dataclass(frozen=True)
class TestCase:
    name: str
    location: Location
    as_of: dt.datetime
    since: dt.date | None
    customers: tuple[CustomerRecords, ...]
    data: DataSpec | None
    expectations: tuple[Expectation, ...]


@dataclass(frozen=True)
class TestFile:
    path: Path
    ruleset_path: Path
    cases: tuple[TestCase, ...]
