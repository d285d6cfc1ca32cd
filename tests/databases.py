"""Databases for tests: a SQLite file in a temporary directory, or a fresh database on the local PostgreSQL.

``postgres_database()`` creates a uniquely named database on the PostgreSQL at 127.0.0.1:5432 (trust
auth, user ``postgres``; ``PIXELGATE_TEST_POSTGRES_URL`` names another server's maintenance
database) and drops it afterwards, so parallel runs and other users of the server never meet.
``database_url(kind, tmp)`` gives the contract's URL (what ``PIXELGATE_DATABASE_URL`` holds) for either.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from app.db import async_url

MAINTENANCE_URL = os.environ.get("PIXELGATE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
KINDS = ("sqlite", "postgresql")
"""Every database pixelgate supports; tests parametrized over these run against each."""


@contextlib.contextmanager
def postgres_database(label: str = "pixelgate") -> Iterator[str]:
    """A new empty PostgreSQL database for the duration; yields its ``postgresql://`` URL."""
    name = f"{label}_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(MAINTENANCE_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextlib.contextmanager
def database_url(kind: str, directory: Path, label: str = "pixelgate") -> Iterator[str]:
    """The ``PIXELGATE_DATABASE_URL`` of a fresh database of ``kind`` (``sqlite`` or ``postgresql``)."""
    if kind == "postgresql":
        with postgres_database(label) as url:
            yield url
        return
    directory.mkdir(parents=True, exist_ok=True)
    yield f"sqlite:///{directory / 'pixelgate.db'}"


async def _admin(statement: str) -> None:
    # CREATE and DROP DATABASE cannot run inside a transaction.
    engine = create_async_engine(async_url(MAINTENANCE_URL, Path()), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()
