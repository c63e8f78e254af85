"""A small valid policy as text, and helpers to check variants of it."""

from __future__ import annotations

from pathlib import Path

from dsl.diagnostics import Diagnostic
from dsl.loader import check_ruleset
from dsl.model import Ruleset

MINI = """\
ruleset: mini
timezone: America/Sao_Paulo
locale: pt_BR
currency: BRL
inputs:
  customer:
    id: string
    first_name: {type: string, max_length: 15}
    phone: string?
    email: string?
    sms_opt_out: bool
  invoice:
    id: string
    customer_id: string
    amount: money
    due_date: date
    payment_link: {type: string, max_length: 40}
  payment:
    invoice_id: string
    amount: money
    paid_on: date
calendar:
  holidays: BR
  extra_holidays: ["2026-02-16"]
windows:
  comercial:
    mon-fri: "08:00-20:00"
channels:
  sms:
    address: customer.phone
    opt_out: customer.sms_opt_out
    window: comercial
    cost: 0.05
    max_segments: 2
  email:
    address: customer.email
    window: comercial
segments:
  - name: todos
    when: true
ladders:
  todos:
    - step: lembrete
      at: D-3
      channels: [sms, email]
      template: lembrete
templates:
  lembrete:
    sms: "Oi {customer.first_name}, pague: {invoice.payment_link}"
    email:
      subject: "Fatura"
      text: "Oi {customer.first_name}"
"""


def replaced(old: str, new: str, text: str = MINI) -> str:
    """`text` with its one occurrence of `old` replaced by `new`."""
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
    return text.replace(old, new)


def check_text(
    tmp_path: Path, text: str, name: str = "policy.yaml"
) -> tuple[Ruleset | None, list[Diagnostic]]:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return check_ruleset(path)


def place(text: str, needle: str, occurrence: int = 0) -> tuple[int, int]:
    """1-based line and column of an occurrence of `needle` in `text`."""
    index = -1
    for _ in range(occurrence + 1):
        index = text.index(needle, index + 1)
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    return line, column


def codes(diagnostics: list[Diagnostic]) -> list[str]:
    return [d.code for d in diagnostics]


def only(diagnostics: list[Diagnostic], code: str) -> Diagnostic:
    """The single diagnostic with `code`."""
    found = [d for d in diagnostics if d.code == code]
    assert len(found) == 1, f"expected one {code}, got {diagnostics}"
    return found[0]
