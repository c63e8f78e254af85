"""Where the time of `ruleset plan` goes, stage by stage, in CPU seconds.

The same stages the CLI runs, one after the other on one data set, each
timed alone: reading the source (the id pass and the records pass, with
every value parsed and checked), planning each customer, and writing each
action as canonical JSON. Together they explain the end-to-end ratio
against the parse-only floor.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from adapters.commands.planning import parse_as_of
from adapters.sources import open_source
from dsl.model import Ruleset
from engine.compiler import CompiledRuleset
from engine.plan import canonical_json
from engine.planner import plan_customer
from tests.benchmark.generate import AS_OF


@dataclass(frozen=True)
class Breakdown:
    customers: int
    actions: int
    read_seconds: float
    plan_seconds: float
    write_seconds: float
    records_held: int  # the most parsed records the source held at once

    @property
    def per_customer_us(self) -> float:
        """Planning alone, microseconds per customer."""
        return self.plan_seconds / self.customers * 1e6


def measure_stages(
    ruleset: Ruleset, compiled: CompiledRuleset, folder: Path
) -> Breakdown:
    """Stream the data set through the stages as the CLI does, adding up the
    CPU time spent in each. Nothing is kept: holding every customer would
    make the garbage collector's passes longer and charge that to a stage."""
    as_of = parse_as_of(AS_OF, compiled.zone)
    clock = time.process_time
    read = planned = written = 0.0
    customers = actions = 0

    started = clock()
    source = open_source(folder, ruleset.inputs)
    stream = source.customers()
    read += clock() - started
    while True:
        started = clock()
        records = next(stream, None)
        read += clock() - started
        if records is None:
            break
        customers += 1

        started = clock()
        plan = plan_customer(compiled, records, as_of)
        planned += clock() - started

        started = clock()
        for action in plan.actions:
            canonical_json(action.to_json())
        written += clock() - started
        actions += len(plan.actions)

    held = getattr(source, "max_records_held", 0)
    return Breakdown(customers, actions, read, planned, written, held)
