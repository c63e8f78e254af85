"""SMS segment counting and the worst-case checks of SMS copy."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsl.sms import GSM7, UCS2, count, encoding_of, plain_spaces, sms_estimates
from tests.dsl.policy_text import MINI, check_text, codes, only, place, replaced

# Counting -------------------------------------------------------------


@pytest.mark.parametrize(
    ("char", "encoding", "cost"),
    [
        ("a", GSM7, 1),
        ("é", GSM7, 1),  # in the GSM basic set
        ("à", GSM7, 1),
        ("Ç", GSM7, 1),  # only the capital is
        ("€", GSM7, 2),  # extension table: escape + character
        ("{", GSM7, 2),
        ("ã", UCS2, 1),
        ("ç", UCS2, 1),
        ("õ", UCS2, 1),
        ("–", UCS2, 1),  # en dash
        ("“", UCS2, 1),  # curly quotes
        ("’", UCS2, 1),
        ("\xa0", UCS2, 1),  # no-break space
        ("😀", UCS2, 2),  # a surrogate pair in UTF-16
    ],
)
def test_each_character_decides_the_encoding_and_its_cost(
    char: str, encoding: str, cost: int
) -> None:
    assert encoding_of("Fatura " + char) == encoding
    assert count("Fatura " + char).length == 7 + cost


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),  # 160 septets
        ("€" * 81, 2),
        ("ã" * 70, 1),
        ("ã" * 71, 2),
        ("ã" * 134, 2),
        ("ã" * 135, 3),
        ("", 1),
    ],
)
def test_segment_boundaries(text: str, segments: int) -> None:
    assert count(text).segments == segments


def test_an_escape_pair_is_never_split_between_parts() -> None:
    # 152 plain septets, then `€`: it cannot straddle the 153-septet boundary.
    text = "a" * 152 + "€" + "a" * 10
    result = count(text)
    assert result.length == 164
    assert result.segments == 2
    assert count("a" * 152 + "€" * 77).segments == 3  # 306 septets, one pair moved


def test_a_surrogate_pair_is_never_split_between_parts() -> None:
    assert count("ã" * 66 + "😀" + "ã" * 66).segments == 3  # 134 units, split moved
    assert count("ã" * 65 + "😀" + "ã" * 67).segments == 2


def test_one_non_gsm_character_makes_the_whole_message_ucs2() -> None:
    text = "Sua fatura vence amanha. Pague pelo Pix " * 3
    assert count(text).encoding == GSM7 and count(text).segments == 1
    assert count(text + "ç").encoding == UCS2 and count(text + "ç").segments == 2


def test_forcing_an_encoding() -> None:
    assert count("abc", UCS2) == count("abc", UCS2)
    assert count("a" * 100, UCS2).segments == 2


# Worst case of templates ----------------------------------------------

SHORT = '"Oi {customer.first_name}, pague: {invoice.payment_link}"'


def sms_text(body: str, max_segments: int = 2) -> str:
    text = replaced(SHORT, body)
    return replaced("max_segments: 2", f"max_segments: {max_segments}", text)


def test_placeholders_count_their_declared_maximum(tmp_path: Path) -> None:
    ruleset, _ = check_text(tmp_path, MINI)
    assert ruleset is not None
    (estimate,) = sms_estimates(ruleset)
    # "Oi " + 15 + ", pague: " + 40
    assert estimate.plain == count("Oi " + "x" * 15 + ", pague: " + "x" * 40)
    assert estimate.plain.encoding == GSM7
    assert estimate.worst.encoding == UCS2  # a name may hold `ã`
    assert estimate.plain.segments == estimate.worst.segments == 1


def test_money_is_counted_as_a_million_formatted_for_the_locale(
    tmp_path: Path,
) -> None:
    ruleset, _ = check_text(tmp_path, sms_text('"{money(invoice.amount)}"'))
    assert ruleset is not None
    (estimate,) = sms_estimates(ruleset)
    assert estimate.plain.length == len("R$ 1.000.000,00")
    # Babel writes a no-break space after R$, outside GSM-7; SMS copy is
    # rendered with a plain space, and counted so.
    assert estimate.plain.encoding == GSM7
    assert estimate.unicode_reason is None


def test_plain_spaces_replaces_only_no_break_spaces() -> None:
    text = "R$\xa01.000,00 \u202f1\u2009000 João"
    assert plain_spaces(text) == "R$ 1.000,00  1\u2009000 João"


def test_a_no_break_space_written_in_sms_copy_is_counted_as_sent(
    tmp_path: Path,
) -> None:
    # The engine sends SMS copy with plain spaces; the count follows it.
    ruleset, _ = check_text(tmp_path, sms_text('"Pague\xa0hoje"'))
    assert ruleset is not None
    (estimate,) = sms_estimates(ruleset)
    assert (estimate.plain.encoding, estimate.plain.length) == (GSM7, 10)
    assert estimate.unicode_reason is None


def test_a_date_counts_its_longest_rendering(tmp_path: Path) -> None:
    ruleset, _ = check_text(
        tmp_path,
        sms_text("\"{date(invoice.due_date, 'dd/MM')} {date(today, 'MMMM')}\""),
    )
    assert ruleset is not None
    (estimate,) = sms_estimates(ruleset)
    assert estimate.plain.length == len("28/02 ") + len("fevereiro")
    assert estimate.worst.encoding == UCS2  # "março"


def test_an_int_counts_ten_characters(tmp_path: Path) -> None:
    ruleset, _ = check_text(tmp_path, sms_text('"{invoice.days_past_due}"'))
    assert ruleset is not None
    assert sms_estimates(ruleset)[0].plain.length == 10


def test_a_string_without_max_length_is_counted_as_20_with_a_warning(
    tmp_path: Path,
) -> None:
    text = replaced(
        "    sms_opt_out: bool\n", "    sms_opt_out: bool\n    city: string\n"
    )
    text = replaced(SHORT, '"Oi {customer.city}"', text)
    ruleset, diagnostics = check_text(tmp_path, text)
    assert ruleset is not None
    problem = only(diagnostics, "W502")
    assert (problem.location.line, problem.location.column) == place(
        text, "customer.city}"
    )
    assert sms_estimates(ruleset)[0].plain.length == 3 + 20


def test_copy_longer_than_max_segments_is_warned(tmp_path: Path) -> None:
    body = '"' + "Sua fatura vence em breve. " * 7 + '{invoice.payment_link}"'
    text = sms_text(body, max_segments=1)
    ruleset, diagnostics = check_text(tmp_path, text)
    assert ruleset is not None
    problem = only(diagnostics, "W501")
    assert (problem.location.line, problem.location.column) == place(text, "Sua fatura")
    assert "2 segments" in problem.message and "allows 1" in problem.message


def test_a_literal_non_gsm_character_is_named_in_the_warning(tmp_path: Path) -> None:
    body = '"Não esqueça: ' + "x" * 60 + '"'
    ruleset, diagnostics = check_text(tmp_path, sms_text(body, max_segments=1))
    assert ruleset is not None
    problem = only(diagnostics, "W501")
    assert problem.hint is not None and "`ã` (U+00E3)" in problem.hint


def test_a_name_with_accents_may_break_the_limit(tmp_path: Path) -> None:
    body = '"Oi {customer.first_name}, ' + "a" * 60 + ' {invoice.payment_link}"'
    text = sms_text(body, max_segments=1)
    ruleset, diagnostics = check_text(tmp_path, text)
    assert ruleset is not None
    problem = only(diagnostics, "W503")
    assert "1 segment if every value is plain GSM-7 text" in problem.message
    assert "2 in the worst case" in problem.message


def test_no_warning_within_the_limit(tmp_path: Path) -> None:
    _, diagnostics = check_text(tmp_path, MINI)
    assert codes(diagnostics) == []
