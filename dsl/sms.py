"""SMS checks (being written)."""

from __future__ import annotations

from dsl.diagnostics import Diagnostic
from dsl.model import Ruleset


def check_sms(ruleset: Ruleset) -> list[Diagnostic]:
    return []
