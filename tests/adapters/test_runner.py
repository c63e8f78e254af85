"""The runner with hand-made plans, and `ruleset run` end to end."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from adapters import exitcodes
from adapters.cli import main
from adapters.ledger import (
    FAILED_PERMANENT,
    PLANNED,
    SENT,
    SKIPPED,
    UNKNOWN,
    Ledger,
)
from adapters.providers.base import (
    FallbackRequired,
    OutboundMessage,
    PermanentFailure,
    SendResult,
    TemporaryFailure,
)
from adapters.providers.outbox import OutboxProvider, read_outbox
from adapters.retry import RetryPolicy
from adapters.runner import (
    PlanInput,
    Route,
    Runner,
    RunnerError,
    RunSettings,
    action_from_json,
)
from adapters.runreport import (
    ALREADY_SENT,
    FAILED_BEFORE,
    STEP_SENT,
    UNKNOWN_BEFORE,
    WINDOW_CLOSED,
    RunReport,
)
from engine.plan import Action, action_id
from engine.records import RecordProblem

ZONE = ZoneInfo("America/Sao_Paulo")
RULESET = "teste"
DUE = dt.date(2024, 10, 1)
AS_OF = dt.datetime(2024, 10, 6, 9, 0, tzinfo=ZONE)
FIXTURES = Path(__file__).parent / "fixtures" / "run"


def message_action(
    number: int,
    *,
    channel: str = "sms",
    decision: str = "send",
    kind: str = "message",
    step: str | None = "atraso",
    opens: int = 8,
    closes: int = 20,
    day: dt.date | None = None,
) -> Action:
    day = day or AS_OF.date()
    customer = f"C{number}"
    invoices = (f"F{number}",)
    sends = decision == "send"
    return Action(
        id=action_id(
            RULESET,
            kind,
            customer,
            invoices,
            step,
            DUE,
            channel if kind == "message" else None,
        ),
        kind=kind,
        decision=decision,
        customer_id=customer,
        invoice_ids=invoices,
        segment="todos",
        step=step,
        channel=channel if kind == "message" else None,
        channel_kind=channel if kind == "message" else None,
        address=f"+55119876500{number:02d}",
        due_date=DUE,
        window_start=dt.datetime.combine(day, dt.time(opens), ZONE) if sends else None,
        window_end=dt.datetime.combine(day, dt.time(closes), ZONE) if sends else None,
        message={"body": f"Oi C{number}, sua fatura venceu"} if sends else None,
        cost=Decimal("0.05") if sends else None,
        why={"reason": "its day is before the catch-up grace"}
        if decision == "missed"
        else {},
    )


class ScriptedProvider:
    """Answers per customer from a script of exceptions and successes
    (the last answer repeats); records what it was asked to send."""

    def __init__(
        self,
        name: str = "scripted",
        script: dict[str, list[BaseException | None]] | None = None,
        on_send: Callable[[OutboundMessage], None] | None = None,
    ) -> None:
        self.name = name
        self.idempotency_keys = False
        self.script = script or {}
        self.sent: list[OutboundMessage] = []
        self.calls = 0
        self.on_send = on_send

    def send(self, message: OutboundMessage) -> SendResult:
        self.calls += 1
        if self.on_send is not None:
            self.on_send(message)
        answers = self.script.get(message.customer_id, [None])
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if answer is not None:
            raise answer
        self.sent.append(message)
        return SendResult(
            self.name, f"{self.name}-{self.calls}", dt.datetime.now(dt.UTC)
        )

    def close(self) -> None:
        pass


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


class Harness:
    """A runner over a SQLite ledger in a temporary folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.url = f"sqlite:///{folder / 'state' / 'ledger.sqlite3'}"
        self.sleeps = Sleeps()
        self.since: list[dt.date | None] = []

    def ledger(self) -> Ledger:
        opened = Ledger.open(self.url)
        assert opened is not None
        return opened

    def run(
        self,
        actions: Sequence[Action],
        provider: ScriptedProvider | OutboxProvider,
        *,
        as_of: dt.datetime = AS_OF,
        problems: Sequence[RecordProblem] = (),
        retries: RetryPolicy | None = None,
        progress: Callable[[int, int], None] | None = None,
        routes: dict[str, Route] | None = None,
        caps: tuple[int | None, int | None] = (None, None),
        **settings: object,
    ) -> RunReport:
        ledger = None if settings.get("dry_run") else self.ledger()
        if ledger is None:
            ledger = Ledger.open(self.url, create=False)
        route = Route(provider, retries or RetryPolicy(attempts=3))
        runner = Runner(
            ruleset=RULESET,
            zone=ZONE,
            ledger=ledger,
            routes=routes or {"sms": route, "whatsapp": route},
            settings=RunSettings(
                spool_dir=self.folder / "state", lock_timeout=0.0, **settings
            ),  # type: ignore[arg-type]
            sleep=self.sleeps,
            on_progress=progress,
            channel_kinds={"sms": "sms", "whatsapp": "whatsapp", "rcs": "rcs"},
        )

        def plan(since: dt.date | None) -> Iterable[Action]:
            self.since.append(since)
            return iter(actions)

        try:
            return runner.run(
                as_of,
                PlanInput(
                    plan,
                    lambda: list(problems),
                    catch_up_days=2,
                    per_day=caps[0],
                    per_week=caps[1],
                ),
            )
        finally:
            if ledger is not None:
                ledger.close()

    def states(self) -> dict[str, str]:
        ledger = self.ledger()
        actions = ledger.tables["actions"]
        with ledger.engine.connect() as conn:
            rows = conn.execute(sa.select(actions.c.action_id, actions.c.state))
            found = {row.action_id: row.state for row in rows}
        ledger.close()
        return found


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


