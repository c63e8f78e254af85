"""The planner on the test policy (fixtures/regua), with concrete dates.

Calendar facts used below: 2024-11-15 (Friday) is Republic Day and
2024-11-20 (Wednesday) Black Awareness Day, both national holidays; São
Paulo is at -03:00 in 2024; in 2018 DST started there on 2018-11-04.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from dsl.loader import load_ruleset
from dsl.model import Delivery, Ruleset
from engine.compiler import CompiledRuleset, compile_ruleset
from engine.explain import explain_customer
from engine.plan import Action
from engine.planner import CustomerPlan, PlanNotRead, plan, plan_customer
from engine.records import CustomerRecords
from tests.engine import builders
from tests.engine.conftest import FIXTURES

SAO_PAULO = ZoneInfo("America/Sao_Paulo")
NBSP = "\xa0"


def at(text: str) -> dt.datetime:
    """A wall-clock time in São Paulo: `at("2024-11-18 09:00")`."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=SAO_PAULO)


def bill(invoice_id: str, due: str, amount: str, **fields: Any) -> dict[str, Any]:
    fields.setdefault("status", "open")
    fields.setdefault("settled_on", None)
    fields.setdefault("link", f"https://pague.example.com/{invoice_id}")
    return builders.invoice(invoice_id, due, amount, **fields)


