"""The policy's frequency caps count what the ledger says was sent.

A renamed step (or a new channel kind, or a new set of invoices in a
combined message) gives new action ids and a new step key; the caps are
what keeps the customer from getting the same reminder twice.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from adapters.cli import main
from adapters.ledger import SKIPPED, Ledger
from adapters.providers.outbox import read_outbox
from tests.adapters.test_runner import (
    AS_OF,
    Harness,
    ScriptedProvider,
    harness,
    message_action,
)

__all__ = ["harness"]  # the fixture, shared with the runner's tests

VAREJO = Path(__file__).parents[2] / "rulesets" / "varejo"


def write_data(folder: Path) -> Path:
    """A customer `ocasional` (a bill paid late in January) with an invoice
    due on Thursday 2026-03-12: varejo's D0 step `vencimento` is due."""
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
        "F0,C1,90.00,2026-01-12,paid,,https://pay.ex/F0,\n",
        encoding="utf-8",
    )
    (folder / "payments.csv").write_text(
        "invoice_id,amount,paid_on\nF0,90.00,2026-01-17\n", encoding="utf-8"
    )
    return folder


def renamed_copy(folder: Path, old: str, new: str) -> Path:
    """varejo with step `old` renamed `new`, and without `same_day_only`, so
    that the runner's own catch-up check is what holds a late step back."""
    shutil.copytree(VAREJO, folder, ignore=shutil.ignore_patterns("tests"))
    policy = folder / "ruleset.yaml"
    text = policy.read_text(encoding="utf-8")
    text = "".join(
        line for line in text.splitlines(True) if "same_day_only:" not in line
    )
    assert f"- step: {old}\n" in text
    policy.write_text(text.replace(f"- step: {old}\n", f"- step: {new}\n"))
    return folder


def run(ruleset: Path, data: Path, state: Path, when: str) -> dict[str, Any]:
    result = CliRunner().invoke(
        main,
        ["run", str(ruleset), "--data", str(data), "--state-dir", str(state)]
        + ["--as-of", when, "--format", "json"],
        catch_exceptions=False,
    )
    report: dict[str, Any] = json.loads(result.stdout)
    assert result.exit_code == report["exit_code"]
    return report


def test_a_renamed_step_is_not_sent_again_the_same_day(tmp_path: Path) -> None:
    data = write_data(tmp_path / "data")
    state = tmp_path / "state"
    copy = renamed_copy(tmp_path / "copy", "vencimento", "no_dia")

    first = run(VAREJO, data, state, "2026-03-12T10:00")
    second = run(copy, data, state, "2026-03-12T11:00")

    assert first["outcomes"] == {"sent": 1}
    assert second["planned"] == {"send": 1}  # a new action id, a new step key
    assert second["outcomes"] == {"skipped": 1}
    reason = "capped: 1 already sent today (ledger)"
    assert second["skipped"] == {reason: 1}
    assert [(c["step"], c["reason"]) for c in second["capped_by_ledger"]] == [
        ("no_dia", reason)
    ]
    assert second["exit_code"] == 0
    assert len(read_outbox(state / "outbox.jsonl").messages) == 1

    ledger = Ledger.open(f"sqlite:///{state / 'ledger.sqlite3'}", create=False)
    assert ledger is not None
    row = ledger.action(second["capped_by_ledger"][0]["action"])
    ledger.close()
    assert row is not None and (row["state"], row["reason"]) == (SKIPPED, reason)


def test_the_capped_message_is_not_caught_up_the_next_day(tmp_path: Path) -> None:
    data = write_data(tmp_path / "data")
    state = tmp_path / "state"
    copy = renamed_copy(tmp_path / "copy", "vencimento", "no_dia")
    run(VAREJO, data, state, "2026-03-12T10:00")
    run(copy, data, state, "2026-03-12T11:00")

    next_day = run(copy, data, state, "2026-03-13T10:00")

    assert next_day["outcomes"].get("sent", 0) == 0
    assert [n["step"] for n in next_day["not_due_when_run"]] == ["no_dia"]
    assert len(read_outbox(state / "outbox.jsonl").messages) == 1


def test_the_text_summary_lists_the_capped_message(tmp_path: Path) -> None:
    data = write_data(tmp_path / "data")
    state = tmp_path / "state"
    copy = renamed_copy(tmp_path / "copy", "vencimento", "no_dia")
    run(VAREJO, data, state, "2026-03-12T10:00")

    result = CliRunner().invoke(
        main,
        ["run", str(copy), "--data", str(data), "--state-dir", str(state)]
        + ["--as-of", "2026-03-12T11:00"],
    )

    assert result.exit_code == 0
    assert "held back by the frequency caps" in result.stdout
    assert "sms/no_dia: capped: 1 already sent today (ledger)" in result.stdout


