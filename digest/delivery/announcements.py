"""Editors' announcements: adding them, their publish window and topics, and who still gets them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from digest.core.errors import DigestError
from digest.core.models import Announcement, AnnouncementReceipt, AnnouncementStatus
from digest.mail.compose import AnnouncementView
from subscribers.base import utcnow
from subscribers.text import clean_line, is_safe_line, strip_invisible


class AnnouncementError(DigestError):
    """An announcement that cannot be stored as given; the message says why."""


def add_announcement(
    session: Session,
    *,
    title: str,
    body: str = "",
    link: str | None = None,
    topics: Iterable[str] = (),
    publish_from: datetime | None = None,
    publish_until: datetime | None = None,
    draft: bool = False,
) -> Announcement:
    # Editors paste from anywhere: no bidi, zero-width or control characters reach a mail.
    title = _checked_title(title)
    body = _checked_body(body)
    link = _checked_link(link) if link else None
    start = publish_from or utcnow()
    if publish_until is not None and publish_until <= start:
        raise AnnouncementError("the publish window ends before it starts")
    announcement = Announcement(
        title=title,
        body=body.strip(),
        link=link or None,
        topics=sorted({t.strip().lower() for t in topics if t.strip()}),
        publish_from=start,
        publish_until=publish_until,
        status=AnnouncementStatus.DRAFT if draft else AnnouncementStatus.PUBLISHED,
        published_at=None if draft else utcnow(),
        created_at=utcnow(),
    )
    session.add(announcement)
    session.flush()
    return announcement


def _checked_title(title: str) -> str:
    title = clean_line(title)
    if not title:
        raise AnnouncementError("the title is empty")
    if len(title) > 300:
        raise AnnouncementError("the title is longer than 300 characters")
    return title


def _checked_body(body: str) -> str:
    body = "\n".join(strip_invisible(line) for line in body.splitlines())
    if len(body) > 20_000:
        raise AnnouncementError("the body is longer than 20,000 characters")
    return body


def _checked_link(link: str) -> str:
    """An http(s) URL with a host and nothing a header or an href could be broken with."""
    link = link.strip()
    parts = urlsplit(link)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or not is_safe_line(link)
        or " " in link
    ):
        raise AnnouncementError("the link must be an http:// or https:// URL")
    return link


def list_announcements(session: Session) -> Sequence[Announcement]:
    return session.scalars(select(Announcement).order_by(Announcement.publish_from.desc())).all()


def published_at(session: Session, moment: datetime) -> list[AnnouncementView]:
    """Announcements whose publish window includes `moment`."""
    query = select(Announcement).where(
        Announcement.status == AnnouncementStatus.PUBLISHED,
        Announcement.publish_from <= moment,
        or_(Announcement.publish_until.is_(None), Announcement.publish_until > moment),
    )
    return [
        AnnouncementView(
            a.id,
            a.title,
            a.body,
            a.link,
            tuple(a.topics),
            a.publish_from,
            tuple(a.roles or ()),
            tuple(a.municipalities or ()),
            a.pinned,
            a.send_immediately,
        )
        for a in session.scalars(query)
    ]


def received_by(session: Session, subscriber_id: int) -> set[int]:
    query = select(AnnouncementReceipt.announcement_id).where(
        AnnouncementReceipt.subscriber_id == subscriber_id
    )
    return set(session.scalars(query))


def record_receipts(
    session: Session, subscriber_id: int, delivery_id: int, announcement_ids: Iterable[int]
) -> None:
    known = received_by(session, subscriber_id)
    for announcement_id in set(announcement_ids) - known:
        session.add(
            AnnouncementReceipt(
                announcement_id=announcement_id,
                subscriber_id=subscriber_id,
                delivery_id=delivery_id,
            )
        )
