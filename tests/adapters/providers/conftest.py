"""Fixtures for provider tests: local servers, a certificate, messages."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.providers.base import OutboundMessage
from tests.adapters.providers.servers import (
    Certificate,
    HttpServer,
    SmtpServer,
    make_certificate,
)


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def http_server() -> Iterator[HttpServer]:
    with HttpServer() as server:
        yield server


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


MessageFactory = Callable[..., OutboundMessage]


@pytest.fixture
def make_message() -> MessageFactory:
    """A message with sensible defaults; keyword arguments override."""

    def build(**fields: Any) -> OutboundMessage:
        values: dict[str, Any] = {
            "action_id": "mes_0123456789abcdef01234567",
            "channel": "sms",
            "channel_kind": "sms",
            "customer_id": "C-42",
            "address": "+5511987654321",
            "body": "Maria, sua fatura de R$ 120,50 vence em 10/03. Pix: x",
        }
        values.update(fields)
        return OutboundMessage(**values)

    return build


@pytest.fixture
def ca_file(certificate: Certificate) -> str:
    return str(Path(certificate.cert_file))