def test_the_weekly_cap_counts_the_last_seven_days_in_the_ledger(
    harness: Harness,
) -> None:
    provider = ScriptedProvider()
    for days, step in enumerate(("um", "dois", "tres")):
        as_of = AS_OF + dt.timedelta(days=days)
        action = message_action(1, step=step, day=as_of.date())
        assert harness.run([action], provider, as_of=as_of).outcomes == {"sent": 1}

    fourth_day = AS_OF + dt.timedelta(days=3)
    eighth_day = AS_OF + dt.timedelta(days=7)
    capped = harness.run(
        [message_action(1, step="quatro", day=fourth_day.date())],
        provider,
        as_of=fourth_day,
        caps=(1, 3),
    )
    freed = harness.run(  # the first send is now eight days old
        [message_action(1, step="cinco", day=eighth_day.date())],
        provider,
        as_of=eighth_day,
        caps=(1, 3),
    )

    assert capped.skipped == {"capped: 3 already sent in the last 7 days (ledger)": 1}
    assert freed.outcomes == {"sent": 1}
    assert [m.body for m in provider.sent].count("Oi C1, sua fatura venceu") == 4


def test_an_unknown_outcome_sent_again_does_not_cap_itself(harness: Harness) -> None:
    action = message_action(1)
    provider = ScriptedProvider(script={"C1": [RuntimeError("bug"), None]})
    first = harness.run([action], provider, caps=(1, None))

    again = harness.run(
        [action], provider, caps=(1, None), as_of=AS_OF, resend_unknown=True
    )
    other_step = harness.run(
        [message_action(1, step="outro")], provider, caps=(1, None)
    )

    assert first.outcomes == {"unknown": 1}
    assert again.outcomes == {"sent": 1}
    assert other_step.skipped == {"capped: 1 already sent today (ledger)": 1}


def uncapped_copy(folder: Path, renames: dict[str, str]) -> Path:
    """varejo with a cap of five a day (so the caps never hold a message
    back here), its `atraso` step one day after the due date, and `renames`
    of steps applied."""
    shutil.copytree(VAREJO, folder, ignore=shutil.ignore_patterns("tests"))
    policy = folder / "ruleset.yaml"
    text = policy.read_text(encoding="utf-8")
    text = text.replace("  per_day: 1\n", "  per_day: 5\n")
    text = text.replace("at: D+2 business", "at: D+1")
    for old, new in renames.items():
        text = text.replace(f"- step: {old}\n", f"- step: {new}\n")
    policy.write_text(text, encoding="utf-8")
    return folder


def test_a_renamed_step_is_not_sent_again_the_same_day_above_the_cap(
    tmp_path: Path,
) -> None:
    data = write_data(tmp_path / "data")
    state = tmp_path / "state"
    policy = uncapped_copy(tmp_path / "policy", {})
    renamed = uncapped_copy(tmp_path / "renamed", {"vencimento": "no_dia"})

    first = run(policy, data, state, "2026-03-12T10:00")
    second = run(renamed, data, state, "2026-03-12T11:00")

    assert first["outcomes"] == {"sent": 1}
    assert second["planned"] == {"send": 1}
    reason = "already reminded today of these invoices by step vencimento"
    assert second["outcomes"] == {"skipped": 1}
    assert second["skipped"] == {reason: 1}
    assert [(c["step"], c["reason"]) for c in second["capped_by_ledger"]] == [
        ("no_dia", reason)
    ]
    assert second["exit_code"] == 0
    assert len(read_outbox(state / "outbox.jsonl").messages) == 1
    ledger = Ledger.open(f"sqlite:///{state / 'ledger.sqlite3'}", create=False)
    assert ledger is not None
    row = ledger.action(second["capped_by_ledger"][0]["action"])
    ledger.close()
    assert row is not None and (row["state"], row["reason"]) == (SKIPPED, reason)


def test_the_next_step_still_goes_the_next_day(tmp_path: Path) -> None:
    data = write_data(tmp_path / "data")
    state = tmp_path / "state"
    policy = uncapped_copy(tmp_path / "policy", {})

    due_day = run(policy, data, state, "2026-03-12T10:00")
    next_day = run(policy, data, state, "2026-03-13T10:00")

    assert due_day["outcomes"] == {"sent": 1}
    assert next_day["outcomes"]["sent"] == 1
    assert next_day["capped_by_ledger"] == []
    assert len(read_outbox(state / "outbox.jsonl").messages) == 2
    assert "atraso" in json.dumps(next_day["by_channel_step"])


def test_a_dry_run_says_the_renamed_step_would_repeat_today(tmp_path: Path) -> None:
    data = write_data(tmp_path / "data")
    state = tmp_path / "state"
    run(uncapped_copy(tmp_path / "policy", {}), data, state, "2026-03-12T10:00")
    renamed = uncapped_copy(tmp_path / "renamed", {"vencimento": "no_dia"})

    result = CliRunner().invoke(
        main,
        ["run", str(renamed), "--data", str(data), "--state-dir", str(state)]
        + ["--as-of", "2026-03-12T11:00", "--dry-run"],
    )

    assert result.exit_code == 0, result.output
    assert "already reminded today of these invoices by step vencimento" in (
        result.stdout
    )
