"""Voice call tasks against a local voice-agent API."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.providers.base import PermanentFailure, TemporaryFailure
from adapters.providers.registry import build_provider
from tests.adapters.providers.conftest import MessageFactory
from tests.adapters.providers.servers import HttpServer, Reply

ENV = {"VOICE_TOKEN": "vt-1"}


def voice(server: HttpServer, **extra: Any) -> Any:
    options = {
        "kind": "voice_tasks",
        "url": server.url + "/v1/call-tasks",
        "token_env": "VOICE_TOKEN",
        "callback_url": "https://hooks.example.com/receipts/voice",
        "language": "pt-BR",
        **extra,
    }
    return build_provider("voz", options, ENV)


def test_a_call_task_with_script_number_and_callback(
    http_server: HttpServer, make_message: MessageFactory
) -> None:
    http_server.script(Reply(201, {"task_id": "task-9", "status": "queued"}))
    message = make_message(
        channel="voz",
        channel_kind="voice",
        extras={"script": "Olá Maria. Sua fatura vence hoje."},
    )

    result = voice(http_server, caller_id="+551130000000").send(message)

    [request] = http_server.requests
    assert (request.method, request.path) == ("POST", "/v1/call-tasks")
    assert request.headers["authorization"] == "Bearer vt-1"
    assert request.headers["idempotency-key"] == message.action_id
    assert request.json() == {
        "action_id": message.action_id,
        "customer_id": "C-42",
        "to": "+5511987654321",
        "script": "Olá Maria. Sua fatura vence hoje.",
        "callback_url": "https://hooks.example.com/receipts/voice",
        "language": "pt-BR",
        "caller_id": "+551130000000",
    }
    assert result.provider_message_id == "task-9"
    assert result.details == {"status": "queued"}


def test_the_body_is_the_script_when_the_policy_has_none(
    http_server: HttpServer, make_message: MessageFactory
) -> None:
    http_server.script(Reply(202, {"data": {"id": 31}}))

    result = voice(http_server, task_id_field="data.id").send(
        make_message(body="Sua fatura vence amanhã.")
    )

    assert http_server.requests[0].json()["script"] == "Sua fatura vence amanhã."
    assert result.provider_message_id == "31"


def test_an_empty_script_is_refused_before_calling(
    http_server: HttpServer, make_message: MessageFactory
) -> None:
    with pytest.raises(PermanentFailure, match="script is empty"):
        voice(http_server).send(make_message(body="  "))
    assert http_server.requests == []


@pytest.mark.parametrize(
    ("reply", "failure"),
    [
        (Reply(429, {"message": "too many calls"}), TemporaryFailure),
        (Reply(500, "oops"), TemporaryFailure),
        (Reply(422, {"message": "number is a landline"}), PermanentFailure),
    ],
)
def test_failures_map_as_for_every_http_provider(
    http_server: HttpServer,
    make_message: MessageFactory,
    reply: Reply,
    failure: type[Exception],
) -> None:
    http_server.script(reply)

    with pytest.raises(failure):
        voice(http_server).send(make_message())
