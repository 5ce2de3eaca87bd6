"""opaque link references, sign-up requests, one claim path for notices, soft bounces once

Confirm links name a sign-up request's nonce, so the subscriber's confirm_nonce goes.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 06:40:00
"""

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import subscribers.base

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Links in mails name a random reference, not the row id or the address.
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ref", sa.String(length=32), nullable=True))
    connection = op.get_bind()
    subscribers_table = sa.table("subscribers", sa.column("id", sa.Integer), sa.column("ref"))
    for (subscriber_id,) in connection.execute(sa.select(subscribers_table.c.id)).all():
        connection.execute(
            subscribers_table.update()
            .where(subscribers_table.c.id == subscriber_id)
            .values(ref=secrets.token_urlsafe(16))
        )
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.alter_column("ref", existing_type=sa.String(length=32), nullable=False)
        batch_op.create_unique_constraint(batch_op.f("uq_subscribers_ref"), ["ref"])
        # Confirm links now name a sign-up request's nonce instead.
        batch_op.drop_column("confirm_nonce")
        batch_op.add_column(
            sa.Column("soft_failed_at", subscribers.base.UTCDateTime(timezone=True), nullable=True)
        )

    op.create_table(
        "signup_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("nonce", sa.String(length=32), nullable=False),
        sa.Column("choices", sa.JSON(), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("created_at", subscribers.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name=op.f("fk_signup_requests_subscriber_id_subscribers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signup_requests")),
        sa.UniqueConstraint("nonce", name=op.f("uq_signup_requests_nonce")),
    )
    with op.batch_alter_table("signup_requests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_signup_requests_subscriber_id"), ["subscriber_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_signup_requests_created_at"), ["created_at"], unique=False
        )

    with op.batch_alter_table("notices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(
            sa.Column("claimed_at", subscribers.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("signup_request_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_notices_signup_request_id_signup_requests"),
            "signup_requests",
            ["signup_request_id"],
            ["id"],
            ondelete="CASCADE",
        )
    # Notices used a status of their own for "not sent, nobody to send to".
    op.execute("UPDATE notices SET status = 'skipped_inactive' WHERE status = 'skipped'")

    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("bounce_counted", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_column("bounce_counted")
    op.execute("UPDATE notices SET status = 'skipped' WHERE status = 'skipped_inactive'")
    with op.batch_alter_table("notices", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_notices_signup_request_id_signup_requests"), type_="foreignkey"
        )
        batch_op.drop_column("signup_request_id")
        batch_op.drop_column("claimed_at")
        batch_op.drop_column("attempts")
    with op.batch_alter_table("signup_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_signup_requests_created_at"))
        batch_op.drop_index(batch_op.f("ix_signup_requests_subscriber_id"))
    op.drop_table("signup_requests")
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("confirm_nonce", sa.String(length=32), nullable=False, server_default="")
        )
        batch_op.drop_column("soft_failed_at")
        batch_op.drop_constraint(batch_op.f("uq_subscribers_ref"), type_="unique")
        batch_op.drop_column("ref")
