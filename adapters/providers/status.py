"""Delivery receipts: providers' status callbacks, verified and parsed.

Providers that report delivery call an HTTPS URL of ours. Each parser here
checks that the call really comes from the provider (its signature scheme)
and turns it into `DeliveryStatus` records, which the ledger keeps through
`record_delivery_status(provider, provider_message_id, status, at,
details)`:

    Twilio-style    form post, X-Twilio-Signature (HMAC-SHA1 over the URL
                    and the sorted form fields, keyed by the auth token)
    WhatsApp Cloud  JSON `entry[].changes[].value.statuses[]`,
                    X-Hub-Signature-256 (HMAC-SHA256 of the body, app secret);
                    plus the GET subscription handshake (hub.challenge)
    RBM (RCS)       JSON `{"message": {"data": base64(event)}}`,
                    X-Goog-Signature (base64 HMAC-SHA512 of the decoded data,
                    client token); plus the clientToken/secret handshake
    voice tasks     our own JSON outcome, signed like adapters/providers/
                    webhook.py (timestamp + body, HMAC-SHA256)

Statuses are normalised to DELIVERY_STATUSES; the provider's own word is
kept in `details["provider_status"]`.

Callbacks, not polling: every provider here pushes statuses, and polling
one request per message would spend the rate limit the sends need.
`ReceiptServer` is a small stdlib HTTP server for them. It listens on a
loopback address only: put the TLS-terminating reverse proxy that already
fronts your services before it.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

from adapters import boundedjson
from adapters.providers.options import is_loopback
from adapters.providers.webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    verify_signature,
)

logger = logging.getLogger(__name__)

QUEUED = "queued"
SENT = "sent"
DELIVERED = "delivered"
READ = "read"
FAILED = "failed"
DELIVERY_STATUSES = (QUEUED, SENT, DELIVERED, READ, FAILED)

MAX_CALLBACK_BODY = 1 << 20


@dataclass(frozen=True)
class DeliveryStatus:
    """One status of one message, as the ledger records it."""

    provider: str
    provider_message_id: str
    status: str  # one of DELIVERY_STATUSES
    at: dt.datetime  # aware; when the provider says it happened
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Callback:
    """An incoming HTTP call, as a parser sees it."""

    method: str
    query: Mapping[str, str]
    headers: Mapping[str, str]  # lower-case names
    body: bytes


class ReceiptRejected(Exception):
    """A callback we refuse: unsigned, forged, malformed. `status` is the
    HTTP answer (400 malformed, 403 bad signature, 405 wrong method)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Receipt:
    """What a parser made of a callback: statuses, and the body to answer
    with (handshakes echo a challenge)."""

    statuses: list[DeliveryStatus] = field(default_factory=list)
    reply: str = ""


class ReceiptParser(Protocol):
    provider: str

    def parse(self, callback: Callback, now: dt.datetime) -> Receipt:
        """Verify and parse one callback, or raise ReceiptRejected."""
        ...


def _json(body: bytes) -> Any:
    try:
        return boundedjson.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ReceiptRejected(f"body is not JSON: {exc}") from exc


def _from_unix(value: Any, fallback: dt.datetime) -> dt.datetime:
    try:
        return dt.datetime.fromtimestamp(int(value), dt.UTC)
    except (TypeError, ValueError, OverflowError):
        return fallback


def _from_iso(value: Any, fallback: dt.datetime) -> dt.datetime:
    if not isinstance(value, str):
        return fallback
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return fallback
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


# --- Twilio-style -------------------------------------------------------------

TWILIO_STATUSES = {
    "accepted": QUEUED,
    "scheduled": QUEUED,
    "queued": QUEUED,
    "sending": QUEUED,
    "sent": SENT,
    "delivered": DELIVERED,
    "read": READ,
    "undelivered": FAILED,
    "failed": FAILED,
    "canceled": FAILED,
}


def twilio_signature(auth_token: str, url: str, form: Mapping[str, str]) -> str:
    """X-Twilio-Signature: the URL, then each field name and value in name
    order, HMAC-SHA1 with the auth token, base64."""
    data = url + "".join(name + form[name] for name in sorted(form))
    mac = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode("ascii")


