"""Real `ruleset run` processes against a slow local SMS API: the run lock's
lease stays renewed through a long send, a run that lost its lock stops and
never overwrites the state the run that took over wrote, and SIGTERM or
SIGINT stop a run cleanly (exit 6, with its summary)."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from adapters import exitcodes
from adapters.ledger import PLANNED, SENT, UNKNOWN, Ledger, sqlite_url
from adapters.runconfig import RunConfigError, load_run_config
from tests.adapters.providers.servers import HttpServer, Recorded, Reply

RULESET = Path(__file__).parent / "fixtures" / "run" / "ruleset"
RULESET_COMMAND = str(Path(sys.executable).parent / "ruleset")
CUSTOMERS = 3


class SlowApi:
    """An SMS API on loopback that holds each answer until `release()`
    (or answers at once once released for good)."""

    def __init__(self, first: Reply | None = None) -> None:
        self.gate = threading.Event()
        self.first = first
        self.server = HttpServer(self._answer)

    def _answer(self, request: Recorded) -> Reply:
        if self.first is not None and len(self.server.requests) == 1:
            return self.first
        self.gate.wait(30)
        return Reply(200, {"id": f"m{len(self.server.requests)}"})

    def release(self) -> None:
        self.gate.set()

    def wait_for_requests(self, count: int) -> None:
        deadline = time.monotonic() + 20
        while len(self.server.requests) < count:
            if time.monotonic() > deadline:
                pytest.fail(f"the API never got {count} request(s)")
            time.sleep(0.02)


@pytest.fixture
def api() -> Iterator[SlowApi]:
    slow = SlowApi()
    with slow.server:
        yield slow
        slow.release()


def prepare(folder: Path, url: str, settings: str = "lock_lease: 1\n") -> Path:
    """Data where every customer is reached by SMS, and a configuration
    sending SMS to `url`; returns the configuration."""
    data = folder / "data"
    data.mkdir()
    customers = ["id,name,phone,whatsapp_ok"]
    invoices = ["id,customer_id,amount,due_date,status"]
    for n in range(1, CUSTOMERS + 1):
        customers.append(f"C{n},Cliente {n},+55119876500{n:02d},false")
        invoices.append(f"F{n},C{n},{n}0.00,2024-10-01,open")
    (data / "customers.csv").write_text("\n".join(customers) + "\n")
    (data / "invoices.csv").write_text("\n".join(invoices) + "\n")
    (data / "payments.csv").write_text("invoice_id,amount,paid_on\n")
    config = folder / "run.yaml"
    config.write_text(
        f"data: {data}\nstate_dir: {folder / 'state'}\n{settings}"
        f'providers:\n  sms: {{kind: sms_json, url: "{url}/sms"}}\n'
        "  default: {kind: outbox}\n",
        encoding="utf-8",
    )
    return config


def start(config: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RULESET_")}
    return subprocess.Popen(
        [RULESET_COMMAND, "run", str(RULESET), "--config", str(config),
         "--as-of", "2024-10-06T09:00", *args],
        env={**env, "TZ": "UTC"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=60)
    return process.returncode, out, err


def open_ledger(folder: Path) -> Ledger:
    ledger = Ledger.open(sqlite_url(folder / "state" / "ledger.sqlite3"))
    assert ledger is not None
    return ledger


def states(folder: Path) -> list[str]:
    """The ledger state of each message, by customer."""
    ledger = open_ledger(folder)
    actions = ledger.tables["actions"]
    with ledger.engine.connect() as conn:
        rows = conn.execute(
            sa.select(actions.c.customer_id, actions.c.state).order_by(
                actions.c.customer_id
            )
        ).all()
    ledger.close()
    return [row.state for row in rows]


def test_the_lease_is_renewed_while_a_send_outlasts_it(
    tmp_path: Path, api: SlowApi
) -> None:
    config = prepare(tmp_path, api.server.url)
    first = start(config, "--format", "json")
    api.wait_for_requests(1)
    time.sleep(1.6)  # the 1 s lease would have lapsed without renewal

    second = start(config, "--format", "json", "--lock-timeout", "0")
    second_code, second_out, _ = finish(second)
    api.release()
    first_code, first_out, first_err = finish(first)

    assert second_code == exitcodes.LOCKED, second_out
    assert json.loads(second_out)["lock_holder"]["pid"] == first.pid
    assert first_code == exitcodes.OK, first_err
    assert json.loads(first_out)["outcomes"] == {"sent": CUSTOMERS}
    assert states(tmp_path) == [SENT] * CUSTOMERS
    assert len(api.server.requests) == CUSTOMERS


def test_a_run_that_lost_its_lock_stops_and_keeps_the_other_runs_state(
    tmp_path: Path, api: SlowApi
) -> None:
    config = prepare(tmp_path, api.server.url)
    first = start(config, "--format", "json")
    api.wait_for_requests(1)

    # Another run takes the lock over (as after a lapsed lease) and marks
    # the message in flight unknown, as it does for a run it believes dead.
    ledger = open_ledger(tmp_path)
    locks = ledger.tables["locks"]
    with ledger.engine.begin() as conn:
        conn.execute(sa.update(locks).values(holder="the-other-run"))
    recovered = ledger.recover_interrupted(
        "cobranca_teste", 10_000, dt.datetime.now(dt.UTC)
    )
    ledger.close()
    time.sleep(0.6)  # the heartbeat (every lease / 3) finds the lock gone
    api.release()
    code, out, err = finish(first)

    report = json.loads(out)
    assert len(recovered) == 1
    assert code == exitcodes.LOCKED, err
    assert report["status"] == "lock_lost"
    assert any("lost its lock" in note for note in report["notes"])
    assert any("no longer held it" in note for note in report["notes"])
    assert len(api.server.requests) == 1  # nothing claimed after the loss
    assert states(tmp_path) == [UNKNOWN] + [PLANNED] * (CUSTOMERS - 1)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_finishes_the_send_in_flight_then_stops(
    tmp_path: Path, api: SlowApi, signum: signal.Signals
) -> None:
    config = prepare(tmp_path, api.server.url, "lock_lease: 30\n")
    first = start(config)
    api.wait_for_requests(1)

    first.send_signal(signum)
    time.sleep(0.3)
    api.release()
    code, out, err = finish(first)
    rerun = start(config, "--format", "json")
    rerun_code, rerun_out, _ = finish(rerun)

    assert code == exitcodes.STOPPED, err
    assert "Traceback" not in err
    assert out.splitlines()[0].endswith(": stopped")
    assert f"stopped by {signum.name}" in out
    assert "sent 1" in out
    assert len(api.server.requests) == CUSTOMERS  # the rerun sent the others
    assert rerun_code == exitcodes.OK
    assert json.loads(rerun_out)["outcomes"] == {
        "sent": CUSTOMERS - 1,
        "skipped": 1,
    }
    assert states(tmp_path) == [SENT] * CUSTOMERS


def test_a_signal_cuts_a_retry_after_wait_short_and_the_message_stays_planned(
    tmp_path: Path,
) -> None:
    slow = SlowApi(first=Reply(429, {"error": "slow down"}, {"Retry-After": "25"}))
    slow.release()
    with slow.server:
        config = prepare(
            tmp_path, slow.server.url, "lock_lease: 60\nretries: {attempts: 3}\n"
        )
        first = start(config, "--format", "json")
        slow.wait_for_requests(1)
        time.sleep(0.5)  # inside the 25 s wait
        began = time.monotonic()
        first.send_signal(signal.SIGTERM)
        code, out, err = finish(first)
        stopped_in = time.monotonic() - began
        after_stop = states(tmp_path)
        rerun_code, rerun_out, _ = finish(start(config, "--format", "json"))

    report = json.loads(out)
    assert code == exitcodes.STOPPED, err
    assert stopped_in < 10
    assert report["status"] == "stopped"
    assert [f["error"] for f in report["failures"]] == [
        "not sent: the run stopped while waiting to send it; "
        "it stays planned for the next run"
    ]
    assert after_stop == [PLANNED] * CUSTOMERS
    assert rerun_code == exitcodes.OK
    assert json.loads(rerun_out)["outcomes"] == {"sent": CUSTOMERS}


# -- the configuration keeps Retry-After waits shorter than the lease ------------


def test_max_retry_after_must_be_shorter_than_the_lease(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("lock_lease: 120\nretries:\n  max_retry_after: 120\n")

    with pytest.raises(RunConfigError) as caught:
        load_run_config(config, {})

    assert caught.value.where == f"{config}:3:20"
    assert "must be shorter than lock_lease (120s)" in caught.value.message


def test_a_provider_may_not_wait_longer_than_the_lease_either(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(
        "providers:\n  sms:\n    kind: outbox\n"
        "    retries: {attempts: 2, max_retry_after: 400}\n"
    )

    with pytest.raises(RunConfigError) as caught:
        load_run_config(config, {})

    line = config.read_text().splitlines()[3]
    assert caught.value.where == f"{config}:4:{line.index('400') + 1}"


def test_the_default_retry_after_wait_is_half_the_lease(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(
        "lock_lease: 40\nretries: {attempts: 2}\n"
        "providers:\n  sms: {kind: outbox, retries: {attempts: 1}}\n"
    )

    loaded = load_run_config(config, {})
    embedded = load_run_config(None, {})

    assert loaded.retries.max_retry_after == 20
    sms = loaded.provider_for("sms")
    assert sms is not None and sms.retries is not None
    assert sms.retries.max_retry_after == 20
    assert embedded.retries.max_retry_after < embedded.lock_lease