def test_due_messages_are_sent_once_and_recorded(harness: Harness) -> None:
    actions = [message_action(n) for n in (1, 2, 3)]
    outbox = OutboxProvider(harness.folder / "outbox.jsonl", fsync=False)

    first = harness.run(actions, outbox)
    second = harness.run(actions, outbox)

    assert first.outcomes == {"sent": 3}
    assert first.exit_code == exitcodes.OK
    assert second.outcomes == {"skipped": 3}
    assert second.skipped == {ALREADY_SENT: 3}
    contents = read_outbox(harness.folder / "outbox.jsonl")
    assert sorted(m["action_id"] for m in contents.messages) == sorted(
        a.id for a in actions
    )
    assert harness.states() == {a.id: SENT for a in actions}
    assert first.by_channel_step == {("sms", "atraso"): {"sent": 3}}


def test_a_message_waits_for_its_window(harness: Harness) -> None:
    later = message_action(1, opens=14, closes=18)
    provider = ScriptedProvider()

    morning = harness.run([later], provider)
    assert morning.outcomes == {"waiting": 1}
    assert harness.states() == {later.id: PLANNED}

    afternoon = harness.run([later], provider, as_of=AS_OF.replace(hour=15))
    assert afternoon.outcomes == {"sent": 1}

    evening = message_action(2, opens=8, closes=9)
    late = harness.run([evening], provider, as_of=AS_OF.replace(hour=10))
    assert late.skipped == {WINDOW_CLOSED: 1}
    assert [m.customer_id for m in provider.sent] == ["C1"]


def test_temporary_failures_are_retried_and_sent_once(harness: Harness) -> None:
    unavailable = TemporaryFailure("503 Service Unavailable", provider="sms")
    provider = ScriptedProvider(script={"C1": [unavailable, unavailable, None]})

    report = harness.run([message_action(1)], provider)

    assert report.outcomes == {"sent": 1}
    assert provider.calls == 3 and len(provider.sent) == 1
    assert len(harness.sleeps) == 2
    ledger = harness.ledger()
    attempts = ledger.attempts(message_action(1).id)
    ledger.close()
    assert [a["outcome"] for a in attempts] == ["temporary", "temporary", "sent"]


