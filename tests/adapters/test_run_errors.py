"""A customer whose policy evaluation fails is a problem an operator sees:
listed with its message and policy location, kept in the ledger, exit 1."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from adapters import exitcodes
from adapters.cli import main
from adapters.ledger import SKIPPED, Ledger

FIXTURE = Path(__file__).parent / "fixtures" / "run"
SEGMENT = "  - name: todos\n    when: true\n"
# Divides by the credit limit, which may be 0.00.
DIVIDING = "  - name: todos\n    when: exposure / customer.credit_limit < 10.00\n"


def dividing_copy(folder: Path) -> Path:
    """The runner's test policy, with a segment rule that divides by the
    customer's credit limit."""
    folder.mkdir()
    text = (FIXTURE / "ruleset" / "ruleset.yaml").read_text(encoding="utf-8")
    assert SEGMENT in text and "    whatsapp_ok: bool\n" in text
    text = text.replace(SEGMENT, DIVIDING).replace(
        "    whatsapp_ok: bool\n", "    whatsapp_ok: bool\n    credit_limit: money\n"
    )
    # One message per invoice: the copy names the invoice.
    text += "\nfrequency:\n  same_day: cap\n"
    (folder / "ruleset.yaml").write_text(text, encoding="utf-8")
    return folder


def write_data(folder: Path) -> Path:
    """The runner's test data; C2 has a credit limit of 0.00."""
    shutil.copytree(FIXTURE / "data", folder)
    customers = folder / "customers.csv"
    lines = customers.read_text(encoding="utf-8").splitlines()
    limits = {"C2": "0.00"}
    lines = [lines[0] + ",credit_limit"] + [
        f"{line},{limits.get(line.split(',')[0], '500.00')}" for line in lines[1:]
    ]
    customers.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def invoke(ruleset: Path, data: Path, state: Path, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        main,
        ["run", str(ruleset), "--data", str(data), "--state-dir", str(state)]
        + ["--as-of", "2024-10-06T09:00", *extra],
    )
    return result.exit_code, result.stdout


def test_an_evaluation_error_is_listed_recorded_and_exits_1(tmp_path: Path) -> None:
    ruleset = dividing_copy(tmp_path / "policy")
    data = write_data(tmp_path / "data")
    state = tmp_path / "state"

    code, out = invoke(ruleset, data, state, "--format", "json")

    report = json.loads(out)
    assert code == report["exit_code"] == exitcodes.PROBLEMS
    assert report["evaluation_errors"] == 1
    assert report["outcomes"]["sent"] == 1  # C1 is not held back by C2
    assert [e["customer"] for e in report["evaluation_error_list"]] == ["C2"]
    error = report["evaluation_error_list"][0]
    assert "division by zero" in error["message"]
    assert error["location"].startswith("ruleset.yaml:")
    line = int(error["location"].split(":")[1])
    source = (ruleset / "ruleset.yaml").read_text(encoding="utf-8").splitlines()
    assert "exposure / customer.credit_limit" in source[line - 1]

    ledger = Ledger.open(f"sqlite:///{state / 'ledger.sqlite3'}", create=False)
    assert ledger is not None
    row = ledger.action(error["action"])
    ledger.close()
    assert row is not None
    assert (row["state"], row["reason"]) == (SKIPPED, "error")
    assert row["error"] == f"{error['location']}: {error['message']}"


def test_the_text_summary_names_the_customer_the_error_and_the_place(
    tmp_path: Path,
) -> None:
    ruleset = dividing_copy(tmp_path / "policy")
    data = write_data(tmp_path / "data")

    code, out = invoke(ruleset, data, tmp_path / "state")

    assert code == exitcodes.PROBLEMS
    assert "policy evaluation failed" in out
    listed = [line for line in out.splitlines() if "customer C2: " in line]
    assert len(listed) == 1
    assert "ruleset.yaml:" in listed[0] and "division by zero" in listed[0]


def test_the_dry_run_says_so_too(tmp_path: Path) -> None:
    ruleset = dividing_copy(tmp_path / "policy")
    data = write_data(tmp_path / "data")

    code, out = invoke(ruleset, data, tmp_path / "state", "--dry-run")

    assert code == exitcodes.PROBLEMS
    assert "customer C2: ruleset.yaml:" in out
