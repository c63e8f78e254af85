"""WhatsApp Business Cloud API template messages against a local Graph API."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.providers.base import PermanentFailure, TemporaryFailure
from adapters.providers.registry import build_provider
from tests.adapters.providers.conftest import MessageFactory
from tests.adapters.providers.servers import HttpServer, Reply

ENV = {"WHATSAPP_TOKEN": "EAAG-token"}

TEMPLATE = {
    "template": "lembrete_fatura",
    "language": "pt_BR",
    "params": ["Maria", "R$ 120,50", "10/03"],
}

ACCEPTED = Reply(
    200,
    {
        "messaging_product": "whatsapp",
        "contacts": [{"input": "5511987654321", "wa_id": "5511987654321"}],
        "messages": [
            {
                "id": "wamid.HBgLNTUxMTk4NzY1NDMyMRUCABEYEjQ",
                "message_status": "accepted",
            }
        ],
    },
)


def whatsapp(server: HttpServer, **extra: Any) -> Any:
    options = {
        "kind": "whatsapp_cloud",
        "phone_number_id": "106540352242922",
        "token_env": "WHATSAPP_TOKEN",
        "base_url": server.url,
        **extra,
    }
    return build_provider("whatsapp", options, ENV)


def graph_error(code: int, message: str, status: int = 400, **more: Any) -> Reply:
    error = {
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "AbCdEf123",
        **more,
    }
    return Reply(status, {"error": error})


def test_a_template_message_as_the_cloud_api_expects(
    http_server: HttpServer, make_message: MessageFactory
) -> None:
    http_server.script(ACCEPTED)
    message = make_message(channel="whatsapp", channel_kind="whatsapp", extras=TEMPLATE)

    result = whatsapp(http_server).send(message)

    [request] = http_server.requests
    assert (request.method, request.path) == ("POST", "/v21.0/106540352242922/messages")
    assert request.headers["authorization"] == "Bearer EAAG-token"
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "5511987654321",
        "type": "template",
        "template": {
            "name": "lembrete_fatura",
            "language": {"code": "pt_BR"},
            "components": [
                {
                    "type": "body",
                    "parameters": [
                        {"type": "text", "text": "Maria"},
                        {"type": "text", "text": "R$ 120,50"},
                        {"type": "text", "text": "10/03"},
                    ],
                }
            ],
        },
        "biz_opaque_callback_data": "mes_0123456789abcdef01234567",
    }
    assert result.provider_message_id == "wamid.HBgLNTUxMTk4NzY1NDMyMRUCABEYEjQ"
    assert result.details == {
        "template": "lembrete_fatura",
        "status": "accepted",
        "wa_id": "5511987654321",
    }


def test_without_a_template_mapping_nothing_is_sent(
    http_server: HttpServer, make_message: MessageFactory
) -> None:
    with pytest.raises(PermanentFailure, match="approved by Meta"):
        whatsapp(http_server).send(make_message(channel="whatsapp"))
    assert http_server.requests == []


def test_a_template_without_params_has_no_components(
    http_server: HttpServer, make_message: MessageFactory
) -> None:
    http_server.script(ACCEPTED)
    provider = whatsapp(http_server, api_version="v19.0", language="en_US")

    provider.send(make_message(extras={"template": "hello_world"}))

    [request] = http_server.requests
    assert request.path == "/v19.0/106540352242922/messages"
    assert request.json()["template"] == {
        "name": "hello_world",
        "language": {"code": "en_US"},
    }


def test_line_breaks_in_parameters_are_flattened_and_empty_ones_refused(
    http_server: HttpServer, make_message: MessageFactory
) -> None:
    http_server.script(ACCEPTED)
    provider = whatsapp(http_server)
    extras = {**TEMPLATE, "params": ["Maria\nda\tSilva", "R$     1,00"]}

    provider.send(make_message(extras=extras))
    with pytest.raises(PermanentFailure, match=r"parameter \{\{2\}\} is empty"):
        provider.send(make_message(extras={**TEMPLATE, "params": ["Ana", " \n "]}))

    parameters = http_server.requests[0].json()["template"]["components"][0]
    assert [p["text"] for p in parameters["parameters"]] == [
        "Maria da Silva",
        "R$ 1,00",
    ]
    assert len(http_server.requests) == 1


@pytest.mark.parametrize("code", [130429, 131048, 80007, 131056, 4])
def test_rate_limit_codes_are_temporary_even_in_a_400(
    http_server: HttpServer, make_message: MessageFactory, code: int
) -> None:
    http_server.script(graph_error(code, "(#130429) Rate limit hit"))

    with pytest.raises(TemporaryFailure) as caught:
        whatsapp(http_server).send(make_message(extras=TEMPLATE))

    assert caught.value.details["provider_code"] == str(code)
    assert caught.value.details["graph_fbtrace_id"] == "AbCdEf123"


def test_an_invalid_parameter_error_is_permanent_with_graph_details(
    http_server: HttpServer, make_message: MessageFactory
) -> None:
    http_server.script(
        graph_error(
            132000,
            "(#132000) Number of parameters does not match the expected number "
            "of params",
            error_subcode=2494073,
            error_data={"messaging_product": "whatsapp", "details": "body: 3 != 2"},
        )
    )

    with pytest.raises(PermanentFailure) as caught:
        whatsapp(http_server).send(make_message(extras=TEMPLATE))

    assert "Number of parameters does not match" in str(caught.value)
    assert "(body: 3 != 2)" in str(caught.value)
    assert caught.value.details["provider_code"] == "132000"
    assert caught.value.details["graph_error_subcode"] == 2494073
    assert caught.value.details["graph_type"] == "OAuthException"


def test_a_transient_graph_error_is_temporary(
    http_server: HttpServer, make_message: MessageFactory
) -> None:
    http_server.script(
        graph_error(2, "Service temporarily unavailable", is_transient=True)
    )

    with pytest.raises(TemporaryFailure):
        whatsapp(http_server).send(make_message(extras=TEMPLATE))


def test_an_expired_token_is_permanent(
    http_server: HttpServer, make_message: MessageFactory
) -> None:
    http_server.script(
        graph_error(190, "Error validating access token: Session has expired", 401)
    )

    with pytest.raises(PermanentFailure, match="Session has expired"):
        whatsapp(http_server).send(make_message(extras=TEMPLATE))
