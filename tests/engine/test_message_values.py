"""Text from the data enters a message without its line breaks, controls or
invisible format characters; the template's own text is kept as written."""

from __future__ import annotations

import datetime as dt
import unicodedata
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dsl.characters import JOINERS, is_hidden
from dsl.checker import check_template
from dsl.model import Ruleset
from engine.codegen import compile_template
from engine.compiler import compile_ruleset
from engine.explain import explain_customer
from engine.formatting import LocaleFormatter
from engine.planner import plan_customer
from engine.runtime import message_value
from tests.dsl.policy_text import check_text, replaced
from tests.engine import builders
from tests.engine.test_codegen import OFFERS, customer, scope, where

BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
INVISIBLE = "\u200b\u2060\ufeff\u00ad\u180e\U000e0041\U000e007f"
ESCAPES = "\x00\x07\x08\x1b\x7f\x9b"


@pytest.mark.parametrize(
    ("value", "inserted"),
    [
        ("B\x07\x1b[31m", "B[31m"),  # BEL and ESC go; what ESC started is text
        ("Ana\nMaria", "Ana Maria"),
        ("Ana\r\nMaria", "Ana Maria"),
        ("Ana\rMaria\tSouza", "Ana Maria Souza"),
        ("Ana\u2028Maria\x85Souza\x0bX", "Ana Maria Souza X"),
        ("Jo\u202eoa\u202c", "Jooa"),
        ("\u2066Ana\u2069", "Ana"),
        ("An\u200ba\ufeff", "Ana"),
        ("Jo\ud800ao", "Jo\ufffdao"),  # a lone surrogate cannot be sent
        ("Ana", "Ana"),
    ],
)
def test_a_data_value_loses_what_would_act_unseen(value: str, inserted: str) -> None:
    assert message_value(value) == inserted


@pytest.mark.parametrize(
    "value",
    [
        "João Ação",
        "R$\xa01.234,56",  # the no-break spaces SMS copy turns plain later
        "\U0001f468\u200d\U0001f469\u200d\U0001f467",  # a family: joined emoji
        "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",  # Persian, with a ZWNJ
        "\u05e9\u05dc\u05d5\u05dd",  # Hebrew letters need no marks to show
    ],
)
def test_visible_text_and_the_joiners_are_kept(value: str) -> None:
    assert message_value(value) == value


@given(st.text())
def test_no_value_brings_a_hidden_character(value: str) -> None:
    inserted = message_value(value)

    assert not any(is_hidden(char) for char in inserted)
    # Nothing visible is lost or added: spaces and U+FFFD aside, what is
    # left is the value's visible characters, in order.
    visible = [c for c in value if not is_hidden(c) and c not in " \ufffd"]
    assert [c for c in inserted if c not in " \ufffd"] == visible


# Through the compiled template ---------------------------------------------


def render(text: str, first_name: str, *, html: bool = False) -> str:
    template, diagnostics = check_template(text, where, OFFERS, html=html)
    assert template is not None, [str(d) for d in diagnostics]
    return compile_template(template, html=html)(scope(customer(first_name=first_name)))


@pytest.mark.parametrize(
    "name", ["B\x07\x1b[31m", "Ana\nMaria", "x\u202eevil", BIDI + INVISIBLE + ESCAPES]
)
@pytest.mark.parametrize("html", [False, True])
def test_a_placeholder_never_inserts_a_hidden_character(name: str, html: bool) -> None:
    body = render(
        "Oi {customer.first_name}, {upper(customer.first_name)}!", name, html=html
    )

    assert not any(is_hidden(char) for char in body)
    assert body.startswith("Oi ") and body.endswith("!")


def test_html_escapes_what_the_cleaning_leaves() -> None:
    body = render("<p>{customer.first_name}</p>", "<b>\x1b[1m\nZé</b>", html=True)

    assert body == "<p>&lt;b&gt;[1m Zé&lt;/b&gt;</p>"


def test_the_template_text_stays_as_the_policy_wrote_it() -> None:
    # validate warns about the override (W303); the engine keeps the copy.
    body = render("Oi\n\u202e{customer.first_name}\t!", "Ana\nMaria")

    assert body == "Oi\n\u202eAna Maria\t!"


def test_locale_marks_in_formatted_values_are_kept() -> None:
    # CLDR puts right-to-left marks in Arabic dates on purpose: formatted
    # values are the locale's, not the data's, and are not cleaned.
    arabic = LocaleFormatter("ar_EG", "EGP", ZoneInfo("Africa/Cairo"))
    the_scope = scope()
    the_scope.fmt = arabic
    template, _ = check_template("{invoice.due_date}", where, OFFERS)
    assert template is not None

    text = compile_template(template)(the_scope)

    assert "\u200f" in text
    assert text == arabic.date(the_scope.invoice["due_date"], None)


# Through the planner ---------------------------------------------------------


def policy(tmp_path: Path) -> Ruleset:
    """MINI with an e-mail whose copy has a line break of its own."""
    text = replaced(
        'text: "Oi {customer.first_name}"',
        'text: "Oi {customer.first_name},\\nsua fatura"',
    )
    ruleset, diagnostics = check_text(tmp_path, text)
    assert ruleset is not None, diagnostics
    return ruleset


def records(first_name: str, phone: str | None) -> Any:
    return builders.records(
        {
            "id": "c1",
            "first_name": first_name,
            "phone": phone,
            "email": "ana@example.com",
            "sms_opt_out": False,
        },
        [
            builders.invoice(
                "i1", "2026-03-12", "100.00", payment_link="https://p.example/1"
            )
        ],
    )


AS_OF = dt.datetime(2026, 3, 9, 15, 30, tzinfo=ZoneInfo("America/Sao_Paulo"))


@pytest.mark.parametrize(
    ("phone", "channel"), [("+5511987654321", "sms"), (None, "email")]
)
@pytest.mark.parametrize("name", ["B\x07\x1b[31m", "Ana\nMaria", "x\u202eevil"])
def test_every_channel_gets_clean_values(
    tmp_path: Path, phone: str | None, channel: str, name: str
) -> None:
    compiled = compile_ruleset(policy(tmp_path))

    [action] = plan_customer(compiled, records(name, phone), AS_OF).actions

    assert (action.decision, action.channel) == ("send", channel)
    assert action.message is not None
    for text in action.message.values():
        assert not any(is_hidden(char) for char in text if char != "\n")
    assert message_value(name) in action.message["body"]


def test_explain_shows_the_templates_line_break_and_the_datas_space(
    tmp_path: Path,
) -> None:
    compiled = compile_ruleset(policy(tmp_path))

    lines = explain_customer(compiled, records("Ana\nMaria", None), AS_OF)

    assert "    message: Oi Ana Maria, ⏎ sua fatura" in lines


def test_the_hidden_characters_are_the_unicode_categories() -> None:
    for char in BIDI + INVISIBLE + ESCAPES + "\n\t\u2028\u2029\ud800":
        assert is_hidden(char), unicodedata.name(char, repr(char))
    for char in "aã \xa0\u202f€\ufe0f" + "".join(JOINERS):
        assert not is_hidden(char), unicodedata.name(char)
