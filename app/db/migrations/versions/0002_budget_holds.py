"""Budgets: what a key's requests in flight hold, and each hold until it is charged or expires.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("held_micros", sa.BigInteger(), server_default="0", nullable=False))
    op.create_table(
        "budget_holds",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("key_id", sa.String(40), nullable=False),
        sa.Column("micros", sa.BigInteger(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("expires_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_budget_holds"),
    )
    op.create_index("ix_budget_holds_expires_ms", "budget_holds", ["expires_ms"])


def downgrade() -> None:
    op.drop_index("ix_budget_holds_expires_ms", table_name="budget_holds")
    op.drop_table("budget_holds")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("held_micros")
