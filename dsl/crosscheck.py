"""Cross checks (being written)."""

from __future__ import annotations

from dsl.diagnostics import Diagnostic
from dsl.yamlread import YMap


def cross_check(root: YMap) -> list[Diagnostic]:
    return []