def late_history() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A June 2024 bill paid 40 days late: the customer is in `risco`."""
    return (
        [bill("h1", "2024-06-10", "100.00", status="paid")],
        [builders.payment("h1", "2024-07-20", "100.00")],
    )


def plan_for(
    compiled: CompiledRuleset,
    customer: dict[str, Any],
    invoices: list[dict[str, Any]],
    payments: list[dict[str, Any]] | None = None,
    *,
    as_of: dt.datetime,
    since: dt.date | None = None,
) -> list[Action]:
    records = builders.records(customer, invoices, payments or [])
    return plan_customer(compiled, records, as_of, since=since).actions


def only(actions: list[Action], **match: Any) -> Action:
    found = [a for a in actions if all(getattr(a, k) == v for k, v in match.items())]
    assert len(found) == 1, f"expected one action matching {match}, got {found}"
    return found[0]


def variant(ruleset: Ruleset, **changes: Any) -> CompiledRuleset:
    return compile_ruleset(dataclasses.replace(ruleset, **changes))


# -- amounts ----------------------------------------------------------------


def test_a_partly_paid_invoice_is_reminded_for_what_is_still_due(
    compiled: CompiledRuleset, ana: dict[str, Any]
) -> None:
    actions = plan_for(
        compiled,
        ana,
        [bill("i1", "2024-11-21", "1000.00")],
        [builders.payment("i1", "2024-11-10", "400.00")],
        as_of=at("2024-11-18 09:00"),
    )
    [message] = actions
    assert message.kind == "message" and message.decision == "send"
    assert message.step == "lembrete" and message.channel == "whatsapp"
    assert message.address == "+5511987654321"
    assert message.message == {
        "body": f"Oi Ana, sua fatura de R${NBSP}600,00 vence em 21/11: "
        "https://pague.example.com/i1"
    }
    assert message.cost == Decimal("0.08")
    assert message.window_start == at("2024-11-18 08:00")
    assert message.window_end == at("2024-11-18 20:00")


def test_payments_after_today_are_invisible(
    compiled: CompiledRuleset, ana: dict[str, Any]
) -> None:
    actions = plan_for(
        compiled,
        ana,
        [bill("i1", "2024-11-21", "1000.00")],
        [builders.payment("i1", "2024-11-19", "1000.00")],
        as_of=at("2024-11-18 09:00"),
    )
    [message] = actions
    assert message.message is not None
    assert f"R${NBSP}1.000,00" in message.message["body"]


@pytest.mark.parametrize(
    ("status", "paid"),
    [("paid", None), ("cancelled", None), ("open", "1000.00")],
    ids=["status-paid", "status-cancelled", "paid-in-full"],
)
def test_settled_invoices_get_nothing(
    compiled: CompiledRuleset, ana: dict[str, Any], status: str, paid: str | None
) -> None:
    payments = [builders.payment("i1", "2024-11-10", paid)] if paid else []
    actions = plan_for(
        compiled,
        ana,
        [bill("i1", "2024-11-21", "1000.00", status=status)],
        payments,
        as_of=at("2024-11-18 09:00"),
    )
    assert actions == []


# -- dates and times --------------------------------------------------------


def test_a_run_at_0130_utc_is_still_the_previous_day_in_sao_paulo(
    compiled: CompiledRuleset, ana: dict[str, Any]
) -> None:
    invoices = [bill("i1", "2024-11-21", "100.00")]
    utc = dt.UTC
    late_evening = plan_for(
        compiled, ana, invoices, as_of=dt.datetime(2024, 11, 19, 1, 30, tzinfo=utc)
    )
    [message] = late_evening
    # 22:30 on the 18th in São Paulo: D-3 is today, the window closed at 20:00.
    assert message.why["step"]["day"] == dt.date(2024, 11, 18)
    assert message.window_start is not None
    assert message.window_start.isoformat() == "2024-11-19T08:00:00-03:00"
    assert "no time left today after 22:30" in message.why["window_moved"]

    day_before = plan_for(
        compiled, ana, invoices, as_of=dt.datetime(2024, 11, 18, 1, 30, tzinfo=utc)
    )
    assert day_before == []


def test_a_due_date_on_a_national_holiday_rolls_to_the_next_business_day(
    compiled: CompiledRuleset, ana: dict[str, Any]
) -> None:
    invoices = [bill("i1", "2024-11-15", "250.00")]
    # On the holiday itself nothing is due yet: D0 is Monday the 18th.
    on_holiday = plan_for(compiled, ana, invoices, as_of=at("2024-11-15 10:00"))
    assert [a.step for a in on_holiday] == ["lembrete"]
    reminder = on_holiday[0]
    assert reminder.due_date == dt.date(2024, 11, 18)
    # D-3 from Monday is the holiday: WhatsApp's window is closed, so the
    # reminder goes in the next open window, Saturday morning.
    assert reminder.window_start == at("2024-11-16 09:00")
    assert "Proclamação da República" in reminder.why["window_moved"]

    monday = plan_for(compiled, ana, invoices, as_of=at("2024-11-18 05:00"))
    due_today = only(monday, step="vencimento")
    assert due_today.decision == "send" and due_today.channel == "sms_cedo"
    assert due_today.due_date == dt.date(2024, 11, 18)
    assert due_today.window_start == at("2024-11-18 06:00")
    assert not [a for a in monday if a.step == "atraso"]


def test_after_due_steps_count_business_days_from_the_rolled_date(
    compiled: CompiledRuleset, ana: dict[str, Any]
) -> None:
    invoices = [bill("i1", "2024-11-15", "250.00")]
    # D+2 business from Monday the 18th: Tuesday, then Thursday (the 20th is
    # a holiday).
    holiday = plan_for(compiled, ana, invoices, as_of=at("2024-11-20 10:00"))
    assert not [a for a in holiday if a.step == "atraso"]
    thursday = plan_for(compiled, ana, invoices, as_of=at("2024-11-21 10:00"))
    late = only(thursday, step="atraso")
    assert late.why["step"]["day"] == dt.date(2024, 11, 21)
    assert late.channel == "email"


def test_tiradentes_day(compiled: CompiledRuleset, ana: dict[str, Any]) -> None:
    actions = plan_for(
        compiled,
        ana,
        [bill("i1", "2025-04-21", "80.00")],
        as_of=at("2025-04-22 07:00"),
    )
    due_today = only(actions, step="vencimento")
    assert due_today.due_date == dt.date(2025, 4, 22)


def test_a_sunday_due_date_is_on_time_on_monday(
    compiled: CompiledRuleset, ana: dict[str, Any]
) -> None:
    history, payments = late_history()
    invoices = [*history, bill("i2", "2024-11-17", "1000.00")]
    monday = plan_for(compiled, ana, invoices, payments, as_of=at("2024-11-18 10:00"))
    assert not [a for a in monday if a.step == "atraso"]
    tuesday = plan_for(compiled, ana, invoices, payments, as_of=at("2024-11-19 10:00"))
    late = only(tuesday, kind="message", step="atraso")
    assert late.segment == "risco"
    assert late.due_date == dt.date(2024, 11, 18)


@pytest.mark.parametrize(
    ("due", "start"),
    [
        ("2018-11-01", "2018-11-01T06:00:00-03:00"),  # before DST started
        ("2018-11-05", "2018-11-05T06:00:00-02:00"),  # after: still 06:00
    ],
)
def test_a_six_oclock_send_stays_at_six_in_a_dst_year(
    compiled: CompiledRuleset, ana: dict[str, Any], due: str, start: str
) -> None:
    day = dt.date.fromisoformat(due)
    as_of = dt.datetime.combine(day, dt.time(0, 30), tzinfo=dt.UTC) + dt.timedelta(
        hours=4
    )
    actions = plan_for(compiled, ana, [bill("i1", due, "100.00")], as_of=as_of)
    due_today = only(actions, step="vencimento")
    assert due_today.window_start is not None
    assert due_today.window_start.isoformat() == start
    assert due_today.window_start.astimezone(dt.UTC).hour in (8, 9)


def test_as_of_must_be_aware(compiled: CompiledRuleset, ana: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="aware"):
        plan_customer(compiled, builders.records(ana), dt.datetime(2024, 11, 18, 9, 0))


# -- catch-up, missed, windows ------------------------------------------------


def test_a_step_of_yesterday_is_caught_up_today(
    compiled: CompiledRuleset, ana: dict[str, Any]
) -> None:
    actions = plan_for(
        compiled,
        ana,
        [bill("i1", "2024-11-21", "100.00")],
        as_of=at("2024-11-19 09:00"),
    )
    reminder = only(actions, step="lembrete")
    assert reminder.decision == "send"
    assert reminder.why["step"]["timing"] == "late, catch-up"
    assert reminder.window_start == at("2024-11-19 08:00")


def same_day_vencimento(regua: Ruleset) -> CompiledRuleset:
    """The test policy with its due-day step (`vence hoje`) same_day_only."""
    ladders = {
        name: dataclasses.replace(
            ladder,
            steps=tuple(
                dataclasses.replace(step, same_day_only=step.name == "vencimento")
                for step in ladder.steps
            ),
        )
        for name, ladder in regua.ladders.items()
    }
    return variant(regua, ladders=ladders)


def test_a_same_day_step_after_its_window_is_dropped_not_moved(
    regua: Ruleset, ana: dict[str, Any]
) -> None:
    # Due Thursday the 21st; the `cedo` window closes at 22:00, and the
    # policy says next_window: "vence hoje" would go on Friday.
    compiled = same_day_vencimento(regua)
    invoices = [bill("i1", "2024-11-21", "100.00")]
    evening = plan_for(compiled, ana, invoices, as_of=at("2024-11-21 22:30"))
    due_today = only(evening, step="vencimento")
    assert due_today.decision == "dropped"
    assert due_today.message is None and due_today.window_start is None
    assert "only valid on its day" in due_today.why["reason"]
    assert "no time left today after 22:30" in due_today.why["reason"]

    morning = plan_for(compiled, ana, invoices, as_of=at("2024-11-22 07:00"))
    missed = only(morning, step="vencimento")
    assert missed.decision == "missed" and missed.message is None
    assert "only valid on its day" in missed.why["reason"]
    assert missed.why["step"]["timing"] == "missed"
    # The same step on its day, in its window, still goes.
    on_day = plan_for(compiled, ana, invoices, as_of=at("2024-11-21 10:00"))
    assert only(on_day, step="vencimento").decision == "send"


def test_a_message_moved_to_a_later_day_is_not_on_time(
    compiled: CompiledRuleset, ana: dict[str, Any]
) -> None:
    invoices = [bill("i1", "2024-11-21", "100.00")]
    evening = plan_for(compiled, ana, invoices, as_of=at("2024-11-21 22:30"))
    moved = only(evening, step="vencimento")
    assert moved.decision == "send"
    assert moved.window_start is not None
    assert moved.window_start.date() > dt.date(2024, 11, 21)
    assert moved.why["step"]["timing"] == "late, next window"
    in_window = plan_for(compiled, ana, invoices, as_of=at("2024-11-21 10:00"))
    assert only(in_window, step="vencimento").why["step"]["timing"] == "on time"


def test_steps_before_the_grace_are_listed_as_missed(
    compiled: CompiledRuleset, ana: dict[str, Any]
) -> None:
    actions = plan_for(
        compiled,
        ana,
        [bill("i1", "2024-11-21", "100.00")],
        as_of=at("2024-11-22 09:00"),
        since=dt.date(2024, 11, 18),
    )
    missed = only(actions, step="lembrete")
    assert missed.decision == "missed"
    assert missed.window_start is None and missed.message is None
    # The channel is still chosen, so the id is the one a send would have.
    assert missed.channel_kind == "whatsapp"
    on_time = plan_for(
        compiled,
        ana,
        [bill("i1", "2024-11-21", "100.00")],
        as_of=at("2024-11-18 09:00"),
    )
    assert missed.id == only(on_time, step="lembrete").id
    caught_up = only(actions, step="vencimento")
    assert caught_up.decision == "send"
    assert caught_up.why["step"]["timing"] == "late, catch-up"


def test_since_after_a_step_day_leaves_the_step_out(
    compiled: CompiledRuleset, ana: dict[str, Any]
) -> None:
    actions = plan_for(
        compiled,
        ana,
        [bill("i1", "2024-11-21", "100.00")],
        as_of=at("2024-11-19 09:00"),
        since=dt.date(2024, 11, 19),
    )
    assert actions == []


def test_outside_the_window_a_message_is_dropped_when_the_policy_says_so(
    regua: Ruleset, ana: dict[str, Any]
) -> None:
    dropping = variant(regua, delivery=Delivery("drop", 2))
    actions = plan_for(
        dropping,
        ana,
        [bill("i1", "2024-11-21", "100.00")],
        as_of=at("2024-11-18 21:00"),
    )
    [dropped] = actions
    assert dropped.decision == "dropped"
    assert dropped.window_start is None
    assert dropped.why["reason"] == (
        "window comercial has no time left today after 21:00"
    )


# -- channels -----------------------------------------------------------------


def test_rejected_channels_are_listed_and_none_left_is_unreachable(
    compiled: CompiledRuleset, ana: dict[str, Any]
) -> None:
    ana.update(phone="123", whatsapp_ok=False, email="ana@@example.com")
    actions = plan_for(
        compiled,
        ana,
        [bill("i1", "2024-11-21", "100.00")],
        as_of=at("2024-11-18 09:00"),
    )
    [unreachable] = actions
    assert unreachable.decision == "unreachable"
    assert unreachable.channel is None and unreachable.message is None
    assert unreachable.why["channels_rejected"] == [
        {"channel": "whatsapp", "reason": "no consent"},
        {"channel": "sms", "reason": "phone number '123' has the wrong length"},
        {
            "channel": "email",
            "reason": "e-mail address 'ana@@example.com' is not well formed",
        },
    ]


def test_an_opted_out_customer_falls_through_to_email(
    compiled: CompiledRuleset, ana: dict[str, Any]
) -> None:
    ana.update(whatsapp_ok=False, sms_out=True, email="Ana@Example.COM")
    [message] = plan_for(
        compiled,
        ana,
        [bill("i1", "2024-11-21", "100.00")],
        as_of=at("2024-11-18 09:00"),
    )
    assert message.channel == "email"
    assert message.address == "Ana@example.com"
    assert message.why["channels_rejected"][1] == {
        "channel": "sms",
        "reason": "opted out",
    }
    assert message.window_start == at("2024-11-18 07:00")


def test_data_values_are_inserted_as_plain_text(
    compiled: CompiledRuleset, ana: dict[str, Any]
) -> None:
    name = "Ana {customer.id} }{\n<script>alert('x')</script>"
    ana.update(name=name, phone=None)
    [message] = plan_for(
        compiled,
        ana,
        [bill("i1", "2024-11-21", "100.00")],
        as_of=at("2024-11-18 09:00"),
    )
    assert message.channel == "email" and message.message is not None
    # A line break in the data is a space: the copy's lines are the template's.
    shown = name.replace("\n", " ")
    assert message.message["body"] == f"Olá, {shown}. Valor: R${NBSP}100,00."
    assert message.message["subject"] == "Sua fatura vence em 21/11/2024"
    html = message.message["html"]
    assert "<script>" not in html
    assert html == (
        "<p>Olá, Ana {customer.id} }{ &lt;script&gt;alert(&#x27;x&#x27;)"
        f"&lt;/script&gt;. Valor: R${NBSP}100,00.</p>"
    )


# -- suppression and credit -----------------------------------------------------


def test_suppression_is_listed_only_where_a_step_would_fire(
    compiled: CompiledRuleset, ana: dict[str, Any]
) -> None:
    actions = plan_for(
        compiled,
        ana,
        [
            bill("i1", "2024-11-21", "100.00", status="disputed"),
            bill("i2", "2024-12-20", "100.00", status="disputed"),
        ],
        as_of=at("2024-11-18 09:00"),
    )
    [suppressed] = actions
    assert suppressed.decision == "suppressed"
    assert suppressed.invoice_ids == ("i1",)
    assert suppressed.why["suppressed_by"] == "contestada"
    assert suppressed.why["rule"] == 'invoice.status == "disputed"'


def test_a_customer_in_negotiation_is_suppressed(
    compiled: CompiledRuleset, ana: dict[str, Any]
) -> None:
    ana["negotiating"] = True
    [suppressed] = plan_for(
        compiled,
        ana,
        [bill("i1", "2024-11-21", "100.00")],
        as_of=at("2024-11-18 09:00"),
    )
    assert suppressed.why["suppressed_by"] == "negociando"


def test_exposure_above_the_limit_is_flagged(
    compiled: CompiledRuleset, ana: dict[str, Any]
) -> None:
    ana["income"] = Decimal("1000.00")  # limit: min(500.00, 5000.00)
    actions = plan_for(
        compiled,
        ana,
        [bill("i1", "2024-11-21", "1000.00")],
        [builders.payment("i1", "2024-11-10", "400.00")],
        as_of=at("2024-11-18 09:00"),
    )
    credit = only(actions, kind="credit")
    assert credit.decision == "flag"
    assert credit.details == {
        "exposure": Decimal("600.00"),
        "limit": Decimal("500.00"),
        "headroom": Decimal("-100.00"),
    }
    assert only(actions, kind="message").decision == "send"


def test_a_credit_block_suppresses_messages_but_not_escalations(
    regua: Ruleset, ana: dict[str, Any]
) -> None:
    assert regua.credit is not None
    blocking = variant(
        regua, credit=dataclasses.replace(regua.credit, on_exceed="block")
    )
    ana["income"] = Decimal("100.00")
    history, payments = late_history()
    invoices = [*history, bill("i2", "2024-11-18", "1000.00")]
    tuesday = plan_for(blocking, ana, invoices, payments, as_of=at("2024-11-19 10:00"))
    assert only(tuesday, kind="credit").decision == "block"
    blocked = only(tuesday, kind="message")
    assert blocked.decision == "suppressed"
    assert blocked.why["suppressed_by"] == "credit block"
    assert not [a for a in tuesday if a.kind == "offer"]
    # D+10 business from Monday the 18th (the 20th is a holiday): 3 December.
    december = plan_for(blocking, ana, invoices, payments, as_of=at("2024-12-03 10:00"))
    escalation = only(december, kind="escalation")
    assert escalation.decision == "escalate"
    assert escalation.details == {"queue": "mesa_de_negociacao"}
    assert escalation.why["step"]["day"] == dt.date(2024, 12, 3)


def test_the_credit_id_changes_by_day_not_by_invoice(
    compiled: CompiledRuleset, ana: dict[str, Any]
) -> None:
    ana["income"] = Decimal("100.00")
    one = [bill("i1", "2024-11-21", "100.00")]
    two = [*one, bill("i2", "2024-12-21", "100.00")]
    monday = only(
        plan_for(compiled, ana, one, as_of=at("2024-11-18 09:00")), kind="credit"
    )
    same_day = only(
        plan_for(compiled, ana, two, as_of=at("2024-11-18 19:00")), kind="credit"
    )
    tuesday = only(
        plan_for(compiled, ana, two, as_of=at("2024-11-19 09:00")), kind="credit"
    )
    assert monday.id == same_day.id
    assert tuesday.id != monday.id


# -- score, segments, offers ---------------------------------------------------


def test_score_segment_and_why(compiled: CompiledRuleset, ana: dict[str, Any]) -> None:
    invoices = [
        bill("h1", "2024-10-10", "90.00", status="paid"),
        bill("i1", "2024-11-21", "100.00"),
    ]
    payments = [builders.payment("h1", "2024-10-09", "90.00")]
    records = builders.records(ana, invoices, payments)
    result = plan_customer(compiled, records, at("2024-11-18 09:00"))
    trace = result.trace
    assert trace.score == 100 and trace.grade == "bom"
    assert [(s.characteristic, s.points) for s in trace.score_lines] == [
        ("atrasos", 60),
        ("maior_atraso", 40),
    ]
    assert result.segment == "pontual"
    [message] = result.actions
    assert message.why["segment"] == {
        "name": "pontual",
        "rule": "score >= 80 and history.paid_total(12 months) > 0",
        "score": 100,
        "grade": "bom",
    }


def test_risco_scores_and_segments(
    compiled: CompiledRuleset, ana: dict[str, Any]
) -> None:
    history, payments = late_history()
    records = builders.records(
        ana, [*history, bill("i2", "2024-11-17", "10.00")], payments
    )
    result = plan_customer(compiled, records, at("2024-11-18 10:00"))
    # One bill 40 days late: 30 points for the count, none for the maximum
    # (40 is in no band of maior_atraso, which scores 0 and says so).
    assert [(s.points, s.band_label) for s in result.trace.score_lines] == [
        (30, "1 to 2"),
        (0, None),
    ]
    assert result.trace.score == 30 and result.trace.grade == "ruim"
    assert result.trace.segment_checks == [
        ("pontual", "score >= 80 and history.paid_total(12 months) > 0", False),
        ("risco", "history.max_days_late(12 months) > 30", True),
    ]
    assert result.trace.history["max_days_late(12 months)"] == 40


def test_a_customer_in_no_segment_gets_nothing_and_is_explained(
    compiled: CompiledRuleset, ana: dict[str, Any]
) -> None:
    records = builders.records(ana)
    result = plan_customer(compiled, records, at("2024-11-18 09:00"))
    assert result.segment is None and result.actions == []
    lines = explain_customer(compiled, records, at("2024-11-18 09:00"))
    assert "segment: none matched (no segment: no messages)" in lines
    assert "  padrao: open_invoices > 0 -> no" in lines


def test_an_instalment_offer_in_the_message(
    compiled: CompiledRuleset, ana: dict[str, Any]
) -> None:
    history, payments = late_history()
    invoices = [*history, bill("i2", "2024-11-18", "1000.00")]
    actions = plan_for(compiled, ana, invoices, payments, as_of=at("2024-11-19 10:00"))
    offer = only(actions, kind="offer")
    assert offer.decision == "offer"
    # Price table at 1% a month: 1000 * 0.01 * 3 / (1 - 1.01 ** -3) = 1020.066...
    assert offer.details == {
        "offer": "parcelamento",
        "kind": "instalments",
        "instalments": 3,
        "instalment_amount": Decimal("340.02"),
        "last_instalment": Decimal("340.03"),
        "total": Decimal("1020.07"),
        "new_due_date": dt.date(2024, 12, 19),
        "interest_monthly": Decimal("0.01"),
    }
    message = only(actions, kind="message")
    assert message.message == {
        "body": f"Ana, parcele R${NBSP}1.000,00 em 3x de R${NBSP}340,02."
    }


def test_min_instalment_lowers_the_count(
    compiled: CompiledRuleset, ana: dict[str, Any]
) -> None:
    history, payments = late_history()
    invoices = [*history, bill("i2", "2024-11-18", "120.00")]
    actions = plan_for(compiled, ana, invoices, payments, as_of=at("2024-11-19 10:00"))
    offer = only(actions, kind="offer")
    # Two instalments of at least 50.00: 120 * 0.01 * 2 / (1 - 1.01 ** -2).
    assert offer.details["instalments"] == 2
    assert offer.details["total"] == Decimal("121.80")
    assert offer.details["instalment_amount"] == Decimal("60.90")
    assert offer.details["last_instalment"] == Decimal("60.90")


def test_a_step_whose_offer_does_not_apply_is_skipped(
    compiled: CompiledRuleset, ana: dict[str, Any]
) -> None:
    history, payments = late_history()
    invoices = [*history, bill("i2", "2024-11-18", "80.00")]
    records = builders.records(ana, invoices, payments)
    result = plan_customer(compiled, records, at("2024-11-19 10:00"))
    assert result.actions == []
    [step] = [s for s in result.trace.steps if s.step == "atraso"]
    assert step.outcome == (
        "offer parcelamento does not apply: 80.00 is less than two instalments of 50.00"
    )


def test_a_new_date_offer(compiled: CompiledRuleset, ana: dict[str, Any]) -> None:
    # D+5 business from Thursday 21 Nov: 22, 25, 26, 27, 28.
    actions = plan_for(
        compiled,
        ana,
        [bill("i1", "2024-11-21", "250.00")],
        as_of=at("2024-11-28 10:00"),
    )
    offer = only(actions, kind="offer")
    assert offer.details["new_due_date"] == dt.date(2024, 12, 13)
    assert offer.details["total"] == Decimal("250.00")
    message = only(actions, kind="message", step="nova_data")
    assert message.channel_kind == "sms"
    assert message.message == {"body": "Ana, pague R$ 250,00 até 13/12."}


def test_a_false_step_condition_skips_the_step(
    compiled: CompiledRuleset, ana: dict[str, Any]
) -> None:
    records = builders.records(ana, [bill("i1", "2024-11-15", "20.00")])
    result = plan_customer(compiled, records, at("2024-11-21 10:00"))
    assert not [a for a in result.actions if a.step == "atraso"]
    [step] = [s for s in result.trace.steps if s.step == "atraso"]
    assert step.outcome == "condition false: invoice.amount_due >= 50.00"


# -- errors, ids, the plan ------------------------------------------------------


@pytest.fixture
def dividing(tmp_path: Path) -> CompiledRuleset:
    """The test policy with a credit limit that divides by zero when the
    customer's income is 1000.00."""
    target = tmp_path / "regua"
    shutil.copytree(FIXTURES / "regua", target)
    policy = target / "ruleset.yaml"
    text = policy.read_text(encoding="utf-8")
    text = text.replace(
        "limit: min(customer.income * 0.5, 5000.00)",
        "limit: customer.income / (customer.income - 1000.00)",
    )
    policy.write_text(text, encoding="utf-8")
    return compile_ruleset(load_ruleset(target))


