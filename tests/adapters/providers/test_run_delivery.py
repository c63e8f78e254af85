"""`ruleset run` against a local Twilio-style SMS API: retries on 503,
a permanent 400 that does not stop the others, and Retry-After honoured.

These run the real command (click's runner, in process) with a run
configuration that points the `sms` channel at the local server, and read
the ledger the run wrote.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from adapters.cli import main
from adapters.ledger import Ledger, sqlite_url
from adapters.providers.registry import build_provider
from adapters.retry import RetryPolicy, deliver
from tests.adapters.providers.conftest import MessageFactory
from tests.adapters.providers.servers import HttpServer, Recorded, Reply

FIXTURE = Path(__file__).parent / "fixtures" / "sms_run"
AS_OF = "2024-10-01T10:00"
ANA, BRUNO, CARLA = "+5511987650001", "+5511987650002", "+5511987650003"
ENV = {"TWILIO_TOKEN": "tok-secret"}


class SmsApi:
    """A Twilio-style API whose answers are scripted per phone number."""

    def __init__(self) -> None:
        self.script: dict[str, deque[Reply]] = {}
        self._count = 0

    def __call__(self, request: Recorded) -> Reply:
        phone = request.form()["To"]
        replies = self.script.get(phone)
        if replies:
            return replies.popleft()
        self._count += 1
        return Reply(201, {"sid": f"SM{self._count:04d}", "status": "queued"})


@pytest.fixture
def sms_api() -> Iterator[tuple[HttpServer, SmsApi]]:
    api = SmsApi()
    with HttpServer(api) as server:
        yield server, api


def unavailable() -> Reply:
    body = {"code": 20503, "message": "Service unavailable", "status": 503}
    return Reply(503, body)


def run(tmp_path: Path, server: HttpServer, *flags: str) -> dict[str, Any]:
    """`ruleset run` with the SMS channel on the local API; the JSON report."""
    config = tmp_path / "run.yaml"
    config.write_text(
        f"""\
data: {FIXTURE / "data"}
state_dir: {tmp_path / "state"}
retries: {{attempts: 4, base_delay: 0.01, max_delay: 0.05}}
providers:
  sms:
    kind: twilio
    account_sid: AC0001
    auth_token_env: TWILIO_TOKEN
    from: "+5511900000000"
    base_url: {server.url}
    timeout: 5
    rate_limit: 50/s
