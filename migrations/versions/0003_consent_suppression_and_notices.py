"""consent, suppression and notices

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 05:33:42.064485
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import subscribers.base

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "suppressions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("address_hash", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("created_at", subscribers.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suppressions")),
        sa.UniqueConstraint("address_hash", name=op.f("uq_suppressions_address_hash")),
    )
    op.create_table(
        "consent_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("at", subscribers.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(length=30), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name=op.f("fk_consent_events_subscriber_id_subscribers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_events")),
    )
    with op.batch_alter_table("consent_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_consent_events_subscriber_id"), ["subscriber_id"], unique=False
        )

    op.create_table(
        "notices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", subscribers.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", subscribers.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name=op.f("fk_notices_subscriber_id_subscribers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notices")),
    )
    with op.batch_alter_table("notices", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_notices_status"), ["status"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_notices_subscriber_id"), ["subscriber_id"], unique=False
        )

    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("suppressed_at", subscribers.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("suppressed_reason", sa.String(length=500), nullable=True))
        batch_op.add_column(
            sa.Column("soft_failures", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("confirm_nonce", sa.String(length=32), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.drop_column("confirm_nonce")
        batch_op.drop_column("soft_failures")
        batch_op.drop_column("suppressed_reason")
        batch_op.drop_column("suppressed_at")

    with op.batch_alter_table("notices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notices_subscriber_id"))
        batch_op.drop_index(batch_op.f("ix_notices_status"))

    op.drop_table("notices")
    with op.batch_alter_table("consent_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consent_events_subscriber_id"))

    op.drop_table("consent_events")
    op.drop_table("suppressions")
