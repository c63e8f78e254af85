"""An SMS costs the channel's `cost` per segment, as providers charge it;
other channels cost `cost` per message."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from engine.compiler import CompiledRuleset
from engine.planner import plan_customer
from tests.engine import builders

AS_OF = dt.datetime(2024, 11, 18, 9, 0, tzinfo=ZoneInfo("America/Sao_Paulo"))


def reminder(
    compiled: CompiledRuleset, customer: dict[str, Any], amount: str = "100.00"
) -> Any:
    invoice = builders.invoice(
        "i1",
        "2024-11-21",
        amount,
        status="open",
        settled_on=None,
        link="https://pague.example.com/i1",
    )
    result = plan_customer(compiled, builders.records(customer, [invoice]), AS_OF)
    [message] = [a for a in result.actions if a.kind == "message"]
    assert message.decision == "send"
    return message


@pytest.mark.parametrize(
    ("first_name", "segments"),
    [("Ana", 1), ("João Conceição", 2)],  # "ã" makes the SMS UCS-2
)
def test_an_sms_costs_its_segments(
    compiled: CompiledRuleset, ana: dict[str, Any], first_name: str, segments: int
) -> None:
    customer = dict(ana, first_name=first_name, whatsapp_ok=False)

    message = reminder(compiled, customer)

    assert message.channel == "sms"
    assert message.details["sms"]["segments"] == segments
    per_segment = compiled.ruleset.channels["sms"].cost
    assert message.cost == per_segment * segments


def test_other_channels_cost_one_per_message(
    compiled: CompiledRuleset, ana: dict[str, Any]
) -> None:
    message = reminder(compiled, dict(ana, first_name="João Conceição"))

    assert message.channel == "whatsapp"
    assert message.cost == compiled.ruleset.channels["whatsapp"].cost
    assert message.cost == Decimal("0.08")