def test_an_evaluation_error_becomes_one_error_action(
    dividing: CompiledRuleset, ana: dict[str, Any]
) -> None:
    ana["income"] = Decimal("1000.00")
    records = builders.records(ana, [bill("i1", "2024-11-21", "100.00")])
    result = plan_customer(dividing, records, at("2024-11-18 09:00"))
    [error] = result.actions
    assert error.decision == "error"
    assert error.customer_id == "c1"
    assert error.why["location"] == "ruleset.yaml:101:10"
    assert "zero" in error.why["error"]
    explanation = explain_customer(dividing, records, at("2024-11-18 09:00"))
    assert any(line.startswith("error: ") for line in explanation)


def test_other_customers_are_planned_after_an_error(
    dividing: CompiledRuleset, ana: dict[str, Any]
) -> None:
    broke = builders.records(
        dict(ana, income=Decimal("1000.00")), [bill("i1", "2024-11-21", "100.00")]
    )
    other = builders.records(
        dict(ana, id="c2", income=Decimal("2000.00")),
        [bill("i2", "2024-11-21", "100.00", customer_id="c2")],
    )
    source = builders.ListSource([broke, other])
    actions = list(plan(dividing, source, at("2024-11-18 09:00")).actions)
    # c2's limit is 2000 / 1000 = 2.00, below the 100.00 it owes: flagged.
    assert [(a.customer_id, a.kind, a.decision) for a in actions] == [
        ("c1", "message", "error"),
        ("c2", "credit", "flag"),
        ("c2", "message", "send"),
    ]


