"""The tables that `digest` owns: topics and sources, items and changes, announcements, runs,
deliveries; and the enums of their statuses and kinds, which the columns store as values
(`str_enum`), so that models, queries and templates use one vocabulary."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from subscribers.base import Base, UTCDateTime, str_enum, utcnow
from subscribers.models import Frequency, NoticeKind, SignupRequest, Subscriber

__all__ = [
    "Announcement",
    "AnnouncementReceipt",
    "Base",
    "Change",
    "ChangeKind",
    "Delivery",
    "DigestRun",
    "Item",
    "MailStatus",
    "Notice",
    "NoticeKind",
    "RunStatus",
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


class Announcement(Base):
    __tablename__ = "announcements"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text, default="")  # Markdown
    link: Mapped[str | None] = mapped_column(String(2000))
    topics: Mapped[list[str]] = mapped_column(JSON, default=list)
    publish_from: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    publish_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    draft: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


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


class Delivery(Base):
    __tablename__ = "deliveries"
    __table_args__ = (UniqueConstraint("run_id", "subscriber_id"),)

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
