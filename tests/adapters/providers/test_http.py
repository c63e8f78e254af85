"""The shared HTTP client: error mapping, Retry-After, timeouts, TLS."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from adapters.providers.base import PermanentFailure, TemporaryFailure
from adapters.providers.http import HttpClient, retry_after_seconds
from tests.adapters.providers.servers import (
    Certificate,
    HttpServer,
    Reply,
    closed_port,
)

NOW = dt.datetime(2026, 3, 9, 12, 0, 0, tzinfo=dt.UTC)


def test_a_2xx_answer_is_returned_with_headers_and_body(
    http_server: HttpServer,
) -> None:
    http_server.script(Reply(201, {"id": "abc"}, headers={"X-Request-Id": "r1"}))
    client = HttpClient("p")

    response = client.call(
        "POST", http_server.url + "/v1/x?a=1", headers={"X-T": "y"}, body=b"hi"
    )

    assert (response.status, response.json()) == (201, {"id": "abc"})
    assert response.headers["x-request-id"] == "r1"
    [request] = http_server.requests
    assert (request.method, request.path, request.query) == (
        "POST",
        "/v1/x",
        {"a": ["1"]},
    )
    assert request.headers["x-t"] == "y" and request.body == b"hi"


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408, 425, 429])
def test_server_trouble_and_rate_limits_are_temporary(
    http_server: HttpServer, status: int
) -> None:
    http_server.script(Reply(status, {"error": {"message": "busy", "code": 7}}))

    with pytest.raises(TemporaryFailure) as caught:
        HttpClient("p").call("POST", http_server.url + "/x")

    assert caught.value.provider == "p"
    assert caught.value.details["http_status"] == status
    assert caught.value.details["error"] == "busy"
    assert caught.value.details["provider_code"] == "7"
    # A server or gateway that failed with the request in hand may have
    # acted on it; the others turned it away.
    maybe_accepted = status in (500, 502, 504)
    assert caught.value.details["outcome_unknown"] is maybe_accepted


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
def test_other_client_errors_are_permanent_with_the_providers_words(
    http_server: HttpServer, status: int
) -> None:
    http_server.script(Reply(status, {"message": "The 'To' number is invalid"}))

    with pytest.raises(PermanentFailure) as caught:
        HttpClient("p").call("POST", http_server.url + "/x")

    assert "The 'To' number is invalid" in str(caught.value)
    assert caught.value.details["http_status"] == status


def test_a_redirect_is_not_followed(http_server: HttpServer) -> None:
    http_server.script(Reply(302, headers={"Location": "http://127.0.0.1:1/elsewhere"}))

    with pytest.raises(PermanentFailure, match="unexpected redirect to .*elsewhere"):
        HttpClient("p").call("POST", http_server.url + "/x")
    assert len(http_server.requests) == 1


def test_retry_after_in_seconds_is_passed_on(http_server: HttpServer) -> None:
    http_server.script(Reply(429, "slow down", headers={"Retry-After": "7"}))

    with pytest.raises(TemporaryFailure) as caught:
        HttpClient("p").call("POST", http_server.url + "/x")

    assert caught.value.retry_after == 7.0


def test_retry_after_as_an_http_date_becomes_seconds_from_now(
    http_server: HttpServer,
) -> None:
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=120)
    header = later.strftime("%a, %d %b %Y %H:%M:%S GMT")
    http_server.script(Reply(503, "", headers={"Retry-After": header}))

    with pytest.raises(TemporaryFailure) as caught:
        HttpClient("p").call("POST", http_server.url + "/x")

    assert caught.value.retry_after is not None
    assert 110 <= caught.value.retry_after <= 120


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("30", 30.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("-4", 0.0),
        ("Mon, 09 Mar 2026 12:01:00 GMT", 60.0),
        ("Mon, 09 Mar 2026 11:00:00 GMT", 0.0),  # in the past: now
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_parsing(header: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(header, NOW) == seconds


def test_connection_refused_is_temporary_and_nothing_was_sent() -> None:
    url = f"http://127.0.0.1:{closed_port()}/x"

    with pytest.raises(TemporaryFailure, match="connection refused") as caught:
        HttpClient("p").call("POST", url, body=b"x")

    assert caught.value.details["outcome_unknown"] is False
    assert isinstance(caught.value.__cause__, ConnectionRefusedError)


def test_a_silent_server_times_out_with_the_outcome_unknown(
    http_server: HttpServer,
) -> None:
    http_server.script(Reply(200, {}, delay=1.0))
    started = time.monotonic()

    with pytest.raises(TemporaryFailure, match="timed out") as caught:
        HttpClient("p", timeout=0.2).call("POST", http_server.url + "/x", body=b"x")

    assert time.monotonic() - started < 0.9
    # The request went out: the provider may have acted on it.
    assert caught.value.details["outcome_unknown"] is True


def test_a_trickling_server_is_cut_at_the_overall_deadline(
    http_server: HttpServer,
) -> None:
    # Each byte arrives well within the per-read timeout, but the whole
    # answer would take seconds.
    http_server.script(Reply(200, "x" * 100, trickle=0.05))
    started = time.monotonic()

    with pytest.raises(TemporaryFailure, match="timed out"):
        HttpClient("p", timeout=0.5, deadline=0.6).call("GET", http_server.url)

    assert time.monotonic() - started < 1.5


def test_https_with_the_configured_ca_file(certificate: Certificate) -> None:
    with HttpServer(tls=certificate.server_context()) as server:
        server.script(Reply(200, {"ok": True}))
        client = HttpClient("p", ca_file=str(certificate.cert_file))

        response = client.call("GET", server.url + "/secure")

    assert server.url.startswith("https://")
    assert response.json() == {"ok": True}


def test_an_untrusted_certificate_is_a_permanent_failure(
    certificate: Certificate,
) -> None:
    with HttpServer(tls=certificate.server_context()) as server:
        with pytest.raises(PermanentFailure, match="certificate .* rejected"):
            HttpClient("p").call("GET", server.url + "/secure")
        assert server.requests == []
