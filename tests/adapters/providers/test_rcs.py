"""RCS over an RBM-style API: capability check, rich card, fallback."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.providers.base import (
    FallbackRequired,
    PermanentFailure,
    TemporaryFailure,
    fallback_message,
)
from adapters.providers.registry import build_provider
from tests.adapters.providers.conftest import MessageFactory
from tests.adapters.providers.servers import HttpServer, Recorded, Reply

ENV = {"RBM_TOKEN": "ya29.token"}
RCS_PHONE = "+5511987654321"
SMS_ONLY_PHONE = "+5511911112222"
TEXT_ONLY_PHONE = "+5511933334444"
EXTRAS = {
    "title": "Sua fatura vence em 3 dias",
    "button_label": "Pagar agora",
    "button_url": "https://pague.example.com/F-1",
}

ACTION_ID = "mes_0123456789abcdef01234567"


def google_error(code: int, message: str, status: str) -> Reply:
    """Google APIs' error shape."""
    return Reply(code, {"error": {"code": code, "message": message, "status": status}})


NOT_FOUND = google_error(404, "Requested entity was not found.", "NOT_FOUND")


def rbm_api(request: Recorded) -> Reply:
    """Answers like RBM: features per phone; agent messages accepted."""
    phone = request.path.split("/")[3]
    if request.method == "GET" and request.path.endswith("/capabilities"):
        if phone == SMS_ONLY_PHONE:
            return NOT_FOUND
        features = ["RICHCARD_STANDALONE", "ACTION_OPEN_URL", "ACTION_DIAL"]
        if phone == TEXT_ONLY_PHONE:
            features = ["ACTION_DIAL"]
        return Reply(200, {"features": features})
    message_id = request.query["messageId"][0]
    return Reply(
        200,
        {
            "name": f"phones/{phone}/agentMessages/{message_id}",
            "sendTime": "2026-03-09T12:00:00.123Z",
        },
    )


@pytest.fixture
def rbm() -> Any:
    with HttpServer(rbm_api) as server:
        yield server


def rcs(server: HttpServer, **extra: Any) -> Any:
    options = {
        "kind": "rcs_rbm",
        "agent_id": "varejo-agent",
        "token_env": "RBM_TOKEN",
        "base_url": server.url,
        "fallback_channel": "sms",
        **extra,
    }
    return build_provider("rcs", options, ENV)


def test_capability_check_then_a_rich_card_with_a_pay_now_action(
    rbm: HttpServer, make_message: MessageFactory
) -> None:
    message = make_message(channel="rcs", channel_kind="rcs", extras=EXTRAS)

    result = rcs(rbm).send(message)

    check, send = rbm.requests
    assert (check.method, check.path) == (
        "GET",
        "/v1/phones/+5511987654321/capabilities",
    )
    assert check.query["agentId"] == ["varejo-agent"]
    assert len(check.query["requestId"][0]) == 36  # a UUID
    assert check.headers["authorization"] == "Bearer ya29.token"
    assert (send.method, send.path) == (
        "POST",
        "/v1/phones/+5511987654321/agentMessages",
    )
    assert send.query == {
        "messageId": ["mes_0123456789abcdef01234567"],
        "agentId": ["varejo-agent"],
    }
    assert send.json() == {
        "contentMessage": {
            "richCard": {
                "standaloneCard": {
                    "cardOrientation": "VERTICAL",
                    "cardContent": {
                        "title": "Sua fatura vence em 3 dias",
                        "description": message.body,
                        "suggestions": [
                            {
                                "action": {
                                    "text": "Pagar agora",
                                    "postbackData": f"pay_now:{ACTION_ID}",
                                    "openUrlAction": {
                                        "url": "https://pague.example.com/F-1"
                                    },
                                }
                            }
                        ],
                    },
                }
            }
        }
    }
    assert result.provider_message_id == "mes_0123456789abcdef01234567"
    assert "ACTION_OPEN_URL" in result.details["features"]


