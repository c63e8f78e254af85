"""The signed webhook: a local receiver verifies the signature with the
shared secret, as a real receiver would."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import pytest

from adapters.providers.base import PermanentFailure, TemporaryFailure
from adapters.providers.options import ProviderConfigError
from adapters.providers.registry import build_provider
from adapters.providers.webhook import sign, verify_signature
from tests.adapters.providers.conftest import MessageFactory
from tests.adapters.providers.servers import HttpServer, Recorded, Reply

SECRET = "whsec-4f1c9a"
ENV = {"HOOK_SECRET": SECRET, "HOOK_TOKEN": "t-77"}


def receiver(request: Recorded) -> Reply:
    """A receiver that checks the signature itself, from first principles."""
    timestamp = request.headers.get("x-ruleset-timestamp", "")
    expected = hmac.new(
        SECRET.encode(), timestamp.encode() + b"." + request.body, hashlib.sha256
    ).hexdigest()
    given = request.headers.get("x-ruleset-signature", "")
    fresh = timestamp.isdigit() and abs(time.time() - int(timestamp)) < 300
    if not fresh or not hmac.compare_digest(f"sha256={expected}", given):
        return Reply(401, {"error": "bad signature"})
    return Reply(202, {"receipt": {"id": "r-" + request.json()["action_id"][-4:]}})


def webhook(server: HttpServer, **extra: Any) -> Any:
    options = {
        "kind": "webhook",
        "url": server.url + "/hooks/collections",
        "secret_env": "HOOK_SECRET",
        **extra,
    }
    return build_provider("crm", options, ENV)


def test_the_receiver_verifies_the_signature_and_gets_the_message(
    make_message: MessageFactory,
) -> None:
    message = make_message(
        channel="crm", channel_kind="webhook", extras={"step": "lembrete"}
    )
    with HttpServer(receiver) as server:
        provider = webhook(
            server,
            message_id_field="receipt.id",
            headers={"Authorization": "Bearer ${HOOK_TOKEN}"},
        )

        result = provider.send(message)

    [request] = server.requests
    assert request.method == "POST" and request.path == "/hooks/collections"
    assert request.headers["idempotency-key"] == message.action_id
    assert request.headers["authorization"] == "Bearer t-77"
    assert request.json() == {
        "action_id": message.action_id,
        "address": "+5511987654321",
        "body": message.body,
        "channel": "crm",
        "channel_kind": "webhook",
        "customer_id": "C-42",
        "extras": {"step": "lembrete"},
        "html": None,
        "subject": None,
    }
    # Canonical JSON: the same message always gives the same bytes.
    assert request.body.startswith(b'{"action_id":')
    assert result.provider_message_id == "r-4567"


def test_a_receiver_with_another_secret_rejects_it(
    make_message: MessageFactory,
) -> None:
    with HttpServer(receiver) as server:
        options = {
            "kind": "webhook",
            "url": server.url + "/hooks/collections",
            "secret_env": "OTHER",
        }
        provider = build_provider("crm", options, {"OTHER": "not-the-secret"})

        with pytest.raises(PermanentFailure, match="401: bad signature"):
            provider.send(make_message())


def test_a_busy_receiver_is_a_temporary_failure(
    http_server: HttpServer, make_message: MessageFactory
) -> None:
    http_server.script(Reply(503, "", headers={"Retry-After": "2"}))

    with pytest.raises(TemporaryFailure) as caught:
        webhook(http_server).send(make_message())

    assert caught.value.retry_after == 2.0


def test_verify_signature_accepts_ours_and_refuses_tampering() -> None:
    body = b'{"a":1}'
    now = 1_760_000_000
    signature = sign(SECRET, now, body)

    assert verify_signature(SECRET, str(now), body, signature, now=now + 10)
    assert not verify_signature(SECRET, str(now), b'{"a":2}', signature, now=now)
    assert not verify_signature("other", str(now), body, signature, now=now)
    assert not verify_signature(SECRET, str(now + 1), body, signature, now=now)
    # A replay ten minutes later is refused even with a valid signature.
    assert not verify_signature(SECRET, str(now), body, signature, now=now + 600)
    assert not verify_signature(SECRET, None, body, signature, now=now)
    assert not verify_signature(SECRET, "abc", body, signature, now=now)


def test_the_secret_must_come_from_the_environment() -> None:
    entry = {"kind": "webhook", "url": "https://x.example.com", "secret": "abc"}

    with pytest.raises(ProviderConfigError, match="write `secret_env"):
        build_provider("crm", entry, {})
