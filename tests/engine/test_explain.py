"""The readable trace of one customer."""

from __future__ import annotations

from typing import Any

from engine.compiler import CompiledRuleset
from engine.explain import explain_customer
from tests.engine import builders
from tests.engine.test_planner import at, bill, late_history


def test_every_decision_is_explained(
    compiled: CompiledRuleset, ana: dict[str, Any]
) -> None:
    ana.update(whatsapp_ok=False, phone="123")
    history, payments = late_history()
    invoices = [
        *history,
        bill("i2", "2024-11-18", "1000.00"),
        bill("i3", "2024-11-18", "80.00"),
    ]
    records = builders.records(ana, invoices, payments)
    lines = explain_customer(compiled, records, at("2024-11-19 10:00"))
    text = "\n".join(lines)

    assert lines[:2] == [
        "customer c1, ruleset regua",
        "as of 2024-11-19 10:00 -0300 (America/Sao_Paulo); "
        "steps from 2024-11-17 to 2024-11-19",
    ]
    assert "invoices (3, 2 open):" in lines
    assert (
        "  h1: due 2024-06-10, amount R$\xa0100,00, paid R$\xa0100,00; "
        "settled 2024-07-20, status paid; 40 days late"
    ) in lines
    assert (
        "  i2: due 2024-11-18, amount R$\xa01.000,00, paid R$\xa00,00, "
        "due now R$\xa01.000,00; open, status open; 1 days late"
    ) in lines
    assert "exposure R$\xa01.080,00 over 2 open invoice(s)" in lines
    # h1, and i2 and i3 one day after their due date.
    assert "  history.late_count(12 months) = 3" in lines
    assert "score 0, grade ruim:" in lines
    assert "  atrasos = 3: band >= 3, 0 points" in lines
    assert "  maior_atraso = 40: in no band, 0 points" in lines
    assert "segment risco:" in lines
    assert "  pontual: score >= 80 and history.paid_total(12 months) > 0 -> no" in lines
    assert "  risco: history.max_days_late(12 months) > 30 -> matched" in lines
    assert "  padrao: open_invoices > 0 -> not tried (first match wins)" in lines
    assert lines[lines.index("channels:") + 1 :][:2] == [
        "  whatsapp: rejected: no consent",
        "  sms: rejected: phone number '123' has the wrong length",
    ]
    assert "  i2 risco/lembrete (D-3) on 2024-11-15: before 2024-11-17" in lines
    assert (
        "  i2 risco/atraso (D+1 business) on 2024-11-19: unreachable: "
        "no channel of the step is usable"
    ) in lines
    assert (
        "  i3 risco/atraso (D+1 business) on 2024-11-19: offer parcelamento does "
        "not apply: 80.00 is less than two instalments of 50.00"
    ) in lines
    assert (
        "  i2 risco/mesa (D+10 business) on 2024-12-03: upcoming on 2024-12-03" in lines
    )
    assert "credit: limit R$\xa05.000,00 (min(customer.income * 0.5, 5000.00))" in text
    assert "actions (2):" in lines
    assert any(
        line.startswith("  off_") and "details instalment_amount=340.02" in line
        for line in lines
    )


def test_a_message_line_keeps_line_breaks_visible(
    compiled: CompiledRuleset, ana: dict[str, Any]
) -> None:
    ana.update(name="Ana\nSouza", phone=None)
    records = builders.records(ana, [bill("i1", "2024-11-21", "100.00")])
    lines = explain_customer(compiled, records, at("2024-11-18 09:00"))
    # The data's line break became a space in the message itself (see
    # tests/engine/test_message_values.py for a template's line break).
    assert "    message: Olá, Ana Souza. Valor: R$\xa0100,00." in lines
