"""A step the frequency caps held back on its day stays "capped" when a
later run finds its day beyond the catch-up grace: it was not missed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from adapters.cli import main
from adapters.ledger import SKIPPED, Ledger

VAREJO = Path(__file__).parents[2] / "rulesets" / "varejo"


def write_data(folder: Path) -> Path:
    """One `pontual` customer with two invoices due Thursday 2026-03-12:
    both reminders fall on Monday the 9th, and varejo allows one a day."""
    folder.mkdir()
    (folder / "customers.csv").write_text(
        "id,name,first_name,phone,email,credit_limit,whatsapp_opt_in,sms_opt_out,"
        "in_negotiation\n"
        "C1,Ana Souza,Ana,+5511987650001,,5000.00,true,false,false\n",
        encoding="utf-8",
    )
    (folder / "invoices.csv").write_text(
        "id,customer_id,amount,due_date,status,settled_on,payment_link,pix_code\n"
        "F1,C1,120.00,2026-03-12,open,,https://pay.ex/F1,\n"
        "F2,C1,130.00,2026-03-12,open,,https://pay.ex/F2,\n",
        encoding="utf-8",
    )
    (folder / "payments.csv").write_text("invoice_id,amount,paid_on\n")
    return folder


def run(data: Path, state: Path, when: str, *extra: str) -> dict[str, Any]:
    result = CliRunner().invoke(
        main,
        ["run", str(VAREJO), "--data", str(data), "--state-dir", str(state)]
        + ["--as-of", when, "--format", "json", *extra],
        catch_exceptions=False,
    )
    report: dict[str, Any] = json.loads(result.stdout)
    assert result.exit_code == report["exit_code"]
    return report


def test_a_capped_reminder_is_not_reported_missed_later(tmp_path: Path) -> None:
    data = write_data(tmp_path / "data")
    state = tmp_path / "state"

    monday = run(data, state, "2026-03-09T10:00")
    # Thursday: Monday is before the two-day grace (from Tuesday).
    dry = run(data, state, "2026-03-12T09:00", "--dry-run")
    thursday = run(data, state, "2026-03-12T10:00")

    assert monday["planned"] == {"send": 1, "capped": 1}
    assert thursday["planned"] == {"missed": 2}
    for report in (dry, thursday):
        assert report["outcomes"] == {"skipped": 2}
        assert report["skipped"] == {"already_sent": 1, "capped": 1}
        assert report["missed"] == []
    [capped] = thursday["capped_by_ledger"]
    assert capped["step"] == "lembrete"

    ledger = Ledger.open(f"sqlite:///{state / 'ledger.sqlite3'}", create=False)
    assert ledger is not None
    row = ledger.action(capped["action"])
    ledger.close()
    assert row is not None and (row["state"], row["reason"]) == (SKIPPED, "capped")


def test_a_step_never_planned_on_its_day_is_still_missed(tmp_path: Path) -> None:
    data = write_data(tmp_path / "data")
    state = tmp_path / "state"

    run(data, state, "2026-03-05T10:00")  # before the reminders' day
    thursday = run(data, state, "2026-03-12T10:00")

    assert thursday["outcomes"] == {"missed": 2}
    assert len(thursday["missed"]) == 2


def test_an_unreachable_reminder_is_not_reported_missed_later(tmp_path: Path) -> None:
    """A customer no channel could reach on the reminder's day was decided
    then: a later run keeps the reason, it does not call the step missed."""
    data = write_data(tmp_path / "data")
    customers = data / "customers.csv"
    customers.write_text(
        customers.read_text(encoding="utf-8").replace(
            "+5511987650001,,5000.00,true", ",,5000.00,false"
        ),
        encoding="utf-8",
    )
    (data / "invoices.csv").write_text(
        "id,customer_id,amount,due_date,status,settled_on,payment_link,pix_code\n"
        "F1,C1,120.00,2026-03-12,open,,https://pay.ex/F1,\n",
        encoding="utf-8",
    )
    state = tmp_path / "state"

    monday = run(data, state, "2026-03-09T10:00")
    thursday = run(data, state, "2026-03-12T10:00")

    assert monday["planned"] == {"unreachable": 1}
    assert thursday["planned"] == {"missed": 1}
    assert thursday["missed"] == []
    assert thursday["skipped"] == {"unreachable": 1}
