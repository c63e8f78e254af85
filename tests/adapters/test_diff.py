"""`ruleset diff` on a fixed small data set, with counts worked out by hand.

The fixture (fixtures/diff/) is a policy with one reminder three days before
the due date (`lembrete`, D-3) for customers never late, and eight customers
with one open invoice of R$ 100,00 each. The range is Monday 2026-03-09 to
Sunday 2026-03-15, one run a day at 00:00 in São Paulo; March 2026 has no
Brazilian holiday, so business days are Monday to Friday.

    customer  due date     D-3 (old)              D-2 business (new)
    c1        Thu 03-12    Mon 03-09              Tue 03-10
    c2        Fri 03-13    Tue 03-10              Wed 03-11
    c3        Mon 03-16    Fri 03-13              Thu 03-12
    c4        Tue 03-17    Sat 03-14 (09:00)      Fri 03-13
    c5        Wed 03-18    Sun 03-15 -> Mon 08:00 Mon 03-16: after the range
    c6        Wed 03-11    Sun 03-08: before      Mon 03-09 (SMS: no WhatsApp)
    c7        Tue 03-10    Sat 03-07: before      Fri 03-06: before
    c8        Thu 03-12    paid on 03-02: nothing in either plan
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from adapters.cli import main
from adapters.diff import (
    Occurrence,
    RevisionError,
    action_key,
    compare_actions,
    export_revision,
    split_revision,
)
from engine.plan import Action

FIXTURE = Path(__file__).parent / "fixtures" / "diff"
DATA = FIXTURE / "data"
RANGE = ("--from", "2026-03-09", "--to", "2026-03-15")


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def version(tmp_path: Path, name: str, *edits: tuple[str, str]) -> Path:
    """A copy of the fixture policy with `edits` (old text, new text) made."""
    target = tmp_path / name
    shutil.copytree(FIXTURE / "ruleset", target)
    policy = target / "ruleset.yaml"
    text = policy.read_text(encoding="utf-8")
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new)
    policy.write_text(text, encoding="utf-8")
    return target


D2_BUSINESS = ("at: D-3", "at: D-2 business")


def json_diff(old: Path | str, new: Path | str, *, data: Path = DATA) -> dict[str, Any]:
    code, out, err = run(
        "diff", str(old), str(new), "--data", str(data), *RANGE, "--format", "json"
    )
    assert code == 0, err
    return json.loads(out)


def counts(report: dict[str, Any]) -> dict[str, int]:
    return {name: entry["count"] for name, entry in report["actions"].items()}


def test_moving_the_reminder_from_d3_to_d2_business_days(tmp_path: Path) -> None:
    old = version(tmp_path, "old")
    new = version(tmp_path, "new", D2_BUSINESS)

    report = json_diff(old, new)

    assert report["customers"] == 8
    # c1..c4 keep their reminder on another day; c5's new day is after the
    # range; c6's new day (Monday 9) is inside it, its old one was not.
    assert counts(report) == {
        "added": 1,
        "removed": 1,
        "step": 0,
        "moved": 4,
        "channel": 0,
        "copy": 0,
        "decision": 0,
        "details": 0,
    }
    moved = {
        (e["customer"], e["old"]["send_from"], e["new"]["send_from"])
        for e in report["actions"]["moved"]["examples"]
    }
    assert moved == {
        ("c1", "2026-03-09T08:00:00-03:00", "2026-03-10T08:00:00-03:00"),
        ("c2", "2026-03-10T08:00:00-03:00", "2026-03-11T08:00:00-03:00"),
        ("c3", "2026-03-13T08:00:00-03:00", "2026-03-12T08:00:00-03:00"),
        # Saturday hours start at 09:00.
        ("c4", "2026-03-14T09:00:00-03:00", "2026-03-13T08:00:00-03:00"),
    }
    [added] = report["actions"]["added"]["examples"]
    assert (added["customer"], added["new"]["channel"]) == ("c6", "sms")
    [removed] = report["actions"]["removed"]["examples"]
    assert (removed["customer"], removed["old"]["day"]) == ("c5", "2026-03-15")

    # Moving a step changes no id: the id holds the step's name, the due
    # date and the channel kind, not the offset.
    assert report["id_changes"]["count"] == 0
    assert report["segments"] == []

    # Per run day, old -> new. WhatsApp at 0.08, SMS at 0.05.
    #   09: c1 wa -> c6 sms   10: c2 -> c1   11: - -> c2   12: - -> c3
    #   13: c3 -> c4          14: c4 -> -    15: c5 -> -
    volume = {
        (v["day"], v["channel"]): (v["old_messages"], v["new_messages"])
        for v in report["volume"]
    }
    assert volume == {
        ("2026-03-09", "sms"): (0, 1),
        ("2026-03-09", "whatsapp"): (1, 0),
        ("2026-03-10", "whatsapp"): (1, 1),
        ("2026-03-11", "whatsapp"): (0, 1),
        ("2026-03-12", "whatsapp"): (0, 1),
        ("2026-03-13", "whatsapp"): (1, 1),
        ("2026-03-14", "whatsapp"): (1, 0),
        ("2026-03-15", "whatsapp"): (1, 0),
    }
    old_cost = sum(Decimal(v["old_cost"]) for v in report["volume"])
    new_cost = sum(Decimal(v["new_cost"]) for v in report["volume"])
    assert (old_cost, new_cost) == (Decimal("0.40"), Decimal("0.37"))


def test_the_text_report_says_the_same(tmp_path: Path) -> None:
    old = version(tmp_path, "old")
    new = version(tmp_path, "new", D2_BUSINESS)

    code, out, _ = run("diff", str(old), str(new), "--data", str(DATA), *RANGE)

    assert code == 0
    assert "8 customers planned once a day from 2026-03-09 to 2026-03-15" in out
    assert "moved in time: 4" in out
    assert (
        "customer c4, invoice f4, step lembrete: moved 2026-03-14 09:00"
        " -> 2026-03-13 08:00"
    ) in out
    assert "Action ids: no reminder gets a new id and step key" in out
    # Money as `ruleset plan` writes it, in the ruleset's locale (pt_BR).
    rows = [" ".join(line.split()) for line in out.splitlines()]
    assert "day channel messages cost" in rows
    assert "total whatsapp 5 -> 4 R$ 0,40 -> R$ 0,32" in rows
    assert "total sms 0 -> 1 R$ 0,00 -> R$ 0,05" in rows


SMS_FIRST = (
    "      channels: [whatsapp, sms]\n      template: lembrete\n  geral:",
    "      channels: [sms, whatsapp]\n      template: lembrete\n  geral:",
)


def test_a_new_channel_order_is_no_resend_the_step_key_holds(tmp_path: Path) -> None:
    old = version(tmp_path, "old")
    # SMS first in the pontual ladder: the five reminders of c1..c5 in the
    # range go by SMS under new ids (the channel kind is part of the id).
    # The runner keys each step on customer, invoices, step and due date
    # too, and skips a step already sent on another channel: nothing goes
    # out twice (test_runner covers the runner's side).
    new = version(tmp_path, "new", SMS_FIRST)

    report = json_diff(old, new)

    assert report["id_changes"]["count"] == 0
    assert report["id_changes"]["held_by_step"] == 5
    assert counts(report)["channel"] == 5
    assert counts(report)["copy"] == 5  # the SMS copy is another text
    assert counts(report)["moved"] == 0

    code, out, _ = run("diff", str(old), str(new), "--data", str(DATA), *RANGE)
    assert code == 0
    assert "!!" not in out
    assert "5 reminder(s) change action id but keep their step key" in out


def test_a_renamed_step_is_flagged_loudly_as_a_resend(tmp_path: Path) -> None:
    old = version(tmp_path, "old")
    # The step's name is in the id and in the runner's step key: the
    # renamed reminder is new to the ledger and would go out again.
    new = version(
        tmp_path,
        "new",
        (
            "  pontual:\n    - step: lembrete\n",
            "  pontual:\n    - step: lembrete_v2\n",
        ),
    )

    report = json_diff(old, new)

    # c1..c5 have their reminder in the range, on the same day in both.
    assert report["id_changes"]["count"] == 5
    assert counts(report)["step"] == 5
    assert counts(report)["added"] == counts(report)["removed"] == 0
    example = report["id_changes"]["examples"][0]
    assert example["old"]["day"] == example["new"]["day"]
    assert example["id_change"] == "step lembrete -> lembrete_v2"

    code, out, _ = run(
        "diff", str(old), str(new), "--data", str(DATA), *RANGE, "--format", "markdown"
    )
    assert code == 0
    assert "> [!CAUTION]" in out
    assert "**5 reminder(s) get a new id and step key**" in out
    assert "| renamed step | 5 |" in out


def test_a_renamed_step_on_another_channel_is_still_a_resend(tmp_path: Path) -> None:
    old = version(tmp_path, "old")
    new = version(
        tmp_path,
        "new",
        SMS_FIRST,
        (
            "  pontual:\n    - step: lembrete\n",
            "  pontual:\n    - step: aviso\n",
        ),
    )

    report = json_diff(old, new)

    assert report["id_changes"]["count"] == 5
    assert report["id_changes"]["held_by_step"] == 0
    assert counts(report)["step"] == counts(report)["channel"] == 5


RENAMED = ("  pontual:\n    - step: lembrete\n", "  pontual:\n    - step: aviso\n")


@pytest.mark.parametrize(
    ("edits", "resends"),
    [((SMS_FIRST,), 0), ((RENAMED,), 1), ((SMS_FIRST, RENAMED), 1)],
    ids=["channel-order", "renamed-step", "both"],
)
def test_the_diff_counts_what_the_runner_sends_again(
    tmp_path: Path, edits: tuple[tuple[str, str], ...], resends: int
) -> None:
    old = version(tmp_path, "old")
    new = version(tmp_path, "new", *edits)
    # Monday 9: c1's reminder goes out under the old version, then the new
    # version runs the same day against the same ledger.
    sent = []
    for ruleset, at in ((old, "12:00"), (new, "12:05")):
        code, out, err = run(
            "run",
            str(ruleset),
            "--data",
            str(DATA),
            "--ledger",
            str(tmp_path / "ledger.db"),
            "--outbox",
            str(tmp_path / "outbox.jsonl"),
            "--as-of",
            f"2026-03-09T{at}",
            "--format",
            "json",
        )
        assert code == 0, err
        sent.append(json.loads(out)["outcomes"].get("sent", 0))

    code, out, err = run(
        "diff",
        str(old),
        str(new),
        "--data",
        str(DATA),
        "--from",
        "2026-03-09",
        "--to",
        "2026-03-09",
        "--format",
        "json",
    )
    assert code == 0, err

    # The diff still flags the id change; the runner holds the renamed step
    # back (one reminder per invoices and due date a day).
    assert sent == [1, 0]
    assert json.loads(out)["id_changes"]["count"] == resends


def test_customers_who_change_segment_are_counted_by_pair(tmp_path: Path) -> None:
    old = version(tmp_path, "old")
    # Only customers who take WhatsApp stay pontual: c6 moves to geral on
    # the first day. Its geral ladder then sends the due-date SMS on
    # Wednesday 11 (D0); its reminder (D-3, Sunday 8) is before the range.
    new = version(
        tmp_path,
        "new",
        (
            "when: history.late_count(6 months) == 0",
            "when: history.late_count(6 months) == 0 and customer.whatsapp_opt_in",
        ),
    )

    report = json_diff(old, new)

    assert report["segments"] == [
        {"from": "pontual", "to": "geral", "customers": 1, "examples": ["c6"]}
    ]
    assert counts(report)["added"] == 1
    [added] = report["actions"]["added"]["examples"]
    assert (added["customer"], added["step"], added["new"]["day"]) == (
        "c6",
        "vencimento",
        "2026-03-11",
    )
    assert sum(counts(report).values()) == 1


def test_a_version_that_cannot_plan_is_reported_not_hidden(tmp_path: Path) -> None:
    old = version(tmp_path, "old")
    # Customers with one open invoice divide by zero: for c1..c7 every day
    # of the range is an error (7 x 7 = 49); c8 has no open invoice.
    new = version(
        tmp_path,
        "new",
        (
            "when: history.late_count(6 months) == 0",
            "when: history.late_count(6 months) / (open_invoices - 1) == 0",
        ),
    )

    report = json_diff(old, new)

    assert report["errors"]["new"] == 49
    assert report["errors"]["old"] == 0
    assert "cannot evaluate" in report["errors"]["examples"][0]
    # The five reminders OLD sends in the range are gone from NEW.
    assert counts(report)["removed"] == 5

    code, out, _ = run("diff", str(old), str(new), "--data", str(DATA), *RANGE)
    assert code == 0
    assert "!! 49 customer-day(s) could not be planned by the new version" in out


def test_versions_with_different_inputs_read_the_data_twice(tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(DATA, data)
    customers = data / "customers.csv"
    lines = customers.read_text(encoding="utf-8").splitlines()
    lines = [lines[0] + ",nickname"] + [line + "," for line in lines[1:]]
    customers.write_text("\n".join(lines) + "\n", encoding="utf-8")
    old = version(tmp_path, "old")
    new = version(
        tmp_path,
        "new",
        (
            "    whatsapp_opt_in: bool\n",
            "    whatsapp_opt_in: bool\n    nickname: string?\n",
        ),
        D2_BUSINESS,
    )

    report = json_diff(old, new, data=data)

    assert report["customers"] == 8
    assert (counts(report)["moved"], counts(report)["added"]) == (4, 1)


def test_a_customer_only_one_version_accepts_stops_the_diff(tmp_path: Path) -> None:
    old = version(tmp_path, "old")
    # Names longer than three letters are bad records for NEW only.
    new = version(tmp_path, "new", ("max_length: 15", "max_length: 3"))

    code, _, err = run("diff", str(old), str(new), "--data", str(DATA), *RANGE)

    assert code == 3
    assert "the data gives the two versions different customers" in err


def test_a_reminder_now_suppressed_is_removed_with_its_reason(tmp_path: Path) -> None:
    old = version(tmp_path, "old")
    new = version(
        tmp_path,
        "new",
        (
            'when: invoice.status in ["paid", "cancelled"]',
            'when: invoice.status in ["paid", "cancelled"]'
            ' or customer.first_name == "Ana"',
        ),
    )

    code, out, _ = run("diff", str(old), str(new), "--data", str(DATA), *RANGE)

    assert code == 0
    assert "removed: 1" in out
    assert (
        "customer c1, invoice f1, step lembrete: removed"
        " (2026-03-09 08:00, whatsapp, now suppressed (fechada))"
    ) in out


def test_identical_versions_show_no_change(tmp_path: Path) -> None:
    report = json_diff(version(tmp_path, "a"), version(tmp_path, "b"))
    assert sum(counts(report).values()) == 0
    assert report["id_changes"]["count"] == 0
    assert all(v["old_messages"] == v["new_messages"] for v in report["volume"])


# -- git revisions ----------------------------------------------------------


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


@pytest.fixture
def repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repository whose last commit moves the reminder to D-2 business."""
    repo = tmp_path / "repo"
    repo.mkdir()
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "no-global-config"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    git(repo, "init", "-q", "-b", "main")
    shutil.copytree(FIXTURE / "ruleset", repo / "rulesets" / "demo")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "reminder at D-3")
    policy = repo / "rulesets" / "demo" / "ruleset.yaml"
    policy.write_text(
        policy.read_text(encoding="utf-8").replace(*D2_BUSINESS), encoding="utf-8"
    )
    git(repo, "commit", "-q", "-am", "reminder at D-2 business")
    monkeypatch.chdir(repo)
    return repo