class TwilioReceipts:
    """Status callbacks of a Twilio-style SMS API."""

    def __init__(self, provider: str, auth_token: str, public_url: str) -> None:
        self.provider = provider
        self._auth_token = auth_token
        self._public_url = public_url  # the StatusCallback URL, as sent

    def parse(self, callback: Callback, now: dt.datetime) -> Receipt:
        if callback.method != "POST":
            raise ReceiptRejected("status callbacks are POSTs", 405)
        try:
            pairs = parse_qsl(
                callback.body.decode("utf-8"),
                keep_blank_values=True,
                strict_parsing=True,
            )
        except (UnicodeDecodeError, ValueError) as exc:
            raise ReceiptRejected(f"body is not a form: {exc}") from exc
        form = dict(pairs)
        expected = twilio_signature(self._auth_token, self._public_url, form)
        given = callback.headers.get("x-twilio-signature", "")
        if not hmac.compare_digest(expected, given):
            raise ReceiptRejected("X-Twilio-Signature does not match", 403)

        sid = form.get("MessageSid") or form.get("SmsSid")
        raw = form.get("MessageStatus") or form.get("SmsStatus")
        if not sid or not raw:
            raise ReceiptRejected("MessageSid and MessageStatus are required")
        status = TWILIO_STATUSES.get(raw.lower())
        if status is None:
            raise ReceiptRejected(f"unknown MessageStatus {raw!r}")
        details: dict[str, Any] = {"provider_status": raw}
        if form.get("ErrorCode"):
            details["error_code"] = form["ErrorCode"]
        # The callback carries no event time: it is sent as it happens.
        return Receipt([DeliveryStatus(self.provider, sid, status, now, details)])


# --- WhatsApp Cloud API -------------------------------------------------------

WHATSAPP_STATUSES = {
    "sent": SENT,
    "delivered": DELIVERED,
    "read": READ,
    "failed": FAILED,
}


class WhatsAppReceipts:
    """Status webhooks of the WhatsApp Business Cloud API."""

    def __init__(
        self, provider: str, app_secret: str, verify_token: str | None = None
    ) -> None:
        self.provider = provider
        self._app_secret = app_secret
        self._verify_token = verify_token

    def parse(self, callback: Callback, now: dt.datetime) -> Receipt:
        if callback.method == "GET":
            return self._subscribe(callback)
        if callback.method != "POST":
            raise ReceiptRejected("webhooks are POSTs", 405)
        mac = hmac.new(self._app_secret.encode(), callback.body, hashlib.sha256)
        expected = "sha256=" + mac.hexdigest()
        given = callback.headers.get("x-hub-signature-256", "")
        if not hmac.compare_digest(expected, given):
            raise ReceiptRejected("X-Hub-Signature-256 does not match", 403)

        payload = _json(callback.body)
        statuses = []
        for entry in _list(payload, "entry"):
            for change in _list(entry, "changes"):
                value = change.get("value") if isinstance(change, dict) else None
                for item in _list(value, "statuses"):
                    statuses.append(self._status(item, now))
        return Receipt(statuses)

    def _subscribe(self, callback: Callback) -> Receipt:
        """Meta's verification request when the webhook is registered."""
        query = callback.query
        if (
            self._verify_token is None
            or query.get("hub.mode") != "subscribe"
            or not hmac.compare_digest(
                query.get("hub.verify_token", ""), self._verify_token
            )
        ):
            raise ReceiptRejected("subscription verification failed", 403)
        return Receipt(reply=query.get("hub.challenge", ""))

    def _status(self, item: Any, now: dt.datetime) -> DeliveryStatus:
        if not isinstance(item, dict) or not item.get("id") or not item.get("status"):
            raise ReceiptRejected("a status needs an id and a status")
        raw = str(item["status"])
        status = WHATSAPP_STATUSES.get(raw)
        if status is None:
            raise ReceiptRejected(f"unknown WhatsApp status {raw!r}")
        details: dict[str, Any] = {"provider_status": raw}
        if item.get("biz_opaque_callback_data"):
            details["action_id"] = item["biz_opaque_callback_data"]
        errors = item.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
            details["error_code"] = first.get("code")
            details["error"] = first.get("message") or first.get("title")
        pricing = item.get("pricing")
        if isinstance(pricing, dict) and pricing.get("category"):
            details["pricing_category"] = pricing["category"]
        at = _from_unix(item.get("timestamp"), now)
        return DeliveryStatus(self.provider, str(item["id"]), status, at, details)


