"""what the public archive keeps of a run: when it first sent, and what it carried

The archive told a sent run, and the announcements it carried, from the delivery rows,
which the retention sweep deletes after `delivery_retention_days`: the run then left the
archive and its address (linked from every mail) answered 404. `digest_runs.first_sent_at`
and `run_announcements` say it without the deliveries; both are filled here from the
deliveries and receipts still kept (a run whose deliveries were already deleted cannot
be recovered: nothing says it sent).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27 18:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import subscribers.base

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # In place, not a batch: on SQLite a batch copies and drops `digest_runs`, and with
    # foreign keys on, dropping it deletes every delivery that cascades from it (0008).
    op.add_column(
        "digest_runs",
        sa.Column("first_sent_at", subscribers.base.UTCDateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "run_announcements",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("announcement_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["digest_runs.id"],
            name=op.f("fk_run_announcements_run_id_digest_runs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["announcement_id"],
            ["announcements.id"],
            name=op.f("fk_run_announcements_announcement_id_announcements"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "announcement_id", name=op.f("pk_run_announcements")),
    )
    op.create_index(
        op.f("ix_run_announcements_announcement_id"), "run_announcements", ["announcement_id"]
    )
    # A sent delivery of an old release may lack its time: the run then counts as sent
    # when it completed, or at the end of its period.
    op.execute(
        "UPDATE digest_runs SET first_sent_at = COALESCE("
        " (SELECT MIN(d.sent_at) FROM deliveries d"
        "  WHERE d.run_id = digest_runs.id AND d.status = 'sent'),"
        " completed_at, period_end)"
        " WHERE EXISTS (SELECT 1 FROM deliveries d"
        "  WHERE d.run_id = digest_runs.id AND d.status = 'sent')"
    )
    op.execute(
        "INSERT INTO run_announcements (run_id, announcement_id)"
        " SELECT DISTINCT d.run_id, r.announcement_id"
        " FROM announcement_receipts r JOIN deliveries d ON d.id = r.delivery_id"
        " WHERE d.status = 'sent'"
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_run_announcements_announcement_id"), table_name="run_announcements")
    op.drop_table("run_announcements")
    op.drop_column("digest_runs", "first_sent_at")
