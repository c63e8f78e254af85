"""A data source's notes reach the person reading the output of every
command: plan (in the table, on stderr beside a JSON Lines plan), explain,
the run summary and its JSON report, and diff."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from adapters.cli import main

FIXTURES = Path(__file__).parent / "providers" / "fixtures" / "sms_run"
RULESET = str(FIXTURES / "ruleset.yaml")
AS_OF = "2024-10-01"
NOTE = "no payments file: no payments are known"


@pytest.fixture
def no_payments(tmp_path: Path) -> str:
    """Customers and invoices without a payments file: the source says so."""
    data = tmp_path / "data"
    data.mkdir()
    for name in ("customers.csv", "invoices.csv"):
        shutil.copy(FIXTURES / "data" / name, data / name)
    return str(data)


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_plan_table_lists_the_notes(no_payments: str) -> None:
    code, stdout, _ = invoke(
        "plan", RULESET, "--data", no_payments, "--as-of", AS_OF, "--format", "table"
    )

    assert code == 0
    lines = stdout.splitlines()
    notes_at = lines.index("Data source notes")
    assert lines[notes_at + 1] == f"  {NOTE}"


def test_a_jsonl_plan_leaves_stdout_to_the_plan_and_notes_go_to_stderr(
    no_payments: str,
) -> None:
    code, stdout, stderr = invoke(
        "plan", RULESET, "--data", no_payments, "--as-of", AS_OF
    )

    assert code == 0
    assert all(json.loads(line) for line in stdout.splitlines())
    assert NOTE not in stdout
    assert f"note: data source: {NOTE}" in stderr.splitlines()


def test_explain_shows_the_notes(no_payments: str) -> None:
    code, _, stderr = invoke(
        "explain", RULESET, "--data", no_payments, "--as-of", AS_OF, "--customer", "C2"
    )

    assert code == 0
    assert f"note: data source (up to this customer): {NOTE}" in stderr.splitlines()


@pytest.mark.parametrize("output_format", ["text", "json"])
def test_the_run_summary_shows_the_notes(
    no_payments: str, tmp_path: Path, output_format: str
) -> None:
    code, stdout, _ = invoke(
        "run",
        RULESET,
        "--data",
        no_payments,
        "--as-of",
        f"{AS_OF}T10:00",
        "--state-dir",
        str(tmp_path / "state"),
        "--format",
        output_format,
    )

    assert code == 0
    if output_format == "json":
        assert json.loads(stdout)["source_notes"] == [NOTE]
    else:
        lines = stdout.splitlines()
        notes_at = lines.index("data source notes (1):")
        assert lines[notes_at + 1] == f"  {NOTE}"


@pytest.mark.parametrize("output_format", ["text", "markdown", "json"])
def test_diff_shows_the_notes(no_payments: str, output_format: str) -> None:
    code, stdout, _ = invoke(
        "diff",
        RULESET,
        RULESET,
        "--data",
        no_payments,
        "--from",
        AS_OF,
        "--to",
        AS_OF,
        "--format",
        output_format,
    )

    assert code == 0
    if output_format == "json":
        assert json.loads(stdout)["notes"] == [NOTE]
    else:
        assert NOTE in stdout.splitlines()[-1]


def test_explain_on_a_data_set_counts_up_to_the_customer() -> None:
    # The UCI mapping counts its conventions as it reads; explain stops at
    # the customer, and the notes say what was seen up to there.
    root = Path(__file__).resolve().parents[2]
    code, _, stderr = invoke(
        "explain",
        str(root / "rulesets" / "varejo"),
        "--data",
        str(root / "examples" / "uci"),
        "--as-of",
        "2005-10-07",
        "--customer",
        "100",
    )

    assert code == 0
    [balances] = [line for line in stderr.splitlines() if "credit balances" in line]
    assert balances.startswith("note: data source (up to this customer): ")
    count = int(balances.split(": ")[2].split()[0])
    assert 0 < count <= 6 * 100  # at most six statements per customer read
