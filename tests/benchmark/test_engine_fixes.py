"""Behaviour the segment first-match function must keep.

The compiler turns the segment rules into one function (`choose_segment`)
that returns the first rule that holds; the planner uses it instead of one
call per rule. The plan, the trace and the errors must be what the rule by
rule loop gives.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from adapters.commands.planning import parse_as_of
from adapters.sources import open_source
from dsl.loader import load_ruleset
from engine.compiler import CompiledRuleset, compile_ruleset
from engine.planner import plan_customer
from engine.records import CustomerRecords
from tests.benchmark.generate import AS_OF, write_dataset

VAREJO = Path(__file__).resolve().parents[2] / "rulesets" / "varejo"


def _customers(data: Path, ruleset_path: Path) -> list[CustomerRecords]:
    ruleset = load_ruleset(ruleset_path)
    return list(open_source(data, ruleset.inputs).customers())


def _plans(compiled: CompiledRuleset, customers: list[CustomerRecords]) -> list[object]:
    as_of = parse_as_of(AS_OF, compiled.zone)
    result = []
    for records in customers:
        plan = plan_customer(compiled, records, as_of)
        result.append(
            (
                [action.to_json() for action in plan.actions],
                plan.trace.segment_checks,
                plan.trace.segment,
                plan.trace.error,
            )
        )
    return result


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("data"), invoices=400).folder


def test_first_match_function_plans_as_rule_by_rule(data: Path) -> None:
    compiled = compile_ruleset(load_ruleset(VAREJO))
    rule_by_rule = dataclasses.replace(compiled, choose_segment=None)
    customers = _customers(data, VAREJO)

    chosen = _plans(compiled, customers)

    assert compiled.choose_segment is not None
    assert chosen == _plans(rule_by_rule, customers)
    assert {segment for _, _, segment, _ in chosen} == {"pontual", "risco", "ocasional"}


def test_a_failing_rule_gives_the_same_error_and_trace(
    data: Path, tmp_path: Path
) -> None:
    policy = tmp_path / "varejo"
    shutil.copytree(VAREJO, policy, ignore=shutil.ignore_patterns("tests"))
    text = (policy / "ruleset.yaml").read_text(encoding="utf-8")
    # The second rule divides by zero for every customer it is tried on.
    broken = text.replace("or score < 40", "or score / (score - score) < 40")
    assert broken != text
    (policy / "ruleset.yaml").write_text(broken, encoding="utf-8")
    compiled = compile_ruleset(load_ruleset(policy))
    customers = _customers(data, policy)

    chosen = _plans(compiled, customers)

    errors = [trace for trace in chosen if trace[3] is not None]
    assert errors, "the broken rule is reached for some customers"
    for _, checks, segment, error in errors:
        assert checks == [("pontual", "history.late_count(6 months) == 0", False)]
        assert segment is None
        assert "division by zero" in str(error)
    rule_by_rule = dataclasses.replace(compiled, choose_segment=None)
    assert chosen == _plans(rule_by_rule, customers)
