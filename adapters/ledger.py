"""The ledger: what `ruleset run` did with every action, kept in SQL.

It is what makes runs idempotent. One row per action id (the plan's
idempotency key) holds the action's state:

    planned -> sending -> sent | failed_temporary | failed_permanent | unknown
    planned | skipped (with a reason)

Every call to a provider is an `attempts` row; every run a `runs` row;
delivery receipts land in `receipts`. A `meta` table holds the schema
version. Tables are created on first use, all with one prefix (default
`ruleset_`) so that the ledger can share a database with other tables.

Exactly-once rests on two guarantees, both in the database:

- the claim: `UPDATE actions SET state='sending' WHERE action_id=? AND
  state IN (claimable)` in its own transaction, checked by its row count,
  before the provider is called. Two processes cannot both claim;
- the step claim: one row per step key (customer, invoices, step, due
  date) in `step_claims`, taken in the same transaction, so a step sent on
  WhatsApp yesterday is not sent again by SMS today after a consent change.

A run lock (a lease row in `locks`, renewed while the run goes on) keeps
overlapping runs apart in the first place; see docs/run.md.

Works on SQLite (WAL, busy timeout, `BEGIN IMMEDIATE`), PostgreSQL and
MariaDB/MySQL. Instants are stored as naive UTC.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1

# Action states.
PLANNED = "planned"
SENDING = "sending"
SENT = "sent"
FAILED_TEMPORARY = "failed_temporary"
FAILED_PERMANENT = "failed_permanent"
SKIPPED = "skipped"
UNKNOWN = "unknown"
STATES = (PLANNED, SENDING, SENT, FAILED_TEMPORARY, FAILED_PERMANENT, SKIPPED, UNKNOWN)

# States from which a run may claim an action and send it.
CLAIMABLE = (PLANNED, SKIPPED, FAILED_TEMPORARY)
# States in which an action holds its step: the step was (or may have
# been) delivered, so no other channel may send it.
HOLDS_STEP = (SENDING, SENT, UNKNOWN)

# Run states.
RUN_RUNNING = "running"
RUN_COMPLETED = "completed"
RUN_INPUT_ERRORS = "input_errors"
RUN_LOCK_LOST = "lock_lost"
RUN_ABORTED = "aborted"  # an error stopped it (the ledger or the data broke)
RUN_INTERRUPTED = "interrupted"  # killed: a later run found it still running
RUN_STOPPED = "stopped"  # SIGTERM or SIGINT: it finished its send and stopped

# What an operator may say an unknown outcome was (`ruleset ledger resolve`).
RESOLUTIONS = {"sent": SENT, "failed": FAILED_PERMANENT}

# A sent attempt's outcome -> the action's state after it.
_FINAL_STATE = {
    "sent": SENT,
    "permanent": FAILED_PERMANENT,
    "error": UNKNOWN,
    "unknown": UNKNOWN,  # the message may have gone out; the answer was lost
    "temporary": FAILED_TEMPORARY,
}

_SQLITE_BUSY_SECONDS = 30.0
_CHUNK = 500

# PostgreSQL and InnoDB may pick a transaction as a deadlock victim and roll
# it back whole; trying it again is safe, nothing of it was kept.
_DEADLOCK = re.compile(r"deadlock|lock wait timeout|could not serialize", re.I)
_DEADLOCK_TRIES = 4

_P = ParamSpec("_P")
_R = TypeVar("_R")


class LedgerError(Exception):
    """The ledger cannot be opened, read or written."""


def _retry_deadlocks(
    method: Callable[Concatenate[Ledger, _P], _R],
) -> Callable[Concatenate[Ledger, _P], _R]:
    """Run a ledger write again when the database chose it as a deadlock
    victim (each such method is one transaction)."""

    @functools.wraps(method)
    def retried(self: Ledger, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        for attempt in range(1, _DEADLOCK_TRIES + 1):
            try:
                return method(self, *args, **kwargs)
            except LedgerError as exc:
                if attempt == _DEADLOCK_TRIES or not _DEADLOCK.search(str(exc)):
                    raise
                logger.debug("ledger deadlock in %s; again", method.__name__)
                time.sleep(0.02 * attempt)
        raise AssertionError("unreachable: the last attempt returns or raises")

    return retried


def _instant() -> sa.types.TypeEngine[dt.datetime]:
    # MySQL/MariaDB DATETIME drops fractions of a second unless asked.
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def _tables(prefix: str) -> tuple[sa.MetaData, dict[str, sa.Table]]:
    metadata = sa.MetaData()
    key = sa.String(64)
    name = sa.String(255)

    def table(suffix: str, *columns: Any) -> sa.Table:
        return sa.Table(prefix + suffix, metadata, *columns)

    tables = {
        "meta": table(
            "meta",
            sa.Column("key", sa.String(64), primary_key=True),
            sa.Column("value", sa.String(255), nullable=False),
        ),
        "runs": table(
            "runs",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("ruleset", name, nullable=False),
            sa.Column("status", sa.String(20), nullable=False),
            sa.Column("as_of", sa.String(40), nullable=False),
            sa.Column("as_of_utc", _instant(), nullable=False),
            sa.Column("since", sa.Date),
            sa.Column("started_at", _instant(), nullable=False),
            sa.Column("finished_at", _instant()),
            sa.Column("host", name, nullable=False),
            sa.Column("pid", sa.Integer, nullable=False),
            sa.Column("counts", sa.Text),
            sa.Index(f"{prefix}runs_by_ruleset", "ruleset", "status"),
        ),
        "actions": table(
            "actions",
            sa.Column("action_id", key, primary_key=True),
            sa.Column("ruleset", name, nullable=False),
            sa.Column("kind", sa.String(20), nullable=False),
            sa.Column("step_key", key),
            sa.Column("customer_id", name, nullable=False),
            sa.Column("invoice_ids", sa.Text, nullable=False),
            sa.Column("step", name),
            sa.Column("channel", name),
            sa.Column("channel_kind", sa.String(20)),
            sa.Column("due_date", sa.Date),
            sa.Column("state", sa.String(20), nullable=False),
            sa.Column("reason", sa.Text),
            sa.Column("attempts", sa.Integer, nullable=False, default=0),
            sa.Column("run_id", sa.Integer, nullable=False),
            sa.Column("provider", name),
            sa.Column("provider_message_id", name),
            sa.Column("error", sa.Text),
            sa.Column("created_at", _instant(), nullable=False),
            sa.Column("updated_at", _instant(), nullable=False),
            sa.Column("delivery_status", sa.String(64)),
            sa.Column("delivery_status_at", _instant()),
            sa.Index(f"{prefix}actions_by_state", "ruleset", "state"),
        ),
        "attempts": table(
            "attempts",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("action_id", key, nullable=False, index=True),
            sa.Column("run_id", sa.Integer, nullable=False),
            sa.Column("number", sa.Integer, nullable=False),
            sa.Column("started_at", _instant(), nullable=False),
            sa.Column("finished_at", _instant(), nullable=False),
            sa.Column("outcome", sa.String(20), nullable=False),
            sa.Column("provider", name, nullable=False),
            sa.Column("provider_message_id", name),
            sa.Column("error", sa.Text),
            sa.Column("details", sa.Text),
            sa.Index(f"{prefix}attempts_by_message", "provider", "provider_message_id"),
        ),
        "step_claims": table(
            "step_claims",
            sa.Column("step_key", key, primary_key=True),
            sa.Column("action_id", key, nullable=False),
            sa.Column("claimed_at", _instant(), nullable=False),
        ),
        "receipts": table(
            "receipts",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("provider", name, nullable=False),
            sa.Column("provider_message_id", name, nullable=False),
            sa.Column("action_id", key),
            sa.Column("status", sa.String(64), nullable=False),
            sa.Column("at", _instant(), nullable=False),
            sa.Column("details", sa.Text),
        ),
        "locks": table(
            "locks",
            sa.Column("name", name, primary_key=True),
            sa.Column("holder", key),
            sa.Column("run_id", sa.Integer),
            sa.Column("host", name),
            sa.Column("pid", sa.Integer),
            sa.Column("acquired_at", _instant()),
            sa.Column("expires_at", _instant()),
        ),
    }
    return metadata, tables


def _holding_states(resend_unknown: bool) -> tuple[str, ...]:
    """States in which an action keeps its step from other channels. With
    resending allowed, an unknown outcome gives way (at-least-once)."""
    if resend_unknown:
        return tuple(state for state in HOLDS_STEP if state != UNKNOWN)
    return HOLDS_STEP


def step_key(
    ruleset: str,
    customer_id: str,
    invoice_ids: Iterable[str],
    step: str,
    due_date: dt.date | None,
) -> str:
    """The key of one reminder whatever its channel: the action id without
    the channel kind."""
    parts = [
        ruleset,
        customer_id,
        ",".join(sorted(invoice_ids)),
        step,
        due_date.isoformat() if due_date else "",
    ]
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()
    return f"stp_{digest[:24]}"


@dataclass(frozen=True)
class ActionEntry:
    """What the ledger keeps of a plan action."""

    action_id: str
    ruleset: str
    kind: str
    customer_id: str
    invoice_ids: tuple[str, ...]
    step: str | None
    channel: str | None
    channel_kind: str | None
    due_date: dt.date | None
    step_key: str | None = None


@dataclass(frozen=True)
class Claim:
    """The answer to a claim: claimed, or why not."""

    claimed: bool
    state: str | None  # the action's state when not claimed
    reason: str | None = None
    first_attempt: int = 1  # number of the next attempt when claimed
    other_action: str | None = None  # the action that holds the step
    other_state: str | None = None  # ... and its state


@dataclass(frozen=True)
class StepHolder:
    """The action holding a step: sent, sending, or with an unknown outcome."""

    action_id: str
    state: str


@dataclass(frozen=True)
class SentMessage:
    """A message the ledger holds as sent, sending or unknown."""

    action_id: str
    customer_id: str
    invoice_ids: tuple[str, ...]
    step: str | None
    due_date: dt.date | None
    as_of: dt.datetime  # the instant the run that sent it planned for


@dataclass(frozen=True)
class LockHolder:
    holder: str | None
    run_id: int | None
    host: str | None
    pid: int | None
    acquired_at: dt.datetime | None
    expires_at: dt.datetime | None


@dataclass(frozen=True)
class RecoveredAction:
    """An action a killed run left in `sending`: now `unknown`."""

    action_id: str
    run_id: int
    customer_id: str
    step: str | None
    channel: str | None
    attempt: int


@dataclass(frozen=True)
class ActionState:
    state: str
    reason: str | None
    attempts: int
    provider_message_id: str | None


def _utc(value: dt.datetime) -> dt.datetime:
    """Naive UTC, the way instants are stored."""
    if value.tzinfo is None:
        raise ValueError("the ledger stores aware instants only")
    return value.astimezone(dt.UTC).replace(tzinfo=None)


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    return None if value is None else value.replace(tzinfo=dt.UTC)


def _json(value: Mapping[str, Any] | None) -> str | None:
    if not value:
        return None
    return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def sqlite_url(path: str | Path) -> str:
    return f"sqlite:///{Path(path)}"


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL; None for other databases or memory."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


class Ledger:
    """The run ledger in one SQL database. Open it with `Ledger.open`."""

    def __init__(self, engine: Engine, *, prefix: str = "ruleset_") -> None:
        self.engine = engine
        self.prefix = prefix
        # The SQLite file this ledger's opening created (None: it existed,
        # or the ledger is not a SQLite file).
        self.created_file: Path | None = None
        self.metadata, self.tables = _tables(prefix)

    @classmethod
    def open(
        cls,
        url: str,
        *,
        prefix: str = "ruleset_",
        create: bool = True,
        make_folder: bool = True,
    ) -> Ledger | None:
        """Connect to the ledger at `url` and make sure its tables exist.

        With `create=False` nothing is created: a missing SQLite file or a
        database without the tables gives None (an empty ledger), which is
        what `--dry-run` needs to read a ledger without writing one. With
        `make_folder=False` a SQLite file's folder must exist: a ledger
        path someone typed is never a new, empty ledger in a new folder.
        """
        try:
            parsed = sa.engine.make_url(url)
        except sa.exc.ArgumentError as exc:
            raise LedgerError(f"not a database URL: {url!r}") from exc
        file = sqlite_path(url)
        is_new = file is not None and not file.exists()
        if file is not None:
            if not create and not file.exists():
                return None
            if not make_folder and not file.parent.is_dir():
                raise LedgerError(
                    f"the ledger's folder {file.parent} does not exist (ledger "
                    f"{file}): check the path; only the state folder is "
                    "created on demand"
                )
            if create:
                try:
                    file.parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise LedgerError(
                        f"cannot create the ledger's folder {file.parent}: "
                        f"{exc.strerror or exc}"
                    ) from exc
        try:
            engine = _create_engine(parsed)
        except (sa.exc.ArgumentError, ImportError) as exc:
            raise LedgerError(f"cannot use ledger {_safe(url)}: {exc}") from exc
        ledger = cls(engine, prefix=prefix)
        try:
            if create:
                ledger._create_schema()
            elif not ledger._has_schema():
                engine.dispose()
                return None
            ledger._check_version()
        except BaseException:
            engine.dispose()
            raise
        if is_new and create:
            ledger.created_file = file
        return ledger

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _begin(self) -> Iterator[Connection]:
        """One short transaction; driver errors become LedgerError."""
        try:
            with self.engine.begin() as connection:
                yield connection
        except sa.exc.SQLAlchemyError as exc:
            raise LedgerError(f"ledger {_safe(str(self.engine.url))}: {exc}") from exc

    # -- schema ----------------------------------------------------------

    def _has_schema(self) -> bool:
        with self._begin() as conn:
            return sa.inspect(conn).has_table(self.tables["meta"].name)

    def _create_schema(self) -> None:
        # Two first runs may race to create the tables; the loser sees
        # "already exists" and simply tries again.
        for attempt in range(3):
            try:
                with self._begin() as conn:
                    self.metadata.create_all(conn, checkfirst=True)
                    self._insert_ignore(
                        conn,
                        self.tables["meta"],
                        [{"key": "schema_version", "value": str(SCHEMA_VERSION)}],
                    )
                return
            except LedgerError:
                if attempt == 2:
                    raise
                logger.debug("ledger schema creation raced; trying again")

    def _check_version(self) -> None:
        meta = self.tables["meta"]
        with self._begin() as conn:
            found = conn.execute(
                sa.select(meta.c.value).where(meta.c.key == "schema_version")
            ).scalar()
        if found is None or not found.isdigit():
            raise LedgerError("the ledger has no schema version; is it a ledger?")
        if int(found) > SCHEMA_VERSION:
            raise LedgerError(
                f"the ledger has schema version {found}, newer than this "
                f"program's {SCHEMA_VERSION}: upgrade ruleset"
            )

    @property
    def schema_version(self) -> int:
        meta = self.tables["meta"]
        with self._begin() as conn:
            found = conn.execute(
                sa.select(meta.c.value).where(meta.c.key == "schema_version")
            ).scalar_one()
        return int(found)

    def _insert_ignore(
        self, conn: Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]
    ) -> int:
        """Insert rows whose key is new; leave existing ones alone."""
        if not rows:
            return 0
        dialect = conn.dialect.name
        statement: Any
        if dialect == "sqlite":
            statement = sqlite.insert(table).on_conflict_do_nothing()
        elif dialect == "postgresql":
            statement = postgresql.insert(table).on_conflict_do_nothing()
        elif dialect in ("mysql", "mariadb"):
            statement = sa.insert(table).prefix_with("IGNORE")
        else:
            raise LedgerError(f"unsupported ledger database: {dialect}")
        return int(conn.execute(statement, list(rows)).rowcount)

    # -- runs ------------------------------------------------------------

    def start_run(
        self,
        ruleset: str,
        as_of: dt.datetime,
        since: dt.date | None,
        *,
        host: str,
        pid: int,
        at: dt.datetime,
    ) -> int:
        runs = self.tables["runs"]
        with self._begin() as conn:
            result = conn.execute(
                sa.insert(runs).values(
                    ruleset=ruleset,
                    status=RUN_RUNNING,
                    as_of=as_of.isoformat(),
                    as_of_utc=_utc(as_of),
                    since=since,
                    started_at=_utc(at),
                    host=host,
                    pid=pid,
                )
            )
            key = result.inserted_primary_key
            if key is None:
                raise LedgerError("the database did not return the new run's id")
            return int(key[0])

    def finish_run(
        self, run_id: int, status: str, counts: Mapping[str, Any], at: dt.datetime
    ) -> None:
        runs = self.tables["runs"]
        with self._begin() as conn:
            conn.execute(
                sa.update(runs)
                .where(runs.c.id == run_id)
                .values(status=status, finished_at=_utc(at), counts=_json(counts))
            )

    def mark_interrupted(self, ruleset: str, run_id: int, at: dt.datetime) -> list[int]:
        """Close the runs of `ruleset` other than `run_id` still marked
        running as `interrupted`; return their ids. Call it while holding
        the run lock: then no live run is among them."""
        runs = self.tables["runs"]
        with self._begin() as conn:
            stale = [
                int(found)
                for found in conn.scalars(
                    sa.select(runs.c.id).where(
                        runs.c.ruleset == ruleset,
                        runs.c.status == RUN_RUNNING,
                        runs.c.id != run_id,
                    )
                )
            ]
            if stale:
                conn.execute(
                    sa.update(runs)
                    .where(runs.c.id.in_(stale), runs.c.status == RUN_RUNNING)
                    .values(status=RUN_INTERRUPTED, finished_at=_utc(at))
                )
        return sorted(stale)

    def last_completed_as_of(self, ruleset: str) -> dt.datetime | None:
        """The latest instant a completed run of `ruleset` planned for."""
        runs = self.tables["runs"]
        with self._begin() as conn:
            found = conn.execute(
                sa.select(sa.func.max(runs.c.as_of_utc)).where(
                    runs.c.ruleset == ruleset, runs.c.status == RUN_COMPLETED
                )
            ).scalar()
        return _aware(found)

    def completed_runs(
        self, ruleset: str, as_of_from: dt.datetime
    ) -> list[tuple[dt.date | None, dt.datetime]]:
        """(since, as_of) of the completed runs of `ruleset` that planned
        for `as_of_from` or later: the days those runs evaluated."""
        runs = self.tables["runs"]
        with self._begin() as conn:
            rows = conn.execute(
                sa.select(runs.c.since, runs.c.as_of_utc).where(
                    runs.c.ruleset == ruleset,
                    runs.c.status == RUN_COMPLETED,
                    runs.c.as_of_utc >= _utc(as_of_from),
                )
            ).all()
        return [(row.since, row.as_of_utc.replace(tzinfo=dt.UTC)) for row in rows]

    def runs(self, ruleset: str | None = None) -> list[dict[str, Any]]:
        """Every run, oldest first (for reports and tests)."""
        runs = self.tables["runs"]
        query = sa.select(runs).order_by(runs.c.id)
        if ruleset is not None:
            query = query.where(runs.c.ruleset == ruleset)
        with self._begin() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    # -- the run lock ----------------------------------------------------

    @_retry_deadlocks
    def try_lock(
        self,
        name: str,
        holder: str,
        *,
        run_id: int | None,
        host: str,
        pid: int,
        at: dt.datetime,
        lease: float,
    ) -> LockHolder | None:
        """Take the lease `name` if it is free or expired.

        Returns None when taken, or who holds it now.
        """
        locks = self.tables["locks"]
        now = _utc(at)
        with self._begin() as conn:
            self._insert_ignore(conn, locks, [{"name": name}])
            taken = conn.execute(
                sa.update(locks)
                .where(
                    locks.c.name == name,
                    sa.or_(locks.c.holder.is_(None), locks.c.expires_at < now),
                )
                .values(
                    holder=holder,
                    run_id=run_id,
                    host=host,
                    pid=pid,
                    acquired_at=now,
                    expires_at=now + dt.timedelta(seconds=lease),
                )
            ).rowcount
            if taken == 1:
                return None
            row = conn.execute(sa.select(locks).where(locks.c.name == name)).one()
        return LockHolder(
            holder=row.holder,
            run_id=row.run_id,
            host=row.host,
            pid=row.pid,
            acquired_at=_aware(row.acquired_at),
            expires_at=_aware(row.expires_at),
        )

    def take_over_lock(
        self,
        name: str,
        stale: LockHolder,
        holder: str,
        *,
        host: str,
        pid: int,
        at: dt.datetime,
        lease: float,
    ) -> bool:
        """Take the lease from a holder known to be dead; False when it
        changed hands in the meantime."""
        locks = self.tables["locks"]
        now = _utc(at)
        with self._begin() as conn:
            return (
                conn.execute(
                    sa.update(locks)
                    .where(locks.c.name == name, locks.c.holder == stale.holder)
                    .values(
                        holder=holder,
                        run_id=None,
                        host=host,
                        pid=pid,
                        acquired_at=now,
                        expires_at=now + dt.timedelta(seconds=lease),
                    )
                ).rowcount
                == 1
            )

    def renew_lock(
        self,
        name: str,
        holder: str,
        *,
        at: dt.datetime,
        lease: float,
        run_id: int | None = None,
    ) -> bool:
        """Extend our lease; False when we no longer hold it."""
        locks = self.tables["locks"]
        values: dict[str, Any] = {"expires_at": _utc(at) + dt.timedelta(seconds=lease)}
        if run_id is not None:
            values["run_id"] = run_id
        with self._begin() as conn:
            return (
                conn.execute(
                    sa.update(locks)
                    .where(locks.c.name == name, locks.c.holder == holder)
                    .values(**values)
                ).rowcount
                == 1
            )

    def release_lock(self, name: str, holder: str) -> None:
        locks = self.tables["locks"]
        with self._begin() as conn:
            conn.execute(
                sa.update(locks)
                .where(locks.c.name == name, locks.c.holder == holder)
                .values(holder=None, expires_at=None)
            )

    # -- actions ---------------------------------------------------------

    @_retry_deadlocks
    def recover_interrupted(
        self, ruleset: str, run_id: int, at: dt.datetime
    ) -> list[RecoveredAction]:
        """Turn actions a dead run left in `sending` into `unknown`.

        Call it while holding the run lock: then no live run owns them.
        The provider may or may not have accepted the message; an attempt
        row with outcome `unknown` records that.
        """
        actions = self.tables["actions"]
        attempts = self.tables["attempts"]
        now = _utc(at)
        recovered: list[RecoveredAction] = []
        with self._begin() as conn:
            rows = conn.execute(
                sa.select(actions).where(
                    actions.c.ruleset == ruleset,
                    actions.c.state == SENDING,
                    actions.c.run_id != run_id,
                )
            ).all()
            for row in rows:
                number = row.attempts + 1
                conn.execute(
                    sa.insert(attempts).values(
                        action_id=row.action_id,
                        run_id=row.run_id,
                        number=number,
                        started_at=row.updated_at,
                        finished_at=now,
                        outcome="unknown",
                        provider=row.provider or "",
                        error=(
                            f"run {row.run_id} ended while sending; the "
                            "provider may or may not have accepted it"
                        ),
                    )
                )
                conn.execute(
                    sa.update(actions)
                    .where(
                        actions.c.action_id == row.action_id,
                        actions.c.state == SENDING,
                    )
                    .values(
                        state=UNKNOWN,
                        attempts=number,
                        reason=f"interrupted during send (run {row.run_id})",
                        updated_at=now,
                    )
                )
                recovered.append(
                    RecoveredAction(
                        row.action_id,
                        row.run_id,
                        row.customer_id,
                        row.step,
                        row.channel,
                        number,
                    )
                )
        return recovered

    @_retry_deadlocks
    def note(
        self,
        entries: Sequence[ActionEntry],
        run_id: int,
        at: dt.datetime,
        *,
        state: str = PLANNED,
        reason: str | None = None,
        reasons: Mapping[str, str] | None = None,
        errors: Mapping[str, str] | None = None,
    ) -> None:
        """Record actions as `planned` (or `skipped` with a reason, and for
        a customer whose policy evaluation failed, the error in `errors`).

        New actions are inserted; an existing action is only updated while
        it is still planned or skipped, never once it was sent or failed.
        """
        if state not in (PLANNED, SKIPPED):
            raise ValueError(f"cannot note actions as {state}")
        actions = self.tables["actions"]
        now = _utc(at)
        for chunk in _chunks(entries):
            rows = [
                {
                    "action_id": entry.action_id,
                    "ruleset": entry.ruleset,
                    "kind": entry.kind,
                    "step_key": entry.step_key,
                    "customer_id": entry.customer_id,
                    "invoice_ids": ",".join(entry.invoice_ids),
                    "step": entry.step,
                    "channel": entry.channel,
                    "channel_kind": entry.channel_kind,
                    "due_date": entry.due_date,
                    "state": state,
                    "reason": (reasons or {}).get(entry.action_id, reason),
                    "error": (errors or {}).get(entry.action_id),
                    "attempts": 0,
                    "run_id": run_id,
                    "created_at": now,
                    "updated_at": now,
                }
                for entry in chunk
            ]
            with self._begin() as conn:
                self._insert_ignore(conn, actions, rows)
                conn.execute(
                    sa.update(actions)
                    .where(
                        actions.c.action_id == sa.bindparam("b_id"),
                        # (no IN here: executemany cannot expand it)
                        sa.or_(actions.c.state == PLANNED, actions.c.state == SKIPPED),
                    )
                    .values(
                        state=state,
                        reason=sa.bindparam("b_reason"),
                        error=sa.bindparam("b_error"),
                        run_id=run_id,
                        updated_at=now,
                    ),
                    [
                        {
                            "b_id": row["action_id"],
                            "b_reason": row["reason"],
                            "b_error": row["error"],
                        }
                        for row in rows
                    ],
                )

    @_retry_deadlocks
    def claim(
        self,
        entry: ActionEntry,
        run_id: int,
        at: dt.datetime,
        *,
        resend_unknown: bool = False,
    ) -> Claim:
        """Atomically move a noted action to `sending` for this run.

        Claimed only from a claimable state (planned, skipped,
        failed_temporary, and unknown when resending is allowed) and only
        when no other action holds its step.
        """
        actions = self.tables["actions"]
        claimable = CLAIMABLE + ((UNKNOWN,) if resend_unknown else ())
        now = _utc(at)
        with self._begin() as conn:
            claimed = conn.execute(
                sa.update(actions)
                .where(
                    actions.c.action_id == entry.action_id,
                    actions.c.state.in_(claimable),
                )
                .values(state=SENDING, run_id=run_id, updated_at=now, reason=None)
            ).rowcount
            row = conn.execute(
                sa.select(actions.c.state, actions.c.reason, actions.c.attempts).where(
                    actions.c.action_id == entry.action_id
                )
            ).one_or_none()
            if row is None:
                raise LedgerError(f"action {entry.action_id} was never noted")
            if claimed != 1:
                return Claim(False, state=row.state, reason=row.reason)

            other = None
            if entry.step_key is not None:
                other = self._claim_step(
                    conn, entry, now, _holding_states(resend_unknown)
                )
            if other is not None:
                reason = f"step held by {other.action_id} ({other.state})"
                conn.execute(
                    sa.update(actions)
                    .where(actions.c.action_id == entry.action_id)
                    .values(state=SKIPPED, reason=reason)
                )
                return Claim(
                    False,
                    SKIPPED,
                    reason=reason,
                    other_action=other.action_id,
                    other_state=other.state,
                )
        return Claim(True, state=SENDING, first_attempt=row.attempts + 1)

    def _claim_step(
        self,
        conn: Connection,
        entry: ActionEntry,
        now: dt.datetime,
        holding: tuple[str, ...],
    ) -> StepHolder | None:
        """Take the step for `entry`; return the action that holds it
        instead, if it has been (or may have been) delivered."""
        claims = self.tables["step_claims"]
        actions = self.tables["actions"]
        row = {"step_key": entry.step_key, "action_id": entry.action_id}
        if self._insert_ignore(conn, claims, [{**row, "claimed_at": now}]) == 1:
            return None
        holder = conn.execute(
            sa.select(claims.c.action_id).where(claims.c.step_key == entry.step_key)
        ).scalar_one()
        if holder == entry.action_id:
            return None
        state = conn.execute(
            sa.select(actions.c.state).where(actions.c.action_id == holder)
        ).scalar()
        if state in holding:
            return StepHolder(str(holder), str(state))
        # The holder never got through (failed, skipped): the step is free.
        conn.execute(
            sa.update(claims)
            .where(claims.c.step_key == entry.step_key, claims.c.action_id == holder)
            .values(action_id=entry.action_id, claimed_at=now)
        )
        return None

    @_retry_deadlocks
    def record_attempt(
        self,
        action_id: str,
        run_id: int,
        *,
        number: int,
        started_at: dt.datetime,
        finished_at: dt.datetime,
        outcome: str,
        provider: str,
        provider_message_id: str | None = None,
        error: str | None = None,
        details: Mapping[str, Any] | None = None,
        final: bool,
    ) -> bool:
        """Record one provider call; when `final`, also the action's new
        state, in the same transaction (so a `sent` attempt never exists
        beside an action still marked `sending`).

        The action is updated only while this run holds it in `sending`:
        a run that lost its lock finds its in-flight action marked
        `unknown` (or claimed again) by the run that took over, and must
        not overwrite that. Returns False then; the attempt row is kept.
        """
        actions = self.tables["actions"]
        attempts = self.tables["attempts"]
        values: dict[str, Any] = {
            "attempts": number,
            "provider": provider,
            "updated_at": _utc(finished_at),
        }
        if final:
            values.update(
                state=_FINAL_STATE[outcome],
                error=error,
                provider_message_id=provider_message_id,
            )
        with self._begin() as conn:
            conn.execute(
                sa.insert(attempts).values(
                    action_id=action_id,
                    run_id=run_id,
                    number=number,
                    started_at=_utc(started_at),
                    finished_at=_utc(finished_at),
                    outcome=outcome,
                    provider=provider,
                    provider_message_id=provider_message_id,
                    error=error,
                    details=_json(details),
                )
            )
            updated = conn.execute(
                sa.update(actions)
                .where(
                    actions.c.action_id == action_id,
                    actions.c.run_id == run_id,
                    actions.c.state == SENDING,
                )
                .values(**values)
            ).rowcount
        return updated == 1

    def release(
        self, action_id: str, run_id: int, at: dt.datetime, reason: str
    ) -> None:
        """Give back a claim without calling the provider (the run stopped
        before it got there): the action is planned again."""
        actions = self.tables["actions"]
        with self._begin() as conn:
            conn.execute(
                sa.update(actions)
                .where(
                    actions.c.action_id == action_id,
                    actions.c.run_id == run_id,
                    actions.c.state == SENDING,
                )
                .values(state=PLANNED, reason=reason, updated_at=_utc(at))
            )

    def states(self, action_ids: Iterable[str]) -> dict[str, ActionState]:
        """The recorded state of each known action among `action_ids`."""
        actions = self.tables["actions"]
        ids = list(dict.fromkeys(action_ids))
        found: dict[str, ActionState] = {}
        with self._begin() as conn:
            for chunk in _chunks(ids):
                for row in conn.execute(
                    sa.select(
                        actions.c.action_id,
                        actions.c.state,
                        actions.c.reason,
                        actions.c.attempts,
                        actions.c.provider_message_id,
                    ).where(actions.c.action_id.in_(chunk))
                ):
                    found[row.action_id] = ActionState(
                        row.state, row.reason, row.attempts, row.provider_message_id
                    )
        return found

    def step_holders(
        self, step_keys: Iterable[str], *, resend_unknown: bool = False
    ) -> dict[str, StepHolder]:
        """step key -> the action holding it, for keys held by an action
        that was (or may have been) delivered."""
        claims = self.tables["step_claims"]
        actions = self.tables["actions"]
        keys = list(dict.fromkeys(step_keys))
        holding = _holding_states(resend_unknown)
        found: dict[str, StepHolder] = {}
        with self._begin() as conn:
            for chunk in _chunks(keys):
                query = (
                    sa.select(claims.c.step_key, claims.c.action_id, actions.c.state)
                    .join(actions, actions.c.action_id == claims.c.action_id)
                    .where(claims.c.step_key.in_(chunk), actions.c.state.in_(holding))
                )
                for row in conn.execute(query):
                    found[row.step_key] = StepHolder(row.action_id, row.state)
        return found

    def planned_steps(
        self, step_keys: Iterable[str], *, skipped_for: Sequence[str] = ()
    ) -> set[str]:
        """The step keys among `step_keys` that a run planned to send: an
        action of the step was planned, tried or sent, or skipped for one
        of the reasons `skipped_for` (its window closed, say)."""
        actions = self.tables["actions"]
        keys = list(dict.fromkeys(step_keys))
        found: set[str] = set()
        with self._begin() as conn:
            for chunk in _chunks(keys):
                query = sa.select(actions.c.step_key).where(
                    actions.c.step_key.in_(chunk),
                    sa.or_(
                        actions.c.state != SKIPPED,
                        actions.c.reason.in_(list(skipped_for)),
                    ),
                )
                found.update(str(key) for key in conn.scalars(query))
        return found

    def sends(
        self, ruleset: str, customer_ids: Iterable[str], as_of_from: dt.datetime
    ) -> list[SentMessage]:
        """Every message of `ruleset` to `customer_ids` that was sent, is
        sending or has an unknown outcome, by runs that planned for
        `as_of_from` or later. The frequency caps count these, whatever the
        step or channel, and the runner keeps a second step from reminding
        a customer of the same invoices on the same day."""
        actions = self.tables["actions"]
        runs = self.tables["runs"]
        customers = list(dict.fromkeys(customer_ids))
        found: list[SentMessage] = []
        with self._begin() as conn:
            for chunk in _chunks(customers):
                query = (
                    sa.select(
                        actions.c.action_id,
                        actions.c.customer_id,
                        actions.c.invoice_ids,
                        actions.c.step,
                        actions.c.due_date,
                        runs.c.as_of_utc,
                    )
                    .join(runs, runs.c.id == actions.c.run_id)
                    .where(
                        actions.c.ruleset == ruleset,
                        actions.c.kind == "message",
                        actions.c.state.in_(HOLDS_STEP),
                        actions.c.customer_id.in_(chunk),
                        runs.c.as_of_utc >= _utc(as_of_from),
                    )
                )
                found.extend(
                    SentMessage(
                        action_id=row.action_id,
                        customer_id=row.customer_id,
                        invoice_ids=tuple(row.invoice_ids.split(",")),
                        step=row.step,
                        due_date=row.due_date,
                        as_of=row.as_of_utc.replace(tzinfo=dt.UTC),
                    )
                    for row in conn.execute(query)
                )
        return found

    def unresolved(self, ruleset: str) -> list[dict[str, Any]]:
        """The actions of `ruleset` whose outcome is unknown, oldest first:
        each may or may not have reached its customer until an operator
        says which (`resolve`)."""
        actions = self.tables["actions"]
        query = (
            sa.select(
                actions.c.action_id,
                actions.c.customer_id,
                actions.c.step,
                actions.c.channel,
                actions.c.run_id,
                actions.c.reason,
                actions.c.error,
            )
            .where(actions.c.ruleset == ruleset, actions.c.state == UNKNOWN)
            .order_by(actions.c.updated_at, actions.c.action_id)
        )
        with self._begin() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    @_retry_deadlocks
    def resolve(
        self, action_id: str, resolution: str, at: dt.datetime, note: str
    ) -> str | None:
        """Settle an unknown outcome as `sent` or `failed` (permanently: it
        is not tried again). Returns the action's state before, or None
        when there is no such action; only `unknown` is changed."""
        if resolution not in RESOLUTIONS:
            raise ValueError(f"resolve as one of {', '.join(RESOLUTIONS)}")
        actions = self.tables["actions"]
        with self._begin() as conn:
            before = conn.execute(
                sa.select(actions.c.state).where(actions.c.action_id == action_id)
            ).scalar()
            if before == UNKNOWN:
                conn.execute(
                    sa.update(actions)
                    .where(
                        actions.c.action_id == action_id,
                        actions.c.state == UNKNOWN,
                    )
                    .values(
                        state=RESOLUTIONS[resolution],
                        reason=note,
                        updated_at=_utc(at),
                    )
                )
        return None if before is None else str(before)

    def action(self, action_id: str) -> dict[str, Any] | None:
        actions = self.tables["actions"]
        with self._begin() as conn:
            row = conn.execute(
                sa.select(actions).where(actions.c.action_id == action_id)
            ).one_or_none()
        return None if row is None else dict(row._mapping)

    def attempts(self, action_id: str) -> list[dict[str, Any]]:
        attempts = self.tables["attempts"]
        with self._begin() as conn:
            return [
                dict(row._mapping)
                for row in conn.execute(
                    sa.select(attempts)
                    .where(attempts.c.action_id == action_id)
                    .order_by(attempts.c.number, attempts.c.id)
                )
            ]

    def count_states(self, ruleset: str | None = None) -> dict[str, int]:
        actions = self.tables["actions"]
        query = sa.select(actions.c.state, sa.func.count()).group_by(actions.c.state)
        if ruleset is not None:
            query = query.where(actions.c.ruleset == ruleset)
        with self._begin() as conn:
            return {row[0]: int(row[1]) for row in conn.execute(query)}

    # -- delivery receipts -------------------------------------------------

    def record_delivery_status(
        self,
        provider: str,
        provider_message_id: str,
        status: str,
        at: dt.datetime,
        details: Mapping[str, Any] | None = None,
    ) -> bool:
        """Keep a delivery receipt (delivered, read, failed, ...).

        Returns True when it belongs to a message the ledger knows (an
        attempt by that provider with that id). Every receipt is kept; the
        action shows the latest status by the receipt's own time, so a
        late "sent" never overwrites an earlier "delivered".
        """
        actions = self.tables["actions"]
        attempts = self.tables["attempts"]
        receipts = self.tables["receipts"]
        when = _utc(at)
        with self._begin() as conn:
            action_id = conn.execute(
                sa.select(attempts.c.action_id)
                .where(
                    attempts.c.provider == provider,
                    attempts.c.provider_message_id == provider_message_id,
                )
                .limit(1)
            ).scalar()
            conn.execute(
                sa.insert(receipts).values(
                    provider=provider,
                    provider_message_id=provider_message_id,
                    action_id=action_id,
                    status=status,
                    at=when,
                    details=_json(details),
                )
            )
            if action_id is None:
                return False
            conn.execute(
                sa.update(actions)
                .where(
                    actions.c.action_id == action_id,
                    sa.or_(
                        actions.c.delivery_status_at.is_(None),
                        actions.c.delivery_status_at <= when,
                    ),
                )
                .values(delivery_status=status, delivery_status_at=when)
            )
        return True


def _create_engine(url: sa.engine.URL) -> Engine:
    if url.get_backend_name() != "sqlite":
        return sa.create_engine(url, pool_pre_ping=True)

    engine = sa.create_engine(
        url, connect_args={"timeout": _SQLITE_BUSY_SECONDS, "isolation_level": None}
    )

    @sa.event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # WAL lets readers go on while a run writes; FULL makes every
        # committed claim survive a power cut, not only a killed process.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={int(_SQLITE_BUSY_SECONDS * 1000)}")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin_immediate(connection: Connection) -> None:
        # Take the write lock when the transaction starts, so that a
        # read-then-write transaction never fails halfway on SQLITE_BUSY.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _safe(url: str) -> str:
    """A URL without its password, for messages."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<invalid URL>"
