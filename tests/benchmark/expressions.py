"""Segment rules through the engine's compiled callables vs by hand.

Both contenders see the same `Scope` objects, prepared once per customer of
a data set exactly as the planner prepares them (invoices as of today,
history, exposure, score), and answer the same question: which segment,
first match wins. The engine's side is what the planner runs (the
compiled first-match function of the segment rules); the floor is
`floors.plain_segment`.
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from adapters.sources import open_source
from dsl.model import Ruleset
from engine.compiler import CompiledRuleset
from engine.history import ZERO, CustomerHistory, prepare_invoices
from engine.planner import plan_customer
from engine.records import CustomerRecords
from engine.scope import Scope
from tests.benchmark.floors import plain_segment


@dataclass(frozen=True)
class ExpressionResult:
    evaluations: int  # customers x rounds, per contender
    engine_per_second: float
    plain_per_second: float

    @property
    def ratio(self) -> float:
        """Engine speed as a fraction of the hand-written function's."""
        return self.engine_per_second / self.plain_per_second


def prepare_scopes(
    ruleset: Ruleset, compiled: CompiledRuleset, folder: Path, as_of: dt.datetime
) -> list[Scope]:
    """One scope per customer of the data set in `folder`, as the planner
    has it when it reaches the segments."""
    source = open_source(folder, ruleset.inputs)
    scopes = [_scope(compiled, records, as_of) for records in source.customers()]
    if source.problems:
        raise RuntimeError(f"bad records in {folder}: {source.problems[0]}")
    return scopes


def _scope(
    compiled: CompiledRuleset, records: CustomerRecords, as_of: dt.datetime
) -> Scope:
    now = as_of.astimezone(compiled.zone)
    today = now.date()
    invoices = prepare_invoices(records, compiled.calendar, today)
    open_invoices = [state for state in invoices if state.is_open]
    scope = Scope(
        customer=records.customer,
        history=CustomerHistory(invoices, records.payments, today, compiled.calendar),
        today=today,
        now=now,
        fmt=compiled.formatter,
        calendar=compiled.calendar,
        exposure=sum((state.amount_due for state in open_invoices), ZERO),
        open_invoices=len(open_invoices),
    )
    # The score comes from the planner itself, so both contenders start
    # from the value a real plan would have.
    trace = plan_customer(compiled, records, as_of).trace
    scope.score, scope.grade = trace.score, trace.grade
    return scope


def engine_segmenter(compiled: CompiledRuleset) -> Callable[[Scope], str | None]:
    """The segment rules as the planner runs them: the compiled first-match
    function when the compiler made one, else each rule's callable in turn."""
    names = tuple(segment.name for segment in compiled.segments)
    choose = compiled.choose_segment
    if choose is not None:

        def first_match(scope: Scope) -> str | None:
            position = choose(scope)
            return None if position is None else names[position]

        return first_match

    rules = tuple((segment.when, segment.name) for segment in compiled.segments)

    def rule_by_rule(scope: Scope) -> str | None:
        for when, name in rules:
            if when(scope):
                return name
        return None

    return rule_by_rule


def compare(
    compiled: CompiledRuleset,
    scopes: Sequence[Scope],
    *,
    rounds: int = 21,
    passes: int = 5,
) -> ExpressionResult:
    """Time both contenders over every scope, `passes` times per round and
    `rounds` rounds each, alternating; the median round (CPU time) counts.
    Raises RuntimeError if they disagree on any customer."""
    engine = engine_segmenter(compiled)
    for scope in scopes:
        # Also warms each history's cache, which both contenders then share.
        if engine(scope) != plain_segment(scope):
            raise RuntimeError(f"engine and plain function disagree: {scope.customer}")

    # The planner calls the first-match function itself and takes the
    # segment at the position it returns: timed as such, without the
    # name lookup `engine_segmenter` wraps around it for the check above.
    timed: Callable[[Scope], object] = compiled.choose_segment or engine
    contenders: dict[str, Callable[[Scope], object]] = {
        "engine": timed,
        "plain": plain_segment,
    }
    timings: dict[str, list[float]] = {"engine": [], "plain": []}
    for round_number in range(rounds):
        order = ("engine", "plain") if round_number % 2 == 0 else ("plain", "engine")
        for name in order:
            timings[name].append(_time_round(contenders[name], scopes, passes))

    count = len(scopes) * passes
    return ExpressionResult(
        evaluations=count * rounds,
        engine_per_second=count / statistics.median(timings["engine"]),
        plain_per_second=count / statistics.median(timings["plain"]),
    )


def _time_round(
    evaluate: Callable[[Scope], object], scopes: Sequence[Scope], passes: int
) -> float:
    started = time.process_time()
    for _ in range(passes):
        for scope in scopes:
            evaluate(scope)
    return time.process_time() - started
