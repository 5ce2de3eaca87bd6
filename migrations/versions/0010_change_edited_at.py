"""when an editor last changed what a change shows: hid it, showed it again, noted it or
corrected its title

The feeds and the embeddable list answer If-Modified-Since from their rows' times; an
edit set no time, so a client holding the list before an edit was told it had not
changed. `changes.edited_at` is that time (empty for a change never edited).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27 18:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import subscribers.base

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # In place, not a batch (a batch copies and drops the table on SQLite).
    op.add_column(
        "changes",
        sa.Column("edited_at", subscribers.base.UTCDateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("changes", "edited_at")