def test_old_and_new_as_git_revisions(repository: Path) -> None:
    report = json_diff("HEAD~1:rulesets/demo", "HEAD:rulesets/demo")

    assert report["old"] == "HEAD~1:rulesets/demo"
    assert counts(report)["moved"] == 4
    assert (counts(report)["added"], counts(report)["removed"]) == (1, 1)


def test_a_revision_against_the_working_tree(repository: Path) -> None:
    policy = repository / "rulesets" / "demo" / "ruleset.yaml"
    policy.write_text(
        policy.read_text(encoding="utf-8").replace("cost: 0.08", "cost: 0.10"),
        encoding="utf-8",
    )

    report = json_diff("HEAD:rulesets/demo", "rulesets/demo")

    assert sum(counts(report).values()) == 0  # a price is not an action change
    whatsapp = [v for v in report["volume"] if v["channel"] == "whatsapp"]
    assert sum(Decimal(v["old_cost"]) for v in whatsapp) == Decimal("0.32")
    assert sum(Decimal(v["new_cost"]) for v in whatsapp) == Decimal("0.40")


def test_a_path_relative_to_the_current_folder(repository: Path) -> None:
    destination = repository.parent / "export"
    destination.mkdir()

    exported = export_revision(
        "HEAD~1:./demo", destination, cwd=repository / "rulesets"
    )

    assert exported == destination / "demo"
    assert "at: D-3" in (exported / "ruleset.yaml").read_text(encoding="utf-8")


