"""Handing one message to a provider: retries, back-off and rate limits.

Providers try once and say how it went (`SendResult`, `TemporaryFailure`,
`PermanentFailure`). This module decides what happens next:

- a temporary failure is retried after an exponential back-off with full
  jitter (a random delay between 0 and `base_delay * 2**(n-1)`, capped at
  `max_delay`), so that many runners hitting one recovering API spread
  out instead of retrying in lockstep;
- when the provider said how long to wait (`retry_after`, from a 429 or a
  503 with Retry-After), that delay is used as given; a provider asking for
  more than `max_retry_after` seconds ends the attempts for this run, and
  the message stays `failed_temporary` for the next run to pick up;
- a permanent failure ends the attempts at once;
- a temporary failure whose outcome is unknown (`outcome_unknown`: the
  request went out and the answer was lost) ends the attempts as
  `unknown`, unless the provider honours idempotency keys or the run
  allows at-least-once (`resend_unknown`): an API without idempotency keys
  (Twilio-style SMS, WhatsApp Cloud, SMTP) could deliver a second copy;
- any other exception leaves the outcome `unknown`: the request may have
  gone out before the provider failed, so sending again could duplicate it.

A `RateLimiter` spaces the calls to one provider (`10/s`, `600/min`).
"""

from __future__ import annotations

import datetime as dt
import logging
import random as _random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from adapters.masking import mask_address, mask_body, mask_text
from adapters.providers.base import (
    OutboundMessage,
    Provider,
    SendError,
    SendResult,
    TemporaryFailure,
)

logger = logging.getLogger(__name__)

# What became of one message after all its attempts in this run.
SENT = "sent"
FAILED_TEMPORARY = "failed_temporary"
FAILED_PERMANENT = "failed_permanent"
UNKNOWN = "unknown"