def test_on_customer_sees_every_customer_with_its_segment(
    compiled: CompiledRuleset, ana: dict[str, Any]
) -> None:
    # Bia owes nothing: no action and, with no open invoice, no segment
    # (padrao asks for one); she is still seen.
    owing = builders.records(ana, [bill("i1", "2024-11-21", "100.00")])
    settled = builders.records(dict(ana, id="c2", first_name="Bia"), [])
    seen: list[tuple[str, str | None, int]] = []

    def note(records: CustomerRecords, customer_plan: CustomerPlan) -> None:
        seen.append(
            (
                records.customer["id"],
                customer_plan.segment,
                len(customer_plan.actions),
            )
        )

    the_plan = plan(
        compiled,
        builders.ListSource([owing, settled]),
        at("2024-11-18 09:00"),
        on_customer=note,
    )
    actions = list(the_plan.actions)

    assert seen == [("c1", "padrao", len(actions)), ("c2", None, 0)]


def test_ids_do_not_change_when_an_unrelated_template_changes(
    tmp_path: Path, compiled: CompiledRuleset, ana: dict[str, Any]
) -> None:
    target = tmp_path / "regua"
    shutil.copytree(FIXTURES / "regua", target)
    policy = target / "ruleset.yaml"
    text = policy.read_text(encoding="utf-8")
    policy.write_text(
        text.replace("vence hoje.", "vence hoje! Evite juros."), encoding="utf-8"
    )
    edited = compile_ruleset(load_ruleset(target))

    invoices = [bill("i1", "2024-11-18", "100.00"), bill("i2", "2024-11-21", "80.00")]
    before = plan_for(compiled, ana, invoices, as_of=at("2024-11-18 07:00"))
    after = plan_for(edited, ana, invoices, as_of=at("2024-11-18 07:00"))
    assert [a.id for a in before] == [a.id for a in after]
    assert len(before) == 2
    changed = [
        a.step for a, b in zip(before, after, strict=True) if a.message != b.message
    ]
    assert changed == ["vencimento"]


