"""Catch-up sends only what a run would have sent on the step's day.

`rulesets/varejo` over made-up data: a customer `pontual` (no D0 step) on
the due date who is `ocasional` (with a D0 step) the day after, because the
invoice is then one day late, must not be told "vence hoje" a day late.

varejo marks that D0 step `same_day_only`, which keeps it from going late
in the planner already; these tests are about the runner's own check, which
serves every other step, so they run on a copy of varejo without the mark.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from adapters.cli import main
from adapters.ledger import SKIPPED, Ledger
from adapters.providers.outbox import read_outbox
from adapters.runreport import NOT_DUE_WHEN_RUN

VAREJO = Path(__file__).parents[2] / "rulesets" / "varejo"
CUSTOMERS = (
    "id,name,first_name,phone,email,credit_limit,whatsapp_opt_in,sms_opt_out,"
    "in_negotiation\n"
    "C1,Ana Souza,Ana,+5511987650001,,5000.00,true,false,false\n"
)
INVOICE_HEADER = (
    "id,customer_id,amount,due_date,status,settled_on,payment_link,pix_code"
)


def catch_up_varejo(folder: Path) -> Path:
    """varejo whose steps may all go late within its catch-up grace."""
    shutil.copytree(VAREJO, folder, ignore=shutil.ignore_patterns("tests"))
    policy = folder / "ruleset.yaml"
    lines = policy.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [line for line in lines if "same_day_only:" not in line]
    assert len(kept) < len(lines)
    policy.write_text("".join(kept), encoding="utf-8")
    return folder


def write_data(folder: Path, *, late_before: bool) -> Path:
    """One customer, one open invoice due 2026-03-12 (a Thursday); with
    `late_before`, a bill paid five days late in January makes her
    `ocasional` all along."""
    folder.mkdir()
    invoices = [INVOICE_HEADER, "F1,C1,120.00,2026-03-12,open,,https://pay.ex/F1,"]
    payments = ["invoice_id,amount,paid_on"]
    if late_before:
        invoices.append("F0,C1,90.00,2026-01-12,paid,,https://pay.ex/F0,")
        payments.append("F0,90.00,2026-01-17")
    (folder / "customers.csv").write_text(CUSTOMERS, encoding="utf-8")
    (folder / "invoices.csv").write_text("\n".join(invoices) + "\n", encoding="utf-8")
    (folder / "payments.csv").write_text("\n".join(payments) + "\n", encoding="utf-8")
    return folder


def run(
    policy: Path, data: Path, state: Path, when: str, *extra: str
) -> dict[str, Any]:
    result = CliRunner().invoke(
        main,
        [
            "run",
            str(policy),
            "--data",
            str(data),
            "--state-dir",
            str(state),
            "--as-of",
            when,
            "--format",
            "json",
            *extra,
        ],
        catch_exceptions=False,
    )
    report: dict[str, Any] = json.loads(result.stdout)
    assert result.exit_code == report["exit_code"]
    return report


def sent_steps(state: Path) -> list[str]:
    """The step of every message in the outbox."""
    outbox = state / "outbox.jsonl"
    if not outbox.exists():
        return []
    ledger = Ledger.open(f"sqlite:///{state / 'ledger.sqlite3'}", create=False)
    assert ledger is not None
    try:
        rows = [
            ledger.action(str(m["action_id"])) for m in read_outbox(outbox).messages
        ]
    finally:
        ledger.close()
    return [str(row["step"]) for row in rows if row is not None]


def sent_in(report: dict[str, Any]) -> dict[str, int]:
    """Messages a run sent, by step."""
    return {
        entry["step"]: entry["sent"]
        for entry in report["by_channel_step"]
        if entry.get("sent")
    }


def test_a_step_that_was_not_due_on_its_day_is_not_sent_late(tmp_path: Path) -> None:
    data = write_data(tmp_path / "data", late_before=False)
    state = tmp_path / "state"
    policy = catch_up_varejo(tmp_path / "varejo")

    on_the_day = run(policy, data, state, "2026-03-12T10:00")
    day_after = run(policy, data, state, "2026-03-13T10:00")
    dry = run(policy, data, state, "2026-03-13T11:00", "--dry-run")

    assert [s["segment"] for s in on_the_day["segments"]] == ["pontual"]
    assert [s["segment"] for s in day_after["segments"]] == ["ocasional"]
    assert day_after["planned"] == {"send": 1}  # the planner still offers it
    assert day_after["outcomes"] == {"skipped": 1}
    assert day_after["skipped"] == {NOT_DUE_WHEN_RUN: 1}
    assert [(n["step"], n["day"]) for n in day_after["not_due_when_run"]] == [
        ("vencimento", "2026-03-12")
    ]
    assert day_after["exit_code"] == 0
    assert dry["skipped"] == {NOT_DUE_WHEN_RUN: 1}
    assert sent_steps(state) == []

    ledger = Ledger.open(f"sqlite:///{state / 'ledger.sqlite3'}", create=False)
    assert ledger is not None
    row = ledger.action(day_after["not_due_when_run"][0]["action"])
    ledger.close()
    assert row is not None and row["state"] == SKIPPED
    assert row["reason"] == (
        "not due when 2026-03-12 was run; segment or data changed since"
    )


def test_the_text_summary_lists_the_step_not_sent_late(tmp_path: Path) -> None:
    data = write_data(tmp_path / "data", late_before=False)
    state = tmp_path / "state"
    policy = catch_up_varejo(tmp_path / "varejo")
    run(policy, data, state, "2026-03-12T10:00")

    result = CliRunner().invoke(
        main,
        ["run", str(policy), "--data", str(data), "--state-dir", str(state)]
        + ["--as-of", "2026-03-13T10:00"],
    )

    assert result.exit_code == 0
    assert "late steps not sent: not due when their day was run" in result.stdout
    assert "step vencimento of 2026-03-12 (due 2026-03-12)" in result.stdout


def test_a_day_without_any_run_is_caught_up(tmp_path: Path) -> None:
    data = write_data(tmp_path / "data", late_before=True)
    state = tmp_path / "state"
    policy = catch_up_varejo(tmp_path / "varejo")

    run(policy, data, state, "2026-03-11T10:00")
    late = run(policy, data, state, "2026-03-13T10:00")  # no run on the 12th

    assert sent_in(late) == {"vencimento": 1}
    assert late["not_due_when_run"] == []
    assert sent_steps(state).count("vencimento") == 1


@pytest.mark.parametrize("early", ["2026-03-12T07:00", "2026-03-12T21:00"])
def test_a_step_planned_on_its_day_but_not_sent_is_caught_up(
    tmp_path: Path, early: str
) -> None:
    data = write_data(tmp_path / "data", late_before=True)
    state = tmp_path / "state"
    policy = catch_up_varejo(tmp_path / "varejo")

    first = run(policy, data, state, early)  # the window is not open (or closed)
    late = run(policy, data, state, "2026-03-13T10:00")

    assert first["outcomes"].get("sent", 0) == 0
    assert first["outcomes"].get("waiting", 0) >= 1
    assert sent_in(late) == {"vencimento": 1}
    assert late["not_due_when_run"] == []
    assert sent_steps(state).count("vencimento") == 1


def test_varejo_never_sends_vence_hoje_after_the_due_day(tmp_path: Path) -> None:
    # The finding: a 21:00 run on the due day (after the 20:00 window) and
    # the next morning's run; next_window and the catch-up would both have
    # sent "vence hoje" for an invoice due the day before.
    data = write_data(tmp_path / "data", late_before=True)
    state = tmp_path / "state"

    evening = run(VAREJO, data, state, "2026-03-12T21:00")
    morning = run(VAREJO, data, state, "2026-03-13T09:00")

    assert evening["planned"] == {"dropped": 1}
    assert morning["planned"] == {"missed": 1}
    assert morning["outcomes"].get("sent", 0) == 0
    assert "vencimento" not in sent_steps(state)
    assert not any(
        "vence hoje" in json.dumps(m, ensure_ascii=False)
        for m in read_outbox(state / "outbox.jsonl").messages
    )