def test_retry_after_is_waited_as_the_provider_said(harness: Harness) -> None:
    limited = TemporaryFailure("429", provider="sms", retry_after=1.0)
    provider = ScriptedProvider(script={"C1": [limited, None]})

    harness.run([message_action(1)], provider)

    assert harness.sleeps == [1.0]


def test_a_permanent_failure_does_not_stop_the_others(harness: Harness) -> None:
    rejected = PermanentFailure("400 invalid number", provider="sms")
    provider = ScriptedProvider(script={"C2": [rejected]})
    actions = [message_action(n) for n in (1, 2, 3)]

    report = harness.run(actions, provider)

    assert report.outcomes == {"sent": 2, "failed_permanent": 1}
    assert report.exit_code == exitcodes.PROBLEMS
    assert [(f.customer_id, f.error) for f in report.failures] == [
        ("C2", "400 invalid number")
    ]
    assert harness.states()[actions[1].id] == FAILED_PERMANENT

    again = harness.run(actions, provider)
    assert again.skipped == {ALREADY_SENT: 2, FAILED_BEFORE: 1}
    assert again.exit_code == exitcodes.OK
    assert provider.calls == 3  # nothing was tried again


def no_rcs() -> FallbackRequired:
    return FallbackRequired(
        "the phone has no RCS",
        provider="rbm",
        fallback_channel="sms",
        body="Oi C1 (por SMS)",
        reason="not RCS capable",
    )


def test_a_phone_without_rcs_gets_the_fallback_sms(harness: Harness) -> None:
    rcs = ScriptedProvider("rbm", script={"C1": [no_rcs()]})
    sms = ScriptedProvider("sms-api")
    action = message_action(1, channel="rcs")

    report = harness.run([action], rcs, routes={"rcs": Route(rcs), "sms": Route(sms)})

    assert report.outcomes == {"sent": 1}
    assert [(f.channel, f.fallback_channel) for f in report.fallbacks] == [
        ("rcs", "sms")
    ]
    [sent] = sms.sent
    assert (sent.action_id, sent.channel, sent.channel_kind) == (
        action.id,
        "sms",
        "sms",
    )
    assert (sent.body, sent.extras) == ("Oi C1 (por SMS)", {"fallback_from": "rcs"})
    ledger = harness.ledger()
    attempts = ledger.attempts(action.id)
    ledger.close()
    assert [(a["number"], a["outcome"], a["provider"]) for a in attempts] == [
        (1, "permanent", "rbm"),
        (2, "sent", "sms-api"),
    ]
    assert harness.states() == {action.id: SENT}


def test_a_fallback_without_a_route_is_a_permanent_failure(harness: Harness) -> None:
    rcs = ScriptedProvider("rbm", script={"C1": [no_rcs()]})
    action = message_action(1, channel="rcs")

    report = harness.run([action], rcs, routes={"rcs": Route(rcs)})

    assert report.outcomes == {"failed_permanent": 1}
    assert report.fallbacks == []
    ledger = harness.ledger()
    [attempt] = ledger.attempts(action.id)
    ledger.close()
    assert json.loads(attempt["details"])["fallback"]["channel"] == "sms"
    assert harness.states() == {action.id: FAILED_PERMANENT}


def test_a_temporary_failure_is_tried_again_by_the_next_run(harness: Harness) -> None:
    down = TemporaryFailure("timeout", provider="sms")
    provider = ScriptedProvider(script={"C1": [down, down, down, None]})

    first = harness.run([message_action(1)], provider, retries=RetryPolicy(3))
    second = harness.run([message_action(1)], provider, retries=RetryPolicy(3))

    assert first.outcomes == {"failed_temporary": 1}
    assert first.exit_code == exitcodes.PROBLEMS
    assert second.outcomes == {"sent": 1}
    ledger = harness.ledger()
    numbers = [a["number"] for a in ledger.attempts(message_action(1).id)]
    ledger.close()
    assert numbers == [1, 2, 3, 4]


