"""The provider port: how `ruleset run` hands one message to a channel.

A provider sends one message and says what happened. It never retries on
its own and never writes the ledger: the runner decides about retries from
the failure's kind and records every attempt.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Protocol

from dsl.sms import PLAIN_SPACE_KINDS, plain_spaces


@dataclass(frozen=True)
class OutboundMessage:
    """One message ready to go, taken from a plan action."""

    action_id: str  # also the idempotency key sent to APIs that accept one
    channel: str  # the policy's channel name
    channel_kind: str  # sms, rcs, whatsapp, email, voice, webhook
    customer_id: str
    address: str  # E.164 phone or e-mail address
    body: str
    subject: str | None = None
    html: str | None = None
    # Channel-specific extras from the plan (WhatsApp template name,
    # language and parameters; RCS card and payment link; ...).
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SendResult:
    """A message the provider accepted."""

    provider: str
    provider_message_id: str | None
    accepted_at: dt.datetime
    details: dict[str, Any] = field(default_factory=dict)  # segments, encoding...


class SendError(Exception):
    """A send that did not go through. Subclasses say whether to retry."""

    def __init__(
        self, message: str, *, provider: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.details = details or {}


class TemporaryFailure(SendError):
    """Worth retrying: connection errors, timeouts, 5xx, 429.

    `details["outcome_unknown"] = True` marks a failure after the message
    went out (a timeout or a lost connection while waiting for the
    answer): the provider may have accepted it. Such a failure is retried
    only when the provider honours idempotency keys or the run allows
    at-least-once (adapters/retry.py).
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        retry_after: float | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, provider=provider, details=details)
        self.retry_after = retry_after  # seconds, when the provider said so


class PermanentFailure(SendError):
    """Not worth retrying: a 4xx other than 429, a rejected address."""


class FallbackRequired(PermanentFailure):
    """This channel cannot reach the customer (a phone without RCS), and
    `fallback_channel` (a phone channel of the policy, usually SMS) should
    carry the message instead: see `fallback_message`.

    The fallback also travels as data, `details["fallback"] = {"channel",
    "body", "reason"}`, so it survives into a delivery record. A runner
    that does not act on it records the permanent failure it subclasses:
    nothing is ever sent twice by accident. `fallback_channel` is None when
    no fallback is configured.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        fallback_channel: str | None,
        body: str,
        reason: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        details = dict(details or {})
        details["fallback"] = {
            "channel": fallback_channel,
            "body": body,
            "reason": reason,
        }
        super().__init__(message, provider=provider, details=details)
        self.fallback_channel = fallback_channel


def fallback_message(
    original: OutboundMessage, details: dict[str, Any], channel_kind: str
) -> OutboundMessage | None:
    """The message for the fallback channel a failure's details name, or
    None. It keeps the action id: one action, one ledger row, whichever
    channel delivered it; `extras["fallback_from"]` says where it began.
    Copy written for a rich channel becomes plain text when the fallback
    is one (RCS -> SMS): no-break spaces become plain spaces, as the
    planner renders SMS copy."""
    fallback = details.get("fallback")
    if not isinstance(fallback, dict) or not fallback.get("channel"):
        return None
    body = str(fallback.get("body") or original.body)
    if channel_kind in PLAIN_SPACE_KINDS:
        body = plain_spaces(body)
    return OutboundMessage(
        action_id=original.action_id,
        channel=str(fallback["channel"]),
        channel_kind=channel_kind,
        customer_id=original.customer_id,
        address=original.address,
        body=body,
        extras={"fallback_from": original.channel},
    )


class Provider(Protocol):
    """Something that delivers messages of one or more channel kinds.

    `idempotency_keys` is true when the API deduplicates on the action id
    (an idempotency header, a message id it refuses twice): sending again
    after an unknown outcome then cannot deliver the message twice.
    """

    name: str
    idempotency_keys: bool

    def send(self, message: OutboundMessage) -> SendResult:
        """Deliver one message or raise TemporaryFailure/PermanentFailure."""
        ...

    def close(self) -> None:
        """Release connections; called once at the end of a run."""
        ...
