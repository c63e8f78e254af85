"""`ruleset receipts` as a real process: a run sends an SMS through the
local API, the provider's signed status callback reaches the receiver, and
the ledger shows the message delivered."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
from click.testing import CliRunner

from adapters.cli import main
from adapters.ledger import Ledger, sqlite_url
from adapters.providers.status import twilio_signature
from tests.adapters.providers.servers import HttpServer, Recorded, Reply

FIXTURE = Path(__file__).parent / "fixtures" / "sms_run"
CALLBACK = "https://hooks.loja.example.com/receipts/sms"
RULESET = str(Path(sys.executable).parent / "ruleset")


def sms_api(request: Recorded) -> Reply:
    number = request.form()["To"][-1]
    return Reply(201, {"sid": f"SM{number}", "status": "queued"})


@pytest.fixture
def config(tmp_path: Path) -> Iterator[Path]:
    with HttpServer(sms_api) as server:
        path = tmp_path / "run.yaml"
        path.write_text(
            f"""\
data: {FIXTURE / "data"}
state_dir: {tmp_path / "state"}
providers:
  sms:
    kind: twilio
    account_sid: AC0001
    auth_token_env: TWILIO_TOKEN
    from: "+5511900000000"
    base_url: {server.url}
    status_callback: {CALLBACK}
""",
            encoding="utf-8",
        )
        yield path


def test_a_status_callback_reaches_the_ledger(tmp_path: Path, config: Path) -> None:
    env = {**os.environ, "TWILIO_TOKEN": "tok-secret"}
    sent = CliRunner().invoke(
        main,
        ["run", str(FIXTURE / "ruleset.yaml"), "--config", str(config),
         "--as-of", "2024-10-01T10:00"],
        env={"TWILIO_TOKEN": "tok-secret"},
    )  # fmt: skip
    assert sent.exit_code == 0, sent.output

    receiver = subprocess.Popen(
        [RULESET, "receipts", "--config", str(config), "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert receiver.stdout is not None
        first = receiver.stdout.readline()
        assert first.startswith("listening on http://127.0.0.1:"), first
        base = first.split()[-1]
        assert receiver.stdout.readline().strip() == "sms: /receipts/sms"

        form = {"MessageSid": "SM1", "MessageStatus": "delivered", "AccountSid": "AC1"}
        request = urllib.request.Request(
            base + "/receipts/sms",
            data=urlencode(form).encode(),
            headers={
                "X-Twilio-Signature": twilio_signature("tok-secret", CALLBACK, form),
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200
    finally:
        receiver.send_signal(signal.SIGTERM)
        out, err = receiver.communicate(timeout=10)

    assert receiver.returncode == 0, err
    assert "stopped: 1 status(es) recorded, 0 for messages" in out
    ledger = Ledger.open(sqlite_url(tmp_path / "state" / "ledger.sqlite3"))
    assert ledger is not None
    try:
        with ledger.engine.connect() as connection:
            table = ledger.tables["actions"]
            rows = {
                row.customer_id: (row.provider_message_id, row.delivery_status)
                for row in connection.execute(table.select())
            }
    finally:
        ledger.close()
    assert rows == {
        "C1": ("SM1", "delivered"),
        "C2": ("SM2", None),
        "C3": ("SM3", None),
    }


def test_without_any_provider_that_sends_receipts_it_says_so(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("providers:\n  default: {kind: outbox}\n", encoding="utf-8")

    result = CliRunner().invoke(main, ["receipts", "--config", str(config)])

    assert result.exit_code == 4
    assert "no provider entry can verify delivery callbacks" in result.output


def test_a_missing_ledger_is_not_created(tmp_path: Path, config: Path) -> None:
    """Receipts belong to recorded sends: no ledger yet means a wrong path."""
    result = CliRunner().invoke(
        main, ["receipts", "--config", str(config)], env={"TWILIO_TOKEN": "t"}
    )

    assert result.exit_code == 4
    assert "no ledger at" in result.output
    assert not (tmp_path / "state" / "ledger.sqlite3").exists()


def test_a_public_address_is_a_usage_error(tmp_path: Path, config: Path) -> None:
    ledger = Ledger.open(sqlite_url(tmp_path / "state" / "ledger.sqlite3"))
    assert ledger is not None
    ledger.close()
    result = CliRunner().invoke(
        main,
        ["receipts", "--config", str(config), "--host", "0.0.0.0"],
        env={"TWILIO_TOKEN": "t"},
    )

    assert result.exit_code == 2
    assert "loopback only" in result.output
