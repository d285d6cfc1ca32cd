"""Applying the shipped Alembic migrations, safely from several processes at once.

Every pending revision runs in one transaction that first takes a database-wide lock: on PostgreSQL a
transaction-scoped advisory lock, on SQLite ``BEGIN IMMEDIATE`` (the write lock). Replicas starting
together against one empty database therefore queue: the first creates the schema, the others then
find it at head and do nothing. Both databases have transactional DDL, so a migration that fails
leaves the schema as it was.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.migrations.env_options import VERSION_TABLE

MIGRATIONS = Path(__file__).parent / "migrations"
ADVISORY_LOCK_KEY = 0x706978656C676174
"""``pg_advisory_xact_lock`` key of the migration lock ("pixelgat" in ASCII): one for all replicas."""
IMMEDIATE = "pixelgate_sqlite_immediate"
"""Execution option: on SQLite, begin the transaction with ``BEGIN IMMEDIATE`` (see :mod:`app.db.database`)."""


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str | None:
    """The newest revision this pixelgate ships."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def upgrade_to_head(engine: AsyncEngine) -> str | None:
    """Apply every pending migration under the lock; returns the database's revision afterwards."""
    async with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            connection = await connection.execution_options(**{IMMEDIATE: True})
        async with connection.begin():
            if engine.dialect.name == "postgresql":
                await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
            await connection.run_sync(_upgrade)
            return await connection.run_sync(_current)


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at (None: never migrated)."""
    async with engine.connect() as connection:
        return await connection.run_sync(_current)


def _upgrade(connection: Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE}).get_current_revision()