def test_the_plan_streams_and_knows_its_input_digest_at_the_end(
    compiled: CompiledRuleset, ana: dict[str, Any]
) -> None:
    customers = [
        builders.records(dict(ana, id=f"c{n}"), [bill(f"i{n}", "2024-11-21", "10.00")])
        for n in (3, 1, 2)
    ]
    source = builders.ListSource(customers)
    result = plan(compiled, source, at("2024-11-18 09:00"))
    with pytest.raises(PlanNotRead):
        _ = result.header
    first = next(result.actions)
    assert first.customer_id == "c3" and source.read == 1
    rest = list(result.actions)
    assert [a.customer_id for a in rest] == ["c1", "c2"]
    header = result.header
    assert header.input_digest == source.digest()
    assert (
        header.ruleset == "regua" and header.ruleset_digest == compiled.ruleset.digest
    )
    assert header.as_of.isoformat() == "2024-11-18T09:00:00-03:00"
    assert result.customers == 3
    assert result.segments == {"padrao": 3}


def test_sms_copy_is_counted_in_segments(
    compiled: CompiledRuleset, ana: dict[str, Any]
) -> None:
    ana["whatsapp_ok"] = False
    invoices = [bill("i1", "2024-11-21", "600.00")]
    [message] = plan_for(compiled, ana, invoices, as_of=at("2024-11-18 09:00"))
    assert message.channel == "sms" and message.message is not None
    body = message.message["body"]
    # Babel writes R$ and the amount with a no-break space, which is not in
    # the GSM alphabet; SMS copy gets a plain space and stays GSM-7.
    assert body == "Ana, fatura de R$ 600,00 vence 21/11. https://pague.example.com/i1"
    assert message.details == {
        "sms": {"encoding": "GSM-7", "length": len(body), "segments": 1}
    }
    assert "warnings" not in message.why

    ana["first_name"] = "Maria " * 50
    [long] = plan_for(compiled, ana, invoices, as_of=at("2024-11-18 09:00"))
    assert long.why["warnings"] == [
        "3 SMS segments (GSM-7), above max_segments 2 of channel sms"
    ]

    # Only a value from the data can make it UCS-2 now.
    ana["first_name"] = "João " * 15
    [accented] = plan_for(compiled, ana, invoices, as_of=at("2024-11-18 09:00"))
    assert accented.details["sms"]["encoding"] == "UCS-2"
    assert accented.why["warnings"] == [
        "3 SMS segments (UCS-2), above max_segments 2 of channel sms"
    ]
    assert long.decision == "send"


def test_a_missed_step_is_missed_even_without_a_channel(
    compiled: CompiledRuleset, ana: dict[str, Any]
) -> None:
    ana.update(phone=None, email=None)
    actions = plan_for(
        compiled,
        ana,
        [bill("i1", "2024-11-21", "100.00")],
        as_of=at("2024-11-22 09:00"),
        since=dt.date(2024, 11, 18),
    )
    missed = only(actions, step="lembrete")
    assert missed.decision == "missed" and missed.channel is None
    assert [r["channel"] for r in missed.why["channels_rejected"]] == [
        "whatsapp",
        "sms",
        "email",
    ]
    assert only(actions, step="vencimento").decision == "unreachable"