def _list(container: Any, key: str) -> list[Any]:
    value = container.get(key) if isinstance(container, dict) else None
    return value if isinstance(value, list) else []


# --- RBM (RCS) ----------------------------------------------------------------

RBM_EVENTS = {"DELIVERED": DELIVERED, "READ": READ}


class RbmReceipts:
    """Events of an RBM-style RCS API (Pub/Sub push format)."""

    def __init__(self, provider: str, client_token: str) -> None:
        self.provider = provider
        self._client_token = client_token

    def parse(self, callback: Callback, now: dt.datetime) -> Receipt:
        if callback.method != "POST":
            raise ReceiptRejected("events are POSTs", 405)
        payload = _json(callback.body)
        if not isinstance(payload, dict):
            raise ReceiptRejected("an event is a JSON object")
        if "clientToken" in payload and "secret" in payload:
            return self._verify_webhook(payload)

        data = payload.get("message", {})
        data = data.get("data") if isinstance(data, dict) else None
        if not isinstance(data, str):
            raise ReceiptRejected("message.data is missing")
        try:
            decoded = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ReceiptRejected("message.data is not base64") from exc
        mac = hmac.new(self._client_token.encode(), decoded, hashlib.sha512)
        expected = base64.b64encode(mac.digest()).decode("ascii")
        if not hmac.compare_digest(
            expected, callback.headers.get("x-goog-signature", "")
        ):
            raise ReceiptRejected("X-Goog-Signature does not match", 403)

        event = _json(decoded)
        if not isinstance(event, dict):
            raise ReceiptRejected("the event is not a JSON object")
        status = RBM_EVENTS.get(str(event.get("eventType", "")))
        message_id = event.get("messageId")
        if status is None or not message_id:
            # Typing indicators and customer replies are not receipts.
            return Receipt()
        details: dict[str, Any] = {"provider_status": event["eventType"]}
        if event.get("eventId"):
            details["event_id"] = event["eventId"]
        at = _from_iso(event.get("sendTime"), now)
        return Receipt(
            [DeliveryStatus(self.provider, str(message_id), status, at, details)]
        )

    def _verify_webhook(self, payload: dict[str, Any]) -> Receipt:
        """The registration handshake: echo `secret` if the token is ours."""
        if not hmac.compare_digest(str(payload["clientToken"]), self._client_token):
            raise ReceiptRejected("clientToken does not match", 403)
        return Receipt(reply=str(payload["secret"]))


# --- voice tasks --------------------------------------------------------------

VOICE_OUTCOMES = {
    "completed": DELIVERED,  # the customer heard the script
    "voicemail": DELIVERED,  # left on voicemail
    "no_answer": FAILED,
    "busy": FAILED,
    "failed": FAILED,
    "canceled": FAILED,
}


