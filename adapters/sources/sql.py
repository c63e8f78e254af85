"""SQL databases through SQLAlchemy 2: SQLite, PostgreSQL, MariaDB/MySQL.

Each collection comes from a table or from a query of the configuration.
Tables are read ordered by customer (payments through a join to their
invoices), so the records pass streams them and holds one customer at a
time; a query should order its rows the same way (docs/sources.md), and
when it does not the source still works, holding the rows in memory.
Parameters are bound by the driver, never formatted into the SQL text.
Rows are fetched through server-side cursors (`stream_results`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import (
    ArgumentError,
    NoSuchModuleError,
    NoSuchTableError,
    SQLAlchemyError,
)
from sqlalchemy.pool import NullPool

from adapters.sources.config import (
    COLLECTIONS,
    SourceConfig,
    SourceConfigError,
    SourceReadError,
    absent_note,
    did_you_mean,
    map_columns,
)
from adapters.sources.grouping import EmptyStream, GroupedSource, RawRow, RowStream
from dsl.model import InputSchema

logger = logging.getLogger(__name__)

_FETCH_ROWS = 1000  # rows per round trip of a server-side cursor


def open_sql(
    config: SourceConfig, inputs: InputSchema, *, on_error: str = "fail"
) -> GroupedSource:
    """A source over the tables or queries of `config`."""
    engine = _engine(config)
    fields = {
        "customers": inputs.customer,
        "invoices": inputs.invoice,
        "payments": inputs.payment,
    }
    streams: dict[str, SqlRows] = {}
    for collection in COLLECTIONS:
        if collection in config.queries:
            streams[collection] = _query_rows(config, engine, collection, fields)
        elif collection in config.tables:
            streams[collection] = _table_rows(config, engine, collection, fields)
    notes = [note for stream in streams.values() for note in stream.notes]
    if "payments" not in streams:
        notes.append("no payments table or query: no payments are known")
    ordered: dict[str, RowStream] = {
        collection: streams.get(collection) or EmptyStream(collection)
        for collection in COLLECTIONS
    }
    return GroupedSource(
        inputs,
        config.options,
        ordered,
        _digest(config, streams),
        on_error=on_error,
        notes=notes,
    )


def _engine(config: SourceConfig) -> Engine:
    assert config.url is not None  # required by the configuration
    try:
        url = sqlalchemy.make_url(config.url)
    except ArgumentError as exc:
        raise SourceConfigError(f"{config.origin}: url: not a database URL") from exc
    url = _anchor_sqlite(url, config.base_dir)
    try:
        # NullPool: a source opens a connection per pass and closes it, so
        # nothing stays connected (or holds locks) between passes.
        return sqlalchemy.create_engine(url, poolclass=NullPool)
    except (NoSuchModuleError, ImportError) as exc:
        raise SourceConfigError(
            f"{config.origin}: url: no driver for {url.drivername!r} ({exc});"
            " install the extra: pip install 'ruleset[postgres]' or"
            " 'ruleset[mysql]'"
        ) from exc


def _anchor_sqlite(url: URL, base_dir: Path) -> URL:
    """A relative SQLite file is relative to the configuration, not the
    directory the command happens to run in."""
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return url
    if database.startswith("file:") or Path(database).is_absolute():
        return url
    return url.set(database=str(base_dir / database))


def _describe(url: URL) -> str:
    return url.render_as_string(hide_password=True)


class SqlRows:
    """The rows of one table or query, read through a server-side cursor."""

    def __init__(
        self,
        name: str,
        engine: Engine,
        statement: sqlalchemy.Executable,
        params: Mapping[str, object],
        keys: dict[str, str],
        count: sqlalchemy.Executable,
    ) -> None:
        self.name = name
        self._engine = engine
        self._statement = statement
        self._params = dict(params)
        self._keys = keys  # field -> column label in the result
        self._count = count  # the number of rows the statement gives
        self.notes: list[str] = []  # optional fields without a column
        self.sha256: str | None = None  # of the last complete read

    def rows(self) -> Iterator[RawRow]:
        digest = hashlib.sha256()
        logger.info("reading %s from %s", self.name, _describe(self._engine.url))
        try:
            with self._engine.connect() as connection:
                result = connection.execution_options(
                    stream_results=True, yield_per=_FETCH_ROWS
                ).execute(self._statement, self._params)
                for number, row in enumerate(result.mappings(), start=1):
                    values = {
                        field: row[column] for field, column in self._keys.items()
                    }
                    digest.update(_canonical(values))
                    yield RawRow(self.name, number, values)
        except SQLAlchemyError as exc:
            raise SourceReadError(
                f"{self.name}: reading failed: {_first_line(exc)}"
            ) from exc
        self.sha256 = digest.hexdigest()

    def keys(
        self, names: tuple[str, ...]
    ) -> Iterator[tuple[int | None, Sequence[object] | None]]:
        """The values of `names` in each row, read as whole rows: the
        digest is taken over complete reads."""
        for row in self.rows():
            yield row.row, [row.values.get(name) for name in names]

    def size_hint(self) -> int:
        """The number of rows, counted by the database."""
        try:
            with self._engine.connect() as connection:
                counted = connection.execute(self._count, self._params).scalar()
        except SQLAlchemyError as exc:
            raise SourceReadError(
                f"{self.name}: reading failed: {_first_line(exc)}"
            ) from exc
        return int(counted or 0)


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def _columns_of(
    engine: Engine, statement: sqlalchemy.Executable, params: Any
) -> list[str]:
    with engine.connect() as connection:
        result = connection.execute(statement, params)
        columns = list(result.keys())
        result.close()
    return columns


def _query_rows(
    config: SourceConfig,
    engine: Engine,
    collection: str,
    fields: dict[str, Any],
) -> SqlRows:
    query = config.queries[collection].strip().rstrip(";")
    name = f"query {collection}"
    # Asking for no rows gives the result's columns without running the
    # whole query.
    probe = sqlalchemy.text(f"SELECT * FROM ({query}) AS probe WHERE 1 = 0")
    try:
        found = _columns_of(engine, probe, config.params)
    except SQLAlchemyError as exc:
        raise SourceConfigError(
            f"{config.origin}: queries.{collection}: {_first_line(exc)}"
            f" (database {_describe(engine.url)})"
        ) from exc
    keys = map_columns(config, collection, fields[collection], found, name)
    count = sqlalchemy.text(f"SELECT COUNT(*) FROM ({query}) AS counted")
    rows = SqlRows(name, engine, sqlalchemy.text(query), config.params, keys, count)
    rows.notes = absent_note(name, collection, fields[collection], keys)
    return rows


def _table_names(engine: Engine, schema: str | None) -> list[str]:
    """The tables and views the database has, for a "did you mean" hint."""
    try:
        inspector = sqlalchemy.inspect(engine)
        return [*inspector.get_table_names(schema), *inspector.get_view_names(schema)]
    except SQLAlchemyError:
        return []


def _table_rows(
    config: SourceConfig,
    engine: Engine,
    collection: str,
    fields: dict[str, Any],
) -> SqlRows:
    table_name = config.tables[collection]
    schema, _, table = table_name.rpartition(".")
    try:
        found = [
            str(column["name"])
            for column in sqlalchemy.inspect(engine).get_columns(table, schema or None)
        ]
    except NoSuchTableError as exc:
        raise SourceConfigError(
            f"{config.origin}: tables.{collection}: no table {table_name!r} in"
            f" database {_describe(engine.url)}"
            + did_you_mean(table, _table_names(engine, schema or None))
        ) from exc
    except SQLAlchemyError as exc:
        raise SourceConfigError(
            f"{config.origin}: tables.{collection}: {table_name!r}: {_first_line(exc)}"
            f" (database {_describe(engine.url)})"
        ) from exc
    keys = map_columns(config, collection, fields[collection], found, table_name)
    source = sqlalchemy.table(
        table, *(sqlalchemy.column(c) for c in found), schema=schema or None
    )
    selected = [source.c[column].label(field) for field, column in keys.items()]
    statement: sqlalchemy.Select[Any]
    if collection == "customers":
        statement = sqlalchemy.select(*selected).order_by(source.c[keys["id"]])
    elif collection == "invoices":
        statement = sqlalchemy.select(*selected).order_by(
            source.c[keys["customer_id"]], source.c[keys["id"]]
        )
    else:
        statement = _payments_in_customer_order(config, engine, source, selected, keys)
    labels = {field: field for field in keys}
    count = sqlalchemy.select(sqlalchemy.func.count()).select_from(
        statement.order_by(None).subquery()
    )
    rows = SqlRows(table_name, engine, statement, {}, labels, count)
    rows.notes = absent_note(table_name, collection, fields[collection], keys)
    return rows


def _payments_in_customer_order(
    config: SourceConfig,
    engine: Engine,
    payments: sqlalchemy.TableClause,
    selected: list[Any],
    keys: dict[str, str],
) -> sqlalchemy.Select[Any]:
    """Payments joined to their invoices' table, ordered by customer.

    Each payment is joined to one owner per invoice id: an id written twice
    in the invoices table (a duplicate, reported) must not make two rows of
    one payment. The owner is the first customer in the invoices' order,
    the one whose invoice the source keeps. Without an invoices table
    (invoices from a query) the order is by invoice id, which the records
    pass detects as ungrouped if it is.
    """
    invoice_table = config.tables.get("invoices")
    statement = sqlalchemy.select(*selected)
    if invoice_table is None:
        return statement.order_by(payments.c[keys["invoice_id"]])
    renames = config.columns_for("invoices")
    schema, _, table = invoice_table.rpartition(".")
    id_column = renames.get("id", "id")
    customer_column = renames.get("customer_id", "customer_id")
    invoices = sqlalchemy.table(
        table,
        sqlalchemy.column(id_column),
        sqlalchemy.column(customer_column),
        schema=schema or None,
    )
    owners = (
        sqlalchemy.select(
            invoices.c[id_column].label("invoice"),
            sqlalchemy.func.min(invoices.c[customer_column]).label("customer"),
        )
        .group_by(invoices.c[id_column])
        .subquery("owner")
    )
    return statement.select_from(
        payments.outerjoin(owners, payments.c[keys["invoice_id"]] == owners.c.invoice)
    ).order_by(owners.c.customer, payments.c[keys["invoice_id"]])


def _canonical(values: dict[str, object]) -> bytes:
    return (json.dumps(values, sort_keys=True, default=_plain) + "\n").encode()


def _plain(value: object) -> str:
    if isinstance(value, Decimal | dt.date | dt.datetime | dt.time):
        return value.isoformat() if not isinstance(value, Decimal) else str(value)
    if isinstance(value, bytes):
        return value.hex()
    return repr(value)


def _digest(config: SourceConfig, streams: dict[str, SqlRows]) -> Callable[[], str]:
    """sha256 of the rows as read, in canonical JSON, and the configuration.

    Rows are hashed while the records are read; a stream not read in full
    yet is read for the purpose.
    """

    def digest() -> str:
        total = hashlib.sha256(b"ruleset-source-v1\n")
        total.update(hashlib.sha256(config.text).hexdigest().encode() + b"\n")
        for collection, stream in sorted(streams.items()):
            if stream.sha256 is None:
                for _ in stream.rows():
                    pass
            total.update(f"{collection} {stream.sha256}\n".encode())
        return "sha256:" + total.hexdigest()

    return digest
