"""The tables that `digest` owns: topics and sources, items and changes, announcements, runs,
deliveries; and the enums of their statuses and kinds, which the columns store as values
(`str_enum`), so that models, queries and templates use one vocabulary."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from subscribers.base import Base, UTCDateTime, str_enum, utcnow
from subscribers.models import Frequency, NoticeKind, SignupRequest, Subscriber

__all__ = [
    "Announcement",
    "AnnouncementReceipt",
    "AnnouncementStatus",
    "ApiToken",
    "Audience",
    "AuditEntry",
    "Base",
    "Change",
    "ChangeKind",
    "ChangeReview",
    "Delivery",
    "DigestRun",
    "Editor",
    "EditorRole",
    "EditorSession",
    "IdempotentResponse",
    "Item",
    "MailStatus",
    "Notice",
    "NoticeKind",
    "RoleAudiences",
    "RunStatus",
    "SignInFailure",
    "Source",
    "SourceStatus",
    "Subscriber",
    "Topic",
]


class Topic(Base):
    """A topic the sources file declares, with its Norwegian label.

    Written by `digest sources sync`, so that mails, pages and commands read topics from
    the database and never from the file.
    """

    __tablename__ = "topics"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(100), unique=True)
    label: Mapped[str] = mapped_column(String(200))
    # Where the file lists it: the pages offer topics in that order.
    position: Mapped[int] = mapped_column(Integer, default=0)


class Audience(Base):
    """Who a source is written for (the sources file's `[audiences]`), with its Norwegian
    label; written by `digest sources sync` like Topic."""

    __tablename__ = "audiences"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(100), unique=True)
    label: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(Integer, default=0)


class RoleAudiences(Base):
    """The audiences a subscriber role belongs to (the sources file's `[roles]`); a role
    with no row is not narrowed. Written by `digest sources sync`."""

    __tablename__ = "role_audiences"

    id: Mapped[int] = mapped_column(primary_key=True)
    role: Mapped[str] = mapped_column(String(50), unique=True)
    audiences: Mapped[list[str]] = mapped_column(JSON, default=list)


class SourceStatus(StrEnum):
    NEW = "new"
    OK = "ok"
    FAILING = "failing"
    BROKEN = "broken"
    DISABLED = "disabled"


class Source(Base):
    __tablename__ = "sources"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    url: Mapped[str] = mapped_column(String(2000))
    topics: Mapped[list[str]] = mapped_column(JSON, default=list)
    audiences: Mapped[list[str]] = mapped_column(JSON, default=list)
    language: Mapped[str] = mapped_column(String(8), default="nb")
    # Reader options of the kinds that need them (patterns, selectors).
    options: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    interval_minutes: Mapped[int] = mapped_column(Integer, default=60)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # Conditional GET state.
    etag: Mapped[str | None] = mapped_column(String(500))
    last_modified: Mapped[str | None] = mapped_column(String(100))
    # Health.
    status: Mapped[SourceStatus] = mapped_column(
        str_enum(SourceStatus, 16), default=SourceStatus.NEW
    )
    http_status: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    # Something odd that did not fail the collection (a selector that matched nothing).
    warning: Mapped[str | None] = mapped_column(Text)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    last_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    # Set by the first successful collection; before it, everything found is back catalogue.
    baseline_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # «Review before sending»: as the sources file says, unless an editor set it in the UI
    # (`review_override`, kept across syncs). Changes of such a source wait for approval.
    review_in_file: Mapped[bool] = mapped_column(Boolean, default=False)
    review_override: Mapped[bool | None] = mapped_column(Boolean)
    # Paused by an operator in the UI: not collected until resumed; syncs leave it alone.
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def review_before_sending(self) -> bool:
        return self.review_override if self.review_override is not None else self.review_in_file


class Item(Base):
    """One article (or section) of a source, in its latest known state."""

    __tablename__ = "items"
    __table_args__ = (UniqueConstraint("source_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(2000))
    url: Mapped[str] = mapped_column(String(2000))
    title: Mapped[str] = mapped_column(String(500))
    summary_html: Mapped[str] = mapped_column(Text, default="")
    summary_text: Mapped[str] = mapped_column(Text, default="")
    # None while the item is only listed (in a sitemap or index) and not yet read.
    content_hash: Mapped[str | None] = mapped_column(String(64))
    # (nearest heading, paragraph) pairs of the last version read, to say what changed.
    blocks: Mapped[list[list[str]]] = mapped_column(JSON, default=list)
    declared: Mapped[str] = mapped_column(String(300), default="")
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # For article pages: the listing's lastmod, when to read the page again, conditional GET.
    lastmod: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_read_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    etag: Mapped[str | None] = mapped_column(String(500))
    last_modified: Mapped[str | None] = mapped_column(String(100))


class ChangeKind(StrEnum):
    NEW = "new"
    UPDATED = "updated"


class ChangeReview(StrEnum):
    """Where a detected change stands with the editors.

    auto: sent in the digests whose period includes its detection (no review asked);
    waiting: its source wants review, and it is not sent until approved;
    approved: sent in the digests whose period includes the approval;
    hidden: noise, sent to nobody.
    """

    AUTO = "auto"
    WAITING = "waiting"
    APPROVED = "approved"
    HIDDEN = "hidden"


class Change(Base):
    """A new or changed item, as detected at one time; a snapshot of what was seen then."""

    __tablename__ = "changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    kind: Mapped[ChangeKind] = mapped_column(str_enum(ChangeKind, 16))
    detected_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    title: Mapped[str] = mapped_column(String(500))
    url: Mapped[str] = mapped_column(String(2000))
    summary_text: Mapped[str] = mapped_column(Text, default="")
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A short human summary of what changed (filled by readers that can tell).
    note: Mapped[str] = mapped_column(Text, default="")
    # The editors' review: state, a one-line note shown with it in digests, a corrected
    # title (shown instead of `title`), and who reviewed it when.
    review: Mapped[ChangeReview] = mapped_column(
        str_enum(ChangeReview, 16), default=ChangeReview.AUTO, index=True
    )
    editor_note: Mapped[str] = mapped_column(String(300), default="")
    corrected_title: Mapped[str | None] = mapped_column(String(500))
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    reviewed_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("editors.id", ondelete="SET NULL")
    )
    # When an editor last hid or showed it, or set its note or title (approval sets
    # `reviewed_at`): what the feeds' Last-Modified follows.
    edited_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def shown_title(self) -> str:
        return self.corrected_title or self.title


class AnnouncementStatus(StrEnum):
    """draft -> published -> withdrawn (and back to published); only drafts are deleted."""

    DRAFT = "draft"
    PUBLISHED = "published"
    WITHDRAWN = "withdrawn"


class Announcement(Base):
    __tablename__ = "announcements"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text, default="")  # Markdown
    link: Mapped[str | None] = mapped_column(String(2000))
    # Targeting: each list empty means everyone.
    topics: Mapped[list[str]] = mapped_column(JSON, default=list)
    roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    municipalities: Mapped[list[str]] = mapped_column(JSON, default=list)
    publish_from: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    publish_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[AnnouncementStatus] = mapped_column(
        str_enum(AnnouncementStatus, 16), default=AnnouncementStatus.PUBLISHED, index=True
    )
    pinned: Mapped[bool] = mapped_column(Boolean, default=False)
    # «Send with the next immediate run»: daily and weekly subscribers get it then too.
    send_immediately: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Bumped by every edit: a form carries the version it was made from, so an edit made
    # meanwhile by someone else is caught instead of overwritten.
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("editors.id", ondelete="SET NULL"))


class EditorRole(StrEnum):
    EDITOR = "editor"  # announcements and review of changes
    ADMIN = "admin"  # also editors, sources, runs, deliveries, subscribers, the audit log


class Editor(Base):
    """Someone who signs in to the editors' pages (or whose API tokens a CMS uses)."""

    __tablename__ = "editors"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[EditorRole] = mapped_column(str_enum(EditorRole, 16), default=EditorRole.EDITOR)
    password_hash: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_sign_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set when disabled: their sessions and tokens stop working at the next request.
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def is_admin(self) -> bool:
        return self.role == EditorRole.ADMIN


class EditorSession(Base):
    """A signed-in browser: the cookie holds a random token, the table only its hash."""

    __tablename__ = "editor_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    editor_id: Mapped[int] = mapped_column(ForeignKey("editors.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiToken(Base):
    """A token a script or CMS uses for the JSON API on an editor's behalf; stored hashed."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    editor_id: Mapped[int] = mapped_column(ForeignKey("editors.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The first characters, so that a token can be recognised in a list without being known.
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SignInFailure(Base):
    """A failed sign-in, by what it counts against: an account (`account:<email>`) or a
    client (`client:<address>`). Counted over a window to slow guessing down."""

    __tablename__ = "sign_in_failures"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(300), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class AuditEntry(Base):
    """One editor's or admin's action: who, what, when, before and after."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    editor_id: Mapped[int | None] = mapped_column(ForeignKey("editors.id", ondelete="SET NULL"))
    # Kept as written then, so the entry still says who after the account is gone.
    editor_email: Mapped[str] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(60))
    target_type: Mapped[str] = mapped_column(String(40))
    target_id: Mapped[str] = mapped_column(String(100), default="")
    before: Mapped[dict[str, object] | None] = mapped_column(JSON)
    after: Mapped[dict[str, object] | None] = mapped_column(JSON)


class IdempotentResponse(Base):
    """The first answer to an API request with a client's `Idempotency-Key`, to repeat."""

    __tablename__ = "idempotent_responses"
    __table_args__ = (UniqueConstraint("editor_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    editor_id: Mapped[int] = mapped_column(ForeignKey("editors.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(200))
    # What was asked (method, path and body, hashed): the same key with another request
    # is refused rather than answered with the first one's result.
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    body: Mapped[dict[str, object]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class AnnouncementReceipt(Base):
    """That a subscriber has been sent an announcement, so it is sent once."""

    __tablename__ = "announcement_receipts"
    __table_args__ = (UniqueConstraint("announcement_id", "subscriber_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    announcement_id: Mapped[int] = mapped_column(ForeignKey("announcements.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey(Subscriber.id, ondelete="CASCADE"), index=True
    )
    delivery_id: Mapped[int | None] = mapped_column(
        ForeignKey("deliveries.id", ondelete="SET NULL")
    )


class MailStatus(StrEnum):
    """Where one outbound mail (a digest delivery or a notice) stands.

    pending -> sending (claimed, with a claim time) -> sent, or skipped_empty,
    skipped_inactive, failed; a stale `sending` claim goes back to being claimable.
    """

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    SKIPPED_EMPTY = "skipped_empty"  # nothing new for this person in the period
    SKIPPED_INACTIVE = "skipped_inactive"  # the person left, or was suppressed, meanwhile
    FAILED = "failed"


class Notice(Base):
    """A mail about the subscription itself (confirm, your link); sent once, soon after commit."""

    __tablename__ = "notices"

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey(Subscriber.id, ondelete="CASCADE"), index=True
    )
    kind: Mapped[NoticeKind] = mapped_column(str_enum(NoticeKind, 20))
    status: Mapped[MailStatus] = mapped_column(
        str_enum(MailStatus, 16), default=MailStatus.PENDING, index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Not to be tried again before this (backoff after a temporary failure).
    retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A confirmation mail carries the link of this request (and its requested choices).
    signup_request_id: Mapped[int | None] = mapped_column(
        ForeignKey(SignupRequest.id, ondelete="CASCADE")
    )


class RunStatus(StrEnum):
    RUNNING = "running"
    COMPLETE = "complete"


class DigestRun(Base):
    __tablename__ = "digest_runs"
    __table_args__ = (UniqueConstraint("frequency", "period_start"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    frequency: Mapped[Frequency] = mapped_column(str_enum(Frequency, 16))
    period_start: Mapped[datetime] = mapped_column(UTCDateTime)
    period_end: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    status: Mapped[RunStatus] = mapped_column(str_enum(RunStatus, 16), default=RunStatus.RUNNING)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When its first digest went out (set once, as that delivery is recorded): what the
    # public archive reads, as the delivery rows are deleted after their retention.
    first_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RunAnnouncement(Base):
    """That a run's digests carried an announcement (to anyone): the archive's record of
    it, kept when the deliveries and the receipts' link to them are gone."""

    __tablename__ = "run_announcements"

    run_id: Mapped[int] = mapped_column(
        ForeignKey("digest_runs.id", ondelete="CASCADE"), primary_key=True
    )
    announcement_id: Mapped[int] = mapped_column(
        ForeignKey("announcements.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class Delivery(Base):
    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("run_id", "subscriber_id"),
        Index("ix_deliveries_run_id_status", "run_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("digest_runs.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey(Subscriber.id, ondelete="CASCADE"), index=True
    )
    status: Mapped[MailStatus] = mapped_column(
        str_enum(MailStatus, 16), default=MailStatus.PENDING, index=True
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    message_id: Mapped[str | None] = mapped_column(String(300))
    item_count: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    # A temporary refusal of this recipient counts as one soft bounce at most.
    bounce_counted: Mapped[bool] = mapped_column(Boolean, default=False)
    # When it was last handed to the broker in a chunk: a pending delivery not taken long
    # after this lost its message, and the sweep hands it over again.
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Not to be tried again before this (backoff after a temporary failure).
    retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RelayStatus(Base):
    """The relay as the workers last found it (one row, id 1): failures in a row, and a
    pause of sending while it refuses everyone; what /healthz and the metrics report."""

    __tablename__ = "relay_status"

    id: Mapped[int] = mapped_column(primary_key=True)
    failures_in_row: Mapped[int] = mapped_column(Integer, default=0)
    paused_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    pauses: Mapped[int] = mapped_column(Integer, default=0)  # since the service began
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
