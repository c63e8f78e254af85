"""The small HTTP client every HTTP provider shares.

It speaks through the standard library's `http.client`: one connection per
request, a timeout on every socket operation and an overall deadline for
the whole exchange (a server that trickles bytes cannot hold a run), no
redirects followed, response bodies capped. Driver errors are translated at
this boundary into the port's failures:

    connection refused/reset, timeout, 408, 425, 429, 5xx  ->  TemporaryFailure
    TLS certificate rejected, 3xx, other 4xx               ->  PermanentFailure

A TemporaryFailure raised after the request went out and before an answer
came (a timeout, a reset), or on a 500, 502 or 504 (a server or gateway
that failed while the request was in hand), carries
`details["outcome_unknown"] = True`: the provider may have accepted the
message, which matters when the API takes no idempotency key.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import http.client
import json
import logging
import os
import re
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from adapters import boundedjson
from adapters.providers.base import (
    OutboundMessage,
    PermanentFailure,
    SendError,
    TemporaryFailure,
)
from adapters.providers.options import Options

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0  # seconds per connect, send or read
DEFAULT_DEADLINE = 30.0  # seconds for the whole exchange
MAX_BODY = 1 << 20  # a provider's answer is small; never buffer more
USER_AGENT = "ruleset (preventive collection)"

# Statuses worth another try: the server was busy, slow or rate-limiting.
RETRYABLE_STATUSES = frozenset({408, 425, 429})

# 5xx answers from a server that may have acted on the request before it
# failed: an internal error, or a gateway whose upstream answered badly or
# too late. 503 (and 408, 425, 429) say the request was turned away.
MAYBE_ACCEPTED_STATUSES = frozenset({500, 502, 504})


@dataclass(frozen=True)
class HttpResponse:
    """A response as read: status, headers (lower-case names), body bytes."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> Any:
        """The body as JSON, or None when it is empty or not JSON."""
        try:
            return boundedjson.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return None

    def text(self, limit: int = 500) -> str:
        text = self.body.decode("utf-8", errors="replace").strip()
        return text if len(text) <= limit else text[:limit] + "..."


@dataclass(frozen=True)
class ProviderError:
    """An error response in the provider's own words, for the ledger."""

    message: str
    code: str | None = None  # the provider's error code, when it has one
    # The body says "try later" whatever the status (a rate limit in a 400).
    retryable: bool = False
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. a trace id


# Reads a provider's error shape out of a non-2xx response.
ErrorReader = Callable[[HttpResponse], ProviderError]


def default_error(response: HttpResponse) -> ProviderError:
    """The common shapes: {"error": {"message", "code"}}, {"message"}, text."""
    payload = response.json()
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict) and error.get("message"):
            code = error.get("code", error.get("status"))
            return ProviderError(
                str(error["message"]), None if code is None else str(code)
            )
        if isinstance(error, str):
            return ProviderError(error)
        if payload.get("message"):
            code = payload.get("code")
            return ProviderError(
                str(payload["message"]), None if code is None else str(code)
            )
    text = response.text(200) or http.client.responses.get(response.status, "")
    return ProviderError(text)


