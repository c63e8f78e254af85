"""Combined reminders (`frequency.same_day: combine`): the copy of a step
that may carry several invoices shows only fields that combine (E424), the
default is `cap`, and `invoice_count` is a template name."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsl.diagnostics import Severity
from dsl.loader import load_ruleset
from tests.dsl.policy_text import MINI, check_text, codes, only, place, replaced

COMBINE = "segments:\n", "frequency:\n  same_day: combine\nsegments:\n"
SMS_COPY = '    sms: "Oi {customer.first_name}, pague: {invoice.payment_link}"\n'


def combining(text: str = MINI) -> str:
    return replaced(*COMBINE, text)


def with_sms_copy(copy: str, text: str) -> str:
    return replaced(SMS_COPY, f"    sms: {copy}\n", text)


def test_without_frequency_invoices_are_not_combined(tmp_path: Path) -> None:
    # MINI's SMS shows a payment link: fine, since each invoice gets its own.
    ruleset, diagnostics = check_text(tmp_path, MINI)
    assert ruleset is not None and diagnostics == []
    assert ruleset.frequency.same_day == "cap"

    text = replaced("segments:\n", "frequency:\n  per_day: 1\nsegments:\n")
    ruleset, diagnostics = check_text(tmp_path, text)
    assert ruleset is not None and diagnostics == []
    assert ruleset.frequency.same_day == "cap"


def test_one_invoices_link_in_combined_copy_is_an_error_at_the_field(
    tmp_path: Path,
) -> None:
    text = combining()
    ruleset, diagnostics = check_text(tmp_path, text)
    assert ruleset is None
    problem = only(diagnostics, "E424")
    assert problem.severity is Severity.ERROR
    line, column = place(text, "invoice.payment_link")
    assert (problem.location.line, problem.location.column) == (line, column)
    assert problem.message.startswith("`invoice.payment_link` is one invoice's")
    assert "step `lembrete`" in problem.message
    assert "sms message" in problem.message
    assert problem.hint is not None
    assert "`frequency.same_day: cap`" in problem.hint
    assert "invoice.amount_due" in problem.hint and "invoice_count" in problem.hint

    with pytest.raises(Exception, match="E424"):
        load_ruleset(tmp_path / "policy.yaml")


@pytest.mark.parametrize(
    ("email", "needle"),
    [
        (
            '      subject: "Fatura {upper(invoice.id)}"\n      text: "Oi"\n',
            "invoice.id",
        ),
        (
            '      subject: "Fatura"\n      text: "Oi"\n'
            '      html: "<a href=\\"{invoice.payment_link}\\">Pagar</a>"\n',
            "invoice.payment_link",
        ),
        (
            '      subject: "Fatura"\n'
            '      text: "{coalesce(invoice.payment_link, customer.id)}"\n',
            "invoice.payment_link",
        ),
    ],
    ids=["subject", "html", "inside a call"],
)
def test_every_part_of_a_variant_is_checked(
    tmp_path: Path, email: str, needle: str
) -> None:
    text = combining(
        with_sms_copy(
            '"Oi {customer.first_name}: {money(invoice.amount_due)}"',
            replaced(
                '      subject: "Fatura"\n      text: "Oi {customer.first_name}"\n',
                email,
            ),
        )
    )
    _, diagnostics = check_text(tmp_path, text)
    problem = only(diagnostics, "E424")
    assert "email message" in problem.message
    # The needle's place in the email variant, not in the SMS one above it.
    email_start = text.index("    email:\n")
    line, column = place(text[email_start:], needle)
    assert problem.location.line == text.count("\n", 0, email_start) + line
    assert problem.location.column == column


def test_fields_that_combine_and_invoice_count_are_fine(tmp_path: Path) -> None:
    copy = (
        '"{invoice_count} fatura(s), {money(invoice.amount_due)} de'
        " {money(invoice.amount)} ({money(invoice.amount_paid)} pago),"
        " desde {date(invoice.due_date, 'dd/MM')},"
        " {date(invoice.due_date_effective, 'dd/MM')},"
        ' {invoice.days_past_due} dias, {invoice.customer_id}"'
    )
    text = combining(with_sms_copy(copy, MINI))
    ruleset, diagnostics = check_text(tmp_path, text)
    # Only the SMS length warnings of so long a copy (W502, W503).
    assert {d.severity for d in diagnostics} == {Severity.WARNING}
    assert ruleset is not None
    assert ruleset.frequency.same_day == "combine"


def test_steps_with_an_offer_are_never_combined_so_not_checked(
    tmp_path: Path,
) -> None:
    offer = (
        "offers:\n  parcelamento:\n    segments: [todos]\n"
        "    kind: instalments\n    instalments: 3\nladders:\n"
    )
    text = replaced("ladders:\n", offer, combining())
    text = replaced(
        "      template: lembrete\n",
        "      template: lembrete\n      offer: parcelamento\n",
        text,
    )
    ruleset, diagnostics = check_text(tmp_path, text)
    assert codes(diagnostics) == [] and ruleset is not None

    # The same template used by a second step without an offer: that step
    # may combine, and the link is reported once per variant.
    text = replaced(
        "      offer: parcelamento\n",
        "      offer: parcelamento\n"
        "    - step: vencimento\n      at: D0\n      channels: [sms]\n"
        "      template: lembrete\n",
        text,
    )
    _, diagnostics = check_text(tmp_path, text)
    assert "step `vencimento`" in only(diagnostics, "E424").message


def test_a_variant_no_step_can_send_is_not_checked(tmp_path: Path) -> None:
    # The step sends only e-mail: its SMS copy never goes out (W401 aside).
    text = combining(replaced("[sms, email]", "[email]"))
    _, diagnostics = check_text(tmp_path, text)
    assert "E424" not in codes(diagnostics)


def test_invoice_count_is_a_template_name_only(tmp_path: Path) -> None:
    text = replaced(
        "      template: lembrete\n",
        "      when: invoice_count > 1\n      template: lembrete\n",
    )
    _, diagnostics = check_text(tmp_path, text)
    problem = only(diagnostics, "E306")
    assert "invoice_count" in problem.message
    line, column = place(text, "invoice_count > 1")
    assert (problem.location.line, problem.location.column) == (line, column)
