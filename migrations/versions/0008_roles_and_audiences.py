"""what each role reads: audiences, roles' audiences, and subscribers' «role only»

The sources file's `[audiences]` and `[roles]` are stored by `digest sources sync`, as
its topics are (both tables start empty: the next sync fills them). `role_only`
(«Bare det som er laget for min rolle») starts false for every subscriber, so that no
one's digest narrows without their choosing it.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audiences",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audiences")),
        sa.UniqueConstraint("key", name=op.f("uq_audiences_key")),
    )
    op.create_table(
        "role_audiences",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=50), nullable=False),
        sa.Column("audiences", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_role_audiences")),
        sa.UniqueConstraint("role", name=op.f("uq_role_audiences_role")),
    )
    # Not a batch: on SQLite a batch would copy and drop `subscribers`, and with foreign
    # keys on, dropping it deletes every delivery, consent event and sign-up request that
    # cascades from it. SQLite adds (and, from 3.35, drops) a column in place.
    op.add_column(
        "subscribers",
        sa.Column("role_only", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    op.drop_column("subscribers", "role_only")
    op.drop_table("role_audiences")
    op.drop_table("audiences")
