"""Retries, back-off, Retry-After and rate limits (adapters/retry.py)."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from adapters.providers.base import (
    OutboundMessage,
    PermanentFailure,
    SendError,
    SendResult,
    TemporaryFailure,
)
from adapters.retry import (
    FAILED_PERMANENT,
    FAILED_TEMPORARY,
    SENT,
    UNKNOWN,
    Attempt,
    RateLimiter,
    RetryPolicy,
    deliver,
)

MESSAGE = OutboundMessage(
    action_id="mes_0123456789abcdef01234567",
    channel="sms",
    channel_kind="sms",
    customer_id="C1",
    address="+5511987654321",
    body="Oi Maria, sua fatura de R$ 120,00 vence amanhã",
)


class ScriptedProvider:
    """A provider that answers from a script: an exception to raise or
    a message id to accept with. It counts the calls it received."""

    name = "scripted"

    def __init__(
        self, *answers: BaseException | str, idempotency_keys: bool = False
    ) -> None:
        self.answers = list(answers)
        self.calls = 0
        self.idempotency_keys = idempotency_keys

    def send(self, message: OutboundMessage) -> SendResult:
        self.calls += 1
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return SendResult(
            self.name, answer, dt.datetime(2024, 10, 6, 12, tzinfo=dt.UTC)
        )

    def close(self) -> None:
        pass


def unavailable(retry_after: float | None = None) -> TemporaryFailure:
    return TemporaryFailure("503", provider="scripted", retry_after=retry_after)


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.mark.parametrize(
    ("retry", "draw", "expected"),
    [(1, 1.0, 1.0), (2, 1.0, 2.0), (3, 0.5, 2.0), (8, 1.0, 60.0), (3, 0.0, 0.0)],
)
def test_backoff_is_full_jitter_under_an_exponential_ceiling(
    retry: int, draw: float, expected: float
) -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=60.0)
    assert policy.backoff(retry, lambda: draw) == expected


def test_two_temporary_failures_then_success_sends_once() -> None:
    provider = ScriptedProvider(unavailable(), unavailable(), "SM1")
    sleeps = Sleeps()
    seen: list[Attempt] = []

    delivery = deliver(
        provider,
        MESSAGE,
        RetryPolicy(attempts=4, base_delay=2.0),
        sleep=sleeps,
        on_attempt=seen.append,
        draw=lambda: 0.5,
    )

    assert delivery.status == SENT
    assert provider.calls == 3
    assert delivery.result is not None
    assert delivery.result.provider_message_id == "SM1"
    assert [a.outcome for a in delivery.attempts] == ["temporary", "temporary", "sent"]
    assert [a.number for a in seen] == [1, 2, 3]
    assert sleeps == [1.0, 2.0]  # 0.5 * 2, 0.5 * 4


def test_retry_after_is_waited_exactly_as_told() -> None:
    provider = ScriptedProvider(unavailable(retry_after=7.0), "SM2")
    sleeps = Sleeps()

    delivery = deliver(provider, MESSAGE, RetryPolicy(), sleep=sleeps)

    assert delivery.status == SENT
    assert sleeps == [7.0]
    assert delivery.attempts[0].retry_in == 7.0


def test_retry_after_beyond_the_limit_leaves_it_for_the_next_run() -> None:
    provider = ScriptedProvider(unavailable(retry_after=3600.0), "never")
    sleeps = Sleeps()

    delivery = deliver(
        provider, MESSAGE, RetryPolicy(max_retry_after=60.0), sleep=sleeps
    )

    assert delivery.status == FAILED_TEMPORARY
    assert provider.calls == 1
    assert sleeps == []
    assert delivery.error is not None and "3600s" in delivery.error


def test_a_permanent_failure_is_not_retried() -> None:
    rejected = PermanentFailure(
        "21211 invalid number", provider="scripted", details={"code": 21211}
    )
    provider = ScriptedProvider(rejected, "never")

    delivery = deliver(provider, MESSAGE, RetryPolicy(), sleep=Sleeps())

    assert delivery.status == FAILED_PERMANENT
    assert provider.calls == 1
    assert delivery.error == "21211 invalid number"
    assert delivery.details == {"code": 21211}


def test_temporary_failures_stop_after_the_allowed_attempts() -> None:
    provider = ScriptedProvider(*(unavailable() for _ in range(5)))
    sleeps = Sleeps()

    delivery = deliver(
        provider, MESSAGE, RetryPolicy(attempts=3), sleep=sleeps, first_attempt=4
    )

    assert delivery.status == FAILED_TEMPORARY
    assert provider.calls == 3
    assert len(sleeps) == 2  # no wait after the last attempt
    assert [a.number for a in delivery.attempts] == [4, 5, 6]
    assert delivery.attempts[-1].retry_in is None


def test_an_unexpected_provider_error_makes_the_outcome_unknown(
    caplog: pytest.LogCaptureFixture,
) -> None:
    provider = ScriptedProvider(KeyError("sid"), "never")

    with caplog.at_level(logging.ERROR, logger="adapters.retry"):
        delivery = deliver(provider, MESSAGE, RetryPolicy(), sleep=Sleeps())

    assert delivery.status == UNKNOWN
    assert provider.calls == 1
    assert delivery.attempts[0].outcome == "error"
    assert "KeyError" in (delivery.error or "")
    assert any("raised KeyError" in r.getMessage() for r in caplog.records)


def answer_lost() -> TemporaryFailure:
    """A timeout after the request went out: it may have been accepted."""
    return TemporaryFailure(
        "POST api: timed out", provider="scripted", details={"outcome_unknown": True}
    )


def test_an_unknown_outcome_is_not_retried_without_idempotency_keys() -> None:
    provider = ScriptedProvider(answer_lost(), "never")
    seen: list[Attempt] = []

    delivery = deliver(
        provider, MESSAGE, RetryPolicy(), sleep=Sleeps(), on_attempt=seen.append
    )

    assert delivery.status == UNKNOWN
    assert provider.calls == 1
    assert [a.outcome for a in seen] == ["unknown"]
    assert delivery.details == {"outcome_unknown": True}
    assert "not sent again" in (delivery.error or "")


@pytest.mark.parametrize(
    ("idempotency_keys", "resend_unknown"), [(True, False), (False, True)]
)
def test_an_unknown_outcome_is_retried_when_a_duplicate_is_harmless(
    idempotency_keys: bool, resend_unknown: bool
) -> None:
    provider = ScriptedProvider(answer_lost(), "SM5", idempotency_keys=idempotency_keys)

    delivery = deliver(
        provider,
        MESSAGE,
        RetryPolicy(),
        sleep=Sleeps(),
        resend_unknown=resend_unknown,
    )

    assert delivery.status == SENT
    assert provider.calls == 2
    assert [a.outcome for a in delivery.attempts] == ["temporary", "sent"]


def test_a_failure_before_the_request_went_out_is_retried_anyway() -> None:
    refused = TemporaryFailure(
        "connection refused", provider="scripted", details={"outcome_unknown": False}
    )
    provider = ScriptedProvider(refused, "SM6")

    delivery = deliver(provider, MESSAGE, RetryPolicy(), sleep=Sleeps())

    assert (delivery.status, provider.calls) == (SENT, 2)


def test_a_send_error_not_marked_temporary_is_not_retried() -> None:
    provider = ScriptedProvider(SendError("odd", provider="scripted"), "never")

    delivery = deliver(provider, MESSAGE, RetryPolicy(), sleep=Sleeps())

    assert delivery.status == FAILED_PERMANENT
    assert provider.calls == 1


def test_every_attempt_is_logged_once_with_personal_data_masked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failure = TemporaryFailure("timeout talking to +5511987654321", provider="x")
    provider = ScriptedProvider(failure, "SM3")

    with caplog.at_level(logging.INFO, logger="adapters.retry"):
        deliver(provider, MESSAGE, RetryPolicy(), sleep=Sleeps(), draw=lambda: 0)

    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert len(lines) == 2
    assert all("+55 11 9****-**21" in line for line in lines)
    assert not any("987654321" in line or "Maria" in line for line in lines)
    assert f"<{len(MESSAGE.body)} chars>" in lines[0]
    assert "id=SM3" in lines[1]


def test_rate_limiter_spaces_calls_and_hands_the_wait_to_sleep() -> None:
    now = [100.0]
    limiter = RateLimiter.parse("10/s", clock=lambda: now[0])
    sleeps = Sleeps()

    for _ in range(3):
        limiter.acquire(sleeps)

    assert sleeps == pytest.approx([0.1, 0.2])  # the first call goes at once

    now[0] += 10.0  # idle: the next call goes at once again
    assert limiter.wait_time() == 0.0


def test_rate_limiter_burst_lets_a_few_calls_through_at_once() -> None:
    limiter = RateLimiter(2.0, burst=3, clock=lambda: 0.0)

    waits = [limiter.wait_time() for _ in range(5)]

    assert waits == pytest.approx([0.0, 0.0, 0.0, 0.5, 1.0])


@pytest.mark.parametrize(
    ("text", "rate"),
    [("10/s", 10.0), ("600/min", 10.0), ("36/hour", 0.01), (" 5 / second ", 5.0)],
)
def test_rate_limits_are_parsed_per_unit(text: str, rate: float) -> None:
    assert RateLimiter.parse(text).rate == pytest.approx(rate)


@pytest.mark.parametrize("text", ["10", "ten/s", "10/day", "0/s", "-1/s"])
def test_bad_rate_limits_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="rate limit"):
        RateLimiter.parse(text)


def test_deliver_waits_for_the_rate_limiter_before_each_attempt() -> None:
    provider = ScriptedProvider(unavailable(retry_after=0.0), "SM4")
    limiter = RateLimiter(1.0, clock=lambda: 0.0)
    sleeps = Sleeps()

    deliver(provider, MESSAGE, RetryPolicy(), limiter, sleep=sleeps)

    assert sleeps == [1.0]  # the retry waited for the limiter's next slot
