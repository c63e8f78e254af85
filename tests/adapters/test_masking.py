"""Masking phones, e-mail addresses and bodies before they reach a log."""

from __future__ import annotations

import pytest

from adapters.masking import mask_address, mask_body, mask_email, mask_phone, mask_text


@pytest.mark.parametrize(
    ("phone", "masked"),
    [
        ("+5511987654321", "+55 11 9****-**21"),
        ("+551132654321", "+55 11 3***-**21"),
        ("+12015550123", "+1 201-5**-**23"),
        ("not a phone 123456", "not * ***** ****56"),
    ],
)
def test_phones_keep_country_area_first_and_last_digits(
    phone: str, masked: str
) -> None:
    assert mask_phone(phone) == masked


def test_emails_keep_the_first_letter_and_the_domain() -> None:
    assert mask_email("joao.silva@example.com") == "j***@example.com"
    assert mask_address("maria@example.org") == "m***@example.org"
    assert mask_address("+5511987654321") == "+55 11 9****-**21"
    assert mask_address(None) == "-"


def test_bodies_are_reduced_to_their_length() -> None:
    assert mask_body("Oi João") == "<7 chars>"
    assert mask_body(None) == "<no body>"


def test_free_text_loses_phones_and_emails_but_keeps_dates_and_codes() -> None:
    text = (
        "400 invalid To +55 11 98765-4321 (maria@example.org) at "
        "2024-10-01T10:00:00, code 21211, local 11987654321"
    )

    masked = mask_text(text)

    assert "98765-4321" not in masked and "maria@" not in masked
    assert "11987654321" not in masked
    assert "+55 11 9****-**21" in masked
    assert "m***@example.org" in masked
    assert "2024-10-01T10:00:00" in masked and "21211" in masked
