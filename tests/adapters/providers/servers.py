"""Real local servers for provider tests: HTTP and SMTP on 127.0.0.1.

`HttpServer` records every request and answers from a script (a list of
replies, or a function of the request), so a test can check the exact
method, path, headers and body a provider sent and answer as the real API
would, errors included. `SmtpServer` is aiosmtpd on a free loopback port,
optionally with STARTTLS, implicit TLS and AUTH, keeping the raw bytes of
every message it accepted.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServerProtocol
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session


@dataclass(frozen=True)
class Recorded:
    """One request as the server received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes
    at: float = 0.0  # time.monotonic() when it arrived

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))

    def form(self) -> dict[str, str]:
        """An urlencoded body, one value per field (asserted)."""
        fields = parse_qs(self.body.decode("ascii"), keep_blank_values=True)
        assert all(len(values) == 1 for values in fields.values()), fields
        return {name: values[0] for name, values in fields.items()}


@dataclass(frozen=True)
class Reply:
    """What the server answers. A dict or list body is sent as JSON."""

    status: int = 200
    body: bytes | str | dict[str, Any] | list[Any] = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds of silence before the status line
    trickle: float = 0.0  # seconds between body bytes (a slow server)
    hang_up: bool = False  # read the request, then close without a word

    def encoded(self) -> tuple[bytes, str]:
        if isinstance(self.body, (dict, list)):
            return json.dumps(self.body).encode(), "application/json"
        if isinstance(self.body, str):
            return self.body.encode(), "text/plain; charset=utf-8"
        return self.body, "application/octet-stream"


Responder = Callable[[Recorded], Reply]


