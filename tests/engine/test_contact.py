"""Phone numbers and e-mail addresses a channel may use."""

from __future__ import annotations

import pytest

from engine.contact import check_address, check_email, check_phone


@pytest.mark.parametrize(
    ("text", "e164"),
    [
        ("11 98765-4321", "+5511987654321"),
        ("(11) 98765-4321", "+5511987654321"),
        ("+55 11 98765-4321", "+5511987654321"),
        ("011 98765 4321", "+5511987654321"),
        ("(21) 2345-6789", "+552123456789"),  # a landline in Rio
    ],
)
def test_brazilian_numbers_become_e164(text: str, e164: str) -> None:
    assert check_phone(text, "BR").value == e164


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("123", "phone number '123' has the wrong length"),
        ("abc", "phone number 'abc' cannot be read"),
        # Area code 10 does not exist in Brazil.
        ("10 98765-4321", "phone number '10 98765-4321' is not a valid number"),
    ],
)
def test_invalid_phone_numbers(text: str, problem: str) -> None:
    address = check_phone(text, "BR")
    assert address.value is None and address.problem == problem


def test_a_number_without_country_needs_a_region() -> None:
    assert check_phone("11 98765-4321", None).value is None
    assert check_phone("+55 11 98765-4321", None).value == "+5511987654321"


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("ana@example.com", "ana@example.com"),
        ("Ana.Souza+boletos@Example.COM.br", "Ana.Souza+boletos@example.com.br"),
        ("  ana@example.org ", "ana@example.org"),
        ("o'neil@mail-server.example.net", "o'neil@mail-server.example.net"),
    ],
)
def test_well_formed_email(text: str, normal: str) -> None:
    assert check_email(text).value == normal


@pytest.mark.parametrize(
    "text",
    [
        "ana",
        "ana@",
        "@example.com",
        "ana@example",
        "ana@@example.com",
        "ana souza@example.com",
        "ana..souza@example.com",
        ".ana@example.com",
        "ana@-example.com",
        "ana@example.com\r\nBcc: all@example.com",
        "ana@exa\nmple.com",
        "ana@exa_mple.com",
        "a" * 65 + "@example.com",
        "ana@" + "a" * 250 + ".com",
        "ana@example.c0m",
    ],
)
def test_malformed_email(text: str) -> None:
    address = check_email(text)
    assert address.value is None
    assert address.problem is not None and "not well formed" in address.problem


@pytest.mark.parametrize("text", [None, "", "   "])
def test_no_address(text: str | None) -> None:
    assert check_address("sms", text, "BR").problem == "no address"
    assert check_address("email", text, "BR").problem == "no address"


def test_address_by_channel_kind() -> None:
    assert check_address("whatsapp", "11 98765-4321", "BR").value == "+5511987654321"
    assert check_address("voice", "11 98765-4321", "BR").value == "+5511987654321"
    assert check_address("email", "ana@example.com", "BR").value == "ana@example.com"
    assert check_address("webhook", " crm-42 ", "BR").value == "crm-42"
    assert (
        check_address("webhook", "a\nb", "BR").problem
        == "address contains a line break"
    )
