"""A customer with a bad input record is held: one "held" action naming the
records, and no message, offer, escalation or credit decision."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from engine.compiler import CompiledRuleset
from engine.plan import DECISIONS
from engine.planner import plan
from engine.records import RecordProblem
from tests.engine import builders

AS_OF = dt.datetime(2024, 11, 18, 9, 0, tzinfo=ZoneInfo("America/Sao_Paulo"))


def bill(invoice_id: str, customer_id: str = "c1") -> dict[str, Any]:
    return builders.invoice(
        invoice_id,
        "2024-11-21",
        "1000.00",  # over c1's credit limit too: no flag while held
        customer_id=customer_id,
        status="open",
        settled_on=None,
        link=f"https://pague.example.com/{invoice_id}",
    )


def test_a_customer_with_a_bad_record_is_held(
    compiled: CompiledRuleset, ana: dict[str, Any]
) -> None:
    held = builders.records(dict(ana, income=builders.money("100.00")), [bill("i1")])
    held.problems = [
        RecordProblem("payments.csv", 7, "i1", "amount: 'x' is not a number"),
        RecordProblem("payments.csv", 9, "i1", "paid_on: '' is empty"),
    ]
    other = builders.records(dict(ana, id="c2"), [bill("i2", "c2")])
    source = builders.ListSource([held, other])

    actions = list(plan(compiled, source, AS_OF).actions)

    [action] = [a for a in actions if a.customer_id == "c1"]
    assert "held" in DECISIONS
    assert (action.kind, action.decision) == ("message", "held")
    assert action.why["reason"] == "bad input record at payments.csv:7, payments.csv:9"
    assert action.details["records"] == [str(p) for p in held.problems]
    assert action.message is None and action.cost is None
    assert {a.decision for a in actions if a.customer_id == "c2"} >= {"send"}


def test_the_held_action_has_its_own_stable_id(
    compiled: CompiledRuleset, ana: dict[str, Any]
) -> None:
    def held_id() -> str:
        records = builders.records(ana, [bill("i1")])
        records.problems = [RecordProblem("invoices.csv", 3, "i9", "bad")]
        [action] = plan(compiled, builders.ListSource([records]), AS_OF).actions
        return action.id

    assert held_id() == held_id()
    [sent] = [
        a
        for a in plan(
            compiled, builders.ListSource([builders.records(ana, [bill("i1")])]), AS_OF
        ).actions
        if a.decision == "send"
    ]
    assert held_id() != sent.id
