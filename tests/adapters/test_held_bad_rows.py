"""`--on-bad-record skip` holds the owner of a bad row, found by the ids
that can still be read; a bad row whose owner cannot be told stops the run.

The test data (tests/engine/fixtures/regua_data): c1 owes i1 (1000.00), of
which 400.00 was paid; c2 owes i2, c3 owes i3, all due 2024-11-21.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from adapters.cli import main
from adapters.exitcodes import INPUT_ERRORS

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "engine" / "fixtures"
POLICY = str(FIXTURES / "regua")


def edited(tmp_path: Path, file: str, old: str, new: str) -> Path:
    """The test data with `old` replaced by `new` in `file`."""
    data = tmp_path / "data"
    shutil.copytree(FIXTURES / "regua_data", data)
    path = data / file
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1
    path.write_text(text.replace(old, new), encoding="utf-8")
    return data


def plan(data: Path) -> tuple[int, list[dict[str, Any]], str]:
    result = CliRunner().invoke(
        main,
        ["plan", POLICY, "--data", str(data), "--as-of", "2024-11-18T10:00"]
        + ["--on-bad-record", "skip"],
        catch_exceptions=False,
    )
    actions = [json.loads(line) for line in result.stdout.splitlines()[1:]]
    return result.exit_code, actions, result.stderr


def decisions(actions: list[dict[str, Any]], customer: str) -> list[str]:
    return [a["decision"] for a in actions if a["customer"] == customer]


def test_a_payment_with_an_unquoted_decimal_comma_holds_its_customer(
    tmp_path: Path,
) -> None:
    # 4 cells under a header of 3: the amount cannot be read, the invoice
    # id in the first cell still can.
    data = edited(tmp_path, "payments.csv", "i1,400.00,", "i1,400,00,")
    code, actions, err = plan(data)

    assert code == 0
    assert "payments.csv:2 (i1): 4 cells, the header has 3" in err
    assert decisions(actions, "c1") == ["held"]
    assert not any("1.000,00" in json.dumps(a) for a in actions)
    _, clean, _ = plan(FIXTURES / "regua_data")
    assert "send" in decisions(clean, "c1")
    assert decisions(actions, "c2") == decisions(clean, "c2")


@pytest.mark.parametrize("shuffled", [False, True], ids=["grouped", "not-grouped"])
def test_a_duplicate_invoice_id_holds_the_customers_of_both_rows(
    tmp_path: Path, shuffled: bool
) -> None:
    # i2 is c2's; a second row with id i2 names c3.
    data = edited(
        tmp_path,
        "invoices.csv",
        "i3,c3,80.00,",
        "i2,c3,80.00,",
    )
    if shuffled:  # c3's row first: the input is no longer grouped
        path = data / "invoices.csv"
        header, *rows = path.read_text(encoding="utf-8").splitlines()
        rows.sort(key=lambda row: row.split(",")[1] != "c3")
        path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    code, actions, err = plan(data)

    assert code == 0
    assert "duplicate invoice id 'i2'" in err
    assert decisions(actions, "c2") == ["held"]
    assert decisions(actions, "c3") == ["held"]
    assert "send" in decisions(actions, "c1")


@pytest.mark.parametrize(
    ("file", "old", "new"),
    [
        ("payments.csv", "i1,400.00,2024-11-10", ",,,"),
        ("invoices.csv", "i2,c2,250.00,", ",,250.00,"),
    ],
    ids=["payment", "invoice"],
)
def test_a_bad_row_without_a_readable_id_stops_a_skip_run(
    tmp_path: Path, file: str, old: str, new: str
) -> None:
    data = edited(tmp_path, file, old, new)
    code, actions, err = plan(data)

    assert code == INPUT_ERRORS
    assert actions == []
    assert "cannot tell whose record this is" in err

    result = CliRunner().invoke(
        main,
        ["run", POLICY, "--data", str(data), "--state-dir", str(tmp_path / "st")]
        + ["--as-of", "2024-11-18T10:00", "--on-bad-record", "skip"]
        + ["--format", "json"],
        catch_exceptions=False,
    )
    report = json.loads(result.stdout)
    assert result.exit_code == INPUT_ERRORS
    assert report["outcomes"].get("sent", 0) == 0
