"""No-break spaces in plain-text copy: SMS and voice scripts get plain
spaces, e-mail keeps what the locale formats, and the SMS estimate of
`ruleset validate` counts exactly what the engine renders."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from dsl.model import Ruleset
from dsl.sms import MONEY_WORST, NO_BREAK_SPACES, sms_estimates
from engine.compiler import compile_ruleset
from engine.plan import Action
from engine.planner import plan_customer
from tests.dsl.policy_text import check_text, replaced
from tests.engine import builders

COPY = "{money(invoice.amount)} vence {date(invoice.due_date, 'dd/MM')}"
VOICE_CHANNEL = """\
  voz:
    kind: voice
    address: customer.phone
    window: comercial
"""


def policy(tmp_path: Path, locale: str, currency: str, channel: str) -> Ruleset:
    """MINI in `locale` and `currency`, its one step on `channel`, every
    variant carrying money and a date."""
    text = replaced("locale: pt_BR", f"locale: {locale}")
    text = replaced("currency: BRL", f"currency: {currency}", text)
    text = replaced("channels:\n", "channels:\n" + VOICE_CHANNEL, text)
    text = replaced("channels: [sms, email]", f"channels: [{channel}]", text)
    text = replaced(
        '    sms: "Oi {customer.first_name}, pague: {invoice.payment_link}"\n',
        f'    sms: "{COPY}"\n    voz: "{COPY}"\n',
        text,
    )
    text = replaced('text: "Oi {customer.first_name}"', f'text: "{COPY}"', text)
    ruleset, diagnostics = check_text(tmp_path, text)
    assert ruleset is not None, diagnostics
    return ruleset


def message(ruleset: Ruleset, amount: Decimal) -> Action:
    zone = ZoneInfo(ruleset.timezone)
    records = builders.records(
        {
            "id": "c1",
            "first_name": "Ana",
            "phone": "+5511987654321",
            "email": "ana@example.com",
            "sms_opt_out": False,
        },
        [
            builders.invoice(
                "i1", "2026-03-12", str(amount), payment_link="https://p.example/1"
            )
        ],
    )
    as_of = dt.datetime(2026, 3, 9, 15, 30, tzinfo=zone)
    [action] = plan_customer(compile_ruleset(ruleset), records, as_of).actions
    assert action.decision == "send", action.why
    return action


LOCALES = [("pt_BR", "BRL"), ("fr_FR", "EUR"), ("en_US", "USD"), ("de_CH", "CHF")]


@pytest.mark.parametrize(("locale", "currency"), LOCALES)
def test_sms_renders_plain_spaces_and_counts_as_estimated(
    tmp_path: Path, locale: str, currency: str
) -> None:
    ruleset = policy(tmp_path, locale, currency, "sms")

    sms = message(ruleset, MONEY_WORST)
    [estimate] = sms_estimates(ruleset)

    body = sms.message["body"] if sms.message else ""
    assert not set(NO_BREAK_SPACES) & set(body)
    # Money rendered at the worst-case amount and a date of fixed width:
    # the estimate is exactly what goes out.
    assert sms.details["sms"]["encoding"] == estimate.plain.encoding == "GSM-7"
    assert sms.details["sms"]["length"] == estimate.plain.length


@pytest.mark.parametrize("channel", ["sms", "voz"])
def test_plain_text_channels_lose_the_no_break_spaces(
    tmp_path: Path, channel: str
) -> None:
    action = message(policy(tmp_path, "fr_FR", "EUR", channel), Decimal("1234.56"))

    assert action.message == {"body": _expected_fr(" ")}


def test_email_keeps_the_locale_formatting(tmp_path: Path) -> None:
    action = message(policy(tmp_path, "fr_FR", "EUR", "email"), Decimal("1234.56"))

    assert action.message is not None
    assert action.message["body"] == _expected_fr(None)


def _expected_fr(space: str | None) -> str:
    """fr_FR: a narrow no-break space between digit groups, a no-break
    space before the euro sign; `space` replaces both when given."""
    group, before_symbol = ("\u202f", "\xa0") if space is None else (space, space)
    return f"1{group}234,56{before_symbol}€ vence 12/03"
