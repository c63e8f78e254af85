"""Real processes: SIGKILLs at every send point, overlapping runs, and
claims raced by two processes, against SQLite and PostgreSQL (MariaDB for
the claims)."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.ledger import SENT, UNKNOWN, Ledger
from adapters.providers.outbox import read_outbox
from engine.plan import canonical_json
from tests.adapters.test_runner import message_action

FIXTURES = Path(__file__).parent / "fixtures" / "run"
RULESET_COMMAND = str(Path(sys.executable).parent / "ruleset")
CUSTOMERS = 6


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RULESET_")}
    env.update(TZ="UTC", **extra)
    return env


def write_data(folder: Path) -> Path:
    """Six customers, each with one invoice whose D+5 step is due on
    2024-10-06: WhatsApp for the even ones, SMS for the odd ones."""
    folder.mkdir()
    customers = ["id,name,phone,whatsapp_ok"]
    invoices = ["id,customer_id,amount,due_date,status"]
    for n in range(1, CUSTOMERS + 1):
        whatsapp = "true" if n % 2 == 0 else "false"
        customers.append(f"C{n},Cliente {n},+55119876500{n:02d},{whatsapp}")
        invoices.append(f"F{n},C{n},{n}0.00,2024-10-01,open")
    (folder / "customers.csv").write_text("\n".join(customers) + "\n")
    (folder / "invoices.csv").write_text("\n".join(invoices) + "\n")
    (folder / "payments.csv").write_text("invoice_id,amount,paid_on\n")
    return folder


def ruleset_run(
    folder: Path, *args: str, fault: str | None = None
) -> subprocess.CompletedProcess[str]:
    extra = {"RULESET_FAULT": fault} if fault else {}
    return subprocess.run(
        [
            RULESET_COMMAND,
            "run",
            str(FIXTURES / "ruleset"),
            "--data",
            str(folder / "data"),
            "--as-of",
            "2024-10-06T09:00",
            "--format",
            "json",
            *args,
        ],
        cwd=folder,
        env=environment(**extra),
        capture_output=True,
        text=True,
        timeout=60,
    )


def sent_actions(folder: Path) -> Counter[str]:
    contents = read_outbox(folder / ".ruleset" / "outbox.jsonl")
    assert contents.problems == []
    return Counter(str(m["action_id"]) for m in contents.messages)


def ledger_states(folder: Path) -> Counter[str]:
    ledger = Ledger.open(f"sqlite:///{folder / '.ruleset' / 'ledger.sqlite3'}")
    assert ledger is not None
    states = ledger.count_states()
    ledger.close()
    return Counter(states)


@pytest.mark.parametrize(
    ("point", "outbox_after_kill"),
    [("before_claim", 2), ("after_claim", 2), ("after_send", 3)],
)
def test_a_killed_run_then_a_rerun_sends_nothing_twice(
    tmp_path: Path, point: str, outbox_after_kill: int
) -> None:
    write_data(tmp_path / "data")

    killed = ruleset_run(tmp_path, fault=f"{point}:3")

    assert killed.returncode == -signal.SIGKILL
    assert sum(sent_actions(tmp_path).values()) == outbox_after_kill

    rerun = ruleset_run(tmp_path)
    report = json.loads(rerun.stdout)
    sent = sent_actions(tmp_path)

    assert max(sent.values()) == 1  # nothing twice
    assert any("took over the lock of run 1 " in note for note in report["notes"])
    if point == "before_claim":
        # Nothing was in flight: the rerun simply finishes the job.
        assert rerun.returncode == 0
        assert len(sent) == CUSTOMERS
        assert ledger_states(tmp_path) == {SENT: CUSTOMERS}
        return

    # The third message was claimed when the process died: its outcome is
    # unknown, reported, and not sent again by default.
    assert rerun.returncode == 1
    [unknown] = report["recovered_unknown_list"]
    assert report["skipped"] == {"already_sent": 2, "unknown_outcome_before": 1}
    assert ledger_states(tmp_path) == {SENT: CUSTOMERS - 1, UNKNOWN: 1}
    if point == "after_send":
        assert len(sent) == CUSTOMERS  # it did go out before the kill
        assert unknown["action"] in sent
        return

    assert len(sent) == CUSTOMERS - 1  # it never reached the provider
    assert unknown["action"] not in sent
    resent = ruleset_run(tmp_path, "--resend-unknown")
    assert resent.returncode == 0
    assert sent_actions(tmp_path) == Counter(
        {action: 1 for action in sent} | {unknown["action"]: 1}
    )


def test_send_attempts_are_logged_with_personal_data_masked(tmp_path: Path) -> None:
    write_data(tmp_path / "data")

    result = ruleset_run(tmp_path, "--log-level", "info")

    lines = [line for line in result.stderr.splitlines() if "adapters.retry" in line]
    assert result.returncode == 0
    assert len(lines) == CUSTOMERS
    assert "to=+55 11 9****-**01" in result.stderr
    assert "987650001" not in result.stderr and "Cliente" not in result.stderr


# -- overlapping runs --------------------------------------------------------

# A run of hand-made actions whose provider waits for a gate file before
# each message: the test decides when the first run may finish.
GATED_RUN = """
import datetime as dt, json, sys, time
from pathlib import Path
from zoneinfo import ZoneInfo
from adapters.ledger import Ledger
from adapters.providers.outbox import OutboxProvider
from adapters.runner import PlanInput, Route, Runner, RunSettings, action_from_json

