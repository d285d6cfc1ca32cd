"""Options shared by the migration environment and the code that inspects the database's revision."""

from __future__ import annotations

VERSION_TABLE = "pixelgate_alembic_version"
"""Our own version table: a PostgreSQL database shared with another Alembic project stays apart."""