def test_unknown_revision_and_missing_path_are_usage_errors(repository: Path) -> None:
    code, _, err = run(
        "diff", "nosuchrev:rulesets/demo", "rulesets/demo", "--data", str(DATA)
    )
    assert code == 2
    assert "git knows no revision 'nosuchrev'" in err

    code, _, err = run(
        "diff", "HEAD:rulesets/nothing", "rulesets/demo", "--data", str(DATA)
    )
    assert code == 2
    assert "revision HEAD has no 'rulesets/nothing'" in err


def test_a_revision_outside_a_git_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))

    with pytest.raises(RevisionError, match="is not inside a git repository"):
        export_revision("HEAD:rulesets/varejo", tmp_path)

    code, _, err = run(
        "diff", "HEAD:rulesets/varejo", str(FIXTURE / "ruleset"), "--data", str(DATA)
    )
    assert code == 2
    assert "not inside a git repository" in err


def test_an_existing_path_with_a_colon_is_a_path(tmp_path: Path) -> None:
    odd = tmp_path / "a:b"
    odd.mkdir()
    assert split_revision(str(odd)) is None
    assert split_revision("HEAD~1:rulesets/varejo") == ("HEAD~1", "rulesets/varejo")
    assert split_revision("rulesets/varejo") is None


# -- usage and input errors -------------------------------------------------


