"""The one database of a pixelgate process: its engine, opened in the lifespan, and its failures.

:class:`Database` is made in ``create_app`` without any I/O, so the objects that use it (the key
store, the usage ledger) can be wired up front; :meth:`Database.open` (the lifespan's start) creates
the engine and applies the migrations, :meth:`Database.aclose` (its end) disposes of it.

SQLite (the embedded default) runs in WAL mode, so readers never wait for the writer, with a busy
timeout instead of instant "database is locked" errors. Switching a new database to WAL is the one
step the busy timeout does not cover: connections doing it at once (replicas starting together on a
fresh file) may be refused at once, so it is retried (:func:`enable_wal`). Python's sqlite3 driver
does not begin a transaction before DDL or SELECT (its legacy mode); SQLAlchemy's documented recipe hands BEGIN to
us, which makes migrations transactional and lets :mod:`app.db.migrate` ask for ``BEGIN IMMEDIATE``.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from app.db.migrate import IMMEDIATE, upgrade_to_head
from app.db.urls import async_url, printable
from core.errors import ServiceUnavailableError

log = logging.getLogger("pixelgate.db")

SQLITE_BUSY_TIMEOUT_SECONDS = 15.0
"""How long a SQLite writer waits for another (a ledger batch, a key being made) before failing."""


class Database:
    """The engine for ``url`` (an async driver URL, see :func:`app.db.urls.async_url`)."""

    def __init__(self, url: URL) -> None:
        self.url = url
        self._engine: AsyncEngine | None = None

    @classmethod
    def from_setting(cls, configured: str | None, data_dir: Path) -> Database:
        """For ``PIXELGATE_DATABASE_URL`` (None: SQLite in ``data_dir``). Raises ``ValueError`` if unusable."""
        return cls(async_url(configured, data_dir))

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("the database is not open (Database.open runs in the app's lifespan)")
        return self._engine

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.url.get_backend_name()

    def describe(self) -> str:
        """The URL for messages, password hidden."""
        return printable(self.url)

    async def open(self, *, migrate: bool = True) -> str | None:
        """Create the engine and (by default) apply pending migrations; returns the schema revision.

        Raises ``RuntimeError`` naming the database (never its password) when it cannot be reached
        or migrated.
        """
        if self._engine is not None:
            raise RuntimeError("the database is already open")
        self._engine = self._create_engine()
        if not migrate:
            return None
        try:
            return await upgrade_to_head(self._engine)
        except (OSError, SQLAlchemyError) as exc:
            await self.aclose()
            raise RuntimeError(f"cannot open the database {self.describe()}: {error_summary(exc)}") from exc

    async def aclose(self) -> None:
        if self._engine is not None:
            engine, self._engine = self._engine, None
            await engine.dispose()

    def _create_engine(self) -> AsyncEngine:
        if self.dialect == "sqlite":
            assert self.url.database is not None
            Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
            engine = create_async_engine(self.url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
            _own_sqlite_transactions(engine)
            return engine
        # pre-ping: a connection the server dropped (a PostgreSQL restart, a failover) is replaced
        # on checkout instead of failing the query that drew it.
        return create_async_engine(self.url, pool_size=5, max_overflow=10, pool_pre_ping=True)


WAL_RETRY_SECONDS = 0.02


def enable_wal(execute: Callable[[str], object], *, within: float = SQLITE_BUSY_TIMEOUT_SECONDS) -> None:
    """``PRAGMA journal_mode=WAL``, retried while SQLite answers "database is locked" for up to
    ``within`` seconds. Two connections switching a new database at once each hold a shared lock and
    want the exclusive one, so SQLite refuses one of them at once rather than calling its busy handler
    (measured: 4 connections at once on a fresh file, 30 of 300 trials). Sleeps on its thread between
    tries (the event loop's, through SQLAlchemy's adapter): only a new connection in that race waits."""
    deadline = time.monotonic() + within
    while True:
        try:
            execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(WAL_RETRY_SECONDS)


def _own_sqlite_transactions(engine: AsyncEngine) -> None:
    """WAL and a busy timeout on every connection; BEGIN emitted by SQLAlchemy, not by sqlite3."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None  # sqlite3 stops emitting BEGIN
        cursor = dbapi_connection.cursor()
        enable_wal(cursor.execute)
        cursor.execute("PRAGMA synchronous=NORMAL")  # durable at each checkpoint; WAL keeps it consistent
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get(IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextlib.contextmanager
def unavailable_as_503() -> Iterator[None]:
    """Map the driver's failures to a 503 ``database_unavailable`` (the one place that does)."""
    try:
        yield
    except (OSError, SQLAlchemyError) as exc:
        log.warning("database error: %s", error_summary(exc))
        raise ServiceUnavailableError(
            "the gateway's database is unavailable; retry later", code="database_unavailable"
        ) from exc


def error_summary(exc: BaseException) -> str:
    """One line about the failure, without the SQL statement and parameters SQLAlchemy appends."""
    original = getattr(exc, "orig", None) or exc
    return str(original).splitlines()[0] if str(original) else type(original).__name__


async def migrate_database(configured: str | None, data_dir: Path) -> None:
    """Open the database ``PIXELGATE_DATABASE_URL`` names (SQLite in ``data_dir`` by default), apply
    pending migrations, close it. Raises ``RuntimeError`` (or ``ValueError`` for an unusable URL)
    with a one-line message naming the database, never its password."""
    database = Database.from_setting(configured, data_dir)
    await database.open()
    await database.aclose()