def test_a_provider_bug_leaves_the_outcome_unknown(harness: Harness) -> None:
    provider = ScriptedProvider(script={"C1": [RuntimeError("bug"), None]})

    first = harness.run([message_action(1)], provider)
    second = harness.run([message_action(1)], provider)
    third = harness.run([message_action(1)], provider, resend_unknown=True)

    assert first.outcomes == {"unknown": 1}
    assert first.exit_code == exitcodes.PROBLEMS
    assert second.skipped == {UNKNOWN_BEFORE: 1}
    assert third.outcomes == {"sent": 1}


def test_an_interrupted_send_is_reported_unknown_not_resent(harness: Harness) -> None:
    action = message_action(1)
    ledger = harness.ledger()
    dead = ledger.start_run(RULESET, AS_OF, None, host="h", pid=1, at=AS_OF)
    entry = Runner(
        ruleset=RULESET,
        zone=ZONE,
        ledger=ledger,
        routes={},
        settings=RunSettings(),
    )._entry(action)
    ledger.note([entry], dead, AS_OF)
    assert ledger.claim(entry, dead, AS_OF).claimed  # and then the kill
    ledger.close()
    provider = ScriptedProvider()

    report = harness.run([action, message_action(2)], provider)

    assert [r.action_id for r in report.recovered] == [action.id]
    assert report.skipped == {UNKNOWN_BEFORE: 1}
    assert [m.customer_id for m in provider.sent] == ["C2"]
    assert report.exit_code == exitcodes.PROBLEMS
    assert harness.states()[action.id] == UNKNOWN

    resent = harness.run([action], provider, resend_unknown=True)
    assert resent.outcomes == {"sent": 1}
    assert [m.customer_id for m in provider.sent] == ["C2", "C1"]


def test_bad_input_with_fail_sends_nothing(harness: Harness) -> None:
    problem = RecordProblem("customers.csv", 3, "C9", "bad date '31/02/2024'")
    provider = ScriptedProvider()

    report = harness.run([message_action(1)], provider, problems=[problem])

    assert report.status == "input_errors"
    assert report.exit_code == exitcodes.INPUT_ERRORS
    assert report.input_problems == [problem]
    assert provider.calls == 0
    assert harness.states() == {}  # not even planned


def test_bad_input_with_skip_goes_on_and_reports(harness: Harness) -> None:
    problem = RecordProblem("customers.csv", 3, "C9", "bad date")
    provider = ScriptedProvider()

    report = harness.run(
        [message_action(1)], provider, problems=[problem], on_bad_record="skip"
    )

    assert report.outcomes == {"sent": 1}
    assert report.exit_code == exitcodes.OK
    assert report.to_json()["input_problem_list"] == [
        {"source": "customers.csv", "row": 3, "record": "C9", "message": "bad date"}
    ]


def test_catch_up_starts_at_the_last_completed_run(harness: Harness) -> None:
    provider = ScriptedProvider()
    problem = RecordProblem("x.csv", 1, None, "bad")

    harness.run([], provider)  # the first run ever: the grace
    harness.run([], provider, as_of=AS_OF + dt.timedelta(days=1))
    harness.run([], provider, as_of=AS_OF + dt.timedelta(days=9), problems=[problem])
    harness.run([], provider, as_of=AS_OF + dt.timedelta(days=10))
    harness.run([], provider, as_of=AS_OF + dt.timedelta(days=10, hours=2))

    assert harness.since == [
        dt.date(2024, 10, 4),  # today minus the 2-day grace
        dt.date(2024, 10, 5),  # the grace start is earlier than the last run
        dt.date(2024, 10, 7),  # the last completed run, before the grace
        dt.date(2024, 10, 7),  # the failed run does not count
        dt.date(2024, 10, 14),  # today minus the 2-day grace
    ]


