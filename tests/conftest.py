"""Shared fixtures: an isolated environment and the local database servers."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

REQUIRE_SERVICES = os.environ.get("RULESET_REQUIRE_SERVICES") == "1"

POSTGRES_URL = os.environ.get(
    "RULESET_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MARIADB_URL = os.environ.get(
    "RULESET_TEST_MARIADB", "mysql+pymysql://root@127.0.0.1:3306/test"
)


def _service_unavailable(name: str, reason: str) -> None:
    """Skip on a laptop without the server; fail in CI, where it must run."""
    message = f"{name} is not reachable: {reason}"
    if REQUIRE_SERVICES:
        pytest.fail(message + " (RULESET_REQUIRE_SERVICES=1)")
    pytest.skip(message)


def _check(url: str, name: str) -> str:
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(url)
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # any driver error means "not here"
        _service_unavailable(name, str(exc).splitlines()[0])
    return url


@pytest.fixture(scope="session")
def postgres_url() -> str:
    return _check(POSTGRES_URL, "PostgreSQL")


@pytest.fixture(scope="session")
def mariadb_url() -> str:
    return _check(MARIADB_URL, "MariaDB")


@pytest.fixture(autouse=True)
def _isolated_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """No test depends on the caller's time zone, locale or ruleset settings."""
    for name in list(os.environ):
        if name.startswith("RULESET_") and name not in (
            "RULESET_REQUIRE_SERVICES",
            "RULESET_TEST_POSTGRES",
            "RULESET_TEST_MARIADB",
        ):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TZ", "UTC")
    yield
