"""The test policy (fixtures/regua) loaded once, and a standard customer."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from dsl.loader import load_ruleset
from dsl.model import Ruleset
from engine.compiler import CompiledRuleset, compile_ruleset

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def regua() -> Ruleset:
    return load_ruleset(FIXTURES / "regua")


@pytest.fixture(scope="session")
def compiled(regua: Ruleset) -> CompiledRuleset:
    return compile_ruleset(regua)


@pytest.fixture
def ana() -> dict[str, Any]:
    """A reachable customer on every channel, well within her credit."""
    return {
        "id": "c1",
        "name": "Ana Souza",
        "first_name": "Ana",
        "phone": "11 98765-4321",
        "email": "ana@example.com",
        "income": Decimal("10000.00"),
        "whatsapp_ok": True,
        "sms_out": False,
        "negotiating": False,
    }