url, prefix, plan, outbox, lock_timeout, gate = sys.argv[1:]
actions = [action_from_json(json.loads(line)) for line in open(plan)]

class GatedOutbox(OutboxProvider):
    def send(self, message):
        while not Path(gate).exists():
            time.sleep(0.01)
        return super().send(message)

route = Route(GatedOutbox(outbox))
ledger = Ledger.open(url, prefix=prefix)
runner = Runner(
    ruleset="teste",
    zone=ZoneInfo("America/Sao_Paulo"),
    ledger=ledger,
    routes={"sms": route},
    settings=RunSettings(
        lock_timeout=float(lock_timeout), spool_dir=Path(outbox).parent
    ),
)
as_of = dt.datetime(2024, 10, 6, 9, tzinfo=ZoneInfo("America/Sao_Paulo"))
report = runner.run(as_of, PlanInput(lambda since: actions, lambda: []))
print(json.dumps(report.to_json()))
sys.exit(report.exit_code)
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[str, str]]:
    prefix = f"p{uuid.uuid4().hex[:10]}_"
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.sqlite3'}", prefix
        return
    url = str(request.getfixturevalue("postgres_url"))
    yield url, prefix
    ledger = Ledger.open(url, prefix=prefix)
    assert ledger is not None
    ledger.metadata.drop_all(ledger.engine)
    ledger.close()


