"""The example policy, rulesets/varejo, planned end to end in memory."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from dsl.loader import load_ruleset
from engine.compiler import CompiledRuleset, compile_ruleset
from engine.planner import plan
from tests.engine import builders

VAREJO = Path(__file__).resolve().parents[2] / "rulesets" / "varejo"
NBSP = "\xa0"


@pytest.fixture(scope="module")
def varejo() -> CompiledRuleset:
    return compile_ruleset(load_ruleset(VAREJO))


def customer(customer_id: str, **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": customer_id,
        "name": "Joana Prado",
        "first_name": "Joana",
        "phone": "(11) 98888-7777",
        "email": "joana@example.com",
        "credit_limit": Decimal("2000.00"),
        "whatsapp_opt_in": True,
        "sms_opt_out": False,
        "in_negotiation": False,
    }
    record.update(fields)
    return record


def invoice(invoice_id: str, customer_id: str, due: str, amount: str) -> dict[str, Any]:
    return builders.invoice(
        invoice_id,
        due,
        amount,
        customer_id=customer_id,
        status="open",
        payment_link=f"https://pague.example.com/{invoice_id}",
        pix_code=None,
    )


def test_the_example_policy_plans_a_small_portfolio(varejo: CompiledRuleset) -> None:
    source = builders.ListSource(
        [
            # Due Monday 18 Nov 2024: reminded on Friday the 15th, a holiday,
            # so WhatsApp waits for Saturday morning.
            builders.records(
                customer("1"), [invoice("1-a", "1", "2024-11-18", "1250.40")]
            ),
            # No WhatsApp consent: SMS.
            builders.records(
                customer("2", whatsapp_opt_in=False),
                [invoice("2-a", "2", "2024-11-18", "89.90")],
            ),
            # In negotiation: suppressed, and listed.
            builders.records(
                customer("3", in_negotiation=True),
                [invoice("3-a", "3", "2024-11-18", "300.00")],
            ),
            # Owes more than the limit: a credit flag besides the reminder.
            builders.records(
                customer("4", credit_limit=Decimal("100.00")),
                [invoice("4-a", "4", "2024-11-18", "150.00")],
            ),
        ]
    )
    as_of = dt.datetime(2024, 11, 15, 13, 0, tzinfo=dt.UTC)
    result = plan(varejo, source, as_of)
    actions = list(result.actions)
    assert [(a.customer_id, a.kind, a.decision, a.channel) for a in actions] == [
        ("1", "message", "send", "whatsapp"),
        ("2", "message", "send", "sms"),
        ("3", "message", "suppressed", None),
        ("4", "credit", "flag", None),
        ("4", "message", "send", "whatsapp"),
    ]
    first = actions[0]
    assert first.message == {
        "body": f"Oi Joana! Sua fatura de R${NBSP}1.250,40 vence em 18/11. "
        "Pague pelo Pix: https://pague.example.com/1-a",
        # The WhatsApp Cloud API sends the approved template, filled in order.
        "template": "varejo_lembrete_vencimento",
        "language": "pt_BR",
        "params": [
            "Joana",
            f"R${NBSP}1.250,40",
            "18/11",
            "https://pague.example.com/1-a",
        ],
    }
    assert first.window_start is not None
    assert first.window_start.isoformat() == "2024-11-16T09:00:00-03:00"
    assert actions[2].why["suppressed_by"] == "em_negociacao"
    assert actions[3].details["headroom"] == Decimal("-50.00")
    assert result.header.ruleset == "varejo"
    assert result.segments == {"pontual": 4}
