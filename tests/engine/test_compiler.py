"""The compiler's named passes, each on its own."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

import pytest

from dsl.model import Ruleset
from engine.compiler import PASS_NAMES, CompileError, compile_ruleset, run_passes
from engine.history import CustomerHistory
from engine.scope import Scope


def test_the_passes_and_their_order() -> None:
    assert PASS_NAMES == (
        "resolve_zone",
        "resolve_calendar",
        "resolve_locale",
        "check_references",
        "compile_expressions",
        "compile_templates",
        "index_ladders",
    )


def test_a_run_can_stop_after_any_pass(regua: Ruleset) -> None:
    zone_only = run_passes(regua, until="resolve_zone")
    assert zone_only.zone is not None and zone_only.zone.key == "America/Sao_Paulo"
    assert zone_only.calendar is None and not zone_only.evaluators
    assert list(zone_only.timings) == ["resolve_zone"]

    calendar = run_passes(regua, until="resolve_calendar")
    assert calendar.calendar is not None
    assert calendar.calendar.holiday_name(dt.date(2025, 3, 3)) == "extra holiday"
    assert calendar.formatter is None

    locale = run_passes(regua, until="resolve_locale")
    assert locale.phone_region == "BR"
    assert locale.formatter is not None
    assert locale.formatter.money(Decimal("1.5")) == "R$\xa01,50"


def test_expressions_are_compiled_in_one_pass(regua: Ruleset) -> None:
    state = run_passes(regua, until="compile_expressions")
    # 2 score values, 3 segments, 1 credit limit, 2 suppressions, 4 channels
    # (4 addresses, 1 consent, 2 opt-outs), 1 step condition.
    assert len(state.evaluators) == 2 + 3 + 1 + 2 + 4 + 1 + 2 + 1
    assert not state.messages and not state.segments
    calendar, formatter = state.calendar, state.formatter
    assert calendar is not None and formatter is not None
    today = dt.date(2024, 11, 18)
    scope = Scope(
        customer={"income": Decimal("3000.00")},
        history=CustomerHistory((), (), today, calendar),
        today=today,
        now=dt.datetime(2024, 11, 18, 9, tzinfo=dt.UTC),
        fmt=formatter,
        calendar=calendar,
    )
    assert regua.credit is not None
    assert state.evaluator(regua.credit.limit)(scope) == Decimal("1500.000")


def test_templates_only_for_channels_a_step_can_use(regua: Ruleset) -> None:
    state = run_passes(regua, until="compile_templates")
    assert sorted(state.messages) == [
        ("atraso", "email"),
        ("atraso", "sms"),
        ("lembrete", "email"),
        ("lembrete", "sms"),
        ("lembrete", "whatsapp"),
        ("nova_data", "sms"),
        ("parcelamento", "sms"),
        ("parcelamento", "whatsapp"),
        ("vence_hoje", "sms_cedo"),
    ]
    email = state.messages[("lembrete", "email")]
    assert email.subject is not None and email.html is not None
    assert state.messages[("lembrete", "sms")].subject is None


def test_ladders_are_indexed_by_segment(regua: Ruleset) -> None:
    compiled = compile_ruleset(regua)
    by_name = {s.name: s for s in compiled.segments}
    assert [s.name for s in by_name["padrao"].steps] == [
        "lembrete",
        "vencimento",
        "atraso",
        "nova_data",
    ]
    mesa = by_name["risco"].steps[-1]
    assert mesa.is_escalation and mesa.channels == () and mesa.messages == {}
    atraso = by_name["risco"].steps[1]
    assert atraso.offer is not None and atraso.offer.offer.name == "parcelamento"
    assert [c.name for c in atraso.channels] == ["whatsapp", "sms"]
    assert atraso.channels[0].window.name == "comercial"
    assert set(compiled.timings) == set(PASS_NAMES)


def test_an_unknown_pass_is_refused(regua: Ruleset) -> None:
    with pytest.raises(ValueError, match="no compiler pass 'parse'"):
        run_passes(regua, until="parse")


def test_broken_references_fail_before_anything_is_compiled(regua: Ruleset) -> None:
    ladder = regua.ladders["pontual"]
    step = dataclasses.replace(ladder.steps[0], channels=("pombo",), template="carta")
    broken = dataclasses.replace(
        regua,
        ladders={
            **regua.ladders,
            "pontual": dataclasses.replace(ladder, steps=(step,)),
        },
    )
    with pytest.raises(CompileError) as error:
        compile_ruleset(broken)
    assert str(error.value) == (
        "ladder pontual, step lembrete: no template carta; "
        "ladder pontual, step lembrete: no channel pombo"
    )
