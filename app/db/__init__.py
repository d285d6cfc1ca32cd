"""pixelgate's database: keys, the usage ledger (and async jobs) in SQLite or PostgreSQL.

``Database`` is created in ``create_app`` and opened (engine, migrations) in the lifespan; the
repositories (:mod:`app.keys`, :mod:`app.usage`) take it.
"""

from app.db.database import Database, error_summary, migrate_database, unavailable_as_503
from app.db.migrate import current_revision, head_revision, upgrade_to_head
from app.db.urls import async_url, default_database_url, printable

__all__ = [
    "Database",
    "async_url",
    "current_revision",
    "default_database_url",
    "error_summary",
    "head_revision",
    "migrate_database",
    "printable",
    "unavailable_as_503",
    "upgrade_to_head",
]
