"""An explicitly given SQLite ledger must live in an existing folder; a new
ledger file is said in the summary."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from adapters import exitcodes
from adapters.cli import main
from tests.adapters.test_run_caps import VAREJO, write_data

AS_OF = "2026-03-12T10:00"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        main, ["run", str(VAREJO), "--as-of", AS_OF, *args], catch_exceptions=False
    )
    return result.exit_code, result.stdout, result.stderr


def test_a_ledger_flag_in_a_missing_folder_is_a_configuration_error(
    tmp_path: Path,
) -> None:
    data = write_data(tmp_path / "data")
    ledger = tmp_path / "nonexistent" / "dir" / "x.db"

    code, out, err = run("--data", str(data), "--ledger", str(ledger))

    assert code == exitcodes.CONFIG_ERROR
    assert f"the ledger's folder {ledger.parent} does not exist" in err
    assert "Traceback" not in err + out
    assert not ledger.parent.parent.exists()  # nothing created, nothing sent


def test_a_ledger_in_the_config_file_is_checked_the_same_way(tmp_path: Path) -> None:
    data = write_data(tmp_path / "data")
    ledger = tmp_path / "typo" / "ledger.db"
    config = tmp_path / "run.yaml"
    config.write_text(
        f"data: {data}\nledger: sqlite:///{ledger}\nstate_dir: {tmp_path / 'state'}\n",
        encoding="utf-8",
    )

    code, _, err = run("--config", str(config))

    assert code == exitcodes.CONFIG_ERROR
    assert f"the ledger's folder {ledger.parent} does not exist" in err
    assert not ledger.parent.exists()
    assert not (tmp_path / "state" / "outbox.jsonl").exists()


def test_a_new_ledger_file_in_an_existing_folder_is_said(tmp_path: Path) -> None:
    data = write_data(tmp_path / "data")
    ledger = tmp_path / "x.db"
    state = tmp_path / "state"
    common = ["--data", str(data), "--ledger", str(ledger), "--state-dir", str(state)]

    first_code, first, _ = run(*common, "--format", "json")
    again_code, again, _ = run(*common)

    assert first_code == 0 and again_code == 0
    assert f"new ledger created at {ledger}" in json.loads(first)["notes"]
    assert "new ledger created" not in again
    assert ledger.exists()


def test_the_default_state_folder_is_still_made_on_demand(tmp_path: Path) -> None:
    data = write_data(tmp_path / "data")
    state = tmp_path / "new" / "state"

    code, out, _ = run("--data", str(data), "--state-dir", str(state))

    assert code == 0
    assert (state / "ledger.sqlite3").exists()
    assert f"new ledger created at {state / 'ledger.sqlite3'}" in out
