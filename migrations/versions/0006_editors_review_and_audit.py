"""editors, their sessions and API tokens, the audit log; review of changes; targeting

Accounts for the editors' pages (sessions and API tokens stored as hashes), failed
sign-ins to slow guessing down, the audit log, and the answers kept for idempotent API
calls. Announcements get targeting by role and municipality, pinning, «send with the
next immediate run», a version for stale forms, and a status in place of the draft flag
(a draft stays a draft, anything else is published). Changes get the editors' review
state, note and corrected title, all existing changes counting as sent without review.
Sources get «review before sending» (from the file, and as set in the UI) and a pause.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 11:02:08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import subscribers.base

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "editors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "role",
            sa.Enum("editor", "admin", name="editorrole", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("password_hash", sa.String(length=300), nullable=False),
        sa.Column("created_at", subscribers.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "password_changed_at", subscribers.base.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("last_sign_in_at", subscribers.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("disabled_at", subscribers.base.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_editors")),
        sa.UniqueConstraint("email", name=op.f("uq_editors_email")),
    )
    op.create_table(
        "sign_in_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("at", subscribers.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sign_in_failures")),
    )
    with op.batch_alter_table("sign_in_failures", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sign_in_failures_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_sign_in_failures_key"), ["key"], unique=False)

    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("editor_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("created_at", subscribers.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", subscribers.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", subscribers.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["editor_id"],
            ["editors.id"],
            name=op.f("fk_api_tokens_editor_id_editors"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_tokens_editor_id"), ["editor_id"], unique=False)

    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", subscribers.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("editor_id", sa.Integer(), nullable=True),
        sa.Column("editor_email", sa.String(length=254), nullable=False),
        sa.Column("action", sa.String(length=60), nullable=False),
        sa.Column("target_type", sa.String(length=40), nullable=False),
        sa.Column("target_id", sa.String(length=100), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["editor_id"],
            ["editors.id"],
            name=op.f("fk_audit_log_editor_id_editors"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_at"), ["at"], unique=False)

    op.create_table(
        "editor_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("editor_id", sa.Integer(), nullable=False),
        sa.Column("created_at", subscribers.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", subscribers.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["editor_id"],
            ["editors.id"],
            name=op.f("fk_editor_sessions_editor_id_editors"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_editor_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_editor_sessions_token_hash")),
    )
    with op.batch_alter_table("editor_sessions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_editor_sessions_editor_id"), ["editor_id"], unique=False
        )

    op.create_table(
        "idempotent_responses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("editor_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("created_at", subscribers.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["editor_id"],
            ["editors.id"],
            name=op.f("fk_idempotent_responses_editor_id_editors"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idempotent_responses")),
        sa.UniqueConstraint("editor_id", "key", name=op.f("uq_idempotent_responses_editor_id_key")),
    )
    with op.batch_alter_table("idempotent_responses", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_idempotent_responses_created_at"), ["created_at"], unique=False
        )

    with op.batch_alter_table("announcements", schema=None) as batch_op:
        batch_op.add_column(sa.Column("roles", sa.JSON(), nullable=False, server_default="[]"))
        batch_op.add_column(
            sa.Column("municipalities", sa.JSON(), nullable=False, server_default="[]")
        )
        batch_op.add_column(
            sa.Column(
                "status",
                sa.Enum(
                    "draft",
                    "published",
                    "withdrawn",
                    name="announcementstatus",
                    native_enum=False,
                    length=16,
                ),
                nullable=False,
                server_default="published",
            )
        )
        batch_op.add_column(
            sa.Column("pinned", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column("send_immediately", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column("updated_at", subscribers.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("published_at", subscribers.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
        batch_op.add_column(sa.Column("created_by_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_announcements_status"), ["status"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_announcements_created_by_id_editors"),
            "editors",
            ["created_by_id"],
            ["id"],
            ondelete="SET NULL",
        )
    announcements = sa.table(
        "announcements",
        sa.column("status", sa.String),
        sa.column("draft", sa.Boolean),
        sa.column("publish_from", subscribers.base.UTCDateTime(timezone=True)),
        sa.column("published_at", subscribers.base.UTCDateTime(timezone=True)),
    )
    op.execute(announcements.update().where(announcements.c.draft.is_(True)).values(status="draft"))
    op.execute(
        announcements.update()
        .where(announcements.c.draft.is_(False))
        .values(status="published", published_at=announcements.c.publish_from)
    )
    with op.batch_alter_table("announcements", schema=None) as batch_op:
        batch_op.drop_column("draft")

    with op.batch_alter_table("changes", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "review",
                sa.Enum(
                    "auto",
                    "waiting",
                    "approved",
                    "hidden",
                    name="changereview",
                    native_enum=False,
                    length=16,
                ),
                nullable=False,
                server_default="auto",
            )
        )
        batch_op.add_column(
            sa.Column("editor_note", sa.String(length=300), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("corrected_title", sa.String(length=500), nullable=True))
        batch_op.add_column(
            sa.Column("reviewed_at", subscribers.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("reviewed_by_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_changes_review"), ["review"], unique=False)
        batch_op.create_index(batch_op.f("ix_changes_reviewed_at"), ["reviewed_at"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_changes_reviewed_by_id_editors"),
            "editors",
            ["reviewed_by_id"],
            ["id"],
            ondelete="SET NULL",
        )

    with op.batch_alter_table("sources", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("review_in_file", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("review_override", sa.Boolean(), nullable=True))
        batch_op.add_column(
            sa.Column("paused_at", subscribers.base.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("sources", schema=None) as batch_op:
        batch_op.drop_column("paused_at")
        batch_op.drop_column("review_override")
        batch_op.drop_column("review_in_file")

    with op.batch_alter_table("changes", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_changes_reviewed_by_id_editors"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_changes_reviewed_at"))
        batch_op.drop_index(batch_op.f("ix_changes_review"))
        batch_op.drop_column("reviewed_by_id")
        batch_op.drop_column("reviewed_at")
        batch_op.drop_column("corrected_title")
        batch_op.drop_column("editor_note")
        batch_op.drop_column("review")

    with op.batch_alter_table("announcements", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("draft", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    announcements = sa.table(
        "announcements", sa.column("status", sa.String), sa.column("draft", sa.Boolean)
    )
    op.execute(announcements.update().where(announcements.c.status == "draft").values(draft=True))
    with op.batch_alter_table("announcements", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_announcements_created_by_id_editors"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_announcements_status"))
        batch_op.drop_column("created_by_id")
        batch_op.drop_column("version")
        batch_op.drop_column("published_at")
        batch_op.drop_column("updated_at")
        batch_op.drop_column("send_immediately")
        batch_op.drop_column("pinned")
        batch_op.drop_column("status")
        batch_op.drop_column("municipalities")
        batch_op.drop_column("roles")

    with op.batch_alter_table("idempotent_responses", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_idempotent_responses_created_at"))

    op.drop_table("idempotent_responses")
    with op.batch_alter_table("editor_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_editor_sessions_editor_id"))

    op.drop_table("editor_sessions")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_at"))

    op.drop_table("audit_log")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_tokens_editor_id"))

    op.drop_table("api_tokens")
    with op.batch_alter_table("sign_in_failures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sign_in_failures_key"))
        batch_op.drop_index(batch_op.f("ix_sign_in_failures_at"))

    op.drop_table("sign_in_failures")
    op.drop_table("editors")
