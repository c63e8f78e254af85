"""Delivery receipts: each provider's callback verified and parsed, and the
receipt server writing them into a real (SQLite) ledger."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from adapters.ledger import ActionEntry, Ledger, sqlite_url
from adapters.providers.registry import build_receipts
from adapters.providers.status import (
    Callback,
    RbmReceipts,
    ReceiptRejected,
    ReceiptServer,
    TwilioReceipts,
    VoiceOutcomes,
    WhatsAppReceipts,
    twilio_signature,
)
from adapters.providers.webhook import sign

NOW = dt.datetime(2026, 3, 9, 15, 0, tzinfo=dt.UTC)
CALLBACK_URL = "https://hooks.loja.example.com/receipts/sms"


def callback(
    body: bytes, headers: dict[str, str] | None = None, method: str = "POST"
) -> Callback:
    return Callback(method=method, query={}, headers=headers or {}, body=body)


# --- Twilio-style ----------------------------------------------------------


def twilio_callback(form: dict[str, str], token: str = "tok") -> Callback:
    signature = twilio_signature(token, CALLBACK_URL, form)
    return callback(urlencode(form).encode(), {"x-twilio-signature": signature})


def test_twilio_signature_matches_the_documented_scheme() -> None:
    form = {"MessageSid": "SM1", "MessageStatus": "sent", "To": "+5511"}
    data = CALLBACK_URL + "MessageSidSM1" + "MessageStatussent" + "To+5511"
    expected = base64.b64encode(
        hmac.new(b"tok", data.encode(), hashlib.sha1).digest()
    ).decode()

    assert twilio_signature("tok", CALLBACK_URL, form) == expected


@pytest.mark.parametrize(
    ("raw", "status"),
    [("queued", "queued"), ("sent", "sent"), ("delivered", "delivered"),
     ("undelivered", "failed"), ("failed", "failed"), ("read", "read")],
)  # fmt: skip
def test_twilio_statuses(raw: str, status: str) -> None:
    form = {"MessageSid": "SM77", "MessageStatus": raw, "AccountSid": "AC1"}
    if raw == "undelivered":
        form["ErrorCode"] = "30003"

    [receipt] = (
        TwilioReceipts("sms", "tok", CALLBACK_URL)
        .parse(twilio_callback(form), NOW)
        .statuses
    )

    assert (receipt.provider, receipt.provider_message_id) == ("sms", "SM77")
    assert (receipt.status, receipt.at) == (status, NOW)
    assert receipt.details["provider_status"] == raw
    assert receipt.details.get("error_code") == form.get("ErrorCode")


def test_a_forged_twilio_callback_is_refused() -> None:
    form = {"MessageSid": "SM77", "MessageStatus": "delivered"}
    forged = twilio_callback(form, token="someone-else")

    with pytest.raises(ReceiptRejected) as caught:
        TwilioReceipts("sms", "tok", CALLBACK_URL).parse(forged, NOW)

    assert caught.value.status == 403


# --- WhatsApp --------------------------------------------------------------


def whatsapp_webhook(statuses: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550783881",
                                "phone_number_id": "106540352242922",
                            },
                            "statuses": statuses,
                        },
                    }
                ],
            }
        ],
    }


def signed_whatsapp(payload: dict[str, Any], secret: str = "app-secret") -> Callback:
    body = json.dumps(payload).encode()
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return callback(body, {"x-hub-signature-256": f"sha256={digest}"})


def test_whatsapp_statuses_with_their_own_times_and_errors() -> None:
    payload = whatsapp_webhook(
        [
            {
                "id": "wamid.A",
                "status": "delivered",
                "timestamp": "1750263773",
                "recipient_id": "5511987654321",
                "biz_opaque_callback_data": "mes_0123",
                "pricing": {"billable": True, "category": "utility"},
            },
            {
                "id": "wamid.B",
                "status": "failed",
                "timestamp": "1750263800",
                "recipient_id": "5511911112222",
                "errors": [
                    {
                        "code": 131026,
                        "title": "Message undeliverable",
                        "message": "Message undeliverable",
                    }
                ],
            },
        ]
    )

    delivered, failed = (
        WhatsAppReceipts("whatsapp", "app-secret")
        .parse(signed_whatsapp(payload), NOW)
        .statuses
    )

    assert (delivered.provider_message_id, delivered.status) == ("wamid.A", "delivered")
    assert delivered.at == dt.datetime(2025, 6, 18, 16, 22, 53, tzinfo=dt.UTC)
    assert delivered.details["action_id"] == "mes_0123"
    assert delivered.details["pricing_category"] == "utility"
    assert (failed.status, failed.details["error_code"]) == ("failed", 131026)


def test_whatsapp_webhook_with_another_secret_is_refused() -> None:
    payload = whatsapp_webhook([{"id": "wamid.A", "status": "read"}])

    with pytest.raises(ReceiptRejected, match="X-Hub-Signature-256"):
        WhatsAppReceipts("whatsapp", "app-secret").parse(
            signed_whatsapp(payload, secret="other"), NOW
        )


def test_whatsapp_subscription_handshake() -> None:
    receipts = WhatsAppReceipts("whatsapp", "app-secret", verify_token="vt-9")
    query = {"hub.mode": "subscribe", "hub.verify_token": "vt-9", "hub.challenge": "42"}

    answer = receipts.parse(Callback("GET", query, {}, b""), NOW)
    with pytest.raises(ReceiptRejected):
        receipts.parse(
            Callback("GET", {**query, "hub.verify_token": "guess"}, {}, b""), NOW
        )

    assert (answer.reply, answer.statuses) == ("42", [])


# --- RBM -------------------------------------------------------------------


def rbm_push(event: dict[str, Any], token: str = "client-token") -> Callback:
    data = json.dumps(event).encode()
    signature = base64.b64encode(
        hmac.new(token.encode(), data, hashlib.sha512).digest()
    ).decode()
    body = {
        "message": {
            "data": base64.b64encode(data).decode(),
            "messageId": "2070443601311540",
            "publishTime": "2026-03-09T15:00:00.001Z",
        },
        "subscription": "projects/rbm-agent/subscriptions/rbm-agent-sub",
    }
    return callback(json.dumps(body).encode(), {"x-goog-signature": signature})


def test_rbm_delivered_and_read_events() -> None:
    receipts = RbmReceipts("rcs", "client-token")
    event = {
        "agentId": "varejo-agent@rbm.goog",
        "senderPhoneNumber": "+5511987654321",
        "eventType": "DELIVERED",
        "eventId": "MxUcWXsHMhTWi6-Ko2Ui6X6A",
        "messageId": "mes_0123",
        "sendTime": "2026-03-09T14:59:58.123456Z",
    }

    [delivered] = receipts.parse(rbm_push(event), NOW).statuses
    [read] = receipts.parse(rbm_push({**event, "eventType": "READ"}), NOW).statuses
    typing = receipts.parse(rbm_push({**event, "eventType": "IS_TYPING"}), NOW)

    assert (delivered.provider_message_id, delivered.status) == (
        "mes_0123",
        "delivered",
    )
    assert delivered.at == dt.datetime(2026, 3, 9, 14, 59, 58, 123456, tzinfo=dt.UTC)
    assert read.status == "read"
    assert typing.statuses == []


def test_rbm_forged_event_and_the_registration_handshake() -> None:
    receipts = RbmReceipts("rcs", "client-token")
    event = {"eventType": "READ", "messageId": "m"}

    with pytest.raises(ReceiptRejected, match="X-Goog-Signature"):
        receipts.parse(rbm_push(event, token="other"), NOW)
    answer = receipts.parse(
        callback(b'{"clientToken": "client-token", "secret": "1234567890"}'), NOW
    )
    with pytest.raises(ReceiptRejected):
        receipts.parse(callback(b'{"clientToken": "x", "secret": "1"}'), NOW)

    assert answer.reply == "1234567890"


# --- voice -----------------------------------------------------------------


def voice_outcome(payload: dict[str, Any], at: int, secret: str = "vs") -> Callback:
    body = json.dumps(payload).encode()
    return callback(
        body,
        {"x-ruleset-timestamp": str(at), "x-ruleset-signature": sign(secret, at, body)},
    )


@pytest.mark.parametrize(
    ("outcome", "status"),
    [("completed", "delivered"), ("voicemail", "delivered"),
     ("no_answer", "failed"), ("busy", "failed")],
)  # fmt: skip
def test_voice_outcomes(outcome: str, status: str) -> None:
    receipts = VoiceOutcomes("voz", "vs", clock=lambda: 1_760_000_000)
    payload = {
        "task_id": "task-9",
        "action_id": "mes_1",
        "outcome": outcome,
        "at": "2026-03-09T12:03:00-03:00",
        "duration_seconds": 41,
    }

    [receipt] = receipts.parse(voice_outcome(payload, 1_760_000_000), NOW).statuses

    assert (receipt.provider_message_id, receipt.status) == ("task-9", status)
    assert receipt.at == dt.datetime(2026, 3, 9, 15, 3, tzinfo=dt.UTC)
    assert receipt.details["duration_seconds"] == 41


def test_a_stale_or_unknown_voice_outcome_is_refused() -> None:
    receipts = VoiceOutcomes("voz", "vs", clock=lambda: 1_760_000_000)
    good = {"task_id": "t", "outcome": "completed"}

    with pytest.raises(ReceiptRejected, match="too old"):
        receipts.parse(voice_outcome(good, 1_760_000_000 - 3600), NOW)
    with pytest.raises(ReceiptRejected, match="unknown outcome 'hung_up'"):
        receipts.parse(
            voice_outcome({**good, "outcome": "hung_up"}, 1_760_000_000), NOW
        )


# --- from the run configuration -------------------------------------------


def test_receipts_are_built_from_the_provider_entries() -> None:
    env = {"TOK": "t", "APP": "a", "VT": "v", "CT": "c", "VS": "s", "RBM": "r"}
    twilio = {
        "kind": "twilio", "account_sid": "AC1", "auth_token_env": "TOK",
        "from": "+5511900000000", "status_callback": CALLBACK_URL,
    }  # fmt: skip
    whatsapp = {
        "kind": "whatsapp_cloud", "phone_number_id": "1", "token_env": "TOK",
        "app_secret_env": "APP", "verify_token_env": "VT",
    }  # fmt: skip
    rcs = {
        "kind": "rcs_rbm",
        "agent_id": "a",
        "token_env": "RBM",
        "client_token_env": "CT",
    }
    voice = {
        "kind": "voice_tasks", "url": "https://v.example.com/tasks",
        "callback_url": "https://hooks.example.com/voice", "callback_secret_env": "VS",
    }  # fmt: skip

    assert isinstance(build_receipts("sms", twilio, env), TwilioReceipts)
    assert isinstance(build_receipts("whatsapp", whatsapp, env), WhatsAppReceipts)
    assert isinstance(build_receipts("rcs", rcs, env), RbmReceipts)
    assert isinstance(build_receipts("voz", voice, env), VoiceOutcomes)
    without_callback = {k: v for k, v in twilio.items() if k != "status_callback"}
    assert build_receipts("sms", without_callback, env) is None
    assert build_receipts("crm", {"kind": "outbox", "path": "x.jsonl"}, env) is None


# --- the receiver and the ledger -------------------------------------------


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    opened = Ledger.open(sqlite_url(tmp_path / "ledger.sqlite3"))
    assert opened is not None
    yield opened
    opened.close()


def sent_action(ledger: Ledger, action_id: str, provider_message_id: str) -> None:
    """An action the ledger saw go out through provider `sms`."""
    run_id = ledger.start_run("varejo", NOW, None, host="h", pid=1, at=NOW)
    entry = ActionEntry(
        action_id=action_id, ruleset="varejo", kind="message", customer_id="C1",
        invoice_ids=("F1",), step="lembrete", channel="sms", channel_kind="sms",
        due_date=dt.date(2026, 3, 12),
    )  # fmt: skip
    ledger.note([entry], run_id, NOW)
    assert ledger.claim(entry, run_id, NOW).claimed
    ledger.record_attempt(
        action_id, run_id, number=1, started_at=NOW, finished_at=NOW,
        outcome="sent", provider="sms", provider_message_id=provider_message_id,
        final=True,
    )  # fmt: skip


@pytest.fixture
def receiver(ledger: Ledger) -> Iterator[ReceiptServer]:
    server = ReceiptServer(
        {"sms": TwilioReceipts("sms", "tok", CALLBACK_URL)},
        ledger.record_delivery_status,
        clock=lambda: NOW,
    )
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    thread.join()


def post(server: ReceiptServer, path: str, cb: Callback) -> tuple[int, str]:
    host, port = server.address
    request = urllib.request.Request(
        f"http://{host}:{port}{path}", data=cb.body, headers=dict(cb.headers)
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read().decode()


def test_the_receiver_records_a_verified_status_in_the_ledger(
    ledger: Ledger, receiver: ReceiptServer
) -> None:
    sent_action(ledger, "mes_1", "SM900")
    form = {"MessageSid": "SM900", "MessageStatus": "delivered"}

    status, _ = post(receiver, "/receipts/sms", twilio_callback(form))

    assert status == 200
    action = ledger.action("mes_1")
    assert action is not None
    assert action["delivery_status"] == "delivered"
    assert (receiver.recorded, receiver.unknown) == (1, 0)


def test_the_receiver_refuses_forgeries_and_strangers(
    ledger: Ledger, receiver: ReceiptServer
) -> None:
    sent_action(ledger, "mes_1", "SM900")
    form = {"MessageSid": "SM900", "MessageStatus": "failed"}

    forged = post(receiver, "/receipts/sms", twilio_callback(form, token="x"))
    stranger = post(receiver, "/receipts/email", twilio_callback(form))
    unknown = post(
        receiver,
        "/receipts/sms",
        twilio_callback({"MessageSid": "SM404", "MessageStatus": "sent"}),
    )

    assert forged[0] == 403 and stranger[0] == 404
    # An unknown message is logged and acknowledged, or it would come back.
    assert unknown[0] == 200 and receiver.unknown == 1
    action = ledger.action("mes_1")
    assert action is not None and action["delivery_status"] is None


def test_the_receiver_listens_on_loopback_only(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="loopback only"):
        ReceiptServer({}, ledger.record_delivery_status, host="0.0.0.0")


def test_a_signed_body_nested_too_deeply_is_refused_as_malformed(
    ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    server = ReceiptServer(
        {"whatsapp": WhatsAppReceipts("whatsapp", "app-secret")},
        ledger.record_delivery_status,
        clock=lambda: NOW,
    )
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    # Valid JSON, signed with the right secret, far deeper than Python's
    # decoder can recurse; a string full of brackets is no nesting at all.
    deep = b"[" * 50_000 + b"]" * 50_000
    flat = json.dumps(whatsapp_webhook([]) | {"note": "[" * 500}).encode()
    try:
        for body, expected in ((deep, 400), (flat, 200)):
            digest = hmac.new(b"app-secret", body, hashlib.sha256).hexdigest()
            signed = callback(body, {"x-hub-signature-256": f"sha256={digest}"})
            status, text = post(server, "/receipts/whatsapp", signed)
            assert status == expected, text
    finally:
        server.shutdown()
        thread.join()

    assert "nested deeper than 100 levels" in caplog.text
    assert "RecursionError" not in caplog.text
