"""E-mail over SMTP against aiosmtpd on loopback, asserting the bytes it got."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest

from adapters.providers.base import PermanentFailure, TemporaryFailure
from adapters.providers.options import ProviderConfigError
from adapters.providers.registry import build_provider
from tests.adapters.providers.conftest import MessageFactory
from tests.adapters.providers.servers import (
    Certificate,
    SmtpServer,
    closed_port,
)

ENV = {"SMTP_USER": "cobranca", "SMTP_PASSWORD": "s3nha"}

_opened: list[Any] = []


@pytest.fixture(autouse=True)
def _close_providers() -> Iterator[None]:
    """Close what a test opened, as the runner does at the end of a run."""
    yield
    while _opened:
        _opened.pop().close()


def smtp(port: int | str, **extra: Any) -> Any:
    options = {
        "kind": "smtp",
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "from_address": "cobranca@loja.example.com",
        "from_name": "Loja Exemplo",
        **extra,
    }
    provider = build_provider("email", options, ENV)
    _opened.append(provider)
    return provider


def email_message(make_message: MessageFactory, **fields: Any) -> Any:
    values = {
        "channel": "email",
        "channel_kind": "email",
        "address": "maria@example.com",
        "subject": "Fatura em aberto: R$ 120,50",
        "body": "Olá, Maria.\n\nSua fatura vence em 10/03.\n",
    }
    values.update(fields)
    return make_message(**values)


def parsed(content: bytes) -> EmailMessage:
    message = email.message_from_bytes(content, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_a_text_mail_with_the_usual_headers(
    smtp_server: SmtpServer, make_message: MessageFactory
) -> None:
    provider = smtp(smtp_server.port, message_id_domain="mail.loja.example.com")

    result = provider.send(email_message(make_message))
    provider.close()

    [mail] = smtp_server.mail
    assert mail.mail_from == "cobranca@loja.example.com"
    assert mail.rcpt_tos == ("maria@example.com",)
    assert mail.header_names() == [
        "From",
        "To",
        "Subject",
        "Date",
        "Message-ID",
        "Content-Type",
        "Content-Transfer-Encoding",
        "MIME-Version",
    ]
    lines = mail.header_lines()
    assert lines[0] == "From: Loja Exemplo <cobranca@loja.example.com>"
    assert lines[1] == "To: maria@example.com"
    assert (
        lines[4] == "Message-ID: <mes_0123456789abcdef01234567@mail.loja.example.com>"
    )
    message = parsed(mail.content)
    assert message["Subject"] == "Fatura em aberto: R$ 120,50"
    assert message.get_content_type() == "text/plain"
    body = message.get_content().replace("\r\n", "\n")  # SMTP lines end CRLF
    assert body == "Olá, Maria.\n\nSua fatura vence em 10/03.\n"
    assert b"\r\n" in mail.content and b"\n\n" not in mail.content
    assert result.provider_message_id == (
        "<mes_0123456789abcdef01234567@mail.loja.example.com>"
    )


def test_text_and_html_make_multipart_alternative(
    smtp_server: SmtpServer, make_message: MessageFactory
) -> None:
    html = "<p>Olá, <b>Maria</b>. <a href='https://pague.example.com/F-1'>Pagar</a></p>"

    smtp(smtp_server.port).send(email_message(make_message, html=html))

    message = parsed(smtp_server.mail[0].content)
    assert message.get_content_type() == "multipart/alternative"
    text, rich = message.iter_parts()
    assert text.get_content_type() == "text/plain"
    assert rich.get_content_type() == "text/html"
    assert rich.get_content().strip() == html


@pytest.mark.parametrize(
    "subject",
    [
        "Fatura\r\nBcc: vitima@example.org",
        "Fatura\nBcc: vitima@example.org",
        "Fatura\rBcc: vitima@example.org",
        "Fatura\u2028Bcc: vitima@example.org",
        "=?utf-8?q?Fatura=0D=0ABcc:_vitima@example.org?=",
        "=?utf-8?b?RmF0dXJhDQpCY2M6IHZpdGltYUBleGFtcGxlLm9yZw==?=",
        "Olá =?iso-8859-1?q?=0ABcc:_x@y.z?= João",
    ],
)
def test_no_subject_can_add_a_header(
    smtp_server: SmtpServer, make_message: MessageFactory, subject: str
) -> None:
    provider = smtp(smtp_server.port, from_name="=?utf-8?q?Loja=0D=0ABcc:_x@y.z?=")

    provider.send(email_message(make_message, subject=subject))

    [mail] = smtp_server.mail
    assert mail.rcpt_tos == ("maria@example.com",)
    assert mail.header_names() == [
        "From",
        "To",
        "Subject",
        "Date",
        "Message-ID",
        "Content-Type",
        "Content-Transfer-Encoding",
        "MIME-Version",
    ]
    assert not any(line.lower().startswith("bcc") for line in mail.header_lines())
    message = parsed(mail.content)
    # What the reader sees is the text as typed, line breaks as spaces; an
    # encoded word in the data stays literal text instead of being decoded.
    shown = str(message["Subject"])
    assert "\r" not in shown and "\n" not in shown
    expected = subject.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")
    assert shown == expected.replace("\u2028", " ")
    sender = message["From"].addresses[0]
    assert sender.display_name == "=?utf-8?q?Loja=0D=0ABcc:_x@y.z?="
    assert sender.addr_spec == "cobranca@loja.example.com"


def test_accented_names_and_subjects_are_encoded_words(
    smtp_server: SmtpServer, make_message: MessageFactory
) -> None:
    provider = smtp(smtp_server.port, from_name="Cobrança Conceição & Filhos")

    provider.send(email_message(make_message, subject="Atenção, João: fatura"))

    [mail] = smtp_server.mail
    assert mail.content.isascii()
    message = parsed(mail.content)
    assert str(message["Subject"]) == "Atenção, João: fatura"
    assert message["From"].addresses[0].display_name == "Cobrança Conceição & Filhos"
    assert message["From"].addresses[0].addr_spec == "cobranca@loja.example.com"


def test_list_unsubscribe_with_mailto_and_one_click_url(
    smtp_server: SmtpServer, make_message: MessageFactory
) -> None:
    provider = smtp(
        smtp_server.port,
        list_unsubscribe_mailto="mailto:sair@loja.example.com",
        list_unsubscribe_url="https://loja.example.com/sair?c=${customer_id}",
        reply_to="atendimento@loja.example.com",
    )

    provider.send(email_message(make_message, customer_id="C 42/x"))

    lines = smtp_server.mail[0].header_lines()
    assert "Reply-To: atendimento@loja.example.com" in lines
    assert (
        "List-Unsubscribe: <https://loja.example.com/sair?c=C%2042%2Fx>,"
        " <mailto:sair@loja.example.com>"
    ) in lines
    assert "List-Unsubscribe-Post: List-Unsubscribe=One-Click" in lines


def test_mailto_only_has_no_one_click_header(
    smtp_server: SmtpServer, make_message: MessageFactory
) -> None:
    smtp(smtp_server.port, list_unsubscribe_mailto="sair@loja.example.com").send(
        email_message(make_message)
    )

    names = smtp_server.mail[0].header_names()
    assert "List-Unsubscribe" in names
    assert "List-Unsubscribe-Post" not in names


def test_one_connection_carries_a_whole_run(
    smtp_server: SmtpServer, make_message: MessageFactory
) -> None:
    provider = smtp(smtp_server.port)

    for number in range(3):
        provider.send(email_message(make_message, action_id=f"mes_{number}"))
    provider.close()

    assert len(smtp_server.mail) == 3
    assert smtp_server.recorder.sessions == 1


def test_starttls_with_login(
    certificate: Certificate, ca_file: str, make_message: MessageFactory
) -> None:
    with SmtpServer(starttls=certificate, users={"cobranca": "s3nha"}) as server:
        provider = smtp(
            server.port,
            security="starttls",
            ca_file=ca_file,
            username_env="SMTP_USER",
            password_env="SMTP_PASSWORD",
        )

        provider.send(email_message(make_message))
        provider.close()

        assert len(server.mail) == 1
        assert server.recorder.authenticated == ["cobranca"]
        assert server.recorder.tls_sessions == 1


def test_a_wrong_password_is_permanent(
    certificate: Certificate, ca_file: str, make_message: MessageFactory
) -> None:
    with SmtpServer(starttls=certificate, users={"cobranca": "other"}) as server:
        provider = smtp(
            server.port,
            security="starttls",
            ca_file=ca_file,
            username_env="SMTP_USER",
            password_env="SMTP_PASSWORD",
        )

        with pytest.raises(PermanentFailure, match="SMTP 535"):
            provider.send(email_message(make_message))

        assert server.mail == []


def test_implicit_tls(
    certificate: Certificate, ca_file: str, make_message: MessageFactory
) -> None:
    with SmtpServer(implicit_tls=certificate) as server:
        provider = smtp(server.port, security="ssl", ca_file=ca_file)

        provider.send(email_message(make_message))
        provider.close()

        assert len(server.mail) == 1


def test_an_untrusted_certificate_is_permanent(
    certificate: Certificate, make_message: MessageFactory
) -> None:
    with SmtpServer(starttls=certificate) as server:
        provider = smtp(server.port, security="starttls")

        with pytest.raises(PermanentFailure, match="certificate"):
            provider.send(email_message(make_message))

        assert server.mail == []


def test_4xx_is_temporary_and_the_next_send_reconnects(
    smtp_server: SmtpServer, make_message: MessageFactory
) -> None:
    smtp_server.recorder.data_answers.append("451 4.3.0 Mail server busy, try later")
    provider = smtp(smtp_server.port)

    with pytest.raises(TemporaryFailure, match="SMTP 451") as caught:
        provider.send(email_message(make_message))
    provider.send(email_message(make_message))

    assert caught.value.details["smtp_code"] == 451
    assert len(smtp_server.mail) == 1
    assert smtp_server.recorder.sessions == 2


def test_5xx_recipient_refusal_is_permanent(
    smtp_server: SmtpServer, make_message: MessageFactory
) -> None:
    smtp_server.recorder.rcpt_answers.append("550 5.1.1 No such user here")

    with pytest.raises(PermanentFailure, match="No such user") as caught:
        smtp(smtp_server.port).send(email_message(make_message))

    assert caught.value.details["smtp_code"] == 550
    assert smtp_server.mail == []


def test_a_refused_connection_is_temporary(make_message: MessageFactory) -> None:
    with pytest.raises(TemporaryFailure) as caught:
        smtp(closed_port()).send(email_message(make_message))

    assert caught.value.details["outcome_unknown"] is False


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"subject": None}, "needs a subject"),
        ({"subject": " \r\n "}, "needs a subject"),
        ({"address": "maria@example.com\r\nBcc: x@y.z"}, "not an e-mail address"),
        ({"address": "maria"}, "not an e-mail address"),
        ({"address": "joão@example.com"}, "not an e-mail address"),
    ],
)
def test_bad_messages_are_refused_before_connecting(
    make_message: MessageFactory, fields: dict[str, Any], error: str
) -> None:
    # Nothing listens on this port: a connection attempt would fail.
    provider = smtp(closed_port())

    with pytest.raises(PermanentFailure, match=error):
        provider.send(email_message(make_message, **fields))


def test_an_international_domain_is_sent_in_idna_form(
    smtp_server: SmtpServer, make_message: MessageFactory
) -> None:
    smtp(smtp_server.port).send(email_message(make_message, address="ana@açaí.example"))

    [mail] = smtp_server.mail
    assert mail.rcpt_tos == ("ana@xn--aa-4iaz.example",)


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"host": "smtp.example.com", "username_env": "SMTP_USER",
          "password_env": "SMTP_PASSWORD"}, "loopback"),
        ({"password": "x"}, "write `password_env"),
        ({"security": "tls"}, "must be one of none, ssl, starttls"),
        ({"from_address": "not an address"}, "not an e-mail address"),
        ({"port": "25"}, "must be a port number"),
        ({"from_name": "Loja\r\nBcc: x@y.z"}, "control characters"),
        ({"username_env": "MISSING"}, "MISSING is not set"),
        ({"list_unsubscribe_url": "https://x.example.com/${email}"},
         r"unknown placeholder \$\{email\}"),
        ({"fromname": "x"}, "did you mean 'from_name'"),
    ],
)  # fmt: skip
def test_configuration_mistakes(options: dict[str, Any], error: str) -> None:
    with pytest.raises(ProviderConfigError, match=error):
        smtp(options.pop("port", 25), **options)
