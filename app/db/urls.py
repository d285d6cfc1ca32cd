"""The contract's database URLs (``sqlite:///path``, ``postgresql://user@host:port/db``) as async driver URLs.

Users write the URLs every tool understands; pixelgate runs SQLAlchemy's asyncio drivers, so the
scheme is mapped here, once: SQLite to ``aiosqlite``, PostgreSQL to ``asyncpg``. A scheme that names
another driver is refused at start with the ones that work.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

DRIVERS: dict[str, str] = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}
"""Accepted URL scheme -> the SQLAlchemy async driver that serves it."""

DATABASE_FILE = "pixelgate.db"


def default_database_url(data_dir: Path) -> str:
    """The embedded default: a SQLite file in the data dir."""
    return f"sqlite:///{data_dir / DATABASE_FILE}"


def async_url(configured: str | None, data_dir: Path) -> URL:
    """The async driver URL for ``PIXELGATE_DATABASE_URL`` (None: the SQLite file in ``data_dir``).

    Raises ``ValueError`` naming the variable for a malformed URL, an unknown scheme, or an
    in-memory SQLite database (it would vanish with its connection and cannot be shared).
    """
    text = configured or default_database_url(data_dir)
    try:
        url = make_url(text)
    except ArgumentError as exc:
        raise ValueError(f"PIXELGATE_DATABASE_URL: not a database URL: {printable(text)}") from exc
    driver = DRIVERS.get(url.drivername)
    if driver is None:
        raise ValueError(
            f"PIXELGATE_DATABASE_URL: unknown scheme '{url.drivername}' (use sqlite:///path or "
            "postgresql://user@host:port/db)"
        )
    url = url.set(drivername=driver)
    if driver.startswith("sqlite") and (not url.database or url.database == ":memory:"):
        raise ValueError("PIXELGATE_DATABASE_URL: give SQLite a file path (sqlite:///path/to/pixelgate.db)")
    return url


def printable(url: str | URL) -> str:
    """The URL with its password hidden, for messages and logs."""
    try:
        parsed = url if isinstance(url, URL) else make_url(url)
    except ArgumentError:
        return "<unparsable URL>"
    return parsed.render_as_string(hide_password=True)
