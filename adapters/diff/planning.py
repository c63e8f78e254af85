"""Planning both versions of a ruleset over the same data and days."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator, Sequence
from itertools import zip_longest
from pathlib import Path

from adapters.diff.report import CustomerDay, DiffReport
from adapters.sources import open_source
from dsl.model import InputSchema
from engine.calendar import local_datetime
from engine.compiler import CompiledRuleset
from engine.planner import plan_customer
from engine.records import CustomerRecords, RecordSource

logger = logging.getLogger(__name__)


class DiffError(Exception):
    """The two versions cannot be compared on this data. Says why."""


def _schema_shape(inputs: InputSchema) -> dict[str, dict[str, tuple[str, int | None]]]:
    """The input schema without locations: what a data source must deliver."""
    return {
        kind: {
            name: (str(declared.type), declared.max_length)
            for name, declared in getattr(inputs, kind).items()
        }
        for kind in ("customer", "invoice", "payment")
    }


def days_between(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]


def _customers_in_step(
    old: RecordSource, new: RecordSource | None
) -> Iterator[tuple[CustomerRecords, CustomerRecords]]:
    """Each customer's records as each version reads them.

    When the two versions declare the same inputs, the data is read once.
    Otherwise it is read twice, in lockstep: a source yields customers in
    the order of its files, whatever the schema.
    """
    if new is None:
        for records in old.customers():
            yield records, records
        return
    for before, after in zip_longest(old.customers(), new.customers()):
        before_id = before.customer["id"] if before else None
        after_id = after.customer["id"] if after else None
        if before is None or after is None or before_id != after_id:
            raise DiffError(
                "the data gives the two versions different customers"
                f" ({before_id} and {after_id}): a customer record that one"
                " version's inputs accept and the other's reject; fix the"
                " records the data source reports as bad"
            )
        yield before, after


def diff_rulesets(
    old: CompiledRuleset,
    new: CompiledRuleset,
    data: str | Path,
    *,
    first: dt.date,
    last: dt.date,
    run_time: dt.time = dt.time(0, 0),
    on_error: str = "fail",
    base_dir: Path | None = None,
    old_label: str = "old",
    new_label: str = "new",
    examples: int = 5,
) -> DiffReport:
    """Plan both versions for every customer of `data` and every day from
    `first` to `last`, and compare.

    Each day is one run at `run_time` in each ruleset's zone that considers
    only the steps whose day is that day (as a scheduler running daily
    does; nothing is caught up). Bad input records end up in
    `report.problems`; `on_error` is what the caller will do about them.
    Raises SourceConfigError for unusable data and DiffError when the two
    versions see different customers.
    """
    report = DiffReport(
        old_label,
        new_label,
        first,
        last,
        run_time,
        examples,
        new.ruleset.currency,
        old_ruleset=old.ruleset.name,
        new_ruleset=new.ruleset.name,
        money=new.formatter.money,
    )
    old_source = open_source(
        data, old.ruleset.inputs, on_error=on_error, base_dir=base_dir
    )
    new_source = None
    if _schema_shape(old.ruleset.inputs) != _schema_shape(new.ruleset.inputs):
        new_source = open_source(
            data, new.ruleset.inputs, on_error=on_error, base_dir=base_dir
        )

    days = days_between(first, last)
    for before, after in _customers_in_step(old_source, new_source):
        report.add_customer(
            before.customer["id"],
            _plan_days(old, before, days, run_time),
            _plan_days(new, after, days, run_time),
        )

    for label, source in ((old_label, old_source), (new_label, new_source)):
        if source is not None:
            report.problems.extend(f"{label}: {p}" for p in source.problems)
    # Read twice (two schemas), the data gives the same notes: once is enough.
    for source in (old_source, new_source):
        if source is not None:
            report.notes.extend(n for n in source.notes if n not in report.notes)
    logger.debug("diff planned %d customers over %d days", report.customers, len(days))
    return report


def _plan_days(
    compiled: CompiledRuleset,
    records: CustomerRecords,
    days: Sequence[dt.date],
    run_time: dt.time,
) -> list[CustomerDay]:
    plans = []
    for day in days:
        as_of = local_datetime(day, run_time, compiled.zone)
        planned = plan_customer(compiled, records, as_of, since=day)
        plans.append(CustomerDay(day, planned.segment, planned.actions))
    return plans