""",
        encoding="utf-8",
    )
    result = CliRunner().invoke(
        main,
        [
            "run",
            str(FIXTURE / "ruleset.yaml"),
            "--config",
            str(config),
            "--as-of",
            AS_OF,
            "--format",
            "json",
            *flags,
        ],
        env=ENV,
    )
    report: dict[str, Any] = json.loads(result.output)
    assert result.exit_code == report["exit_code"], result.output
    return report


def ledger_rows(tmp_path: Path) -> dict[str, tuple[dict[str, Any], list[Any]]]:
    """Each action in the ledger, with its attempts, by customer."""
    ledger = Ledger.open(sqlite_url(tmp_path / "state" / "ledger.sqlite3"))
    assert ledger is not None
    try:
        with ledger.engine.connect() as connection:
            table = ledger.tables["actions"]
            actions = [
                dict(row) for row in connection.execute(table.select()).mappings()
            ]
        return {
            action["customer_id"]: (action, ledger.attempts(action["action_id"]))
            for action in actions
        }
    finally:
        ledger.close()


def to(requests: list[Recorded], phone: str) -> list[Recorded]:
    return [request for request in requests if request.form()["To"] == phone]


def test_503_twice_then_200_sends_once(
    tmp_path: Path, sms_api: tuple[HttpServer, SmsApi]
) -> None:
    server, api = sms_api
    api.script[ANA] = deque([unavailable(), unavailable()])

    report = run(tmp_path, server)

    assert report["exit_code"] == 0
    assert report["outcomes"] == {"sent": 3}
    ana = to(server.requests, ANA)
    assert len(ana) == 3  # two refused, one accepted
    assert len({request.body for request in ana}) == 1  # the same message
    action, attempts = ledger_rows(tmp_path)["C1"]
    assert action["state"] == "sent"
    assert action["provider_message_id"] == "SM0001"
    assert [a["outcome"] for a in attempts] == ["temporary", "temporary", "sent"]
    assert "Service unavailable" in attempts[0]["error"]


def test_a_400_fails_permanently_and_the_others_still_go_out(
    tmp_path: Path, sms_api: tuple[HttpServer, SmsApi]
) -> None:
    server, api = sms_api
    refusal = {
        "code": 21610,
        "message": "Attempt to send to unsubscribed recipient",
        "more_info": "https://www.twilio.com/docs/errors/21610",
        "status": 400,
    }
    api.script[BRUNO] = deque([Reply(400, refusal)])

    report = run(tmp_path, server)

    assert report["exit_code"] == 1  # finished, with a failed send
    assert report["outcomes"] == {"failed_permanent": 1, "sent": 2}
    assert len(to(server.requests, BRUNO)) == 1  # never retried
    assert len(to(server.requests, ANA)) == len(to(server.requests, CARLA)) == 1
    rows = ledger_rows(tmp_path)
    bruno, attempts = rows["C2"]
    assert bruno["state"] == "failed_permanent"
    assert "unsubscribed recipient" in bruno["error"]
    assert json.loads(attempts[0]["details"])["provider_code"] == "21610"
    assert rows["C1"][0]["state"] == rows["C3"][0]["state"] == "sent"


def test_a_429_with_retry_after_waits_as_told(
    tmp_path: Path, sms_api: tuple[HttpServer, SmsApi]
) -> None:
    server, api = sms_api
    too_many = {"code": 20429, "message": "Too Many Requests", "status": 429}
    api.script[CARLA] = deque([Reply(429, too_many, headers={"Retry-After": "1"})])

    report = run(tmp_path, server)

    assert report["outcomes"] == {"sent": 3}
    refused, accepted = to(server.requests, CARLA)
    # The back-off alone would wait at most 0.05 s: only Retry-After
    # explains a whole second.
    assert 1.0 <= accepted.at - refused.at < 2.0
    _, attempts = ledger_rows(tmp_path)["C3"]
    assert [a["outcome"] for a in attempts] == ["temporary", "sent"]


def test_deliver_hands_the_retry_after_to_its_sleep(
    http_server: HttpServer, make_message: MessageFactory
) -> None:
    http_server.script(
        Reply(
            429, {"code": 20429, "message": "Too Many"}, headers={"Retry-After": "7"}
        ),
        unavailable(),
    )
    provider = build_provider(
        "sms",
        {
            "kind": "twilio",
            "account_sid": "AC0001",
            "auth_token_env": "TWILIO_TOKEN",
            "from": "+5511900000000",
            "base_url": http_server.url,
        },
        ENV,
    )
    delays: list[float] = []
    started = time.monotonic()

    delivery = deliver(
        provider,
        make_message(),
        RetryPolicy(attempts=3, base_delay=2.0, max_delay=60.0),
        None,
        sleep=delays.append,
        draw=lambda: 0.5,
    )

    assert delivery.status == "sent"
    # 7 s as the API asked, then half of the 4 s back-off ceiling.
    assert delays == [7.0, 2.0]
    assert time.monotonic() - started < 1.0  # nothing really slept
    assert len(http_server.requests) == 3


def test_a_lost_answer_is_reported_unknown_and_never_sent_twice(
    tmp_path: Path, sms_api: tuple[HttpServer, SmsApi]
) -> None:
    server, api = sms_api
    # Twilio's Messages API takes no idempotency key: Ana's request is
    # read, and the answer never comes.
    api.script[ANA] = deque([Reply(hang_up=True)])

    first = run(tmp_path, server)
    again = run(tmp_path, server)

    assert first["exit_code"] == 1
    assert first["outcomes"] == {"sent": 2, "unknown": 1}
    [unknown] = first["failures"]
    assert (unknown["customer"], unknown["outcome"]) == ("C1", "unknown")
    assert again["skipped"] == {"already_sent": 2, "unknown_outcome_before": 1}
    assert len(to(server.requests, ANA)) == 1
    action, attempts = ledger_rows(tmp_path)["C1"]
    assert action["state"] == "unknown"
    assert [a["outcome"] for a in attempts] == ["unknown"]

    resent = run(tmp_path, server, "--resend-unknown")

    assert resent["outcomes"] == {"sent": 1, "skipped": 2}
    assert len(to(server.requests, ANA)) == 2
    assert ledger_rows(tmp_path)["C1"][0]["state"] == "sent"