_PER = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
}
_RATE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*/\s*([a-z]+)\s*")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently one message is retried within a run.

    `attempts` counts every try, the first included: 1 means no retry.
    """

    attempts: int = 4
    base_delay: float = 1.0
    max_delay: float = 60.0
    max_retry_after: float = 300.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        for name in ("base_delay", "max_delay", "max_retry_after"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")

    def backoff(self, retry: int, draw: Callable[[], float]) -> float:
        """The delay before retry number `retry` (1 for the first retry):
        full jitter over an exponentially growing ceiling."""
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** (retry - 1))
        return ceiling * draw()

    def delay_after(
        self, failure: TemporaryFailure, retry: int, draw: Callable[[], float]
    ) -> float | None:
        """Seconds to wait before retrying after `failure`, or None when
        the provider asks for a longer pause than this run will wait."""
        if failure.retry_after is None:
            return self.backoff(retry, draw)
        if failure.retry_after > self.max_retry_after:
            return None
        return max(0.0, failure.retry_after)


class RateLimiter:
    """Spaces the calls to one provider to at most `rate` per second.

    A call may go `burst` intervals ahead of the steady pace, so a limiter
    idle for a while lets a short burst through. The limiter computes the
    wait and hands it to the caller's `sleep`, which makes it testable
    with a sleep that only records.
    """

    def __init__(
        self,
        rate: float | None = None,
        *,
        burst: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate is not None and rate <= 0:
            raise ValueError("a rate limit must be above zero")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._lock = threading.Lock()
        self._next_slot = float("-inf")

    @classmethod
    def parse(cls, text: str, **kwargs: Any) -> RateLimiter:
        """A limiter from `10/s`, `600/min`, `100/hour`."""
        match = _RATE.fullmatch(text.lower())
        if match is None or match.group(2) not in _PER:
            raise ValueError(
                f"rate limit {text!r} is not COUNT/UNIT (e.g. 10/s, 600/min, 100/h)"
            )
        count = float(match.group(1))
        if count <= 0:
            raise ValueError(f"rate limit {text!r} must be above zero")
        return cls(count / _PER[match.group(2)], **kwargs)

    def wait_time(self) -> float:
        """Reserve the next slot; return how long to wait for it."""
        if self.rate is None:
            return 0.0
        interval = 1.0 / self.rate
        with self._lock:
            now = self._clock()
            slot = max(self._next_slot, now)
            self._next_slot = slot + interval
            return max(0.0, slot - (self.burst - 1) * interval - now)

    def acquire(self, sleep: Callable[[float], None] = time.sleep) -> float:
        """Wait for the next slot; return the seconds waited."""
        delay = self.wait_time()
        if delay > 0:
            sleep(delay)
        return delay


@dataclass(frozen=True)
class Attempt:
    """One call to a provider and how it ended."""

    number: int  # counts across runs when the caller says where to start
    started_at: dt.datetime
    finished_at: dt.datetime
    outcome: str  # "sent" | "temporary" | "permanent" | "unknown" | "error"
    provider: str
    provider_message_id: str | None = None
    error: str | None = None
    retry_in: float | None = None  # seconds until the next attempt, if any
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Delivery:
    """Every attempt at one message, and what it came to."""

    status: str  # SENT | FAILED_TEMPORARY | FAILED_PERMANENT | UNKNOWN
    attempts: tuple[Attempt, ...]
    result: SendResult | None = None
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def deliver(
    provider: Provider,
    message: OutboundMessage,
    policy: RetryPolicy,
    limiter: RateLimiter | None = None,
    sleep: Callable[[float], None] = time.sleep,
    *,
    first_attempt: int = 1,
    on_attempt: Callable[[Attempt], None] | None = None,
    clock: Callable[[], dt.datetime] = _utc_now,
    draw: Callable[[], float] = _random.random,
    resend_unknown: bool = False,
) -> Delivery:
    """Send `message` through `provider`, retrying temporary failures.

    `sleep` receives every back-off and rate-limit delay, `clock` stamps
    the attempts and `draw` gives the jitter (a float in [0, 1)); tests
    replace all three. `on_attempt` is called after each attempt, before
    any wait, so a ledger can record it. `first_attempt` numbers the first
    attempt of this call, so attempt numbers keep counting across runs.
    `resend_unknown` retries failures whose outcome is unknown even when
    the provider takes no idempotency key (at-least-once).
    """
    attempts: list[Attempt] = []
    number = first_attempt
    may_resend = resend_unknown or provider.idempotency_keys

    for retry in range(policy.attempts):
        if limiter is not None:
            limiter.acquire(sleep)
        started = clock()
        error: BaseException | None = None
        try:
            result = provider.send(message)
        except SendError as exc:
            error = exc
        except Exception as exc:  # a provider bug: the request may have gone
            logger.error(
                "provider %s raised %s for %s",
                provider.name,
                type(exc).__name__,
                message.action_id,
                exc_info=True,
            )
            error = exc
        finished = clock()

        if error is None:
            attempt = Attempt(
                number,
                started,
                finished,
                "sent",
                result.provider,
                provider_message_id=result.provider_message_id,
                details=dict(result.details),
            )
            _record(attempt, message, on_attempt, attempts)
            return Delivery(SENT, tuple(attempts), result=result)

        text = _describe(error)
        details = dict(error.details) if isinstance(error, SendError) else {}
        if not isinstance(error, TemporaryFailure):
            # A SendError that is not marked temporary did not go through
            # but gives no reason to hope: permanent. Anything else is a
            # provider bug with an unknown outcome.
            outcome = "permanent" if isinstance(error, SendError) else "error"
            status = FAILED_PERMANENT if outcome == "permanent" else UNKNOWN
            attempt = Attempt(
                number,
                started,
                finished,
                outcome,
                provider.name,
                error=text,
                details=details,
            )
            _record(attempt, message, on_attempt, attempts)
            return Delivery(status, tuple(attempts), error=text, details=details)

        if outcome_unknown(error) and not may_resend:
            text += (
                f" (the message may have gone out and {provider.name} takes no "
                "idempotency key: not sent again; --resend-unknown allows it)"
            )
            attempt = Attempt(
                number,
                started,
                finished,
                "unknown",
                provider.name,
                error=text,
                details=details,
            )
            _record(attempt, message, on_attempt, attempts)
            return Delivery(UNKNOWN, tuple(attempts), error=text, details=details)

        last = retry + 1 == policy.attempts
        delay = None if last else policy.delay_after(error, retry + 1, draw)
        attempt = Attempt(
            number,
            started,
            finished,
            "temporary",
            provider.name,
            error=text,
            retry_in=delay,
            details=details,
        )
        _record(attempt, message, on_attempt, attempts)
        if delay is None:
            if not last:
                text += (
                    f" (the provider asked to wait {error.retry_after:g}s, more "
                    f"than max_retry_after {policy.max_retry_after:g}s)"
                )
            return Delivery(
                FAILED_TEMPORARY, tuple(attempts), error=text, details=details
            )
        if delay > 0:
            sleep(delay)
        number += 1

    raise AssertionError("unreachable: the last attempt always returns")


def outcome_unknown(error: SendError) -> bool:
    """Whether the provider may have accepted the message that failed."""
    return error.details.get("outcome_unknown") is True


def _record(
    attempt: Attempt,
    message: OutboundMessage,
    on_attempt: Callable[[Attempt], None] | None,
    attempts: list[Attempt],
) -> None:
    attempts.append(attempt)
    logger.info(
        "send %s channel=%s to=%s body=%s via %s attempt %d: %s%s",
        message.action_id,
        message.channel,
        mask_address(message.address),
        mask_body(message.body),
        attempt.provider,
        attempt.number,
        attempt.outcome,
        _log_tail(attempt),
    )
    if on_attempt is not None:
        on_attempt(attempt)


def _log_tail(attempt: Attempt) -> str:
    if attempt.outcome == "sent":
        return f" id={attempt.provider_message_id}"
    tail = f" ({mask_text(attempt.error or '')})"
    if attempt.retry_in is not None:
        tail += f", retry in {attempt.retry_in:.2f}s"
    return tail


def _describe(error: BaseException) -> str:
    if isinstance(error, SendError):
        return str(error) or type(error).__name__
    return f"{type(error).__name__}: {error}"
