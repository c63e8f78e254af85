"""E-mail over SMTP: STARTTLS, implicit TLS, or plain on loopback.

Messages are `email.message.EmailMessage` objects with the SMTP policy
(CRLF line ends): text/plain, or multipart/alternative with an HTML part
when the template has one; headers From, To, Subject, Date, Message-ID,
Reply-To and List-Unsubscribe (plus List-Unsubscribe-Post for one-click
URLs) when configured.

Header injection. Data in a subject or a display name is text, never
header syntax. Control characters (CR, LF, tabs, ...) become spaces, and
the value is written by `_TextHeader`, which encodes it as RFC 2047
encoded words whenever it is not plain ASCII or contains `=?`. The
standard library's own header parser would decode an encoded word found in
the data (`=?utf-8?q?x=0D=0ABcc:...?=`) and write the decoded line break
back out raw; ours keeps the literal text, which the reader sees as typed.

Failures: 4xx replies and lost connections are temporary, 5xx replies
and a rejected certificate permanent. A connection lost (or a timeout)
after the DATA command went out leaves the outcome unknown: the server
may have queued the mail, and SMTP has no idempotency key, so the runner
does not send it again. One connection is kept for the run (checked with
NOOP before reuse) and dropped after any error.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import os
import re
import smtplib
import socket
import ssl
import string
import threading
from email.header import Header
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.policy import Policy
from typing import Any
from urllib.parse import quote

from adapters.providers.base import (
    OutboundMessage,
    PermanentFailure,
    SendError,
    SendResult,
    TemporaryFailure,
)
from adapters.providers.options import Options, check_placeholders, is_loopback

logger = logging.getLogger(__name__)

DEFAULT_PORTS = {"starttls": 587, "ssl": 465, "none": 25}
DEFAULT_TIMEOUT = 30.0
UNSUBSCRIBE_PLACEHOLDERS = ("customer_id", "action_id")

# C0 and C1 controls, DEL and the Unicode line/paragraph separators: none
# may reach a header, where they could end it.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
# Characters a display name may show without quoting (RFC 5322 atext, space).
_PLAIN_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]*")
_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+")
_HOSTNAME = re.compile(
    r"(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
)


def one_line(text: str) -> str:
    """Text for a header: every run of control characters becomes a space."""
    return _CONTROLS.sub(" ", text).strip()


class _TextHeader:
    """A header whose value is written exactly as given, encoded when needed.

    `EmailMessage` accepts an object with `name` and `fold()` as a header
    and then writes it through `fold()` without parsing it.
    """

    def __init__(self, name: str, value: str, *, needs_encoding: bool) -> None:
        self.name = name
        self._value = value
        self._encode = needs_encoding

    def __str__(self) -> str:
        return self._value

    def fold(self, *, policy: Policy) -> str:
        charset = "utf-8" if self._encode else "us-ascii"
        header = Header(
            self._value,
            charset,
            maxlinelen=policy.max_line_length,
            header_name=self.name,
        )
        linesep = policy.linesep
        return f"{self.name}: {header.encode(linesep=linesep)}{linesep}"


def text_header(name: str, text: str) -> _TextHeader:
    value = one_line(text)
    encode = not value.isascii() or "=?" in value
    return _TextHeader(name, value, needs_encoding=encode)


def mailbox_header(name: str, address: str, display_name: str | None) -> _TextHeader:
    """`Name: "Display" <addr>`, the display name quoted or encoded."""
    if not display_name or not one_line(display_name):
        return _TextHeader(name, address, needs_encoding=False)
    display = one_line(display_name)
    if display.isascii() and "=?" not in display:
        if not _PLAIN_NAME.fullmatch(display):
            display = '"' + display.replace("\\", "\\\\").replace('"', '\\"') + '"'
    else:
        display = Header(display, "utf-8").encode()
    # The display part is ASCII now (quoted or encoded words): no encoding.
    return _TextHeader(name, f"{display} <{address}>", needs_encoding=False)


def ascii_address(address: str) -> str | None:
    """The address with its domain in IDNA form, or None if it is not a
    plain `local@domain` we can send without SMTPUTF8."""
    local, at, domain = address.strip().rpartition("@")
    if not at or not local or not domain:
        return None
    if not _LOCAL_PART.fullmatch(local) or ".." in local:
        return None
    try:
        domain = domain.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None
    if not _HOSTNAME.fullmatch(domain):
        return None
    return f"{local}@{domain}"


class SmtpProvider:
    """Sends e-mail through one SMTP server, reusing the connection."""

    # Servers do not deduplicate on Message-ID: a mail sent again after a
    # lost answer is a second mail in the inbox.
    idempotency_keys = False

    def __init__(
        self,
        name: str,
        *,
        host: str,
        port: int,
        security: str,
        from_address: str,
        from_name: str | None = None,
        reply_to: str | None = None,
        envelope_from: str | None = None,
        username: str | None = None,
        password: str | None = None,
        message_id_domain: str | None = None,
        unsubscribe_mailto: str | None = None,
        unsubscribe_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        ca_file: str | None = None,
        local_hostname: str | None = None,
    ) -> None:
        self.name = name
        self._host = host
        self._port = port
        self._security = security
        self._from_address = from_address
        self._from_name = from_name
        self._reply_to = reply_to
        self._envelope_from = envelope_from or from_address
        self._credentials = (username, password or "") if username is not None else None
        self._domain = message_id_domain or from_address.rpartition("@")[2]
        self._unsubscribe_mailto = unsubscribe_mailto
        self._unsubscribe_url = unsubscribe_url
        self._timeout = timeout
        self._tls = ssl.create_default_context(cafile=ca_file)
        self._local_hostname = local_hostname
        self._connection: smtplib.SMTP | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_options(cls, name: str, options: Options) -> SmtpProvider:
        security = options.choice("security", DEFAULT_PORTS, "starttls")
        host = options.text("host")
        port = options.raw("port", DEFAULT_PORTS[security])
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise options.error("must be a port number", "port")
        username = options.secret("username_env", required=False)
        password = options.secret("password_env", required=username is not None)
        if password is not None and username is None:
            raise options.error("password_env needs username_env", "password_env")
        if security == "none" and username is not None and not is_loopback(host):
            raise options.error(
                "credentials over a plain connection are allowed only to a "
                "loopback host; use starttls or ssl",
                "security",
            )

        addresses = {"from_address": options.text("from_address")}
        addresses["reply_to"] = options.text("reply_to", None)
        addresses["envelope_from"] = options.text("envelope_from", None)
        for key, value in list(addresses.items()):
            if value is None:
                continue
            checked = ascii_address(value)
            if checked is None:
                raise options.error(f"{value!r} is not an e-mail address", key)
            addresses[key] = checked

        domain = options.text("message_id_domain", None)
        if domain is not None and not _HOSTNAME.fullmatch(domain):
            raise options.error("must be a domain name", "message_id_domain")
        mailto = options.text("list_unsubscribe_mailto", None)
        if mailto is not None:
            mailto = mailto.removeprefix("mailto:")
            if ascii_address(mailto.partition("?")[0]) is None:
                raise options.error(
                    "must be an e-mail address", "list_unsubscribe_mailto"
                )
        url = options.url("list_unsubscribe_url", None)
        if url is not None:
            check_placeholders(
                url, UNSUBSCRIBE_PLACEHOLDERS, options, "list_unsubscribe_url"
            )
        ca_file = options.text("ca_file", None)
        if ca_file is not None and not os.path.isfile(ca_file):
            raise options.error(f"no such file: {ca_file}", "ca_file")

        return cls(
            name,
            host=host,
            port=port,
            security=security,
            from_address=addresses["from_address"],
            from_name=options.text("from_name", None),
            reply_to=addresses.get("reply_to"),
            envelope_from=addresses.get("envelope_from"),
            username=username,
            password=password,
            message_id_domain=domain,
            unsubscribe_mailto=mailto,
            unsubscribe_url=url,
            timeout=options.number("timeout", DEFAULT_TIMEOUT),
            ca_file=ca_file,
            local_hostname=options.text("local_hostname", None),
        )

    # --- building --------------------------------------------------------

    def build(self, message: OutboundMessage, now: dt.datetime) -> EmailMessage:
        """The e-mail for one message, headers safe whatever the data."""
        recipient = ascii_address(message.address)
        if recipient is None:
            raise PermanentFailure(
                "the address is not an e-mail address we can send to (plain "
                "ASCII local@domain)",
                provider=self.name,
            )
        if not message.subject or not one_line(message.subject):
            raise PermanentFailure("an e-mail needs a subject", provider=self.name)

        mail = EmailMessage(policy=SMTP_POLICY)
        mail["From"] = mailbox_header("From", self._from_address, self._from_name)
        mail["To"] = mailbox_header("To", recipient, None)
        mail["Subject"] = text_header("Subject", message.subject)
        mail["Date"] = email.utils.format_datetime(now.astimezone(dt.UTC))
        mail["Message-ID"] = self.message_id(message)
        if self._reply_to:
            mail["Reply-To"] = mailbox_header("Reply-To", self._reply_to, None)
        unsubscribe = self._unsubscribe(message)
        if unsubscribe:
            mail["List-Unsubscribe"] = ", ".join(unsubscribe)
            if self._unsubscribe_url:
                # RFC 8058 one-click: mailbox providers POST this body.
                mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"

        # Quoted-printable keeps the whole message 7-bit ASCII, so it goes
        # through servers that do not offer 8BITMIME.
        mail.set_content(message.body, cte="quoted-printable")
        if message.html:
            mail.add_alternative(message.html, subtype="html", cte="quoted-printable")
        return mail

    def message_id(self, message: OutboundMessage) -> str:
        """Derived from the action id: a resend carries the same id, and a
        bounce can be traced to its action."""
        local = re.sub(r"[^A-Za-z0-9._-]", "_", message.action_id)
        return f"<{local}@{self._domain}>"

    def _unsubscribe(self, message: OutboundMessage) -> list[str]:
        entries = []
        if self._unsubscribe_url:
            values = {
                "customer_id": quote(message.customer_id, safe=""),
                "action_id": quote(message.action_id, safe=""),
            }
            url = string.Template(self._unsubscribe_url).substitute(values)
            entries.append(f"<{url}>")
        if self._unsubscribe_mailto:
            entries.append(f"<mailto:{self._unsubscribe_mailto}>")
        return entries

    # --- sending ---------------------------------------------------------

    def send(self, message: OutboundMessage) -> SendResult:
        now = dt.datetime.now(dt.UTC)
        mail = self.build(message, now)
        recipient = ascii_address(message.address) or message.address
        with self._lock:
            connection = self._connected()
            handed_over = False
            try:
                self._envelope(connection, recipient)
                # From the DATA command on, the server may queue the mail
                # even when its answer never reaches us.
                handed_over = True
                code, reply = connection.data(mail.as_bytes())
                if code != 250:
                    raise smtplib.SMTPDataError(code, reply)
            except (smtplib.SMTPException, OSError) as exc:
                self._drop()
                raise self._failure(exc, handed_over=handed_over) from exc
        return SendResult(
            provider=self.name,
            provider_message_id=str(mail["Message-ID"]),
            accepted_at=now,
            details={"html": bool(message.html)},
        )

    def _envelope(self, connection: smtplib.SMTP, recipient: str) -> None:
        """MAIL FROM and RCPT TO, each refusal raised as smtplib does."""
        code, reply = connection.mail(self._envelope_from)
        if code != 250:
            raise smtplib.SMTPSenderRefused(code, reply, self._envelope_from)
        code, reply = connection.rcpt(recipient)
        if code not in (250, 251):
            raise smtplib.SMTPRecipientsRefused({recipient: (code, reply)})

    def _connected(self) -> smtplib.SMTP:
        """The open connection, checked with NOOP, or a new one."""
        if self._connection is not None:
            try:
                if self._connection.noop()[0] == 250:
                    return self._connection
            except (smtplib.SMTPException, OSError):
                pass
            self._drop()
        try:
            self._connection = self._open()
        except (smtplib.SMTPException, OSError) as exc:
            raise self._failure(exc, handed_over=False) from exc
        return self._connection

    def _open(self) -> smtplib.SMTP:
        connection: smtplib.SMTP
        if self._security == "ssl":
            connection = smtplib.SMTP_SSL(
                self._host,
                self._port,
                local_hostname=self._local_hostname,
                timeout=self._timeout,
                context=self._tls,
            )
        else:
            connection = smtplib.SMTP(
                self._host,
                self._port,
                local_hostname=self._local_hostname,
                timeout=self._timeout,
            )
        try:
            connection.ehlo()
            if self._security == "starttls":
                connection.starttls(context=self._tls)
                connection.ehlo()
            if self._credentials is not None:
                connection.login(*self._credentials)
        except BaseException:
            connection.close()
            raise
        logger.debug("connected to %s:%s (%s)", self._host, self._port, self._security)
        return connection

    def _drop(self) -> None:
        if self._connection is not None:
            try:
                self._connection.quit()
            except (smtplib.SMTPException, OSError):
                self._connection.close()
            self._connection = None

    def _failure(self, exc: OSError, *, handed_over: bool) -> SendError:
        """The port's failure for an smtplib, socket or TLS error;
        `handed_over` when it came after the DATA command went out."""
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            code, reply = next(iter(exc.recipients.values()), (550, b"refused"))
            return self._reply_failure("recipient refused", code, reply)
        if isinstance(exc, smtplib.SMTPResponseException):
            failure = self._reply_failure(
                type(exc).__name__, exc.smtp_code, exc.smtp_error
            )
            if exc.smtp_code < 0 and handed_over:
                # A reply smtplib could not read: it may have said 250.
                failure.details["outcome_unknown"] = True
            return failure
        if isinstance(exc, ssl.SSLCertVerificationError):
            return PermanentFailure(
                f"TLS certificate of {self._host} rejected: {exc.verify_message}",
                provider=self.name,
            )
        if isinstance(exc, smtplib.SMTPNotSupportedError):
            return PermanentFailure(
                f"{self._host} does not support it: {exc}", provider=self.name
            )
        # Connection refused, reset or lost, timeouts, TLS trouble.
        reason = "timed out" if isinstance(exc, socket.timeout) else str(exc)
        return TemporaryFailure(
            f"SMTP {self._host}:{self._port}: {reason or type(exc).__name__}",
            provider=self.name,
            # Lost after DATA: the server may have queued the mail.
            details={"outcome_unknown": handed_over},
        )

    def _reply_failure(self, what: str, code: int, reply: bytes | str) -> SendError:
        text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
        message = f"SMTP {code} {what}: {one_line(text)}"
        details: dict[str, Any] = {"smtp_code": code, "error": one_line(text)}
        if 500 <= code < 600:
            return PermanentFailure(message, provider=self.name, details=details)
        # 4xx, and smtplib's -1 for a reply it could not read.
        return TemporaryFailure(message, provider=self.name, details=details)

    def close(self) -> None:
        with self._lock:
            self._drop()
