"""SQL sources against real SQLite, PostgreSQL and MariaDB servers.

Each test creates its own uniquely named tables and drops them afterwards.
PostgreSQL and MariaDB come from the `postgres_url`/`mariadb_url` fixtures
(skipped on a machine without them, failing in CI).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from adapters.sources import SourceConfigError, open_source
from tests.adapters.fixtures.schemas import make_schema

SCHEMA = make_schema(
    {
        "customer": {"id": "string", "name": "string", "limit": "money", "vip": "bool"},
        "invoice": {
            "id": "string",
            "customer_id": "string",
            "amount": "money",
            "due_date": "date",
        },
        "payment": {"invoice_id": "string", "amount": "money", "paid_on": "date"},
    }
)

CUSTOMERS = [
    {
        "id": "C1",
        "name": "João",
        "credit": Decimal("1234.56"),
        "vip": True,
        "seg": "varejo",
    },
    {
        "id": "C2",
        "name": "Conceição",
        "credit": Decimal("9.99"),
        "vip": False,
        "seg": "varejo",
    },
    {
        "id": "C3",
        "name": "Outro",
        "credit": Decimal("10.00"),
        "vip": False,
        "seg": "atacado",
    },
]
INVOICES = [
    {
        "id": "F1",
        "customer_id": "C1",
        "amount": Decimal("100.10"),
        "due_date": dt.date(2024, 10, 1),
    },
    {
        "id": "F2",
        "customer_id": "C2",
        "amount": Decimal("9.99"),
        "due_date": dt.date(2024, 10, 2),
    },
    {
        "id": "F3",
        "customer_id": "C1",
        "amount": Decimal("0.01"),
        "due_date": dt.date(2024, 11, 1),
    },
    {
        "id": "F9",
        "customer_id": "C9",
        "amount": Decimal("5.00"),
        "due_date": dt.date(2024, 11, 1),
    },
]
PAYMENTS = [
    {"invoice_id": "F3", "amount": Decimal("0.01"), "paid_on": dt.date(2024, 10, 30)},
    {"invoice_id": "F2", "amount": Decimal("5.00"), "paid_on": dt.date(2024, 9, 30)},
    {"invoice_id": "F7", "amount": Decimal("1.00"), "paid_on": dt.date(2024, 9, 30)},
]


@dataclass
class Database:
    url: str
    prefix: str
    engine: sa.Engine

    def table(self, collection: str) -> str:
        return f"{self.prefix}_{collection}"


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'source.sqlite3'}"
    elif request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
    else:
        url = request.getfixturevalue("mariadb_url")
    engine = sa.create_engine(url)
    prefix = f"rs_src_{uuid.uuid4().hex[:10]}"
    metadata = sa.MetaData()
    customers = sa.Table(
        f"{prefix}_customers",
        metadata,
        sa.Column("id", sa.String(20), primary_key=True),
        sa.Column("name", sa.String(40)),
        # Not named like the field: the configuration maps limit -> credit.
        sa.Column("credit", sa.Numeric(12, 2)),
        sa.Column("vip", sa.Boolean),
        sa.Column("seg", sa.String(20)),
    )
    invoices = sa.Table(
        f"{prefix}_invoices",
        metadata,
        sa.Column("id", sa.String(20), primary_key=True),
        sa.Column("customer_id", sa.String(20)),
        sa.Column("amount", sa.Numeric(12, 2)),
        sa.Column("due_date", sa.Date),
    )
    payments = sa.Table(
        f"{prefix}_payments",
        metadata,
        sa.Column("invoice_id", sa.String(20)),
        sa.Column("amount", sa.Numeric(12, 2)),
        sa.Column("paid_on", sa.Date),
    )
    metadata.create_all(engine)
    try:
        with engine.begin() as connection:
            # Inserted as text so SQLite's driver sees no Decimal objects.
            connection.execute(customers.insert(), _as_text(CUSTOMERS, "credit"))
            connection.execute(invoices.insert(), _as_text(INVOICES, "amount"))
            connection.execute(payments.insert(), _as_text(PAYMENTS, "amount"))
        yield Database(url, prefix, engine)
    finally:
        metadata.drop_all(engine)
        engine.dispose()


def _as_text(rows: list[dict[str, Any]], money: str) -> list[dict[str, Any]]:
    return [{**row, money: str(row[money])} for row in rows]


def tables_config(db: Database, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "sql",
        "url": db.url,
        "tables": {c: db.table(c) for c in ("customers", "invoices", "payments")},
        "columns": {"customers": {"limit": "credit"}},
        **extra,
    }


def test_tables_stream_typed_records_in_customer_order(database: Database) -> None:
    source = open_source(tables_config(database), SCHEMA)
    customers = {c.customer["id"]: c for c in source.customers()}

    assert list(customers) == ["C1", "C2", "C3"]
    joao = customers["C1"]
    assert joao.customer == {
        "id": "C1",
        "name": "João",
        "limit": Decimal("1234.56"),
        "vip": True,
    }
    assert str(customers["C2"].customer["limit"]) == "9.99"
    assert customers["C2"].customer["name"] == "Conceição"
    assert customers["C2"].customer["vip"] is False
    assert [(i["id"], i["amount"], i["due_date"]) for i in joao.invoices] == [
        ("F1", Decimal("100.10"), dt.date(2024, 10, 1)),
        ("F3", Decimal("0.01"), dt.date(2024, 11, 1)),
    ]
    assert joao.payments == [
        {
            "invoice_id": "F3",
            "amount": Decimal("0.01"),
            "paid_on": dt.date(2024, 10, 30),
        }
    ]
    assert customers["C2"].payments[0]["amount"] == Decimal("5.00")
    # The orphans are reported with the table and the id.
    reported = {(p.source, p.record_id, p.message) for p in source.problems}
    assert reported == {
        (database.table("invoices"), "F9", "customer 'C9' is not in the customers"),
        (database.table("payments"), "F7", "invoice 'F7' is not in the invoices"),
    }
    # Ordered tables are merged one customer at a time.
    assert not any("memory" in n for n in source.notes)  # type: ignore[attr-defined]
    for records in customers.values():
        for value in (
            records.customer["limit"],
            *[i["amount"] for i in records.invoices],
        ):
            assert isinstance(value, Decimal)


def test_queries_bind_their_parameters(database: Database) -> None:
    customers_table = database.table("customers")
    invoices_table = database.table("invoices")
    config = {
        "kind": "sql",
        "url": database.url,
        "queries": {
            "customers": "SELECT id, name, credit AS limit_brl, vip"
            f" FROM {customers_table} WHERE seg = :segment ORDER BY id",
            "invoices": f"SELECT * FROM {invoices_table} WHERE customer_id IN"
            f" (SELECT id FROM {customers_table} WHERE seg = :segment)"
            " ORDER BY customer_id, id",
        },
        "params": {"segment": "varejo"},
        "columns": {"customers": {"limit": "limit_brl"}},
    }
    source = open_source(config, SCHEMA)
    assert [c.customer["id"] for c in source.customers()] == ["C1", "C2"]
    assert source.problems == []

    # A value that would change the SQL if it were pasted in is just a value.
    config["params"] = {"segment": "varejo' OR '1'='1"}
    hostile = open_source(config, SCHEMA)
    assert list(hostile.customers()) == []


def test_unordered_queries_fall_back_to_memory(database: Database) -> None:
    config = {
        "kind": "sql",
        "url": database.url,
        "queries": {
            "customers": "SELECT id, name, credit, vip"
            f" FROM {database.table('customers')} ORDER BY id",
            "invoices": f"SELECT * FROM {database.table('invoices')} ORDER BY id DESC",
        },
        "columns": {"customers": {"limit": "credit"}},
    }
    source = open_source(config, SCHEMA)
    customers = {c.customer["id"]: c for c in source.customers()}
    assert sorted(i["id"] for i in customers["C1"].invoices) == ["F1", "F3"]
    assert any("held in memory" in n for n in source.notes)


def test_the_digest_is_of_the_rows_read(database: Database) -> None:
    first = open_source(tables_config(database), SCHEMA)
    list(first.customers())
    second = open_source(tables_config(database), SCHEMA)
    assert first.digest() == second.digest()  # second: read for the digest

    with database.engine.begin() as connection:
        connection.execute(
            sa.text(
                f"UPDATE {database.table('invoices')} SET amount = 100.11"
                " WHERE id = 'F1'"
            )
        )
    third = open_source(tables_config(database), SCHEMA)
    list(third.customers())
    assert third.digest() != first.digest()


def test_a_missing_column_names_the_field_and_what_was_found(
    database: Database,
) -> None:
    config = tables_config(database, columns={})
    with pytest.raises(SourceConfigError) as error:
        open_source(config, SCHEMA)
    message = str(error.value)
    assert "'limit'" in message
    assert "columns found: id, name, credit, vip, seg" in message


def test_an_optional_field_without_a_column_is_empty_and_noted(
    database: Database,
) -> None:
    schema = make_schema(
        {
            "customer": {"id": "string", "name": "string", "churned": "bool?"},
            "invoice": {
                "id": "string",
                "customer_id": "string",
                "amount": "money",
                "due_date": "date",
            },
            "payment": {"invoice_id": "string", "amount": "money", "paid_on": "date"},
        }
    )
    source = open_source(tables_config(database, columns={}), schema)

    churned = {c.customer["id"]: c.customer["churned"] for c in source.customers()}

    assert churned == {"C1": None, "C2": None, "C3": None}
    assert any("optional customer field 'churned'" in n for n in source.notes)


def test_a_bad_query_is_a_config_error(database: Database) -> None:
    config = tables_config(database)
    del config["tables"]["customers"]
    config["queries"] = {"customers": "SELECT id, name FROM no_such_table_here"}
    with pytest.raises(SourceConfigError, match="queries.customers"):
        open_source(config, SCHEMA)


def test_a_missing_table_is_named_with_a_hint(database: Database) -> None:
    config = tables_config(database)
    customers = database.table("customers")
    config["tables"]["customers"] = customers.replace("customers", "custmers")
    with pytest.raises(SourceConfigError) as raised:
        open_source(config, SCHEMA)
    message = str(raised.value)
    assert "tables.customers: no table" in message
    assert f"(did you mean {customers!r}?)" in message


def test_text_columns_are_parsed_with_the_source_options(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'br.sqlite3'}"
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            sa.text("CREATE TABLE c (id TEXT, name TEXT, lim TEXT, vip TEXT)")
        )
        connection.execute(
            sa.text("CREATE TABLE i (id TEXT, customer_id TEXT, amount TEXT, due TEXT)")
        )
        connection.execute(
            sa.text("INSERT INTO c VALUES ('1', 'Ana', '1.234,56', 'sim')")
        )
        connection.execute(
            sa.text(
                "INSERT INTO i VALUES ('F1', '1', '9,99', '01/10/2024'),"
                " ('F2', '1', 'x', '31/02/2024')"
            )
        )
    engine.dispose()
    config = {
        "kind": "sql",
        "url": "sqlite:///br.sqlite3",  # relative to base_dir
        "tables": {"customers": "c", "invoices": "i"},
        "decimal": "comma",
        "date_format": "%d/%m/%Y",
        "columns": {"customers": {"limit": "lim"}, "invoices": {"due_date": "due"}},
    }
    source = open_source(config, SCHEMA, base_dir=tmp_path)
    [one] = list(source.customers())
    assert str(one.customer["limit"]) == "1234.56"
    assert one.customer["vip"] is True
    assert [(i["amount"], i["due_date"]) for i in one.invoices] == [
        (Decimal("9.99"), dt.date(2024, 10, 1))
    ]
    assert [(p.source, p.row, p.record_id) for p in source.problems] == [
        ("i", 2, "F2"),
        ("i", 2, "F2"),
    ]


def test_secrets_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    literal = {
        "kind": "sql",
        "url": "postgresql+psycopg://app:hunter2@127.0.0.1/db",
        "tables": {"customers": "c", "invoices": "i"},
    }
    with pytest.raises(SourceConfigError, match="literal password"):
        open_source(literal, SCHEMA)

    from_env = dict(
        literal, url="postgresql+psycopg://app:${RULESET_TEST_SOURCE_PW}@127.0.0.1/db"
    )
    with pytest.raises(SourceConfigError, match="RULESET_TEST_SOURCE_PW is not set"):
        open_source(from_env, SCHEMA)

    sqlite_path = tmp_path / "env.sqlite3"
    engine = sa.create_engine(f"sqlite:///{sqlite_path}")
    with engine.begin() as connection:
        connection.execute(
            sa.text('CREATE TABLE c (id TEXT, name TEXT, "limit" TEXT, vip INT)')
        )
        connection.execute(
            sa.text(
                "CREATE TABLE i (id TEXT, customer_id TEXT, amount TEXT, due_date TEXT)"
            )
        )
        connection.execute(sa.text("INSERT INTO c VALUES ('1', 'Ana', '5', 1)"))
    engine.dispose()
    monkeypatch.setenv("RULESET_TEST_SOURCE_DB", str(sqlite_path))
    whole = dict(literal, url="sqlite:///${RULESET_TEST_SOURCE_DB}")
    source = open_source(whole, SCHEMA)
    assert [c.customer["vip"] for c in source.customers()] == [True]


def test_an_unknown_driver_is_a_config_error() -> None:
    config = {
        "kind": "sql",
        "url": "nosuchdb://x/y",
        "tables": {"customers": "c", "invoices": "i"},
    }
    with pytest.raises(SourceConfigError, match="url"):
        open_source(config, SCHEMA)


def test_rows_come_through_server_side_cursors(database: Database) -> None:
    if database.engine.dialect.name == "sqlite":
        pytest.skip("SQLite reads rows from the file as they are fetched")
    source = open_source(tables_config(database), SCHEMA)
    engine = source._streams["customers"]._engine  # type: ignore[attr-defined]
    cursors: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        # Counting rows (to size the index's filters) reads no rows.
        if not statement.lstrip().upper().startswith("SELECT COUNT"):
            cursors.append(type(cursor).__name__)

    sa.event.listen(engine, "before_cursor_execute", record)
    list(source.customers())

    # Every read of the three statements (the index pass reads customers
    # and invoices twice) is on a server-side cursor: psycopg's
    # ServerCursor, PyMySQL's SSCursor.
    assert len(cursors) == 8
    assert set(cursors) <= {"ServerCursor", "SSCursor", "SSDictCursor"}
