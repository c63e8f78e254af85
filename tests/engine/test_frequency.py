"""Several invoices of one customer: combining and frequency caps."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from dsl.loader import load_ruleset
from dsl.model import Frequency, Ruleset
from engine.compiler import CompiledRuleset, compile_ruleset
from engine.plan import Action
from tests.engine import builders
from tests.engine.conftest import FIXTURES
from tests.engine.test_planner import NBSP, at, bill, only, plan_for, variant

# The test policy's reminder shows each invoice's own link, so it caps; this
# copy of it combines, with a reminder that shows only what combines (the
# summed amount, the earliest due date, the number of invoices) and a link
# to all of the customer's bills.
COMBINING_COPY = {
    "  same_day: cap\n": "  same_day: combine\n",
    "sua fatura de {money(invoice.amount_due)} vence em\n"
    "      {date(invoice.due_date, 'dd/MM')}: {invoice.link}\n": (
        "{invoice_count} fatura(s) somam {money(invoice.amount_due)},\n"
        "      a primeira vence em {date(invoice.due_date, 'dd/MM')}:\n"
        "      https://pague.example.com/c/{customer.id}\n"
    ),
    "      {date(invoice.due_date, 'dd/MM')}. {invoice.link}\n": (
        "      {date(invoice.due_date, 'dd/MM')}.\n"
        "      https://pague.example.com/c/{customer.id}\n"
    ),
}


@pytest.fixture(scope="module")
def combining(tmp_path_factory: pytest.TempPathFactory) -> Ruleset:
    """The test policy with `same_day: combine`, validated as a user's is."""
    text = (FIXTURES / "regua" / "ruleset.yaml").read_text("utf-8")
    for old, new in COMBINING_COPY.items():
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    folder: Path = tmp_path_factory.mktemp("combining")
    (folder / "ruleset.yaml").write_text(text, "utf-8")
    return load_ruleset(folder / "ruleset.yaml")


def with_frequency(
    ruleset: Ruleset,
    *,
    per_day: int | None = None,
    per_week: int | None = None,
) -> CompiledRuleset:
    """`ruleset` with other caps and the same `same_day`."""
    same_day = ruleset.frequency.same_day
    return variant(ruleset, frequency=Frequency(per_day, per_week, same_day))


def decisions(actions: list[Action]) -> list[tuple[tuple[str, ...], str | None, str]]:
    """(invoices, step, decision) of the messages, by invoice."""
    found = [
        (a.invoice_ids, a.step, a.decision) for a in actions if a.kind == "message"
    ]
    return sorted(found)


def test_two_invoices_on_one_day_become_one_message(
    combining: Ruleset, ana: dict[str, Any]
) -> None:
    compiled = compile_ruleset(combining)
    invoices = [
        bill("i2", "2024-11-21", "300.00"),
        bill("i1", "2024-11-21", "1000.00"),
    ]
    actions = plan_for(compiled, ana, invoices, as_of=at("2024-11-18 09:00"))
    combined = only(actions, decision="send")
    # The earliest invoice by due date, then id, carries the message; the
    # copy reads as that invoice with the amounts of both.
    assert combined.invoice_ids == ("i1", "i2")
    assert combined.message is not None
    assert combined.message["body"] == (
        f"Oi Ana, 2 fatura(s) somam R${NBSP}1.300,00, a primeira vence em "
        "21/11: https://pague.example.com/c/c1"
    )
    assert combined.details == {"combined": ["i1", "i2"]}
    merged = only(actions, decision="combined")
    assert merged.invoice_ids == ("i2",)
    assert merged.details == {"combined_into": combined.id}
    assert merged.why["reason"] == f"combined into {combined.id}"

    # The id is the one the first invoice has alone: once i2 is paid, a
    # later run the same day does not send the reminder again.
    alone = plan_for(
        compiled,
        ana,
        invoices,
        [builders.payment("i2", "2024-11-18", "300.00")],
        as_of=at("2024-11-18 15:00"),
    )
    reminder = only(alone, decision="send")
    assert reminder.id == combined.id
    assert reminder.message is not None
    assert reminder.message["body"].startswith(
        f"Oi Ana, 1 fatura(s) somam R${NBSP}1.000,00,"
    )


def test_an_invoice_alone_is_one_invoice_under_combine(
    combining: Ruleset, ana: dict[str, Any]
) -> None:
    compiled = compile_ruleset(combining)
    invoices = [
        bill("i1", "2024-11-21", "1000.00"),
        bill("i2", "2024-11-22", "300.00"),
    ]
    actions = plan_for(compiled, ana, invoices, as_of=at("2024-11-18 09:00"))
    reminder = only(actions, step="lembrete")
    assert reminder.invoice_ids == ("i1",) and reminder.details == {}
    assert reminder.message is not None
    assert reminder.message["body"] == (
        f"Oi Ana, 1 fatura(s) somam R${NBSP}1.000,00, a primeira vence em "
        "21/11: https://pague.example.com/c/c1"
    )


def test_under_cap_each_invoice_keeps_its_own_amount_and_link(
    compiled: CompiledRuleset, ana: dict[str, Any]
) -> None:
    # The test policy caps (same_day: cap) and has no per-day cap low
    # enough to hold either back: two reminders, each with its own link.
    invoices = [
        bill("i2", "2024-11-21", "300.00"),
        bill("i1", "2024-11-21", "1000.00"),
    ]
    actions = plan_for(compiled, ana, invoices, as_of=at("2024-11-18 09:00"))
    bodies = {
        a.invoice_ids: a.message["body"] for a in actions if a.message is not None
    }
    assert bodies == {
        ("i1",): f"Oi Ana, sua fatura de R${NBSP}1.000,00 vence em 21/11: "
        "https://pague.example.com/i1",
        ("i2",): f"Oi Ana, sua fatura de R${NBSP}300,00 vence em 21/11: "
        "https://pague.example.com/i2",
    }