def test_missed_and_other_decisions_are_reported_and_recorded(
    harness: Harness,
) -> None:
    actions = [
        message_action(1),
        message_action(2, decision="missed"),
        message_action(3, decision="capped"),
        message_action(4, kind="credit", decision="flag", step=None),
    ]

    report = harness.run(actions, ScriptedProvider())

    assert report.outcomes == {"sent": 1, "missed": 1, "skipped": 1, "recorded": 1}
    assert report.planned == {"send": 1, "missed": 1, "capped": 1, "credit:flag": 1}
    assert [(m.customer_id, m.reason) for m in report.missed] == [
        ("C2", "its day is before the catch-up grace")
    ]
    assert report.recorded == {"flag": 1}
    states = harness.states()
    assert [states[a.id] for a in actions] == [SENT, SKIPPED, SKIPPED, SKIPPED]


def test_a_step_sent_on_one_channel_is_not_sent_on_another(harness: Harness) -> None:
    provider = ScriptedProvider()
    harness.run([message_action(1, channel="whatsapp")], provider)

    report = harness.run([message_action(1, channel="sms")], provider)

    assert report.skipped == {STEP_SENT: 1}
    assert report.conflicts[0].other_action == message_action(1, channel="whatsapp").id
    assert len(provider.sent) == 1


def test_a_live_lock_holder_stops_the_run(harness: Harness) -> None:
    ledger = harness.ledger()
    ledger.try_lock(
        f"run:{RULESET}",
        "someone",
        run_id=7,
        host=socket.gethostname(),
        pid=os.getppid(),  # alive: our parent
        at=dt.datetime.now(dt.UTC),
        lease=60,
    )
    ledger.close()
    provider = ScriptedProvider()

    report = harness.run([message_action(1)], provider)

    assert report.status == "locked"
    assert report.exit_code == exitcodes.LOCKED
    assert report.lock_holder is not None and report.lock_holder.run_id == 7
    assert provider.calls == 0


def test_the_lock_of_a_dead_process_is_taken_over(harness: Harness) -> None:
    finished = subprocess.run(["true"], check=True)
    assert finished.returncode == 0
    ledger = harness.ledger()
    dead_pid = _dead_pid()
    ledger.try_lock(
        f"run:{RULESET}",
        "crashed",
        run_id=3,
        host=socket.gethostname(),
        pid=dead_pid,
        at=dt.datetime.now(dt.UTC),
        lease=600,
    )
    ledger.close()

    report = harness.run([message_action(1)], ScriptedProvider())

    assert report.outcomes == {"sent": 1}
    assert any(f"pid {dead_pid}" in note for note in report.notes)


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_a_run_that_loses_its_lock_stops_sending(harness: Harness) -> None:
    def steal(message: OutboundMessage) -> None:
        ledger = harness.ledger()
        locks = ledger.tables["locks"]
        with ledger.engine.begin() as conn:
            conn.execute(sa.update(locks).values(holder="thief"))
        ledger.close()

    provider = ScriptedProvider(on_send=steal)
    actions = [message_action(n) for n in (1, 2, 3)]

    report = harness.run(actions, provider, lock_lease=0.001)

    assert report.status == "lock_lost"
    assert report.exit_code == exitcodes.LOCKED
    assert provider.calls == 1
    states = harness.states()
    assert [states[a.id] for a in actions] == [SENT, PLANNED, PLANNED]


def test_dry_run_records_and_sends_nothing(harness: Harness) -> None:
    provider = ScriptedProvider()

    report = harness.run([message_action(1)], provider, dry_run=True)

    assert report.outcomes == {"would_send": 1}
    assert provider.calls == 0
    assert not (harness.folder / "state").exists()