def gated_run(
    url: str, prefix: str, folder: Path, lock_timeout: float
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            GATED_RUN,
            url,
            prefix,
            str(folder / "plan.jsonl"),
            str(folder / "outbox.jsonl"),
            str(lock_timeout),
            str(folder / "gate"),
        ],
        cwd=folder,
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_lock(url: str, prefix: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        ledger = Ledger.open(url, prefix=prefix, create=False)
        if ledger is not None:  # the first run created the schema
            locks = ledger.tables["locks"]
            with ledger.engine.connect() as conn:
                held = conn.execute(locks.select().where(locks.c.holder.is_not(None)))
                taken = held.first() is not None
            ledger.close()
            if taken:
                return
        time.sleep(0.05)
    pytest.fail("the first run never took the lock")


def test_overlapping_runs_never_both_send(
    tmp_path: Path, ledger_url: tuple[str, str]
) -> None:
    url, prefix = ledger_url
    actions = [message_action(n) for n in range(1, 6)]
    (tmp_path / "plan.jsonl").write_text(
        "".join(canonical_json(a.to_json()) + "\n" for a in actions)
    )

    first = gated_run(url, prefix, tmp_path, lock_timeout=0)
    wait_for_lock(url, prefix)  # first holds it, stuck before its first send
    impatient = gated_run(url, prefix, tmp_path, lock_timeout=0)
    impatient_out, _ = impatient.communicate(timeout=60)
    patient = gated_run(url, prefix, tmp_path, lock_timeout=30)
    time.sleep(0.3)
    (tmp_path / "gate").touch()
    results = [process.communicate(timeout=60) for process in (first, patient)]
    reports = [json.loads(out) for out in (results[0][0], impatient_out, results[1][0])]

    assert [first.returncode, impatient.returncode, patient.returncode] == [0, 5, 0]
    assert reports[0]["outcomes"] == {"sent": 5}
    assert reports[1]["status"] == "locked"
    assert reports[1]["lock_holder"]["pid"] == first.pid
    assert reports[2]["skipped"] == {
        "already_sent": 5
    }  # it waited, then found them sent
    contents = read_outbox(tmp_path / "outbox.jsonl")
    assert sorted(m["action_id"] for m in contents.messages) == sorted(
        a.id for a in actions
    )


# -- claims raced by two processes ---------------------------------------------

CLAIMER = """
import datetime as dt, json, sys
from adapters.ledger import ActionEntry, Ledger

url, prefix, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
ledger = Ledger.open(url, prefix=prefix)
at = dt.datetime(2024, 10, 6, 12, tzinfo=dt.UTC)
run = ledger.start_run("race", at, None, host="h", pid=0, at=at)
entries = [
    ActionEntry(f"mes_{n}", "race", "message", f"C{n}", (f"F{n}",), "s", "sms", "sms",
                None, step_key=f"stp_{n}")
    for n in range(count)
]
ledger.note(entries, run, at)
print("ready", flush=True)
sys.stdin.readline()  # start together
won = [e.action_id for e in entries if ledger.claim(e, run, at).claimed]
print(json.dumps(won))
"""


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mariadb"])
def test_two_processes_racing_for_claims_each_win_distinct_actions(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    prefix = f"c{uuid.uuid4().hex[:10]}_"
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    else:
        url = str(
            request.getfixturevalue(
                f"{'postgres' if backend == 'postgresql' else 'mariadb'}_url"
            )
        )
    schema = Ledger.open(url, prefix=prefix)  # one schema before the race
    assert schema is not None
    schema.close()
    count = 60
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIMER, url, prefix, str(count)],
            env=environment(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for racer in racers:  # both have noted their actions and wait
            assert racer.stdout is not None
            assert racer.stdout.readline() == "ready\n"
        for racer in racers:
            assert racer.stdin is not None
            racer.stdin.write("go\n")
            racer.stdin.flush()
        outputs = [racer.communicate(timeout=60) for racer in racers]
    finally:
        if backend != "sqlite":
            ledger = Ledger.open(url, prefix=prefix)
            assert ledger is not None
            ledger.metadata.drop_all(ledger.engine)
            ledger.close()

    assert [racer.returncode for racer in racers] == [0, 0], outputs
    won = [json.loads(stdout) for stdout, _ in outputs]
    assert set(won[0]).isdisjoint(won[1])
    assert sorted(won[0] + won[1]) == sorted(f"mes_{n}" for n in range(count))


def test_a_progress_bar_is_drawn_on_a_terminal_only(tmp_path: Path) -> None:
    write_data(tmp_path / "data")
    command = [
        RULESET_COMMAND,
        "run",
        str(FIXTURES / "ruleset"),
        "--data",
        str(tmp_path / "data"),
        "--as-of",
        "2024-10-06T09:00",
    ]
    controller, terminal = pty.openpty()
    try:
        on_terminal = subprocess.run(
            command,
            cwd=tmp_path,
            env=environment(),
            stdout=subprocess.PIPE,
            stderr=terminal,
            timeout=60,
        )
        os.close(terminal)
        drawn = _read_all(controller)
    finally:
        os.close(controller)
    piped = ruleset_run(tmp_path, "--format", "text")

    assert on_terminal.returncode == 0
    assert "sending" in drawn and "100%" in drawn
    assert piped.returncode == 0
    assert "sending" not in piped.stderr


def _read_all(fd: int) -> str:
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the terminal's other end is closed: all is read
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def test_an_unknown_outcome_fails_every_run_until_an_operator_resolves_it(
    tmp_path: Path,
) -> None:
    write_data(tmp_path / "data")
    state = str(tmp_path / ".ruleset")

    first = ruleset_run(tmp_path, fault="after_claim:3")  # leaves one in flight
    recovering = ruleset_run(tmp_path, fault="before_claim:1")  # recovers it, dies
    later = ruleset_run(tmp_path)
    report = json.loads(later.stdout)

    assert first.returncode == recovering.returncode == -signal.SIGKILL
    assert later.returncode == 1
    assert report["recovered_unknown_list"] == []  # recovered by the killed run
    [unknown] = report["unresolved_unknown_list"]
    assert unknown["reason"] == "interrupted during send (run 1)"
    ledger = Ledger.open(f"sqlite:///{state}/ledger.sqlite3", create=False)
    assert ledger is not None
    runs = [(run["id"], run["status"]) for run in ledger.runs()]
    ledger.close()
    assert runs == [(1, "interrupted"), (2, "interrupted"), (3, "completed")]
    # The killed second run had marked the first.
    assert "run 2 was interrupted; marked so" in report["notes"]
    assert "run 1 was interrupted; marked so" not in report["notes"]

    resolve = [RULESET_COMMAND, "ledger", "resolve", unknown["action"]]
    sent_one = next(iter(sent_actions(tmp_path)))
    wrong = subprocess.run(
        [RULESET_COMMAND, "ledger", "resolve", sent_one, "--as", "sent"]
        + ["--state-dir", state],
        env=environment(),
        capture_output=True,
        text=True,
    )
    resolved = subprocess.run(
        [*resolve, "--as", "failed", "--state-dir", state, "--note", "not in logs"],
        env=environment(),
        capture_output=True,
        text=True,
    )
    after = ruleset_run(tmp_path)

    assert wrong.returncode == 1 and "is sent, not unknown" in wrong.stderr
    assert resolved.returncode == 0, resolved.stderr
    assert "unknown -> failed_permanent" in resolved.stdout
    assert after.returncode == 0, after.stdout
    assert json.loads(after.stdout)["unresolved_unknown_list"] == []
    assert unknown["action"] not in sent_actions(tmp_path)  # never resent