def test_bad_dates_and_ranges(tmp_path: Path) -> None:
    old = version(tmp_path, "old")
    code, _, err = run(
        "diff", str(old), str(old), "--data", str(DATA), "--from", "09/03/2026"
    )
    assert code == 2 and "not an ISO date" in err

    code, _, err = run(
        "diff",
        str(old),
        str(old),
        "--data",
        str(DATA),
        "--from",
        "2026-03-09",
        "--to",
        "2026-03-01",
    )
    assert code == 2 and "is before --from" in err

    for option in ("--from", "--to"):
        code, _, err = run(
            "diff", str(old), str(old), "--data", str(DATA), option, "9999-12-31"
        )
        assert code == 2 and "outside the supported days" in err


def test_an_invalid_new_version_exits_4_with_its_diagnostics(tmp_path: Path) -> None:
    old = version(tmp_path, "old")
    new = version(tmp_path, "new", ("template: vence_hoje", "template: vence_amanha"))

    code, _, err = run("diff", str(old), str(new), "--data", str(DATA), *RANGE)

    assert code == 4
    assert "ruleset.yaml:" in err and "vence_amanha" in err


def test_unusable_data_exits_4(tmp_path: Path) -> None:
    old = version(tmp_path, "old")
    code, _, err = run(
        "diff", str(old), str(old), "--data", str(tmp_path / "none"), *RANGE
    )
    assert code == 4
    assert "--data" in err


