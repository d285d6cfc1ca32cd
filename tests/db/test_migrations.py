"""Migrations: applied from empty, idempotent, equal to the schema the code uses, safe for concurrent starts."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from app.db import Database, current_revision, head_revision
from app.db.migrations.env_options import VERSION_TABLE
from app.db.schema import metadata
from tests.databases import KINDS, database_url


@pytest.fixture(params=KINDS)
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each kind, for this test alone."""
    with database_url(request.param, tmp_path / "db", label="pixelgate_migrations") as url:
        yield url


async def test_migrations_apply_from_empty_and_again_change_nothing(fresh_url: str) -> None:
    head = head_revision()
    assert head is not None
    first = Database.from_setting(fresh_url, Path())
    assert await first.open(migrate=False) is None
    assert await current_revision(first.engine) is None
    await first.aclose()

    for _ in range(2):
        database = Database.from_setting(fresh_url, Path())
        assert await database.open() == head
        async with database.engine.connect() as connection:
            tables = await connection.run_sync(lambda sync: set(inspect(sync).get_table_names()))
            versions = (await connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))).all()
        await database.aclose()
        assert {"api_keys", "usage_ledger", VERSION_TABLE} <= tables
        assert [row[0] for row in versions] == [head]


async def test_the_migrated_schema_is_the_one_the_code_uses(fresh_url: str) -> None:
    database = Database.from_setting(fresh_url, Path())
    await database.open()

    def differences(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return list(compare_metadata(context, metadata))

    try:
        async with database.engine.connect() as connection:
            assert await connection.run_sync(differences) == []
    finally:
        await database.aclose()


async def test_replicas_starting_together_on_an_empty_database_all_come_up(fresh_url: str) -> None:
    """Each replica migrates at start; the lock makes the others wait, then find nothing to do."""
    replicas = [Database.from_setting(fresh_url, Path()) for _ in range(4)]
    try:
        revisions = await asyncio.gather(*(replica.open() for replica in replicas))
    finally:
        for replica in replicas:
            await replica.aclose()
    assert revisions == [head_revision()] * 4