def test_a_phone_without_rcs_asks_for_the_fallback_and_sends_nothing(
    rbm: HttpServer, make_message: MessageFactory
) -> None:
    message = make_message(
        channel="rcs", channel_kind="rcs", address=SMS_ONLY_PHONE, extras=EXTRAS,
        body="Maria, sua fatura de R$ 120,50 vence em 10/03.",
    )  # fmt: skip

    with pytest.raises(FallbackRequired) as caught:
        rcs(rbm).send(message)

    assert [r.method for r in rbm.requests] == ["GET"]
    failure = caught.value
    assert isinstance(failure, PermanentFailure)  # safe for a runner unaware
    assert failure.fallback_channel == "sms"
    assert failure.details["fallback"] == {
        "channel": "sms",
        "reason": "no_rcs",
        # the payment link must survive the fallback
        "body": message.body + " https://pague.example.com/F-1",
    }

    sms = fallback_message(message, failure.details, "sms")
    assert sms is not None
    assert (sms.action_id, sms.channel, sms.channel_kind) == (
        message.action_id,
        "sms",
        "sms",
    )
    assert sms.address == SMS_ONLY_PHONE
    assert sms.body.endswith("https://pague.example.com/F-1")
    assert sms.extras == {"fallback_from": "rcs"}


def test_a_phone_that_cannot_show_cards_falls_back_too(
    rbm: HttpServer, make_message: MessageFactory
) -> None:
    message = make_message(address=TEXT_ONLY_PHONE, extras=EXTRAS)

    with pytest.raises(FallbackRequired) as caught:
        rcs(rbm).send(message)

    assert caught.value.details["fallback"]["reason"] == "no_rich_card"


def test_without_a_fallback_channel_the_failure_is_plain_permanent(
    rbm: HttpServer, make_message: MessageFactory
) -> None:
    message = make_message(address=SMS_ONLY_PHONE, extras=EXTRAS)

    with pytest.raises(FallbackRequired, match="no fallback channel") as caught:
        rcs(rbm, fallback_channel=None).send(message)

    assert caught.value.fallback_channel is None
    assert fallback_message(message, caught.value.details, "sms") is None


def test_a_resend_the_api_already_has_counts_as_accepted(
    make_message: MessageFactory,
) -> None:
    conflict = google_error(409, "Requested entity already exists", "ALREADY_EXISTS")
    with HttpServer(rbm_api) as server:
        server.script(Reply(200, {"features": ["RICHCARD_STANDALONE"]}), conflict)

        result = rcs(server).send(make_message(extras=EXTRAS))

    assert result.details["duplicate"] is True
    assert result.provider_message_id == "mes_0123456789abcdef01234567"


def test_a_failing_capability_check_is_not_a_fallback(
    make_message: MessageFactory,
) -> None:
    with HttpServer(rbm_api) as server:
        server.script(
            google_error(503, "The service is currently unavailable.", "UNAVAILABLE")
        )

        with pytest.raises(TemporaryFailure, match="currently unavailable"):
            rcs(server).send(make_message(extras=EXTRAS))

        assert len(server.requests) == 1


def test_card_limits_and_links_are_checked_before_calling(
    rbm: HttpServer, make_message: MessageFactory
) -> None:
    provider = rcs(rbm)

    with pytest.raises(PermanentFailure, match="title has 201 characters"):
        provider.send(make_message(extras={**EXTRAS, "title": "x" * 201}))
    with pytest.raises(PermanentFailure, match="not an http"):
        provider.send(make_message(extras={**EXTRAS, "button_url": "javascript:x"}))

    assert rbm.requests == []


def test_a_card_without_a_link_has_no_action_and_says_so(
    rbm: HttpServer, make_message: MessageFactory
) -> None:
    result = rcs(rbm).send(make_message(extras={"title": "Lembrete"}))

    content = rbm.requests[1].json()["contentMessage"]["richCard"]["standaloneCard"]
    assert "suggestions" not in content["cardContent"]
    assert "no pay-now action" in result.details["warning"]
