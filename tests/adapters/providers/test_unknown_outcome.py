"""A send whose answer is lost is not sent again, unless a second copy
is harmless: each provider declares whether its API deduplicates on the
action id, and the servers here read the request and then hang up (or
stay silent past the timeout) to lose the answer for real."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from adapters.providers.base import OutboundMessage, TemporaryFailure
from adapters.providers.outbox import OutboxProvider
from adapters.providers.registry import build_provider
from adapters.retry import SENT, UNKNOWN, RetryPolicy, deliver
from tests.adapters.providers.conftest import MessageFactory
from tests.adapters.providers.servers import (
    HangingSmtpServer,
    HttpServer,
    Recorded,
    Reply,
)

ENV = {
    "TWILIO_TOKEN": "tok",
    "WHATSAPP_TOKEN": "wa",
    "RBM_TOKEN": "rbm",
    "HOOK_SECRET": "hook",
    "VOICE_TOKEN": "voice",
}
NO_WAIT = RetryPolicy(attempts=3, base_delay=0.0)


def no_sleep(seconds: float) -> None:
    """Back-offs are zero here; nothing should wait."""


# Provider kind: (options besides the URL, whether a duplicate is harmless).
HTTP_KINDS: dict[str, tuple[dict[str, Any], bool]] = {
    "twilio": (
        {
            "account_sid": "AC1",
            "auth_token_env": "TWILIO_TOKEN",
            "from": "+5511900000000",
        },
        False,
    ),
    "twilio with an idempotency header": (
        {
            "kind": "twilio",
            "account_sid": "AC1",
            "auth_token_env": "TWILIO_TOKEN",
            "from": "+5511900000000",
            "idempotency_header": "I-Idempotency-Key",
        },
        True,
    ),
    "sms_json": ({}, True),
    "sms_json without the header": (
        {"kind": "sms_json", "idempotency_header": False},
        False,
    ),
    "whatsapp_cloud": (
        {"phone_number_id": "1065", "token_env": "WHATSAPP_TOKEN"},
        False,
    ),
    "voice_tasks": (
        {"token_env": "VOICE_TOKEN", "callback_url": "https://hooks.example.com/v"},
        True,
    ),
    "webhook": ({"secret_env": "HOOK_SECRET"}, True),
    "rcs_rbm": ({"agent_id": "agent", "token_env": "RBM_TOKEN"}, True),
}


def http_provider(label: str, server: HttpServer) -> Any:
    options, _ = HTTP_KINDS[label]
    kind = options.get("kind", label)
    where = (
        {"base_url": server.url}
        if kind in ("twilio", "whatsapp_cloud", "rcs_rbm")
        else {"url": server.url + "/send"}
    )
    return build_provider(
        "channel", {"kind": kind, "timeout": 0.3, **options, **where}, ENV
    )


def message_for(make_message: MessageFactory) -> OutboundMessage:
    """A message every HTTP kind accepts (WhatsApp needs its template)."""
    return make_message(extras={"template": "lembrete", "language": "pt_BR"})


def api_losing_the_first_answer(lose: Reply) -> Callable[[Recorded], Reply]:
    """Answers as each API would, except the first message request."""
    posts = 0

    def answer(request: Recorded) -> Reply:
        nonlocal posts
        if request.method == "GET":  # RBM's capability check
            return Reply(200, {"features": ["RICHCARD_STANDALONE"]})
        posts += 1
        if posts == 1:
            return lose
        return Reply(
            201,
            {
                "sid": "SM1",
                "id": "g-1",
                "task_id": "t-1",
                "messages": [{"id": "wamid.1"}],
            },
        )

    return answer


@pytest.mark.parametrize(
    "lose",
    [
        Reply(hang_up=True),
        Reply(200, {}, delay=1.0),
        Reply(504, {"message": "upstream timed out"}),
        Reply(500, {"message": "internal error"}),
    ],
    ids=["hang-up", "silent-past-timeout", "gateway-timeout", "internal-error"],
)
@pytest.mark.parametrize("label", sorted(HTTP_KINDS))
def test_a_lost_answer_is_retried_only_where_a_duplicate_is_harmless(
    label: str, lose: Reply, make_message: MessageFactory
) -> None:
    harmless = HTTP_KINDS[label][1]
    with HttpServer(api_losing_the_first_answer(lose)) as server:
        provider = http_provider(label, server)

        delivery = deliver(provider, message_for(make_message), NO_WAIT, sleep=no_sleep)
        posts = [r for r in server.requests if r.method == "POST"]

    assert provider.idempotency_keys is harmless
    if harmless:
        assert delivery.status == SENT
        assert len(posts) == 2
        assert [a.outcome for a in delivery.attempts] == ["temporary", "sent"]
    else:
        assert delivery.status == UNKNOWN
        assert len(posts) == 1  # the message may be on the phone already
        assert [a.outcome for a in delivery.attempts] == ["unknown"]
        assert delivery.details["outcome_unknown"] is True


@pytest.mark.parametrize("label", sorted(HTTP_KINDS))
def test_a_request_turned_away_is_retried_by_every_provider(
    label: str, make_message: MessageFactory
) -> None:
    busy = Reply(503, {"message": "busy"})
    with HttpServer(api_losing_the_first_answer(busy)) as server:
        provider = http_provider(label, server)

        delivery = deliver(provider, message_for(make_message), NO_WAIT, sleep=no_sleep)

    assert delivery.status == SENT
    assert [a.outcome for a in delivery.attempts] == ["temporary", "sent"]


def test_at_least_once_retries_a_lost_answer_anyway(
    make_message: MessageFactory,
) -> None:
    with HttpServer(api_losing_the_first_answer(Reply(hang_up=True))) as server:
        provider = http_provider("twilio", server)

        delivery = deliver(
            provider, make_message(), NO_WAIT, sleep=no_sleep, resend_unknown=True
        )

    assert delivery.status == SENT
    assert len(server.requests) == 2


def test_a_refused_connection_is_retried_without_idempotency_keys(
    make_message: MessageFactory,
) -> None:
    # Nothing went out, so nothing can be duplicated.
    with HttpServer(lambda request: Reply(201, {"sid": "SM1"})) as server:
        provider = http_provider("twilio", server)
    # The server is gone now: its port refuses connections.

    delivery = deliver(provider, make_message(), NO_WAIT, sleep=no_sleep)

    assert [a.outcome for a in delivery.attempts] == ["temporary"] * 3
    assert delivery.details["outcome_unknown"] is False


# --- SMTP ---------------------------------------------------------------


def smtp(port: int) -> Any:
    options = {
        "kind": "smtp",
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "from_address": "cobranca@loja.example.com",
        "timeout": 2,
    }
    return build_provider("email", options, {})


def email(make_message: MessageFactory) -> OutboundMessage:
    return make_message(
        channel="email",
        channel_kind="email",
        address="maria@example.com",
        subject="Sua fatura vence hoje",
        body="Olá, Maria.\n",
    )


def test_smtp_lost_after_the_message_text_is_unknown_and_not_resent(
    make_message: MessageFactory,
) -> None:
    with HangingSmtpServer(after="data") as server:
        provider = smtp(server.port)
        try:
            with pytest.raises(TemporaryFailure) as caught:
                provider.send(email(make_message))
            delivery = deliver(provider, email(make_message), NO_WAIT, sleep=no_sleep)
        finally:
            provider.close()

    assert caught.value.details["outcome_unknown"] is True
    assert provider.idempotency_keys is False
    assert delivery.status == UNKNOWN
    assert server.messages_read == 2  # one per call: no retry


def test_smtp_lost_before_data_is_retried(make_message: MessageFactory) -> None:
    with HangingSmtpServer(after="rcpt") as server:
        provider = smtp(server.port)
        try:
            with pytest.raises(TemporaryFailure) as caught:
                provider.send(email(make_message))
            delivery = deliver(provider, email(make_message), NO_WAIT, sleep=no_sleep)
        finally:
            provider.close()

    assert caught.value.details["outcome_unknown"] is False
    assert [a.outcome for a in delivery.attempts] == ["temporary"] * 3
    assert server.messages_read == 0


# --- the outbox -----------------------------------------------------------


def test_an_outbox_line_written_before_fsync_failed_is_not_written_again(
    tmp_path: Path, make_message: MessageFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A disk error at fsync cannot be provoked on a healthy disk; the line
    # is in the file all the same, which is what this checks.
    def failing_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    outbox = OutboxProvider(tmp_path / "outbox.jsonl")
    monkeypatch.setattr(os, "fsync", failing_fsync)
    try:
        delivery = deliver(outbox, make_message(), NO_WAIT, sleep=no_sleep)
    finally:
        outbox.close()

    assert delivery.status == UNKNOWN
    lines = (tmp_path / "outbox.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1


def test_an_outbox_that_cannot_open_its_file_is_retried(
    tmp_path: Path, make_message: MessageFactory
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    outbox = OutboxProvider(blocker / "outbox.jsonl")  # a folder under a file

    delivery = deliver(outbox, make_message(), NO_WAIT, sleep=no_sleep)

    assert [a.outcome for a in delivery.attempts] == ["temporary"] * 3
