"""The ledger on real SQLite, PostgreSQL and MariaDB databases."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from adapters.ledger import (
    FAILED_PERMANENT,
    FAILED_TEMPORARY,
    PLANNED,
    RUN_COMPLETED,
    SCHEMA_VERSION,
    SENDING,
    SENT,
    SKIPPED,
    UNKNOWN,
    ActionEntry,
    Ledger,
    LedgerError,
    StepHolder,
    step_key,
)

T0 = dt.datetime(2024, 10, 6, 12, 0, tzinfo=dt.UTC)
DUE = dt.date(2024, 10, 1)


def unique_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}_"


@pytest.fixture(scope="module", params=["sqlite", "postgresql", "mariadb"])
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> str:
    if request.param == "sqlite":
        folder = tmp_path_factory.mktemp("ledger")
        return f"sqlite:///{folder / 'state' / 'ledger.sqlite3'}"
    fixture = "postgres_url" if request.param == "postgresql" else "mariadb_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture(scope="module")
def shared_ledger(database_url: str) -> Iterator[Ledger]:
    """One set of tables per database for the module: creating tables is
    slow on MariaDB, emptying them is not."""
    opened = Ledger.open(database_url, prefix=unique_prefix())
    assert opened is not None
    yield opened
    opened.metadata.drop_all(opened.engine)
    opened.close()


@pytest.fixture
def ledger(shared_ledger: Ledger) -> Iterator[Ledger]:
    yield shared_ledger
    with shared_ledger.engine.begin() as conn:
        for table in shared_ledger.tables.values():
            if table is not shared_ledger.tables["meta"]:
                conn.execute(table.delete())


def entry(
    number: int = 1,
    *,
    channel: str = "sms",
    customer: str = "C1",
    step: str = "lembrete",
) -> ActionEntry:
    return ActionEntry(
        action_id=f"mes_{channel}_{number}",
        ruleset="varejo",
        kind="message",
        customer_id=customer,
        invoice_ids=(f"F{number}",),
        step=step,
        channel=channel,
        channel_kind=channel,
        due_date=DUE,
        step_key=step_key("varejo", customer, [f"F{number}"], step, DUE),
    )


def start(ledger: Ledger, at: dt.datetime = T0) -> int:
    return ledger.start_run("varejo", at, None, host="test", pid=1, at=at)


def finish_attempt(
    ledger: Ledger, action_id: str, run_id: int, outcome: str, number: int = 1
) -> None:
    ledger.record_attempt(
        action_id,
        run_id,
        number=number,
        started_at=T0,
        finished_at=T0 + dt.timedelta(seconds=1),
        outcome=outcome,
        provider="sms-api",
        provider_message_id=f"SM{number}" if outcome == "sent" else None,
        error=None if outcome == "sent" else f"{outcome} failure",
        final=True,
    )


def test_schema_is_created_once_with_its_version(database_url: str) -> None:
    prefix = unique_prefix()
    first = Ledger.open(database_url, prefix=prefix)
    assert first is not None
    try:
        run_id = start(first)
        again = Ledger.open(database_url, prefix=prefix)
        assert again is not None
        assert again.schema_version == SCHEMA_VERSION
        assert [run["id"] for run in again.runs()] == [run_id]  # kept, not recreated
        again.close()
    finally:
        first.metadata.drop_all(first.engine)
        first.close()


def test_a_ledger_from_a_newer_program_is_refused(database_url: str) -> None:
    prefix = unique_prefix()
    ledger = Ledger.open(database_url, prefix=prefix)
    assert ledger is not None
    try:
        meta = ledger.tables["meta"]
        with ledger.engine.begin() as conn:
            conn.execute(sa.update(meta).values(value=str(SCHEMA_VERSION + 1)))

        with pytest.raises(LedgerError, match="newer than this program"):
            Ledger.open(database_url, prefix=prefix)
    finally:
        ledger.metadata.drop_all(ledger.engine)
        ledger.close()


def test_reading_without_creating_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "state" / "ledger.sqlite3"

    assert Ledger.open(f"sqlite:///{path}", create=False) is None
    assert not path.exists() and not path.parent.exists()


def test_a_claim_succeeds_once(ledger: Ledger) -> None:
    run_id = start(ledger)
    ledger.note([entry(1)], run_id, T0)

    first = ledger.claim(entry(1), run_id, T0)
    second = ledger.claim(entry(1), run_id, T0)

    assert first.claimed and first.first_attempt == 1
    assert not second.claimed and second.state == SENDING
    assert ledger.action("mes_sms_1")["state"] == SENDING  # type: ignore[index]


def test_claims_by_state(ledger: Ledger) -> None:
    run_id = start(ledger)
    outcomes = {1: "sent", 2: "temporary", 3: "permanent", 4: "error"}
    entries = [entry(number) for number in outcomes]
    ledger.note(entries, run_id, T0)
    for number, outcome in outcomes.items():
        assert ledger.claim(entry(number), run_id, T0).claimed
        finish_attempt(ledger, f"mes_sms_{number}", run_id, outcome)
    states = {
        k: v.state for k, v in ledger.states(e.action_id for e in entries).items()
    }
    assert states == {
        "mes_sms_1": SENT,
        "mes_sms_2": FAILED_TEMPORARY,
        "mes_sms_3": FAILED_PERMANENT,
        "mes_sms_4": UNKNOWN,
    }

    later = start(ledger, T0 + dt.timedelta(hours=1))
    claims = {number: ledger.claim(entry(number), later, T0) for number in outcomes}

    assert [n for n, claim in claims.items() if claim.claimed] == [2]
    assert claims[2].first_attempt == 2  # attempt numbers go on across runs
    assert claims[1].state == SENT and claims[3].state == FAILED_PERMANENT
    assert ledger.claim(entry(4), later, T0, resend_unknown=True).claimed


def test_noting_again_never_overwrites_an_outcome(ledger: Ledger) -> None:
    run_id = start(ledger)
    ledger.note([entry(1), entry(2)], run_id, T0)
    ledger.claim(entry(1), run_id, T0)
    finish_attempt(ledger, "mes_sms_1", run_id, "sent")

    ledger.note([entry(1), entry(2)], run_id, T0, state=SKIPPED, reason="capped")

    states = ledger.states(["mes_sms_1", "mes_sms_2", "mes_sms_9"])
    assert states["mes_sms_1"].state == SENT
    assert (states["mes_sms_2"].state, states["mes_sms_2"].reason) == (
        SKIPPED,
        "capped",
    )
    assert "mes_sms_9" not in states


def test_a_step_sent_on_one_channel_is_not_sent_on_another(ledger: Ledger) -> None:
    run_id = start(ledger)
    whatsapp, sms = entry(1, channel="whatsapp"), entry(1, channel="sms")
    assert whatsapp.step_key == sms.step_key
    ledger.note([whatsapp], run_id, T0)
    ledger.claim(whatsapp, run_id, T0)
    finish_attempt(ledger, whatsapp.action_id, run_id, "sent")

    ledger.note([sms], run_id, T0)
    claim = ledger.claim(sms, run_id, T0)

    assert not claim.claimed
    assert claim.other_action == whatsapp.action_id
    assert ledger.action(sms.action_id)["state"] == SKIPPED  # type: ignore[index]
    assert claim.other_state == SENT
    assert ledger.step_holders([sms.step_key or ""]) == {
        sms.step_key: StepHolder(whatsapp.action_id, SENT)
    }


def test_a_step_whose_channel_failed_permanently_may_go_another_way(
    ledger: Ledger,
) -> None:
    run_id = start(ledger)
    rcs, sms = entry(1, channel="rcs"), entry(1, channel="sms")
    ledger.note([rcs, sms], run_id, T0)
    ledger.claim(rcs, run_id, T0)
    finish_attempt(ledger, rcs.action_id, run_id, "permanent")

    assert ledger.claim(sms, run_id, T0).claimed
    assert ledger.step_holders([sms.step_key or ""]) == {
        sms.step_key: StepHolder(sms.action_id, SENDING)
    }


def test_an_unknown_outcome_holds_the_step_unless_resending(ledger: Ledger) -> None:
    run_id = start(ledger)
    whatsapp, sms = entry(1, channel="whatsapp"), entry(1, channel="sms")
    ledger.note([whatsapp, sms], run_id, T0)
    ledger.claim(whatsapp, run_id, T0)
    finish_attempt(ledger, whatsapp.action_id, run_id, "error")  # unknown
    key = [sms.step_key or ""]

    held = ledger.claim(sms, run_id, T0)
    assert (held.claimed, held.other_state) == (False, UNKNOWN)
    assert ledger.step_holders(key, resend_unknown=True) == {}

    assert ledger.claim(sms, run_id, T0, resend_unknown=True).claimed


def test_an_attempt_and_the_final_state_are_written_together(ledger: Ledger) -> None:
    run_id = start(ledger)
    ledger.note([entry(1)], run_id, T0)
    ledger.claim(entry(1), run_id, T0)
    ledger.record_attempt(
        "mes_sms_1",
        run_id,
        number=1,
        started_at=T0,
        finished_at=T0,
        outcome="temporary",
        provider="sms-api",
        error="503",
        details={"status": 503},
        final=False,
    )
    assert ledger.action("mes_sms_1")["state"] == SENDING  # type: ignore[index]

    finish_attempt(ledger, "mes_sms_1", run_id, "sent", number=2)

    action = ledger.action("mes_sms_1")
    assert action is not None
    assert (action["state"], action["attempts"]) == (SENT, 2)
    assert action["provider_message_id"] == "SM2"
    attempts = ledger.attempts("mes_sms_1")
    assert [(a["number"], a["outcome"]) for a in attempts] == [
        (1, "temporary"),
        (2, "sent"),
    ]
    assert attempts[0]["details"] == '{"status": 503}'


def test_actions_left_sending_by_a_dead_run_become_unknown(ledger: Ledger) -> None:
    dead = start(ledger)
    ledger.note([entry(1), entry(2)], dead, T0)
    ledger.claim(entry(1), dead, T0)  # killed before the provider answered

    current = start(ledger, T0 + dt.timedelta(hours=1))
    ledger.note([entry(3)], current, T0)
    ledger.claim(entry(3), current, T0)  # this run's own claim stays
    recovered = ledger.recover_interrupted("varejo", current, T0)

    assert [(r.action_id, r.run_id, r.attempt) for r in recovered] == [
        ("mes_sms_1", dead, 1)
    ]
    states = ledger.states(["mes_sms_1", "mes_sms_2", "mes_sms_3"])
    assert [states[f"mes_sms_{n}"].state for n in (1, 2, 3)] == [
        UNKNOWN,
        PLANNED,
        SENDING,
    ]
    assert ledger.attempts("mes_sms_1")[0]["outcome"] == "unknown"


def test_the_run_lock_is_a_lease(ledger: Ledger) -> None:
    lease = 60.0
    assert (
        ledger.try_lock("run:x", "a", run_id=1, host="h", pid=1, at=T0, lease=lease)
        is None
    )

    holder = ledger.try_lock(
        "run:x", "b", run_id=2, host="h", pid=2, at=T0, lease=lease
    )
    assert holder is not None
    assert (holder.holder, holder.pid, holder.run_id) == ("a", 1, 1)
    assert holder.expires_at == T0 + dt.timedelta(seconds=lease)

    assert ledger.renew_lock(
        "run:x", "a", at=T0 + dt.timedelta(seconds=50), lease=lease
    )
    assert not ledger.renew_lock("run:x", "b", at=T0, lease=lease)
    still = T0 + dt.timedelta(seconds=100)  # before the renewed expiry
    assert ledger.try_lock(
        "run:x", "b", run_id=2, host="h", pid=2, at=still, lease=lease
    )

    expired = T0 + dt.timedelta(seconds=111)
    assert (
        ledger.try_lock(
            "run:x", "b", run_id=2, host="h", pid=2, at=expired, lease=lease
        )
        is None
    )
    assert not ledger.renew_lock("run:x", "a", at=expired, lease=lease)

    ledger.release_lock("run:x", "b")
    assert (
        ledger.try_lock("run:x", "c", run_id=3, host="h", pid=3, at=T0, lease=lease)
        is None
    )


def test_a_dead_holder_can_be_taken_over_once(ledger: Ledger) -> None:
    ledger.try_lock("run:x", "dead", run_id=1, host="h", pid=1, at=T0, lease=60)
    stale = ledger.try_lock("run:x", "me", run_id=2, host="h", pid=2, at=T0, lease=60)
    assert stale is not None

    assert ledger.take_over_lock("run:x", stale, "me", host="h", pid=2, at=T0, lease=60)
    assert not ledger.take_over_lock(
        "run:x", stale, "other", host="h", pid=3, at=T0, lease=60
    )


def test_only_completed_runs_count_for_catch_up(ledger: Ledger) -> None:
    first = start(ledger, T0)
    ledger.finish_run(first, RUN_COMPLETED, {"sent": 1}, T0)
    later = T0 + dt.timedelta(days=1)
    start(ledger, later)  # still running (or killed)

    assert ledger.last_completed_as_of("varejo") == T0
    assert ledger.last_completed_as_of("other") is None
    runs = ledger.runs("varejo")
    assert [r["status"] for r in runs] == [RUN_COMPLETED, "running"]
    assert runs[0]["counts"] == '{"sent": 1}'


def test_delivery_receipts_keep_the_latest_status(ledger: Ledger) -> None:
    run_id = start(ledger)
    ledger.note([entry(1)], run_id, T0)
    ledger.claim(entry(1), run_id, T0)
    finish_attempt(ledger, "mes_sms_1", run_id, "sent")
    delivered = T0 + dt.timedelta(minutes=2)

    assert ledger.record_delivery_status("sms-api", "SM1", "delivered", delivered, {})
    assert ledger.record_delivery_status(
        "sms-api", "SM1", "sent", T0 + dt.timedelta(minutes=1), {"late": True}
    )
    assert not ledger.record_delivery_status("sms-api", "SM404", "failed", T0, {})
    assert not ledger.record_delivery_status("other", "SM1", "failed", T0, {})

    action = ledger.action("mes_sms_1")
    assert action is not None
    assert action["delivery_status"] == "delivered"
    with ledger.engine.connect() as conn:
        receipts = conn.execute(sa.select(ledger.tables["receipts"])).all()
    assert len(receipts) == 4  # every receipt is kept, known or not


def test_concurrent_claims_let_exactly_one_through(ledger: Ledger) -> None:
    run_id = start(ledger)
    entries = [entry(number) for number in range(20)]
    ledger.note(entries, run_id, T0)
    won: list[str] = []
    barrier = threading.Barrier(4)

    def claim_all() -> None:
        barrier.wait()
        for item in entries:
            if ledger.claim(item, run_id, T0).claimed:
                won.append(item.action_id)

    workers = [threading.Thread(target=claim_all) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert sorted(won) == sorted(e.action_id for e in entries)
    assert len(won) == len(set(won))


def test_sqlite_ledger_runs_in_wal_mode(tmp_path: Path) -> None:
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'l.sqlite3'}")
    assert ledger is not None
    with ledger.engine.connect() as conn:
        mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
        busy = conn.exec_driver_sql("PRAGMA busy_timeout").scalar()
    ledger.close()
    assert (mode, busy) == ("wal", 30000)


def test_an_unreachable_database_is_a_ledger_error() -> None:
    with pytest.raises(LedgerError):
        Ledger.open("postgresql+psycopg://nobody@127.0.0.1:1/none")
    with pytest.raises(LedgerError, match="not a database URL"):
        Ledger.open("not a url")


def test_a_claim_chosen_as_deadlock_victim_is_tried_again(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    ledger = Ledger.open(postgres_url, prefix=unique_prefix())
    assert ledger is not None
    try:
        run_id = start(ledger)
        failed, wanted = entry(1, channel="rcs"), entry(1, channel="sms")
        ledger.note([failed, wanted], run_id, T0)
        ledger.claim(failed, run_id, T0)
        finish_attempt(ledger, failed.action_id, run_id, "permanent")
        claims, actions = ledger.tables["step_claims"], ledger.tables["actions"]
        outcome: list[bool] = []

        with ledger.engine.connect() as other:
            other.begin()
            # Hold the step; the claim will lock its action, then wait here.
            other.execute(sa.update(claims).values(claimed_at=T0.replace(tzinfo=None)))
            with caplog.at_level(logging.DEBUG, logger="adapters.ledger"):
                worker = threading.Thread(
                    target=lambda: outcome.append(
                        ledger.claim(wanted, run_id, T0).claimed
                    )
                )
                worker.start()
                time.sleep(0.3)
                # Now wait for the claim's action row: a deadlock, which
                # PostgreSQL resolves by failing the first waiter, the claim.
                other.execute(
                    sa.update(actions)
                    .where(actions.c.action_id == wanted.action_id)
                    .values(reason="held")
                )
                other.commit()
                worker.join(timeout=30)
    finally:
        ledger.metadata.drop_all(ledger.engine)
        ledger.close()

    assert outcome == [True]
    assert any("deadlock in claim" in r.getMessage() for r in caplog.records)
