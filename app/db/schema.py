"""The tables pixelgate keeps in its database, as SQLAlchemy Core metadata.

The migrations under ``app/db/migrations`` create exactly these (a test compares them); a change
here is a new migration. Money is integer micro-dollars (exact sums and atomic increments on every
database, no floating-point drift, no Decimal quirks in SQLite); times are integers since the
Unix epoch, in UTC.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    # SHA-256 of the secret, hex: the secret itself is never stored.
    Column("secret_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(24), nullable=False),
    Column("created", BigInteger, nullable=False),
    Column("budget_micros", BigInteger, nullable=True),
    Column("spent_micros", BigInteger, nullable=False, server_default="0"),
    # The sum of the key's live budget_holds: checked with spent_micros in one conditional UPDATE.
    Column("held_micros", BigInteger, nullable=False, server_default="0"),
    Column("models", JSON, nullable=True),
    Column("rpm", Integer, nullable=True),
    Column("expires_at", BigInteger, nullable=True),
    Column("revoked_at", BigInteger, nullable=True),
)
"""Managed API keys. ``models`` null: every model; ``budget_micros`` null: no budget."""

budget_holds = Table(
    "budget_holds",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("key_id", String(40), nullable=False),
    Column("micros", BigInteger, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
    Index(None, "expires_ms"),
)
"""What each request in flight holds of its key's budget, until it is charged or, if its process died,
it expires (app/keys/budget.py). ``api_keys.held_micros`` is the sum of a key's rows."""

usage_ledger = Table(
    "usage_ledger",
    metadata,
    # SQLite only auto-increments an INTEGER PRIMARY KEY (the rowid).
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("request_id", String(128), nullable=False),
    Column("key_id", String(64), nullable=True),
    Column("model", String(200), nullable=True),
    Column("deployments", JSON, nullable=False),
    Column("provider", String(64), nullable=True),
    Column("status", SmallInteger, nullable=False),
    Column("error_code", String(64), nullable=True),
    Column("images", Integer, nullable=False),
    Column("megapixels", Float, nullable=False),
    Column("cost_micros", BigInteger, nullable=False),
    Column("queue_ms", Integer, nullable=True),
    Column("upstream_ms", Integer, nullable=True),
    Column("total_ms", Integer, nullable=False),
    Column("replay", Boolean, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    # The UTC date of created_ms, written with the row: grouping by day is then the same plain
    # GROUP BY on every database, and can use an index.
    Column("day", String(10), nullable=False),
    Index(None, "created_ms"),
    Index(None, "key_id", "created_ms"),
)
"""One row per image request (the usage ledger). Never holds a secret."""

jobs = Table(
    "jobs",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("key_id", String(64), nullable=False),
    Column("mode", String(16), nullable=False),
    Column("model", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    # What replays the request: the parsed fields and switches (JSON) and the input images (packed bytes,
    # dropped once the job has finished).
    Column("request", JSON, nullable=False),
    Column("inputs", LargeBinary, nullable=True),
    # Upstream jobs already started, so a restarted process follows them instead of starting new ones.
    Column("progress", JSON, nullable=True),
    # The answer without its image bytes; the images (packed); the hosted links last minted for them.
    Column("result", JSON, nullable=True),
    Column("result_images", LargeBinary, nullable=True),
    Column("result_links", JSON, nullable=True),
    Column("error", JSON, nullable=True),
    Column("error_status", SmallInteger, nullable=True),
    # Which process runs the job, until when; an expired lease lets another process take the job over.
    Column("lease_owner", String(64), nullable=True),
    Column("lease_until_ms", BigInteger, nullable=True),
    Column("runs", Integer, nullable=False, server_default="0"),
    Column("webhook_url", String(2048), nullable=True),
    Column("webhook_status", String(16), nullable=True),
    Column("webhook_attempts", Integer, nullable=False, server_default="0"),
    Column("webhook_next_ms", BigInteger, nullable=True),
    Column("webhook_last_status", SmallInteger, nullable=True),
    Column("created_ms", BigInteger, nullable=False),
    Column("started_ms", BigInteger, nullable=True),
    Column("finished_ms", BigInteger, nullable=True),
    Column("expires_ms", BigInteger, nullable=True),
    Index(None, "status", "created_ms"),
    Index(None, "key_id", "status"),
    Index(None, "webhook_status", "webhook_next_ms"),
    Index(None, "expires_ms"),
)
"""Async jobs (``Prefer: respond-async``). Never holds a secret: ``key_id`` is the key's id."""