def test_bad_records_stop_the_diff_unless_skipped(tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(DATA, data)
    invoices = data / "invoices.csv"
    invoices.write_text(
        invoices.read_text(encoding="utf-8").replace(
            "100.00,2026-03-13", "1OO.00,2026-03-13"
        ),
        encoding="utf-8",
    )
    old = version(tmp_path, "old")
    new = version(tmp_path, "new", D2_BUSINESS)

    code, _, err = run("diff", str(old), str(new), "--data", str(data), *RANGE)
    assert code == 3
    assert "invoices.csv:3" in err

    code, out, err = run(
        "diff",
        str(old),
        str(new),
        "--data",
        str(data),
        *RANGE,
        "--on-bad-record",
        "skip",
        "--format",
        "json",
    )
    assert code == 0
    report = json.loads(out)
    # Without f2, c2 has nothing to remind: one move fewer.
    assert counts(report)["moved"] == 3
    assert len(report["problems"]) == 1


# -- pairing, without a plan ------------------------------------------------


def test_pairing_keys_on_customer_invoices_kind_and_step() -> None:
    def action(step: str, channel: str, decision: str = "send") -> Action:
        return Action(
            id=f"mes_{step}_{channel}",
            kind="message",
            decision=decision,
            customer_id="c1",
            invoice_ids=("f1",),
            segment="pontual",
            step=step,
            channel=channel,
            channel_kind=channel,
            address=None,
            due_date=None,
            window_start=None,
            window_end=None,
            message=None,
            cost=None,
        )

    day = dt.date(2026, 3, 9)
    old = [Occurrence(day, action("lembrete", "whatsapp"))]
    new = [
        Occurrence(day, action("lembrete", "sms")),
        Occurrence(day, action("vencimento", "sms", decision="suppressed")),
    ]

    [change] = compare_actions(old, new)

    assert (
        change.key
        == action_key(old[0].action)
        == ("c1", ("f1",), "message", "lembrete")
    )
    assert change.aspects == ("channel",)
    assert change.id_changed
    assert "channel kind whatsapp -> sms" in change.id_reason()
    # Same step and due date: the runner's step key stops a second send.
    assert not change.resends
