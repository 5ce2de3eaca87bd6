"""topics stored when sources are synced

Topic labels were read from the sources file wherever they were needed (each chunk of a
digest run, the pages, the commands); `digest sources sync` now stores them here. The
table starts empty: the next `digest sources sync` (part of every release, and of
`digest run`'s start) fills it. Statuses need nothing: their columns keep their VARCHAR
type and their stored values.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 09:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "topics",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_topics")),
        sa.UniqueConstraint("key", name=op.f("uq_topics_key")),
    )


def downgrade() -> None:
    op.drop_table("topics")
