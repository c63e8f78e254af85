"""Masking personal data before it reaches a log line.

Send logs are read by operators and shipped to log stores that keep them
for months; a phone number, an e-mail address or the text of a collection
reminder has no business there. These helpers keep just enough to tell two
recipients apart (`+55 11 9****-**21`, `j***@example.com`).
"""

from __future__ import annotations

import re

import phonenumbers

_DIGIT = re.compile(r"\d")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# A run of digits that looks like a phone number inside free text: an
# optional "+", then at least 8 digits with spaces, dots, dashes or
# parentheses between them.
_PHONE_IN_TEXT = re.compile(r"\+?\(?\d(?:[\d\s().-]{6,}\d)")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def mask_phone(phone: str) -> str:
    """`+5511987654321` -> `+55 11 9****-**21`.

    Country and area code stay readable (they say where a message went);
    of the subscriber number only the first digit and the last two do.
    """
    grouped = _international_groups(phone)
    if grouped is None:
        return _mask_middle(phone, keep_start=3, keep_end=2)
    head, subscriber = grouped
    return head + _mask_subscriber(subscriber)


def mask_email(address: str) -> str:
    """`joao.silva@example.com` -> `j***@example.com`."""
    local, at, domain = address.rpartition("@")
    if not at or not local:
        return _mask_middle(address, keep_start=1, keep_end=0)
    return f"{local[0]}***@{domain}"


def mask_address(address: str | None) -> str:
    """Mask a phone number or an e-mail address, whichever it is."""
    if not address:
        return "-"
    if "@" in address:
        return mask_email(address)
    return mask_phone(address)


def mask_body(body: str | None) -> str:
    """A message body is never logged; only its size is."""
    if body is None:
        return "<no body>"
    return f"<{len(body)} chars>"


def mask_text(text: str) -> str:
    """Mask e-mail addresses and phone-like numbers inside free text, such
    as an error message a provider echoed back with the recipient in it."""
    text = _EMAIL.sub(lambda match: mask_email(match.group(0)), text)
    return _PHONE_IN_TEXT.sub(_mask_phone_match, text)


def _mask_phone_match(match: re.Match[str]) -> str:
    found = match.group(0)
    digits = len(_DIGIT.findall(found))
    international = found.startswith("+")
    if _ISO_DATE.match(found) or digits < (8 if international else 10):
        return found  # a date, an amount or a code, not a phone number
    if international and _international_groups(found) is not None:
        return mask_phone(found)
    return _mask_middle(found, keep_start=3, keep_end=2)


def _international_groups(phone: str) -> tuple[str, str] | None:
    """(`+55 11 `, `98765-4321`): country and area code, then the rest."""
    try:
        parsed = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return None
    formatted = phonenumbers.format_number(
        parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL
    )
    # "+55 11 98765-4321", "+1 201-555-0123": the area code is the first
    # group after the country code, whichever separator follows it.
    grouped = re.fullmatch(r"(\+\d+ \d+[ -])(.+)", formatted)
    if grouped is None:
        return None
    head, subscriber = grouped.groups()
    return head, subscriber


def _mask_subscriber(subscriber: str) -> str:
    digits = [index for index, char in enumerate(subscriber) if char.isdigit()]
    keep = {digits[0], *digits[-2:]} if len(digits) > 3 else set()
    return "".join(
        "*" if char.isdigit() and index not in keep else char
        for index, char in enumerate(subscriber)
    )


def _mask_middle(text: str, *, keep_start: int, keep_end: int) -> str:
    if len(text) <= keep_start + keep_end:
        return "*" * len(text)
    end = len(text) - keep_end
    middle = _DIGIT.sub("*", text[keep_start:end])
    middle = re.sub(r"[^\W\d_]", "*", middle)
    return text[:keep_start] + middle + text[end:]