def test_dry_run_reads_an_existing_ledger(harness: Harness) -> None:
    provider = ScriptedProvider()
    harness.run([message_action(1, channel="whatsapp")], provider)
    runs_before = len(harness.ledger().runs())
    actions = [message_action(1, channel="sms"), message_action(2)]

    report = harness.run(actions, provider, dry_run=True)

    assert report.outcomes == {"skipped": 1, "would_send": 1}
    assert report.skipped == {STEP_SENT: 1}
    assert len(harness.ledger().runs()) == runs_before
    assert len(provider.sent) == 1


def test_progress_is_reported_while_sending(harness: Harness) -> None:
    seen: list[tuple[int, int]] = []

    harness.run(
        [message_action(n) for n in (1, 2)],
        ScriptedProvider(),
        progress=lambda d, t: seen.append((d, t)),
    )

    assert seen == [(1, 2), (2, 2)]


def test_a_channel_without_a_route_stops_before_sending(harness: Harness) -> None:
    with pytest.raises(RunnerError, match="no provider for channel"):
        harness.run([message_action(1, channel="email")], ScriptedProvider())


def test_a_partial_outbox_line_is_noted_in_the_report(harness: Harness) -> None:
    path = harness.folder / "outbox.jsonl"
    path.write_bytes(b'{"action_id":"cut')

    report = harness.run([message_action(1)], OutboxProvider(path, fsync=False))

    assert any("cut short" in note for note in report.notes)
    assert len(read_outbox(path).messages) == 1


def test_actions_survive_the_spool_unchanged() -> None:
    action = message_action(1)

    assert (
        action_from_json(json.loads(json.dumps(action.to_json(), default=str)))
        == action
    )


# -- `ruleset run` end to end -------------------------------------------------


