"""Alembic's environment: always run by :func:`app.db.migrate.upgrade_to_head` on a connection it opened.

The caller holds the connection inside a transaction (and, on PostgreSQL, an advisory lock), so
Alembic runs every pending revision in that one transaction.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from app.db.migrations.env_options import VERSION_TABLE
from app.db.schema import metadata

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("pixelgate's migrations run through `pixelgate migrate` or at server start")

context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