class HttpServer:
    """A scripted HTTP(S) server on 127.0.0.1, in a thread.

    Replies come from `script(...)` in order; when the script is empty the
    `responder` (or a plain 200 with `{}`) answers.
    """

    def __init__(
        self, responder: Responder | None = None, tls: ssl.SSLContext | None = None
    ) -> None:
        self.requests: list[Recorded] = []
        self._replies: deque[Reply] = deque()
        self._responder = responder or (lambda request: Reply(200, {}))
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True  # a delayed reply must not block stop()
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._scheme = "https" if tls is not None else "http"
        # A short poll interval keeps shutdown() quick between tests.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{self._scheme}://{host!s}:{port}"

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._replies.extend(replies)

    def __enter__(self) -> HttpServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def _answer(self, request: Recorded) -> Reply:
        with self._lock:
            self.requests.append(request)
            if self._replies:
                return self._replies.popleft()
        return self._responder(request)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes; without this,
            # Nagle and delayed ACKs add ~40 ms to every answer.
            disable_nagle_algorithm = True

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                request = Recorded(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query, keep_blank_values=True),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                    at=time.monotonic(),
                )
                reply = server._answer(request)
                time.sleep(reply.delay)
                if reply.hang_up:
                    self.close_connection = True
                    return
                payload, content_type = reply.encoded()
                self.send_response(reply.status)
                headers = {"Content-Type": content_type, **reply.headers}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("Connection", "close")
                self.end_headers()
                try:
                    if reply.trickle:
                        for index in range(len(payload)):
                            self.wfile.write(payload[index : index + 1])
                            self.wfile.flush()
                            time.sleep(reply.trickle)
                    else:
                        self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up, as timeout tests want

            do_GET = do_POST = do_PUT = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: tests read `requests`, not stderr."""

        return Handler


# --- TLS material -----------------------------------------------------------


@dataclass(frozen=True)
class Certificate:
    """A self-signed certificate for 127.0.0.1 and localhost."""

    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def make_certificate(directory: Path) -> Certificate:
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
            "-keyout", str(key_file), "-out", str(cert_file), "-days", "2",
            "-subj", "/CN=localhost",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return Certificate(cert_file, key_file)


# --- SMTP -------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes  # the DATA exactly as received, CRLF line ends

    def header_lines(self) -> list[str]:
        """The header block as unfolded `Name: value` lines."""
        head = self.content.split(b"\r\n\r\n", 1)[0].decode("ascii")
        lines: list[str] = []
        for line in head.split("\r\n"):
            if line[:1] in (" ", "\t") and lines:
                lines[-1] += line
            else:
                lines.append(line)
        return lines

    def header_names(self) -> list[str]:
        return [line.split(":", 1)[0] for line in self.header_lines()]


class _Recorder:
    """The aiosmtpd handler: keeps accepted mail, answers DATA from a script."""

    def __init__(self) -> None:
        self.mail: list[ReceivedMail] = []
        self.data_answers: deque[str] = deque()
        self.rcpt_answers: deque[str] = deque()
        self.authenticated: list[str] = []
        self._sessions: list[Session] = []  # one per connection
        self._tls_sessions: list[Session] = []

    @property
    def sessions(self) -> int:
        """Connections that said EHLO."""
        return len(self._sessions)

    @property
    def tls_sessions(self) -> int:
        """Connections that sent mail over TLS."""
        return len(self._tls_sessions)

    async def handle_EHLO(
        self,
        server: SMTPServerProtocol,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname  # this hook takes over aiosmtpd's own
        if not any(known is session for known in self._sessions):
            self._sessions.append(session)
        return responses

    async def handle_MAIL(
        self,
        server: SMTPServerProtocol,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        if session.ssl is not None and not any(
            known is session for known in self._tls_sessions
        ):
            self._tls_sessions.append(session)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self,
        server: SMTPServerProtocol,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if self.rcpt_answers:
            return self.rcpt_answers.popleft()
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(
        self, server: SMTPServerProtocol, session: Session, envelope: Envelope
    ) -> str:
        if self.data_answers:
            return self.data_answers.popleft()
        content = envelope.original_content or b""
        self.mail.append(
            ReceivedMail(
                mail_from=str(envelope.mail_from),
                rcpt_tos=tuple(envelope.rcpt_tos),
                content=content,
            )
        )
        return "250 2.0.0 queued"


class _LoopbackController(Controller):
    """aiosmtpd's Controller on port 0: learn the port before the self-test."""

    def _trigger_server(self) -> None:
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class SmtpServer:
    """aiosmtpd on 127.0.0.1 with a free port.

    `starttls`/`implicit_tls` take a certificate; `users` turns AUTH on
    (PLAIN and LOGIN, only after TLS unless the connection is plain).
    """

    def __init__(
        self,
        *,
        starttls: Certificate | None = None,
        implicit_tls: Certificate | None = None,
        users: dict[str, str] | None = None,
    ) -> None:
        self.recorder = _Recorder()
        self.users = users
        kwargs: dict[str, Any] = {}
        if starttls is not None:
            kwargs["tls_context"] = starttls.server_context()
            kwargs["require_starttls"] = True
        if users is not None:
            kwargs["authenticator"] = self._authenticate
            kwargs["auth_require_tls"] = starttls is not None
        self._controller = _LoopbackController(
            self.recorder,
            hostname="127.0.0.1",
            port=0,
            ssl_context=implicit_tls.server_context() if implicit_tls else None,
            **kwargs,
        )

    @property
    def port(self) -> int:
        return int(self._controller.port)

    @property
    def mail(self) -> list[ReceivedMail]:
        return self.recorder.mail

    def _authenticate(
        self,
        server: SMTPServerProtocol,
        session: Session,
        envelope: Envelope,
        mechanism: str,
        auth_data: Any,
    ) -> AuthResult:
        if isinstance(auth_data, LoginPassword) and self.users is not None:
            user = auth_data.login.decode()
            if self.users.get(user) == auth_data.password.decode():
                self.recorder.authenticated.append(user)
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    def __enter__(self) -> SmtpServer:
        self._controller.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._controller.stop()


class HangingSmtpServer:
    """A bare SMTP server that hangs up at a chosen point of the dialogue:
    after the recipient is accepted (`after="rcpt"`), or after reading the
    whole message text, instead of the final reply (`after="data"`). It
    counts the messages it read to the end."""

    def __init__(self, after: str) -> None:
        assert after in ("rcpt", "data")
        self.after = after
        self.messages_read = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    def __enter__(self) -> HangingSmtpServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping.set()
        self._thread.join()
        self._listener.close()

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(5)
                # The client may go away first.
                with contextlib.suppress(OSError):
                    self._converse(connection.makefile("rwb"))

    def _converse(self, stream: Any) -> None:
        def say(line: str) -> None:
            stream.write(line.encode("ascii") + b"\r\n")
            stream.flush()

        say("220 127.0.0.1 ESMTP")
        for raw in stream:
            command = raw.decode("ascii", "replace").strip().upper()
            if command.startswith(("EHLO", "HELO")):
                say("250 127.0.0.1")
            elif command.startswith("MAIL"):
                say("250 OK")
            elif command.startswith("RCPT"):
                if self.after == "rcpt":
                    return
                say("250 OK")
            elif command == "DATA":
                say("354 end with <CRLF>.<CRLF>")
                for line in stream:
                    if line == b".\r\n":
                        break
                self.messages_read += 1
                return  # the mail is read; the 250 never comes
            elif command == "QUIT":
                say("221 bye")
                return
            else:
                say("250 OK")


def closed_port() -> int:
    """A loopback port with nothing listening (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
