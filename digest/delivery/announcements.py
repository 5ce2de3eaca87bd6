"""Editors' announcements: writing them (checked as a whole), their life from draft to
published to withdrawn, the publish window and targeting, and who still gets them.

Pages, the JSON API and `digest announce` all go through `create`, `update`, `publish`,
`withdraw` and `delete_draft`; each takes the caller's session and leaves the unit of work
to the caller. An edit carries the version it was made from, and an edit made meanwhile
by someone else is refused (`StaleEdit`) rather than overwritten.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, or_, select
from sqlalchemy import update as sql_update
from sqlalchemy.orm import Session

from digest.core.i18n import N_
from digest.core.models import Announcement, AnnouncementReceipt, AnnouncementStatus
from digest.delivery.announcement_checks import (
    MAX_BODY,
    MAX_LINK,
    MAX_TITLE,
    STALE_NOTE,
    AnnouncementError,
    AnnouncementInput,
    AnnouncementNotFound,
    StaleEdit,
    check_input,
)
from digest.delivery.claims import dialect_insert
from digest.mail.compose import AnnouncementView
from digest.mail.render import announcement_html, announcement_text
from subscribers.base import utcnow

# Checked in announcement_checks; named here too, as the pages, the API and the commands
# know them.
__all__ = [
    "MAX_BODY",
    "MAX_LINK",
    "MAX_TITLE",
    "STALE_NOTE",
    "AnnouncementError",
    "AnnouncementInput",
    "AnnouncementNotFound",
    "StaleEdit",
]


# What an edit's audit entry and a page compare: the fields an editor writes.
FIELDS = (
    "title",
    "body",
    "link",
    "topics",
    "roles",
    "municipalities",
    "publish_from",
    "publish_until",
    "pinned",
    "send_immediately",
)
# ... and with the state it is in, for audit snapshots.
SNAPSHOT = (*FIELDS, "status", "version", "published_at")


# --- the service -----------------------------------------------------------------------


def check(
    session: Session, data: AnnouncementInput, *, starts: datetime | None = None
) -> AnnouncementInput:
    """`data` as it would be stored (cleaned), or AnnouncementError with every field at
    fault; stores nothing (for a preview, or to check a form before saving). `starts`:
    when a window without its own start begins (default now)."""
    checked, problems = check_input(session, data, starts or utcnow())
    if problems.notes:
        raise problems.error()
    return AnnouncementInput(
        title=checked.title,
        body=checked.body,
        link=checked.link,
        topics=tuple(checked.topics),
        roles=tuple(checked.roles),
        municipalities=tuple(checked.municipalities),
        publish_from=checked.publish_from,
        publish_until=checked.publish_until,
        pinned=checked.pinned,
        send_immediately=checked.send_immediately,
    )


def create(
    session: Session, data: AnnouncementInput, *, editor_id: int | None, publish: bool
) -> Announcement:
    """A new announcement, published at once or kept as a draft; AnnouncementError (with
    every field at fault) if it cannot be stored as given."""
    now = utcnow()
    checked, problems = check_input(session, data, now)
    if problems.notes:
        raise problems.error()
    announcement = Announcement(
        title=checked.title,
        body=checked.body,
        link=checked.link,
        topics=checked.topics,
        roles=checked.roles,
        municipalities=checked.municipalities,
        publish_from=checked.publish_from or now,
        publish_until=checked.publish_until,
        pinned=checked.pinned,
        send_immediately=checked.send_immediately,
        status=AnnouncementStatus.PUBLISHED if publish else AnnouncementStatus.DRAFT,
        published_at=now if publish else None,
        created_at=now,
        version=1,
        created_by_id=editor_id,
    )
    session.add(announcement)
    session.flush()
    return announcement


def update(
    session: Session, announcement_id: int, data: AnnouncementInput, *, version: int
) -> Announcement:
    """Store an edit made from `version`: StaleEdit if the stored one is another (someone
    else edited meanwhile), AnnouncementError for fields at fault. Bumps the version."""
    announcement = require(session, announcement_id)
    checked, problems = check_input(session, data, announcement.publish_from)
    if announcement.version != version:
        raise StaleEdit(announcement.version, problems.notes)
    if problems.notes:
        raise problems.error()
    values = {
        "title": checked.title,
        "body": checked.body,
        "link": checked.link,
        "topics": checked.topics,
        "roles": checked.roles,
        "municipalities": checked.municipalities,
        "publish_from": checked.publish_from or announcement.publish_from,
        "publish_until": checked.publish_until,
        "pinned": checked.pinned,
        "send_immediately": checked.send_immediately,
        "updated_at": utcnow(),
        "version": version + 1,
    }
    # The version is compared in the UPDATE itself: of two edits made from one version,
    # whichever commits second changes no row and is refused, even between our read and
    # our write.
    result = session.execute(
        sql_update(Announcement)
        .where(Announcement.id == announcement_id, Announcement.version == version)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if not getattr(result, "rowcount", 0):
        session.refresh(announcement)
        raise StaleEdit(announcement.version, problems.notes)
    session.refresh(announcement)
    return announcement


def publish(session: Session, announcement_id: int) -> Announcement:
    """Publish a draft, or publish again a withdrawn announcement; a published one stays."""
    announcement = require(session, announcement_id)
    if announcement.status != AnnouncementStatus.PUBLISHED:
        now = utcnow()
        announcement.status = AnnouncementStatus.PUBLISHED
        announcement.published_at = now
        announcement.updated_at = now
        session.flush()
    return announcement


def withdraw(session: Session, announcement_id: int) -> Announcement:
    """Stop a published announcement going out; a withdrawn one stays withdrawn, a draft
    cannot be withdrawn (delete it instead)."""
    announcement = require(session, announcement_id)
    if announcement.status == AnnouncementStatus.DRAFT:
        raise AnnouncementError(
            "a draft cannot be withdrawn; delete it instead",
            "status",
            {"status": N_("Et utkast kan ikke trekkes tilbake, men kan slettes.")},
        )
    if announcement.status == AnnouncementStatus.PUBLISHED:
        announcement.status = AnnouncementStatus.WITHDRAWN
        announcement.updated_at = utcnow()
        session.flush()
    return announcement


def delete_draft(session: Session, announcement_id: int) -> None:
    """Delete a draft; an announcement that has been published is withdrawn, never deleted,
    so that what went out stays on record."""
    announcement = require(session, announcement_id)
    if announcement.status != AnnouncementStatus.DRAFT:
        raise AnnouncementError(
            "only a draft can be deleted; withdraw a published announcement instead",
            "status",
            {"status": N_("Bare utkast kan slettes. Trekk tilbake en publisert kunngjøring.")},
        )
    session.execute(delete(Announcement).where(Announcement.id == announcement_id))
    session.expunge(announcement)


def get(session: Session, announcement_id: int) -> Announcement | None:
    return session.get(Announcement, announcement_id)


def require(session: Session, announcement_id: int) -> Announcement:
    """The announcement with this id, or AnnouncementNotFound."""
    announcement = get(session, announcement_id)
    if announcement is None:
        raise AnnouncementNotFound(announcement_id)
    return announcement


def list_all(session: Session, status: AnnouncementStatus | None = None) -> Sequence[Announcement]:
    """Announcements, pinned first, then newest first; only those in `status` if given."""
    query = select(Announcement).order_by(
        Announcement.pinned.desc(), Announcement.created_at.desc(), Announcement.id.desc()
    )
    if status is not None:
        query = query.where(Announcement.status == status)
    return session.scalars(query).all()


def snapshot(announcement: Announcement) -> dict[str, object]:
    """What an audit entry keeps of an announcement, before and after an action."""
    return {name: getattr(announcement, name) for name in SNAPSHOT}


def as_view(a: Announcement) -> AnnouncementView:
    return AnnouncementView(
        announcement_id=a.id,
        title=a.title,
        body=a.body,
        link=a.link,
        topics=tuple(a.topics or ()),
        publish_from=a.publish_from,
        roles=tuple(a.roles or ()),
        municipalities=tuple(a.municipalities or ()),
        pinned=a.pinned,
        send_immediately=a.send_immediately,
        went_live=max(a.publish_from, a.published_at or a.publish_from),
    )


# --- Markdown, as the mails show it: one home, in digest.mail.render -------------------

body_html = announcement_html
body_text = announcement_text


# --- the command line's and the digests' side -------------------------------------------


def add_announcement(
    session: Session,
    *,
    title: str,
    body: str = "",
    link: str | None = None,
    topics: Iterable[str] = (),
    roles: Iterable[str] = (),
    municipalities: Iterable[str] = (),
    publish_from: datetime | None = None,
    publish_until: datetime | None = None,
    pinned: bool = False,
    send_immediately: bool = False,
    draft: bool = False,
) -> Announcement:
    """`create` with keywords, for the command line (whose operator has no editor id)."""
    return create(
        session,
        AnnouncementInput(
            title=title,
            body=body,
            link=link,
            topics=tuple(topics),
            roles=tuple(roles),
            municipalities=tuple(municipalities),
            publish_from=publish_from,
            publish_until=publish_until,
            pinned=pinned,
            send_immediately=send_immediately,
        ),
        editor_id=None,
        publish=not draft,
    )


def list_announcements(session: Session) -> Sequence[Announcement]:
    return session.scalars(select(Announcement).order_by(Announcement.publish_from.desc())).all()


def published_at(session: Session, moment: datetime) -> list[AnnouncementView]:
    """Published announcements whose publish window includes `moment`:
    publish_from <= moment < publish_until."""
    query = (
        select(Announcement)
        .where(
            Announcement.status == AnnouncementStatus.PUBLISHED,
            Announcement.publish_from <= moment,
            or_(Announcement.publish_until.is_(None), Announcement.publish_until > moment),
        )
        .order_by(Announcement.pinned.desc(), Announcement.publish_from, Announcement.id)
    )
    return [as_view(a) for a in session.scalars(query)]


def held_receipts(
    session: Session, subscriber_ids: Collection[int]
) -> dict[int, dict[int, int | None]]:
    """The receipts of `subscriber_ids`, in one query: for each subscriber, the
    announcements they have had or that a mail on its way carries, and that mail's
    delivery (None once the delivery is gone)."""
    held: dict[int, dict[int, int | None]] = {sid: {} for sid in subscriber_ids}
    if not subscriber_ids:
        return held
    rows = session.execute(
        select(
            AnnouncementReceipt.subscriber_id,
            AnnouncementReceipt.announcement_id,
            AnnouncementReceipt.delivery_id,
        ).where(AnnouncementReceipt.subscriber_id.in_(sorted(subscriber_ids)))
    )
    for subscriber_id, announcement_id, delivery_id in rows:
        held[subscriber_id][announcement_id] = delivery_id
    return held


def received_from(receipts: Mapping[int, int | None], but_for: int | None = None) -> set[int]:
    """Of one subscriber's receipts (`held_receipts`), the announcements they have had or
    are getting, not counting those of the delivery `but_for` (its own, on another try)."""
    return {a for a, delivery_id in receipts.items() if but_for is None or delivery_id != but_for}


def received_by(session: Session, subscriber_id: int) -> set[int]:
    """The announcements a subscriber has had, or that a mail on its way carries."""
    return received_from(held_receipts(session, [subscriber_id])[subscriber_id])


@dataclass(frozen=True, slots=True)
class Reservation:
    """The announcements one delivery's mail would carry, and the receipts its
    subscriber already has (`held_receipts`)."""

    delivery_id: int
    subscriber_id: int
    announcement_ids: tuple[int, ...]
    receipts: Mapping[int, int | None]


def reserve_receipts(session: Session, wanted: Sequence[Reservation]) -> dict[int, set[int]]:
    """Claim the announcements for the mails of the deliveries `wanted` names before they
    are sent, in one statement; for each delivery, the announcements its mail holds. One
    another delivery claimed meanwhile (a daily and an immediate run at the same tick) is
    left out of that mail: the unique receipt decides who sends it."""
    held: dict[int, set[int]] = {w.delivery_id: set() for w in wanted}
    delivery_of: dict[tuple[int, int], int] = {}
    rows: list[dict[str, int]] = []
    for w in wanted:
        for announcement_id in w.announcement_ids:
            if announcement_id in w.receipts:
                if w.receipts[announcement_id] == w.delivery_id:  # its own, from an earlier try
                    held[w.delivery_id].add(announcement_id)
                continue
            delivery_of[(announcement_id, w.subscriber_id)] = w.delivery_id
            rows.append(
                {
                    "announcement_id": announcement_id,
                    "subscriber_id": w.subscriber_id,
                    "delivery_id": w.delivery_id,
                }
            )
    for start in range(0, len(rows), _ROWS_PER_INSERT):
        inserted = session.execute(
            # A receipt committed meanwhile by another delivery is left as it is.
            dialect_insert(session, AnnouncementReceipt)
            .on_conflict_do_nothing()
            .values(rows[start : start + _ROWS_PER_INSERT])
            .returning(AnnouncementReceipt.announcement_id, AnnouncementReceipt.subscriber_id)
        )
        for announcement_id, subscriber_id in inserted:
            held[delivery_of[(announcement_id, subscriber_id)]].add(announcement_id)
    return held


# Three parameters a row: well within SQLite's limit of bound parameters a statement.
_ROWS_PER_INSERT = 300


def release_receipts(session: Session, delivery_ids: Collection[int]) -> None:
    """Deliveries that failed for good sent nothing: their announcements are owed again."""
    if delivery_ids:
        session.execute(
            delete(AnnouncementReceipt).where(
                AnnouncementReceipt.delivery_id.in_(sorted(delivery_ids))
            )
        )
