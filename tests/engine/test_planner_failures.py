"""Planning one customer fails alone: values out of any sane range end in
that customer's "error" action, wherever the arithmetic fails, and the other
customers are planned as usual."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from engine.compiler import CompiledRuleset
from engine.explain import explain_customer
from engine.planner import plan
from tests.engine import builders

AS_OF = dt.datetime(2024, 11, 18, 9, 0, tzinfo=ZoneInfo("America/Sao_Paulo"))


def bill(invoice_id: str, due: str, amount: str, **fields: Any) -> dict[str, Any]:
    fields.setdefault("status", "open")
    fields.setdefault("settled_on", None)
    fields.setdefault("link", f"https://pague.example.com/{invoice_id}")
    return builders.invoice(invoice_id, due, amount, **fields)


@pytest.mark.parametrize(
    ("invoices", "payments", "reason"),
    [
        ([bill("i1", "2024-11-21", "1E+30")], [], "invoice i1: amount 1E+30"),
        (
            [bill("i1", "2024-11-21", "100.00")],
            [("i1", "2024-11-10", "1E+300")],
            "payment i1: amount 1E+300",
        ),
        ([bill("i1", "2024-11-21", "1000000000000000")], [], "out of range"),
        # A due date whose ladder days lie past year 9999.
        ([bill("i1", "9999-12-30", "100.00")], [], "cannot plan"),
    ],
    ids=["huge invoice", "huge payment", "sixteen digits", "last due date"],
)
def test_a_failure_outside_expressions_is_the_customers_error(
    compiled: CompiledRuleset,
    ana: dict[str, Any],
    invoices: list[dict[str, Any]],
    payments: list[tuple[str, str, str]],
    reason: str,
) -> None:
    broken = builders.records(ana, invoices, [builders.payment(*p) for p in payments])
    other = builders.records(
        dict(ana, id="c2"), [bill("i2", "2024-11-21", "100.00", customer_id="c2")]
    )
    source = builders.ListSource([broken, other])

    actions = list(plan(compiled, source, AS_OF).actions)

    [error] = [a for a in actions if a.customer_id == "c1"]
    assert error.decision == "error"
    assert error.why["error"].startswith("cannot plan this customer")
    assert reason in error.why["error"]
    assert "location" not in error.why
    assert any(a.customer_id == "c2" and a.decision == "send" for a in actions), (
        "the customer after the failing one is planned"
    )
    explanation = explain_customer(compiled, broken, AS_OF)
    assert any(line.startswith("error: cannot plan") for line in explanation)


def test_sane_large_amounts_plan_normally(
    compiled: CompiledRuleset, ana: dict[str, Any]
) -> None:
    largest = "999999999999999.99"  # the most a source accepts
    records = builders.records(
        dict(ana, income=Decimal(largest)), [bill("i1", "2024-11-21", largest)]
    )

    actions = list(plan(compiled, builders.ListSource([records]), AS_OF).actions)

    assert "error" not in {a.decision for a in actions}
    [message] = [a for a in actions if a.decision == "send"]
    assert "999.999.999.999.999,99" in message.message["body"]
