"""Cross checks: each kind of broken reference, with its code and place."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsl.diagnostics import Severity
from tests.dsl.policy_text import MINI, check_text, codes, only, place, replaced

LADDER = """\
ladders:
  todos:
    - step: lembrete
      at: D-3
      channels: [sms, email]
      template: lembrete
"""

OFFERS = """\
offers:
  parcelamento:
    segments: [todos]
    kind: instalments
    instalments: 3
ladders:
"""


def with_ladder(steps: str, text: str = MINI) -> str:
    """MINI with the steps of ladder `todos` replaced."""
    return replaced(LADDER, "ladders:\n  todos:\n" + steps, text)


@pytest.mark.parametrize(
    ("change", "code", "needle", "words"),
    [
        (
            lambda t: replaced(
                "    when: true\n", "    when: true\n    ladder: todo\n", t
            ),
            "E402",
            "todo\n",
            "unknown ladder `todo`",
        ),
        (
            lambda t: replaced("template: lembrete", "template: lembret", t),
            "E403",
            "lembret\n",
            "unknown template `lembret`",
        ),
        (
            lambda t: replaced("[sms, email]", "[sms, emial]", t),
            "E404",
            "emial",
            "unknown channel `emial`",
        ),
        (
            lambda t: replaced(
                "      template: lembrete\n",
                "      template: lembrete\n      offer: parcela\n",
                t,
            ),
            "E405",
            "parcela",
            "unknown offer `parcela`",
        ),
        (
            lambda t: replaced(
                "    window: comercial\n    cost", "    window: noite\n    cost", t
            ),
            "E409",
            "noite",
            "unknown window `noite`",
        ),
        (
            lambda t: replaced(
                "customer.email\n    window: comercial\n", "customer.email\n", t
            ),
            "E409",
            "email:\n    address",
            "no send window",
        ),
    ],
)
def test_unknown_names_are_errors_at_the_name(
    tmp_path: Path, change: object, code: str, needle: str, words: str
) -> None:
    assert callable(change)
    text = change(MINI)
    ruleset, diagnostics = check_text(tmp_path, text)
    assert ruleset is None
    problem = only(diagnostics, code)
    assert (problem.location.line, problem.location.column) == place(text, needle)
    assert words in problem.message


def test_a_ladder_for_an_unknown_segment(tmp_path: Path) -> None:
    text = replaced("  todos:\n    - step", "  todas:\n    - step")
    _, diagnostics = check_text(tmp_path, text)
    problem = only(diagnostics, "E401")
    assert (problem.location.line, problem.location.column) == place(text, "todas")
    assert problem.hint == "did you mean `todos`?"
    # ... and the segment, left without a ladder, is warned about.
    assert only(diagnostics, "W402").location.line == place(text, "- name: todos")[0]


def test_a_ladder_named_by_a_segment_is_used(tmp_path: Path) -> None:
    text = replaced("  todos:\n    - step", "  geral:\n    - step")
    text = replaced("    when: true\n", "    when: true\n    ladder: geral\n", text)
    ruleset, diagnostics = check_text(tmp_path, text)
    assert diagnostics == []
    assert ruleset is not None and ruleset.segments[0].ladder == "geral"


def test_a_segment_without_messages_on_purpose(tmp_path: Path) -> None:
    text = replaced("    when: true\n", "    when: true\n    ladder: null\n")
    text = replaced("  todos:\n    - step", "  outra:\n    - step", text)
    _, diagnostics = check_text(tmp_path, text)
    assert codes(diagnostics) == ["E401"]


def test_a_template_without_the_variant_for_a_step_channel(tmp_path: Path) -> None:
    text = replaced(
        '    email:\n      subject: "Fatura"\n      text: "Oi {customer.first_name}"\n',
        "",
    )
    _, diagnostics = check_text(tmp_path, text)
    problem = only(diagnostics, "E406")
    line, column = place(text, "template: lembrete")
    assert (problem.location.line, problem.location.column) == (line, column + 10)
    assert "no `email` variant" in problem.message


def test_two_steps_at_the_same_offset(tmp_path: Path) -> None:
    text = with_ladder(
        "    - step: um\n      at: D-3\n      channels: [sms]\n"
        "      template: lembrete\n"
        "    - step: dois\n      at: D-3\n      channels: [sms]\n"
        "      template: lembrete\n"
    )
    _, diagnostics = check_text(tmp_path, text)
    problem = only(diagnostics, "E407")
    assert (problem.location.line, problem.location.column) == place(text, "D-3", 1)


def test_calendar_and_business_offsets_differ_but_d0_is_d0(tmp_path: Path) -> None:
    steps = (
        "    - step: um\n      at: D+2\n      channels: [sms]\n"
        "      template: lembrete\n"
        "    - step: dois\n      at: D+2 business\n      channels: [sms]\n"
        "      template: lembrete\n"
    )
    _, diagnostics = check_text(tmp_path, with_ladder(steps))
    assert "E407" not in codes(diagnostics)
    same = steps.replace("D+2 business", "D0 business").replace("D+2", "D0")
    _, diagnostics = check_text(tmp_path, with_ladder(same))
    assert "E407" in codes(diagnostics)


def test_a_segment_after_a_catch_all(tmp_path: Path) -> None:
    text = replaced(
        "    when: true\n",
        "    when: true\n  - name: depois\n    when: customer.sms_opt_out\n"
        "    ladder: todos\n",
    )
    _, diagnostics = check_text(tmp_path, text)
    problem = only(diagnostics, "E408")
    assert (problem.location.line, problem.location.column) == place(
        text, "name: depois"
    )


def test_an_offer_for_an_unknown_segment(tmp_path: Path) -> None:
    text = replaced("ladders:\n", OFFERS.replace("[todos]", "[todo]"))
    _, diagnostics = check_text(tmp_path, text)
    problem = only(diagnostics, "E410")
    assert (problem.location.line, problem.location.column) == place(text, "todo]")
    assert problem.hint == "did you mean `todos`?"


def test_a_step_must_either_send_or_escalate(tmp_path: Path) -> None:
    both = with_ladder(
        "    - step: mesa\n      at: D+5\n      channels: [sms]\n"
        "      template: lembrete\n      escalate: mesa\n"
    )
    _, diagnostics = check_text(tmp_path, both)
    assert {"E411", "E417"} <= set(codes(diagnostics))
    assert only(diagnostics, "E411").location.line == place(both, "- step: mesa")[0]

    neither = with_ladder("    - step: nada\n      at: D+5\n")
    _, diagnostics = check_text(tmp_path, neither)
    problem = only(diagnostics, "E411")
    assert (problem.location.line, problem.location.column) == place(
        neither, "step: nada"
    )


def test_a_sending_step_needs_a_template(tmp_path: Path) -> None:
    text = with_ladder("    - step: um\n      at: D-3\n      channels: [sms]\n")
    _, diagnostics = check_text(tmp_path, text)
    assert only(diagnostics, "E417").message == (
        "step `um` of ladder `todos` has no `template:`"
    )


def test_an_email_variant_needs_a_subject(tmp_path: Path) -> None:
    text = replaced('      subject: "Fatura"\n', "")
    _, diagnostics = check_text(tmp_path, text)
    problem = only(diagnostics, "E412")
    assert (problem.location.line, problem.location.column) == place(text, 'text: "Oi')
    plain = replaced(
        '    email:\n      subject: "Fatura"\n      text: "Oi {customer.first_name}"\n',
        '    email: "Oi {customer.first_name}"\n',
    )
    _, diagnostics = check_text(tmp_path, plain)
    assert only(diagnostics, "E412").location.line == place(plain, 'email: "Oi')[0]


def test_grades_must_descend(tmp_path: Path) -> None:
    score = (
        "score:\n  characteristics:\n    - name: atrasos\n"
        "      value: history.late_count(6 months)\n"
        "      bands:\n        - {max: 0, points: 50}\n        - {min: 1, points: 0}\n"
        "  grades:\n    - {name: alto, min: 0}\n    - {name: baixo, min: 40}\n"
        "segments:\n"
    )
    text = replaced("segments:\n", score)
    _, diagnostics = check_text(tmp_path, text)
    problem = only(diagnostics, "E413")
    line, column = place(text, "min: 40}")
    assert (problem.location.line, problem.location.column) == (line, column + 5)


def test_a_band_with_min_above_max(tmp_path: Path) -> None:
    score = (
        "score:\n  characteristics:\n    - name: atrasos\n"
        "      value: history.late_count(6 months)\n"
        "      bands:\n        - {min: 5, max: 1, points: 50}\n"
        "  grades:\n    - {name: alto, min: 0}\n"
        "segments:\n"
    )
    text = replaced("segments:\n", score)
    _, diagnostics = check_text(tmp_path, text)
    problem = only(diagnostics, "E420")
    assert (problem.location.line, problem.location.column) == place(text, "{min: 5")


@pytest.mark.parametrize(
    ("hours", "needle"),
    [
        ('mon-fri: "20:00-08:00"', '"20:00'),
        ('mon-fri: ["08:00-12:00", "11:00-14:00"]', '"11:00'),
    ],
)
def test_window_hours_inverted_or_overlapping(
    tmp_path: Path, hours: str, needle: str
) -> None:
    text = replaced('mon-fri: "08:00-20:00"', hours)
    _, diagnostics = check_text(tmp_path, text)
    problem = only(diagnostics, "E414")
    assert (problem.location.line, problem.location.column) == place(text, needle)


def test_adjacent_window_hours_are_fine(tmp_path: Path) -> None:
    text = replaced('mon-fri: "08:00-20:00"', 'mon-fri: ["08:00-12:00", "12:00-24:00"]')
    ruleset, diagnostics = check_text(tmp_path, text)
    assert diagnostics == []
    assert ruleset is not None
    assert len(ruleset.windows["comercial"].hours[0]) == 2


def test_a_day_given_twice_in_a_window(tmp_path: Path) -> None:
    text = replaced(
        'mon-fri: "08:00-20:00"', 'mon-fri: "08:00-20:00"\n    wed: "21:00-22:00"'
    )
    _, diagnostics = check_text(tmp_path, text)
    problem = only(diagnostics, "E416")
    assert (problem.location.line, problem.location.column) == place(text, "wed")


def test_a_channel_of_unknown_kind(tmp_path: Path) -> None:
    text = replaced("[sms, email]", "[celular, email]")
    text = replaced("  sms:\n    address", "  celular:\n    address", text)
    text = replaced('    sms: "Oi', '    celular: "Oi', text)
    _, diagnostics = check_text(tmp_path, text)
    problem = only(diagnostics, "E415")
    assert (problem.location.line, problem.location.column) == place(text, "celular:")
    fixed = replaced("  celular:\n", "  celular:\n    kind: sms\n", text)
    ruleset, diagnostics = check_text(tmp_path, fixed)
    assert ruleset is not None and ruleset.channels["celular"].kind == "sms"


def test_a_variant_field_the_kind_does_not_use(tmp_path: Path) -> None:
    text = replaced(
        '    sms: "Oi {customer.first_name}, pague: {invoice.payment_link}"\n',
        '    sms:\n      subject: "x"\n      text: "Oi"\n',
    )
    _, diagnostics = check_text(tmp_path, text)
    problem = only(diagnostics, "E418")
    assert (problem.location.line, problem.location.column) == place(
        text, 'subject: "x"'
    )


def test_a_variant_for_an_unknown_channel(tmp_path: Path) -> None:
    text = replaced('    sms: "Oi', '    smss: "Oi')
    _, diagnostics = check_text(tmp_path, text)
    problem = only(diagnostics, "E419")
    assert (problem.location.line, problem.location.column) == place(text, "smss")
    assert problem.hint == "did you mean `sms`?"


@pytest.mark.parametrize(
    ("offer", "words"),
    [
        ("    kind: instalments\n", "needs `instalments:`"),
        ("    kind: new_date\n    instalments: 3\n", "does not apply"),
    ],
)
def test_an_offer_must_fit_its_kind(tmp_path: Path, offer: str, words: str) -> None:
    offers = f"offers:\n  oferta:\n    segments: [todos]\n{offer}ladders:\n"
    text = replaced("ladders:\n", offers)
    text = replaced(
        "      template: lembrete\n",
        "      template: lembrete\n      offer: oferta\n",
        text,
    )
    _, diagnostics = check_text(tmp_path, text)
    assert any(words in d.message for d in diagnostics if d.code == "E421")


def test_names_used_twice(tmp_path: Path) -> None:
    text = replaced(
        "    when: true\n",
        "    when: customer.sms_opt_out\n  - name: todos\n    when: true\n",
    )
    _, diagnostics = check_text(tmp_path, text)
    problem = only(diagnostics, "E422")
    assert (problem.location.line, problem.location.column) == place(text, "todos", 1)


def test_a_phone_channel_needs_an_address(tmp_path: Path) -> None:
    text = replaced("    address: customer.phone\n", "")
    _, diagnostics = check_text(tmp_path, text)
    problem = only(diagnostics, "E423")
    assert (problem.location.line, problem.location.column) == place(text, "sms:")


def test_unused_window_template_and_offer(tmp_path: Path) -> None:
    text = replaced(
        'windows:\n  comercial:\n    mon-fri: "08:00-20:00"\n',
        'windows:\n  comercial:\n    mon-fri: "08:00-20:00"\n  noite:\n'
        '    mon: "20:00-22:00"\n',
    )
    text = replaced("ladders:\n", OFFERS, text)
    text = replaced("templates:\n", 'templates:\n  extra:\n    sms: "oi"\n', text)
    ruleset, diagnostics = check_text(tmp_path, text)
    assert ruleset is not None  # warnings only
    unused = {d.message for d in diagnostics if d.code == "W401"}
    assert unused == {
        "window `noite` is never used",
        "offer `parcelamento` is never used",
        "template `extra` is never used",
    }
    assert all(d.severity is Severity.WARNING for d in diagnostics)


@pytest.mark.parametrize(("offered_to", "warned"), [("outros", True), ("todos", False)])
def test_an_offer_not_made_to_the_segments_of_its_ladder(
    tmp_path: Path, offered_to: str, warned: bool
) -> None:
    text = replaced(
        "    when: true\n",
        "    when: customer.sms_opt_out\n"
        "  - name: outros\n    when: true\n    ladder: null\n",
    )
    text = replaced("ladders:\n", OFFERS.replace("[todos]", f"[{offered_to}]"), text)
    text = replaced(
        "      template: lembrete\n",
        "      template: lembrete\n      offer: parcelamento\n",
        text,
    )
    _, diagnostics = check_text(tmp_path, text)
    assert ("W403" in codes(diagnostics)) is warned
    if warned:
        line, column = place(text, "offer: parcelamento")
        problem = only(diagnostics, "W403")
        assert (problem.location.line, problem.location.column) == (line, column + 7)


def test_max_segments_only_for_sms(tmp_path: Path) -> None:
    text = replaced(
        "    address: customer.email\n",
        "    address: customer.email\n    max_segments: 1\n",
    )
    _, diagnostics = check_text(tmp_path, text)
    problem = only(diagnostics, "W404")
    assert problem.location.line == place(text, "max_segments: 1")[0]
