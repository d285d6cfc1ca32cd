"""The repository tests run against each database pixelgate supports: SQLite and the local PostgreSQL.

One database per module and kind (``db_url``); ``database`` opens it for a test (migrated, the
tables emptied), so tests see only their own rows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete

from app.db import Database
from app.db.schema import api_keys, budget_holds, jobs, usage_ledger
from tests.databases import KINDS, database_url


@pytest.fixture(scope="module", params=KINDS)
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with database_url(request.param, tmp_path_factory.mktemp("db")) as url:
        yield url


@pytest.fixture
async def database(db_url: str) -> AsyncIterator[Database]:
    database = Database.from_setting(db_url, Path("unused"))
    await database.open()
    async with database.engine.begin() as connection:
        await connection.execute(delete(usage_ledger))
        await connection.execute(delete(budget_holds))
        await connection.execute(delete(api_keys))
        await connection.execute(delete(jobs))
    try:
        yield database
    finally:
        await database.aclose()
