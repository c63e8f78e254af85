"""A reader that closes standard output early (`| head -1`) does not change
a command's exit code: real processes, real pipes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from adapters.providers.outbox import read_outbox
from tests.adapters.test_run_caps import VAREJO, write_data

AS_OF = "2026-03-12T10:00"


def ruleset(args: list[str], *, close_stdout: bool) -> tuple[int, str]:
    """Exit code and standard error of `ruleset ARGS`, its output read
    whole, or its pipe closed before it writes anything."""
    process = subprocess.Popen(
        [sys.executable, "-c", "from adapters.cli import main; main()", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    if close_stdout:
        process.stdout.close()
        err = process.stderr.read()
    else:
        process.stdout.read()
        err = process.stderr.read()
    process.stderr.close()
    if not close_stdout:
        process.stdout.close()
    return process.wait(timeout=60), err.decode("utf-8", "replace")


def test_a_run_whose_reader_went_away_keeps_its_exit_code(tmp_path: Path) -> None:
    data = write_data(tmp_path / "data")

    def run(state: str, close_stdout: bool) -> tuple[int, str]:
        return ruleset(
            ["run", str(VAREJO), "--data", str(data), "--as-of", AS_OF]
            + ["--state-dir", str(tmp_path / state)],
            close_stdout=close_stdout,
        )

    read_code, _ = run("read", close_stdout=False)
    closed_code, closed_err = run("closed", close_stdout=True)

    assert closed_code == read_code
    assert "BrokenPipe" not in closed_err and "Traceback" not in closed_err
    # The run itself went through: its ledger and outbox are written.
    sent = [
        [
            m["action_id"]
            for m in read_outbox(tmp_path / state / "outbox.jsonl").messages
        ]
        for state in ("read", "closed")
    ]
    assert sent[0] and sent[1] == sent[0]


@pytest.mark.parametrize(
    "command",
    [
        ["plan", str(VAREJO), "--as-of", AS_OF],
        ["validate", str(VAREJO.parent)],
        ["explain", str(VAREJO), "--as-of", AS_OF, "--customer", "C1"],
    ],
    ids=["plan", "validate", "explain"],
)
def test_printing_commands_keep_their_exit_code(
    tmp_path: Path, command: list[str]
) -> None:
    data = write_data(tmp_path / "data")
    args = command + (["--data", str(data)] if command[0] != "validate" else [])

    read_code, _ = ruleset(args, close_stdout=False)
    closed_code, closed_err = ruleset(args, close_stdout=True)

    assert closed_code == read_code
    assert "Traceback" not in closed_err