def test_different_steps_are_not_combined(
    combining: Ruleset, ana: dict[str, Any]
) -> None:
    compiled = compile_ruleset(combining)
    invoices = [
        bill("i1", "2024-11-18", "300.00"),
        bill("i2", "2024-11-21", "200.00"),
    ]
    actions = plan_for(compiled, ana, invoices, as_of=at("2024-11-18 09:00"))
    assert decisions(actions) == [
        (("i1",), "vencimento", "send"),
        (("i2",), "lembrete", "send"),
    ]


def test_same_day_cap_keeps_the_first_invoice(
    regua: Ruleset, ana: dict[str, Any]
) -> None:
    capping = with_frequency(regua, per_day=1)
    invoices = [
        bill("i2", "2024-11-21", "200.00"),
        bill("i1", "2024-11-21", "300.00"),
    ]
    actions = plan_for(capping, ana, invoices, as_of=at("2024-11-18 09:00"))
    assert decisions(actions) == [
        (("i1",), "lembrete", "send"),
        (("i2",), "lembrete", "capped"),
    ]
    capped = only(actions, decision="capped")
    assert capped.why["reason"] == "over the cap of 1 a day"
    assert capped.window_start is None and capped.message is None


def test_an_on_time_step_goes_before_a_catch_up(
    regua: Ruleset, ana: dict[str, Any]
) -> None:
    capping = with_frequency(regua, per_day=1)
    invoices = [
        # Its reminder (D-3) was yesterday, the 18th: a catch-up today.
        bill("a", "2024-11-21", "100.00"),
        # Due today: on time.
        bill("b", "2024-11-19", "100.00"),
    ]
    actions = plan_for(capping, ana, invoices, as_of=at("2024-11-19 09:00"))
    assert decisions(actions) == [
        (("a",), "lembrete", "capped"),
        (("b",), "vencimento", "send"),
    ]


def test_the_weekly_cap_counts_earlier_days_from_the_ladder(
    regua: Ruleset, ana: dict[str, Any]
) -> None:
    weekly = with_frequency(regua, per_week=1)
    invoices = [
        # Reminded on Friday the 15th (D-3 of Monday the 18th), still open.
        bill("a", "2024-11-18", "100.00"),
        bill("b", "2024-11-22", "100.00"),
    ]
    actions = plan_for(weekly, ana, invoices, as_of=at("2024-11-19 09:00"))
    reminder = only(actions, step="lembrete")
    assert reminder.invoice_ids == ("b",) and reminder.decision == "capped"
    assert reminder.why["reason"] == (
        "over the cap of 1 a week (0 in this plan, 1 estimated on earlier days)"
    )

    # Had invoice a been paid before its reminder, nothing was sent then.
    paid = [builders.payment("a", "2024-11-14", "100.00")]
    actions = plan_for(weekly, ana, invoices, paid, as_of=at("2024-11-19 09:00"))
    assert decisions(actions) == [(("b",), "lembrete", "send")]


def test_the_weekly_cap_within_one_plan(regua: Ruleset, ana: dict[str, Any]) -> None:
    weekly = with_frequency(regua, per_week=2)
    invoices = [bill(f"i{n}", "2024-11-21", "10.00") for n in (1, 2, 3)]
    actions = plan_for(weekly, ana, invoices, as_of=at("2024-11-18 09:00"))
    assert decisions(actions) == [
        (("i1",), "lembrete", "send"),
        (("i2",), "lembrete", "send"),
        (("i3",), "lembrete", "capped"),
    ]


def test_messages_moved_to_another_day_count_on_that_day(
    regua: Ruleset, ana: dict[str, Any]
) -> None:
    capping = with_frequency(regua, per_day=1)
    invoices = [
        # Its reminder is today but WhatsApp's window has closed: tomorrow.
        bill("a", "2024-11-21", "100.00"),
        # Due today through the early SMS channel, open until 22:00.
        bill("b", "2024-11-18", "100.00"),
    ]
    actions = plan_for(capping, ana, invoices, as_of=at("2024-11-18 20:30"))
    assert decisions(actions) == [
        (("a",), "lembrete", "send"),
        (("b",), "vencimento", "send"),
    ]
    moved = only(actions, step="lembrete")
    assert moved.window_start == at("2024-11-19 08:00")


def test_no_caps_without_limits(regua: Ruleset, ana: dict[str, Any]) -> None:
    free = with_frequency(regua)
    invoices = [bill(f"i{n}", "2024-11-21", "10.00") for n in range(5)]
    actions = plan_for(free, ana, invoices, as_of=at("2024-11-18 09:00"))
    assert [a.decision for a in actions] == ["send"] * 5


def test_steps_with_offers_are_never_combined(
    combining: Ruleset, ana: dict[str, Any]
) -> None:
    history = bill("h1", "2024-06-10", "100.00", status="paid")
    payments = [builders.payment("h1", "2024-07-20", "100.00")]
    invoices = [
        history,
        bill("i1", "2024-11-18", "300.00"),
        bill("i2", "2024-11-18", "600.00"),
    ]
    compiled = with_frequency(combining)
    actions = plan_for(compiled, ana, invoices, payments, as_of=at("2024-11-19 10:00"))
    offers = [a for a in actions if a.kind == "offer"]
    assert [a.invoice_ids for a in offers] == [("i1",), ("i2",)]
    assert [a.details["total"] for a in offers] == [
        Decimal("306.02"),
        Decimal("612.04"),
    ]
    assert decisions(actions) == [
        (("i1",), "atraso", "send"),
        (("i2",), "atraso", "send"),
    ]
