"""A generic signed webhook, for any system that is not a messaging API.

Each message is POSTed as canonical JSON (sorted keys) with three headers:

    X-Ruleset-Timestamp: 1760000000              (Unix seconds)
    X-Ruleset-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>
    Idempotency-Key: <action id>

The receiver recomputes the HMAC over the timestamp, a dot and the raw
body bytes with the shared secret, compares in constant time, and rejects
timestamps too far from its clock, which stops replays of an old request.
`verify_signature` is that check, for receivers written in Python (our own
voice-outcome callback uses it).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from typing import Any

from adapters.providers.base import OutboundMessage, SendResult
from adapters.providers.http import HttpClient, accepted_now, answer_id, client_from
from adapters.providers.options import Options
from engine.plan import canonical_json

SIGNATURE_HEADER = "X-Ruleset-Signature"
TIMESTAMP_HEADER = "X-Ruleset-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
SIGNATURE_TOLERANCE = 300  # seconds a receiver should accept clock skew


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header value for `body` sent at `timestamp`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify_signature(
    secret: str,
    timestamp: str | None,
    body: bytes,
    signature: str | None,
    *,
    now: float,
    tolerance: float = SIGNATURE_TOLERANCE,
) -> bool:
    """True when `signature` is ours for this body and the timestamp is
    within `tolerance` seconds of `now`."""
    if not timestamp or not signature or not timestamp.isdigit():
        return False
    if abs(now - int(timestamp)) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, int(timestamp), body), signature)


def message_document(message: OutboundMessage) -> dict[str, Any]:
    """What the webhook receives for one message."""
    return {
        "action_id": message.action_id,
        "channel": message.channel,
        "channel_kind": message.channel_kind,
        "customer_id": message.customer_id,
        "address": message.address,
        "body": message.body,
        "subject": message.subject,
        "html": message.html,
        "extras": message.extras,
    }


class SignedWebhook:
    """POSTs each message, signed, to one URL."""

    # Every request carries the Idempotency-Key header; the receiver
    # contract (docs/providers.md) is to accept each key once.
    idempotency_keys = True

    def __init__(
        self,
        name: str,
        client: HttpClient,
        *,
        url: str,
        secret: str,
        headers: Mapping[str, str] | None = None,
        message_id_field: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self._client = client
        self._url = url
        self._secret = secret
        self._headers = dict(headers or {})
        self._message_id_field = message_id_field
        self._clock = clock

    @classmethod
    def from_options(cls, name: str, options: Options) -> SignedWebhook:
        return cls(
            name,
            client_from(options),
            url=options.url("url"),
            secret=options.secret("secret_env") or "",
            headers=options.headers("headers"),
            message_id_field=options.text("message_id_field", None),
        )

    def send(self, message: OutboundMessage) -> SendResult:
        body = canonical_json(message_document(message)).encode("utf-8")
        timestamp = int(self._clock())
        headers = {
            **self._headers,
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(self._secret, timestamp, body),
            IDEMPOTENCY_HEADER: message.action_id,
        }

        response = self._client.call("POST", self._url, headers=headers, body=body)

        message_id: str | None = None
        details: dict[str, Any] = {"http_status": response.status}
        if self._message_id_field:
            message_id = answer_id(response.json(), self._message_id_field, details)
        return SendResult(
            provider=self.name,
            provider_message_id=message_id,
            accepted_at=accepted_now(),
            details=details,
        )

    def close(self) -> None:
        """Nothing to release: each request has its own connection."""
