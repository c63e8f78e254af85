"""SMS: the Twilio-style form post and the generic JSON POST, against a
local server that answers as those APIs do."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from adapters.providers.base import PermanentFailure, TemporaryFailure
from adapters.providers.options import ProviderConfigError
from adapters.providers.registry import build_provider
from tests.adapters.providers.conftest import MessageFactory
from tests.adapters.providers.servers import HttpServer, Reply

ENV = {"TWILIO_TOKEN": "tok-secret", "GATEWAY_KEY": "k-123"}


def twilio(server: HttpServer, **extra: Any) -> Any:
    options = {
        "kind": "twilio",
        "account_sid": "AC0001",
        "auth_token_env": "TWILIO_TOKEN",
        "from": "+5511900000000",
        "base_url": server.url,
        **extra,
    }
    return build_provider("sms", options, ENV)


def twilio_created(sid: str = "SM123", segments: str = "1") -> Reply:
    return Reply(
        201,
        {
            "sid": sid,
            "status": "queued",
            "num_segments": segments,
            "to": "+5511987654321",
            "error_code": None,
        },
    )


def test_twilio_request_is_a_form_post_with_basic_auth(
    http_server: HttpServer, make_message: MessageFactory
) -> None:
    http_server.script(twilio_created())
    provider = twilio(
        http_server, status_callback="https://hooks.example.com/receipts/sms"
    )

    result = provider.send(make_message(body="Oi João, fatura de R$ 10,00"))

    [request] = http_server.requests
    assert request.method == "POST"
    assert request.path == "/2010-04-01/Accounts/AC0001/Messages.json"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    expected = base64.b64encode(b"AC0001:tok-secret").decode()
    assert request.headers["authorization"] == f"Basic {expected}"
    assert request.form() == {
        "To": "+5511987654321",
        "From": "+5511900000000",
        "Body": "Oi João, fatura de R$ 10,00",
        "StatusCallback": "https://hooks.example.com/receipts/sms",
    }
    assert "idempotency-key" not in request.headers  # Twilio takes none
    assert result.provider == "sms"
    assert result.provider_message_id == "SM123"
    assert result.details["status"] == "queued"
    assert result.details["provider_segments"] == "1"


def test_twilio_reports_segments_and_encoding_of_the_body(
    http_server: HttpServer, make_message: MessageFactory
) -> None:
    http_server.script(twilio_created(), twilio_created())
    provider = twilio(http_server)

    plain = provider.send(make_message(body="a" * 161))
    accented = provider.send(make_message(body="ç" * 71))

    assert (plain.details["encoding"], plain.details["segments"]) == ("GSM-7", 2)
    assert (accented.details["encoding"], accented.details["segments"]) == (
        "UCS-2",
        2,
    )


def test_twilio_messaging_service_and_idempotency_header(
    http_server: HttpServer, make_message: MessageFactory
) -> None:
    http_server.script(twilio_created())
    options = {
        "kind": "twilio",
        "account_sid": "AC0001",
        "auth_token_env": "TWILIO_TOKEN",
        "messaging_service_sid": "MG777",
        "base_url": http_server.url,
        "idempotency_header": "I-Idempotency-Key",
    }

    build_provider("sms", options, ENV).send(make_message())

    [request] = http_server.requests
    assert request.form()["MessagingServiceSid"] == "MG777"
    assert "From" not in request.form()
    assert request.headers["i-idempotency-key"] == "mes_0123456789abcdef01234567"


def test_twilio_error_body_makes_a_permanent_failure_with_its_code(
    http_server: HttpServer, make_message: MessageFactory
) -> None:
    http_server.script(
        Reply(
            400,
            {
                "code": 21211,
                "message": "The 'To' number +551198 is not a valid phone number.",
                "more_info": "https://www.twilio.com/docs/errors/21211",
                "status": 400,
            },
        )
    )

    with pytest.raises(PermanentFailure) as caught:
        twilio(http_server).send(make_message())

    assert "is not a valid phone number" in str(caught.value)
    assert caught.value.details["provider_code"] == "21211"
    assert caught.value.details["http_status"] == 400


def test_twilio_429_is_temporary_with_retry_after(
    http_server: HttpServer, make_message: MessageFactory
) -> None:
    http_server.script(
        Reply(
            429,
            {"code": 20429, "message": "Too Many Requests", "status": 429},
            headers={"Retry-After": "3"},
        )
    )

    with pytest.raises(TemporaryFailure) as caught:
        twilio(http_server).send(make_message())

    assert caught.value.retry_after == 3.0
    assert caught.value.details["provider_code"] == "20429"


def test_a_number_that_is_not_e164_never_reaches_the_api(
    http_server: HttpServer, make_message: MessageFactory
) -> None:
    with pytest.raises(PermanentFailure, match="not an E.164"):
        twilio(http_server).send(make_message(address="11 98765-4321"))
    assert http_server.requests == []


def test_an_accepted_answer_without_sid_is_still_a_send(
    http_server: HttpServer, make_message: MessageFactory
) -> None:
    # Raising here would make the runner send again what was accepted.
    http_server.script(Reply(201, "<xml/>"))

    result = twilio(http_server).send(make_message())

    assert result.provider_message_id is None
    assert "no message sid" in result.details["warning"]


# --- generic JSON ----------------------------------------------------------


def json_sms(server: HttpServer, **extra: Any) -> Any:
    options = {
        "kind": "sms_json",
        "url": server.url + "/v2/sms",
        "headers": {"X-Api-Key": "${GATEWAY_KEY}", "X-Tenant": "varejo"},
        **extra,
    }
    return build_provider("sms", options, ENV)


def test_json_sms_default_body_headers_and_idempotency_key(
    http_server: HttpServer, make_message: MessageFactory
) -> None:
    http_server.script(Reply(200, {"id": "g-1", "state": "accepted"}))

    result = json_sms(http_server).send(make_message())

    [request] = http_server.requests
    assert (request.method, request.path) == ("POST", "/v2/sms")
    assert request.headers["x-api-key"] == "k-123"
    assert request.headers["x-tenant"] == "varejo"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["idempotency-key"] == "mes_0123456789abcdef01234567"
    assert request.json() == {
        "to": "+5511987654321",
        "text": "Maria, sua fatura de R$ 120,50 vence em 10/03. Pix: x",
        "reference": "mes_0123456789abcdef01234567",
    }
    assert result.provider_message_id == "g-1"
    assert result.details["segments"] == 1


def test_json_sms_template_values_cannot_break_the_json(
    http_server: HttpServer, make_message: MessageFactory
) -> None:
    http_server.script(Reply(202, {"messages": [{"msgid": 991}]}))
    body = {
        "destination": {"msisdn": "${to}", "ref": "cust-${customer_id}"},
        "content": [{"type": "text", "value": "${body}"}],
        "sender": "${from}",
        "priority": 1,
        "price": "$$0.05",
    }
    provider = json_sms(
        http_server,
        body=body,
        message_id_field="messages.0.msgid",
        idempotency_header=False,
        **{"from": "LOJA"},
    )
    tricky = 'Oi "Ana"}, ${body} \\n\n{"x": 1}'

    result = provider.send(make_message(body=tricky))

    [request] = http_server.requests
    assert request.json() == {
        "destination": {"msisdn": "+5511987654321", "ref": "cust-C-42"},
        "content": [{"type": "text", "value": tricky}],
        "sender": "LOJA",
        "priority": 1,
        "price": "$0.05",
    }
    assert "idempotency-key" not in request.headers
    assert result.provider_message_id == "991"


def test_json_sms_gateway_error_shape(
    http_server: HttpServer, make_message: MessageFactory
) -> None:
    http_server.script(
        Reply(422, {"error": {"code": "E_OPTOUT", "message": "opted out"}})
    )

    with pytest.raises(PermanentFailure, match="opted out") as caught:
        json_sms(http_server).send(make_message())

    assert caught.value.details["provider_code"] == "E_OPTOUT"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"body": {"to": "${phone}"}}, r"unknown placeholder \$\{phone\}"),
        ({"body": {"to": "${to"}}, "bad placeholder syntax"),
        ({"body": {"from": "${from}"}}, r"unknown placeholder \$\{from\}"),
        ({"headers": {"Authorization": "Bearer abc"}}, "from the environment"),
        ({"headers": {"X-Key": "${NOT_SET}"}}, "NOT_SET is not set"),
        ({"url": "http://sms.example.com/send"}, "must use https"),
        ({"idempotency_header": "Idem Key"}, "must be a header name"),
    ],
)
def test_json_sms_configuration_mistakes(options: dict[str, Any], message: str) -> None:
    entry = {"kind": "sms_json", "url": "https://sms.example.com/send", **options}

    with pytest.raises(ProviderConfigError, match=message):
        build_provider("sms", entry, ENV)


def test_json_template_survives_a_json_round_trip(
    http_server: HttpServer, make_message: MessageFactory
) -> None:
    # The body option usually comes from YAML; any JSON value type works.
    body = json.loads('{"n": null, "b": true, "f": 1.5, "t": "${to}"}')
    http_server.script(Reply(200, {"id": 5}))

    json_sms(http_server, body=body).send(make_message())

    assert http_server.requests[0].json() == {
        "n": None,
        "b": True,
        "f": 1.5,
        "t": "+5511987654321",
    }