class VoiceOutcomes:
    """Outcome callbacks of voice call tasks (adapters/providers/voice.py)."""

    def __init__(
        self, provider: str, secret: str, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.provider = provider
        self._secret = secret
        self._clock = clock

    def parse(self, callback: Callback, now: dt.datetime) -> Receipt:
        if callback.method != "POST":
            raise ReceiptRejected("outcomes are POSTs", 405)
        if not verify_signature(
            self._secret,
            callback.headers.get(TIMESTAMP_HEADER.lower()),
            callback.body,
            callback.headers.get(SIGNATURE_HEADER.lower()),
            now=self._clock(),
        ):
            raise ReceiptRejected("signature missing, wrong or too old", 403)
        payload = _json(callback.body)
        if not isinstance(payload, dict) or not payload.get("task_id"):
            raise ReceiptRejected("task_id is required")
        outcome = str(payload.get("outcome", ""))
        status = VOICE_OUTCOMES.get(outcome)
        if status is None:
            known = ", ".join(sorted(VOICE_OUTCOMES))
            raise ReceiptRejected(f"unknown outcome {outcome!r} (known: {known})")
        details: dict[str, Any] = {"provider_status": outcome}
        for key in ("action_id", "duration_seconds", "summary"):
            if payload.get(key) is not None:
                details[key] = payload[key]
        at = _from_iso(payload.get("at"), now)
        return Receipt(
            [
                DeliveryStatus(
                    self.provider, str(payload["task_id"]), status, at, details
                )
            ]
        )


# --- the receiver -------------------------------------------------------------

# The ledger's `record_delivery_status`: True when the message is known.
RecordStatus = Callable[[str, str, str, dt.datetime, dict[str, Any]], bool]

RECEIPTS_PATH = "/receipts/"


class ReceiptServer:
    """Receives callbacks at `/receipts/<provider name>` and records them.

    Answers 200 once the statuses are recorded (an unknown message id is
    logged and still answered 200, or the provider would retry for days),
    403 for a bad signature, 400 for a malformed body, 404 for an unknown
    provider, 500 when recording failed (the provider retries later).
    """

    def __init__(
        self,
        parsers: Mapping[str, ReceiptParser],
        record: RecordStatus,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        if not is_loopback(host):
            raise ValueError(
                f"the receipt server listens on loopback only, not {host!r}: "
                "put a TLS reverse proxy in front of it"
            )
        self.parsers = dict(parsers)
        self.record = record
        self.clock = clock
        self.recorded = 0
        self.unknown = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Serve until `shutdown()`, which waits up to `poll_interval`."""
        self._server.serve_forever(poll_interval)

    def shutdown(self) -> None:
        """Stop serving (from another thread) and close the socket."""
        self._server.shutdown()
        self._server.server_close()

    def handle(self, provider: str, callback: Callback) -> tuple[int, str]:
        """Verify, parse and record one callback: (HTTP status, body)."""
        parser = self.parsers.get(provider)
        if parser is None:
            return 404, "no such provider"
        try:
            receipt = parser.parse(callback, self.clock())
        except ReceiptRejected as exc:
            logger.warning("receipt for %s rejected: %s", provider, exc)
            return exc.status, str(exc)
        for status in receipt.statuses:
            known = self.record(
                status.provider,
                status.provider_message_id,
                status.status,
                status.at,
                status.details,
            )
            with self._lock:
                self.recorded += 1
                if not known:
                    self.unknown += 1
            if not known:
                logger.warning(
                    "receipt for unknown message %s of %s",
                    status.provider_message_id,
                    provider,
                )
        logger.info("%s: %d status(es) recorded", provider, len(receipt.statuses))
        return 200, receipt.reply or "ok"

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                parts = urlsplit(self.path)
                if not parts.path.startswith(RECEIPTS_PATH):
                    self._answer(404, "not found")
                    return
                length = self.headers.get("Content-Length")
                if length is not None and not length.isdigit():
                    self._answer(400, "bad Content-Length")
                    return
                if length is not None and int(length) > MAX_CALLBACK_BODY:
                    self._answer(413, "too large")
                    return
                body = self.rfile.read(int(length)) if length else b""
                callback = Callback(
                    method=self.command,
                    query=dict(parse_qsl(parts.query, keep_blank_values=True)),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
                provider = parts.path[len(RECEIPTS_PATH) :].strip("/")
                try:
                    status, text = receiver.handle(provider, callback)
                except Exception:  # the ledger failed: let the provider retry
                    logger.exception("recording a receipt for %s failed", provider)
                    status, text = 500, "could not record"
                self._answer(status, text)

            do_GET = do_POST = _serve

            def _answer(self, status: int, text: str) -> None:
                payload = text.encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                logger.debug("receipts: " + format, *args)

        return Handler
