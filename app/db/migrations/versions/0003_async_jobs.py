"""Async jobs.

Revision ID: 0003
Revises: 0001
Create Date: 2025-01-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("inputs", sa.LargeBinary(), nullable=True),
        sa.Column("progress", sa.JSON(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("result_images", sa.LargeBinary(), nullable=True),
        sa.Column("result_links", sa.JSON(), nullable=True),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("error_status", sa.SmallInteger(), nullable=True),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_until_ms", sa.BigInteger(), nullable=True),
        sa.Column("runs", sa.Integer(), server_default="0", nullable=False),
        sa.Column("webhook_url", sa.String(2048), nullable=True),
        sa.Column("webhook_status", sa.String(16), nullable=True),
        sa.Column("webhook_attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("webhook_next_ms", sa.BigInteger(), nullable=True),
        sa.Column("webhook_last_status", sa.SmallInteger(), nullable=True),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("started_ms", sa.BigInteger(), nullable=True),
        sa.Column("finished_ms", sa.BigInteger(), nullable=True),
        sa.Column("expires_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
    )
    op.create_index("ix_jobs_status_created_ms", "jobs", ["status", "created_ms"])
    op.create_index("ix_jobs_key_id_status", "jobs", ["key_id", "status"])
    op.create_index("ix_jobs_webhook_status_webhook_next_ms", "jobs", ["webhook_status", "webhook_next_ms"])
    op.create_index("ix_jobs_expires_ms", "jobs", ["expires_ms"])


def downgrade() -> None:
    op.drop_index("ix_jobs_expires_ms", table_name="jobs")
    op.drop_index("ix_jobs_webhook_status_webhook_next_ms", table_name="jobs")
    op.drop_index("ix_jobs_key_id_status", table_name="jobs")
    op.drop_index("ix_jobs_status_created_ms", table_name="jobs")
    op.drop_table("jobs")
