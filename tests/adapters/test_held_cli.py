"""`--on-bad-record skip`: a customer with a bad record is held, never
chased for an amount a left-out payment may have settled."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from adapters.cli import main

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "engine" / "fixtures"
POLICY = str(FIXTURES / "regua")


@pytest.fixture
def unreadable_payment(tmp_path: Path) -> Path:
    """The test data with c1's payment of 400.00 written unreadably."""
    data = tmp_path / "data"
    shutil.copytree(FIXTURES / "regua_data", data)
    payments = data / "payments.csv"
    text = payments.read_text(encoding="utf-8")
    assert "i1,400.00,2024-11-10" in text
    payments.write_text(text.replace("i1,400.00,", "i1,4OO.OO,"), encoding="utf-8")
    return data


def plan(data: Path, *extra: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        main,
        ["plan", POLICY, "--data", str(data), "--as-of", "2024-11-18T10:00"]
        + ["--on-bad-record", "skip", *extra],
        catch_exceptions=False,
    )
    return result.exit_code, result.stdout, result.stderr


def test_a_bad_payment_holds_its_customer(unreadable_payment: Path) -> None:
    code, out, err = plan(unreadable_payment)

    assert code == 0
    assert "bad record: payments.csv:2 (i1)" in err
    actions = [json.loads(line) for line in out.splitlines()[1:]]
    c1 = [a for a in actions if a["customer"] == "c1"]
    assert [(a["kind"], a["decision"]) for a in c1] == [("message", "held")]
    assert c1[0]["why"]["reason"] == "bad input record at payments.csv:2"
    assert c1[0]["invoices"] == ["i1"]
    # The other customers are planned as they would be without the bad row.
    code, clean, _ = plan(FIXTURES / "regua_data")
    others = [json.loads(line) for line in clean.splitlines()[1:]]
    assert [a for a in actions if a["customer"] != "c1"] == [
        a for a in others if a["customer"] != "c1"
    ]
    assert any(a["customer"] == "c1" and a["decision"] == "send" for a in others)


def test_the_table_counts_held_customers(unreadable_payment: Path) -> None:
    code, out, _ = plan(unreadable_payment, "--format", "table")

    assert code == 0
    lines = out.splitlines()
    assert any(line.split() == ["message", "held", "1"] for line in lines)
    assert any(
        "held" in line and "bad input record at payments.csv:2" in line
        for line in lines
    )
