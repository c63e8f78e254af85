"""Whether a customer can be reached on a channel, and at which address.

A channel is usable when the customer has not opted out, has given consent
where the channel asks for it, and has a valid address of the channel's
kind: a phone number that `phonenumbers` accepts as a possible and valid
number (written in E.164), or a well-formed e-mail address. E-mail is
checked by shape only, with no DNS lookup: the engine does no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers

PHONE_KINDS = frozenset({"sms", "rcs", "whatsapp", "voice"})

# RFC 5321/5322 dot-atom local part and a domain of LDH labels with an
# alphabetic top-level label. Quoted local parts, comments and IP literals
# are legal but are not what a customer record holds, and a strict shape is
# what keeps header injection (a CR or LF in the address) out.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_EMAIL = re.compile(
    rf"(?P<local>{_ATOM}(?:\.{_ATOM})*)@(?P<domain>(?:{_LABEL}\.)+[A-Za-z]{{2,63}})"
)
MAX_EMAIL_LENGTH = 254
MAX_LOCAL_LENGTH = 64


@dataclass(frozen=True)
class Address:
    """A usable address, or the reason there is none."""

    value: str | None
    problem: str | None = None


def check_phone(text: str, region: str | None) -> Address:
    """Parse a phone number as written in `region` (from the locale's
    territory, e.g. BR) and return it in E.164 form."""
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return Address(None, f"phone number {text!r} cannot be read")
    if not phonenumbers.is_possible_number(number):
        return Address(None, f"phone number {text!r} has the wrong length")
    if not phonenumbers.is_valid_number(number):
        return Address(None, f"phone number {text!r} is not a valid number")
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return Address(str(e164))


def check_email(text: str) -> Address:
    """A strict well-formedness check of one e-mail address."""
    candidate = text.strip()
    match = _EMAIL.fullmatch(candidate)
    if (
        match is None
        or len(candidate) > MAX_EMAIL_LENGTH
        or len(match.group("local")) > MAX_LOCAL_LENGTH
    ):
        return Address(None, f"e-mail address {text!r} is not well formed")
    local, domain = match.group("local"), match.group("domain")
    # Domains are case-insensitive; the local part is the owner's business.
    return Address(f"{local}@{domain.lower()}")


def check_address(kind: str, text: str | None, region: str | None) -> Address:
    """The address a channel of `kind` would use, or why there is none."""
    if text is None or not text.strip():
        return Address(None, "no address")
    if kind in PHONE_KINDS:
        return check_phone(text, region)
    if kind == "email":
        return check_email(text)
    if any(char in text for char in "\r\n"):
        return Address(None, "address contains a line break")
    return Address(text.strip())