def write_data(
    folder: Path,
    customers: Sequence[tuple[str, str, str, str]],
    invoices: Sequence[tuple[str, str, str, str, str]],
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["id,name,phone,whatsapp_ok", *(",".join(c) for c in customers)]
    (folder / "customers.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    lines = ["id,customer_id,amount,due_date,status", *(",".join(i) for i in invoices)]
    (folder / "invoices.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "payments.csv").write_text(
        "invoice_id,amount,paid_on\n", encoding="utf-8"
    )
    return folder


def invoke(*args: str) -> Result:
    return CliRunner().invoke(
        main, ["run", str(FIXTURES / "ruleset"), *args], catch_exceptions=False
    )


def outbox_lines(folder: Path) -> list[dict[str, object]]:
    contents = read_outbox(folder / ".ruleset" / "outbox.jsonl")
    assert contents.problems == []
    return contents.messages


def test_a_d_plus_5_step_is_sent_exactly_once_over_repeated_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    data = str(FIXTURES / "data")
    instants = [
        "2024-10-06T07:00",  # before the window opens: planned, waiting
        "2024-10-06T09:00",
        "2024-10-06T09:20",
        "2024-10-06T19:00",
        "2024-10-07T09:00",
    ]

    results = [
        invoke("--data", data, "--as-of", when, "--format", "json") for when in instants
    ]

    reports = [json.loads(result.stdout) for result in results]
    assert [r["exit_code"] for r in reports] == [0] * 5
    assert [r["outcomes"].get("sent", 0) for r in reports] == [0, 2, 0, 0, 0]
    assert reports[0]["outcomes"] == {"skipped": 1, "waiting": 2}
    assert reports[4]["skipped"] == {"already_sent": 2, "unreachable": 1}
    sent = outbox_lines(tmp_path)
    assert sorted((m["customer"], m["channel"]) for m in sent) == [
        ("C1", "whatsapp"),
        ("C2", "sms"),
    ]
    bodies = {m["customer"]: m["message"]["body"] for m in sent}  # type: ignore[index]
    # WhatsApp keeps the locale's no-break space; SMS has a plain one.
    assert bodies == {
        "C1": "Oi Ana, a fatura F1 de R$\xa0120,00 venceu em 01/10.",
        "C2": "Oi Bruno, fatura F2 de R$ 80,50 venceu em 01/10.",
    }
    ledger = Ledger.open("sqlite:///.ruleset/ledger.sqlite3", create=False)
    assert ledger is not None
    assert [run["status"] for run in ledger.runs()] == ["completed"] * 5
    ledger.close()


def test_missed_runs_are_caught_up_within_the_grace_and_reported_beyond(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    data = write_data(
        tmp_path / "data",
        [("C1", "Ana", "+5511987650001", "false")],
        [
            ("F1", "C1", "10.00", "2024-10-01", "open"),  # D+5 = 10-06
            ("F2", "C1", "20.00", "2024-10-02", "open"),  # D+5 = 10-07: missed
            ("F3", "C1", "30.00", "2024-10-05", "open"),  # D+5 = 10-10: late
        ],
    )

    first = invoke("--data", str(data), "--as-of", "2024-10-06T09:00")
    later = invoke(
        "--data", str(data), "--as-of", "2024-10-11T09:00", "--format", "json"
    )

    assert first.exit_code == 0
    report = json.loads(later.stdout)
    assert report["since"] == "2024-10-06"
    assert report["outcomes"] == {"missed": 1, "sent": 1, "skipped": 1}
    assert report["skipped"] == {"already_sent": 1}  # F1, on the last run's day
    assert [m["due_date"] for m in report["missed"]] == ["2024-10-02"]
    bodies = [str(m["message"]) for m in outbox_lines(tmp_path)]
    assert len(bodies) == 2 and "F1" in bodies[0] and "F3" in bodies[1]


def test_dry_run_creates_no_ledger_and_leaves_the_outbox_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    result = invoke(
        "--data", str(FIXTURES / "data"), "--as-of", "2024-10-06T09:00", "--dry-run"
    )

    assert result.exit_code == 0
    assert "would_send 2" in result.stdout
    assert not (tmp_path / ".ruleset").exists()


def test_a_channel_change_between_runs_does_not_repeat_the_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    shutil.copytree(FIXTURES / "data", data)

    invoke("--data", str(data), "--as-of", "2024-10-06T09:00")
    customers = data / "customers.csv"
    customers.write_text(
        customers.read_text().replace(
            "C1,Ana,+5511987650001,true", "C1,Ana,+5511987650001,false"
        )
    )
    second = invoke("--data", str(data), "--as-of", "2024-10-06T09:20")

    assert second.exit_code == 0
    assert (
        "same step already sent, or maybe sent, on another channel (1):"
        in second.stdout
    )
    assert [m["channel"] for m in outbox_lines(tmp_path) if m["customer"] == "C1"] == [
        "whatsapp"
    ]


def test_bad_records_stop_the_run_or_are_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    data = write_data(
        tmp_path / "data",
        [
            ("C1", "Ana", "+5511987650001", "true"),
            ("C2", "Bruno", "+5511987650002", "talvez"),
        ],
        [
            ("F1", "C1", "10.00", "2024-10-01", "open"),
            ("F2", "C2", "20.00", "2024-10-01", "open"),
        ],
    )

    failed = invoke("--data", str(data), "--as-of", "2024-10-06T09:00")
    skipped = invoke(
        "--data", str(data), "--as-of", "2024-10-06T09:00", "--on-bad-record", "skip"
    )

    assert failed.exit_code == exitcodes.INPUT_ERRORS
    assert "customers.csv:3" in failed.stdout
    assert "nothing was sent" in failed.stdout
    assert skipped.exit_code == exitcodes.OK
    assert "customers.csv:3" in skipped.stdout
    assert [m["customer"] for m in outbox_lines(tmp_path)] == ["C1"]


def test_configuration_mistakes_exit_4(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    data = str(FIXTURES / "data")
    (tmp_path / "typo.yaml").write_text("ledgr: x.sqlite3\n")
    (tmp_path / "partial.yaml").write_text("providers:\n  sms: {kind: outbox}\n")
    (tmp_path / "secret.yaml").write_text(
        "providers:\n  sms: {kind: twilio, auth_token: abc}\n"
    )
    (tmp_path / "mismatch.yaml").write_text(
        "providers:\n  default: {kind: outbox}\n  whatsapp: {kind: smtp}\n"
    )

    typo = invoke("--config", "typo.yaml", "--data", data)
    partial = invoke("--config", "partial.yaml", "--data", data)
    secret = invoke("--config", "secret.yaml", "--data", data)
    mismatch = invoke("--config", "mismatch.yaml", "--data", data, "--dry-run")

    assert typo.exit_code == exitcodes.CONFIG_ERROR
    assert "typo.yaml:1:1: unknown key 'ledgr' (did you mean 'ledger'?)" in typo.stderr
    assert partial.exit_code == exitcodes.CONFIG_ERROR
    assert (
        "channel 'whatsapp' of ruleset cobranca_teste has no provider" in partial.stderr
    )
    assert secret.exit_code == exitcodes.CONFIG_ERROR
    assert "environment" in secret.stderr
    assert mismatch.exit_code == exitcodes.CONFIG_ERROR
    assert (
        "mismatch.yaml:3:13: provider 'whatsapp' (kind smtp) cannot deliver "
        "channel 'whatsapp' of kind whatsapp; it delivers email"
    ) in mismatch.stderr
    assert not (tmp_path / ".ruleset").exists()


def test_an_invalid_ruleset_prints_its_diagnostics_and_exits_4(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(FIXTURES / "ruleset", broken)
    policy = broken / "ruleset.yaml"
    policy.write_text(policy.read_text().replace("at: D+5", "at: D+5x"))

    result = CliRunner().invoke(
        main, ["run", str(broken), "--data", str(FIXTURES / "data"), "--dry-run"]
    )

    assert result.exit_code == exitcodes.CONFIG_ERROR
    assert "ruleset.yaml:" in result.stderr and "error[" in result.stderr


def test_without_data_it_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    result = invoke()

    assert result.exit_code == exitcodes.USAGE
    assert "no data source" in result.stderr


def test_a_failed_send_makes_exit_code_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the outbox folder should be")
    config = tmp_path / "run.yaml"
    config.write_text(
        "providers:\n"
        "  default: {kind: outbox, path: blocked/outbox.jsonl}\n"
        "retries: {attempts: 2, base_delay: 0}\n"
    )

    result = invoke(
        "--config",
        str(config),
        "--data",
        str(FIXTURES / "data"),
        "--as-of",
        "2024-10-06T09:00",
    )

    assert result.exit_code == exitcodes.PROBLEMS
    assert "failed (2):" in result.stdout
    assert "failed_temporary: cannot append" in result.stdout


def test_a_state_folder_that_cannot_be_created_exits_4(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "blocked").write_text("a file where the state folder should go")

    result = invoke("--data", str(FIXTURES / "data"), "--state-dir", "blocked/state")

    assert result.exit_code == exitcodes.CONFIG_ERROR
    assert "cannot create the ledger's folder blocked/state" in result.stderr


def test_dry_run_after_a_real_run_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    data = str(FIXTURES / "data")
    invoke("--data", data, "--as-of", "2024-10-06T09:00")
    outbox = (tmp_path / ".ruleset" / "outbox.jsonl").read_bytes()

    dry = invoke("--data", data, "--as-of", "2024-10-06T09:30", "--dry-run")

    assert dry.exit_code == 0
    assert "already_sent 2" in dry.stdout
    assert (tmp_path / ".ruleset" / "outbox.jsonl").read_bytes() == outbox
    ledger = Ledger.open("sqlite:///.ruleset/ledger.sqlite3", create=False)
    assert ledger is not None
    assert len(ledger.runs()) == 1
    ledger.close()
