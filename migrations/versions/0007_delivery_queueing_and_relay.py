"""delivery backoff, queueing times and the relay's status

Deliveries and notices get `retry_at` (not before this, after a temporary failure);
deliveries get `queued_at` (last handed to the broker, so the sweep can tell a lost chunk
message from one still queued). `relay_status` holds the relay as the workers last found
it: failures in a row and a pause of sending, for /healthz and the metrics.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 13:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import subscribers.base

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(
            sa.Column("queued_at", subscribers.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch.add_column(
            sa.Column("retry_at", subscribers.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch.create_index("ix_deliveries_run_id_status", ["run_id", "status"])
    with op.batch_alter_table("notices") as batch:
        batch.add_column(
            sa.Column("retry_at", subscribers.base.UTCDateTime(timezone=True), nullable=True)
        )
    op.create_table(
        "relay_status",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("failures_in_row", sa.Integer(), nullable=False),
        sa.Column("paused_until", subscribers.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("pauses", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("updated_at", subscribers.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("relay_status")
    with op.batch_alter_table("notices") as batch:
        batch.drop_column("retry_at")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_index("ix_deliveries_run_id_status")
        batch.drop_column("retry_at")
        batch.drop_column("queued_at")
