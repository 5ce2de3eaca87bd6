"""article pages and source warnings

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 05:11:21.231454
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import subscribers.base

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("blocks", sa.JSON(), nullable=False, server_default="[]"))
        batch_op.add_column(
            sa.Column("declared", sa.String(length=300), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column("lastmod", subscribers.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("next_read_at", subscribers.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("etag", sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column("last_modified", sa.String(length=100), nullable=True))
        batch_op.alter_column("content_hash", existing_type=sa.VARCHAR(length=64), nullable=True)
        batch_op.create_index(batch_op.f("ix_items_next_read_at"), ["next_read_at"], unique=False)

    with op.batch_alter_table("sources", schema=None) as batch_op:
        batch_op.add_column(sa.Column("warning", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sources", schema=None) as batch_op:
        batch_op.drop_column("warning")

    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_items_next_read_at"))
        batch_op.alter_column("content_hash", existing_type=sa.VARCHAR(length=64), nullable=False)
        batch_op.drop_column("last_modified")
        batch_op.drop_column("etag")
        batch_op.drop_column("next_read_at")
        batch_op.drop_column("lastmod")
        batch_op.drop_column("declared")
        batch_op.drop_column("blocks")