def json_body(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def basic_auth(user: str, password: str) -> str:
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def retry_after_seconds(value: str | None, now: dt.datetime) -> float | None:
    """Retry-After as seconds from `now`: delta-seconds or an HTTP date."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000" in an HTTP date means UTC
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - now).total_seconds())


def failure_for(
    provider: str, response: HttpResponse, error: ProviderError
) -> SendError:
    """The failure a non-2xx response means."""
    details: dict[str, Any] = {"http_status": response.status, "error": error.message}
    if error.code is not None:
        details["provider_code"] = error.code
    details.update(error.extra)
    code = f" (code {error.code})" if error.code is not None else ""
    message = f"HTTP {response.status}: {error.message}{code}"
    status = response.status
    if error.retryable or status in RETRYABLE_STATUSES or status >= 500:
        # A provider that says "try again" in its body is taken at its word.
        unknown = status in MAYBE_ACCEPTED_STATUSES and not error.retryable
        details["outcome_unknown"] = unknown
        now = dt.datetime.now(dt.UTC)
        wait = retry_after_seconds(response.headers.get("retry-after"), now)
        return TemporaryFailure(
            message, provider=provider, retry_after=wait, details=details
        )
    if 300 <= status < 400:
        location = response.headers.get("location", "?")
        message = f"HTTP {status}: unexpected redirect to {location}"
    return PermanentFailure(message, provider=provider, details=details)


class HttpClient:
    """Sends one request at a time for one provider; safe to share between
    threads (it keeps no connection between requests)."""

    def __init__(
        self,
        provider: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        deadline: float = DEFAULT_DEADLINE,
        ca_file: str | None = None,
    ) -> None:
        self.provider = provider
        self.timeout = timeout
        self.deadline = max(deadline, timeout)
        self._tls = ssl.create_default_context(cafile=ca_file)

    def call(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        read_error: ErrorReader = default_error,
    ) -> HttpResponse:
        """Send a request; return a 2xx response or raise the failure."""
        response = self.request(method, url, headers=headers, body=body)
        if 200 <= response.status < 300:
            return response
        raise failure_for(self.provider, response, read_error(response))

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> HttpResponse:
        """Send a request and return whatever status came back. Network
        trouble raises TemporaryFailure; a rejected certificate, Permanent."""
        parts = urlsplit(url)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        all_headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        all_headers.update(headers or {})

        started = time.monotonic()
        connection = self._connect(parts.scheme, parts.hostname or "", parts.port)
        sent = False
        try:
            connection.request(method, target, body=body, headers=all_headers)
            sent = True
            # Kept before getresponse(), which may hand the socket over to
            # the response and forget it (a server that closes after one).
            sock = connection.sock
            response = connection.getresponse()
            payload = self._read(sock, response, started)
            result = HttpResponse(
                status=response.status,
                headers={name.lower(): value for name, value in response.getheaders()},
                body=payload,
            )
        except ssl.SSLCertVerificationError as exc:
            raise PermanentFailure(
                f"TLS certificate of {parts.hostname} rejected: {exc.verify_message}",
                provider=self.provider,
            ) from exc
        except (OSError, http.client.HTTPException) as exc:
            reason = _describe(exc)
            raise TemporaryFailure(
                f"{method} {parts.hostname}: {reason}",
                provider=self.provider,
                details={"error": reason, "outcome_unknown": sent},
            ) from exc
        finally:
            connection.close()

        elapsed = (time.monotonic() - started) * 1000
        logger.debug(
            "%s %s -> %s in %.0f ms", method, parts.hostname, result.status, elapsed
        )
        return result

    def _connect(
        self, scheme: str, host: str, port: int | None
    ) -> http.client.HTTPConnection:
        if scheme == "https":
            return http.client.HTTPSConnection(
                host, port, timeout=self.timeout, context=self._tls
            )
        return http.client.HTTPConnection(host, port, timeout=self.timeout)

    def _read(
        self,
        sock: socket.socket | None,
        response: http.client.HTTPResponse,
        started: float,
    ) -> bytes:
        """Read the body in chunks, giving up at the overall deadline."""
        chunks: list[bytes] = []
        size = 0
        while size < MAX_BODY and not response.isclosed():
            remaining = self.deadline - (time.monotonic() - started)
            if remaining <= 0:
                raise TimeoutError(f"no complete answer within {self.deadline:g} s")
            if sock is not None:
                sock.settimeout(min(self.timeout, remaining))
            chunk = response.read1(min(65536, MAX_BODY - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return f"timed out ({exc})" if str(exc) else "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def client_from(options: Options) -> HttpClient:
    """The client a provider's `timeout`, `deadline` and `ca_file` ask for."""
    ca_file = options.text("ca_file", None)
    if ca_file is not None and not os.path.isfile(ca_file):
        raise options.error(f"no such file: {ca_file}", "ca_file")
    return HttpClient(
        options.provider,
        timeout=options.number("timeout", DEFAULT_TIMEOUT),
        deadline=options.number("deadline", DEFAULT_DEADLINE),
        ca_file=ca_file,
    )


def field_at(payload: Any, path: str) -> Any:
    """The value at a dotted path (`messages.0.id`), or None."""
    value = payload
    for part in path.split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def answer_id(payload: Any, path: str, details: dict[str, Any]) -> str | None:
    """The provider's id for the message, at a dotted path of its answer.

    An answer without one (missing, or not a single value) still means the
    message was accepted: the id is None and `details` carries a warning.
    """
    value = field_at(payload, path)
    if value is None or isinstance(value, (dict, list)):
        details["warning"] = f"accepted, but the answer had no {path!r}"
        return None
    return str(value)


def accepted_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


_E164 = re.compile(r"\+[1-9][0-9]{6,14}")


def e164(message: OutboundMessage, provider: str) -> str:
    """The message's phone number, which must be E.164 (`+5511987654321`)."""
    if not _E164.fullmatch(message.address):
        # The number itself stays out of the message: it ends up in logs.
        raise PermanentFailure(
            "the address is not an E.164 phone number (+, country code and "
            "number, digits only)",
            provider=provider,
        )
    return message.address
