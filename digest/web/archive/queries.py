"""The archive's reads: runs that sent a digest (filtered, searched, a page at a time), the
announcements a run carried, and the latest sendable changes of a topic or source.
Nothing here reads a subscriber or a delivery: a run says itself when it first sent and
what it carried (digest.delivery.carried), as delivery rows are deleted after their
retention and the archive's addresses are linked from the mails for ever."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Select, SQLColumnExpression, func, or_, select
from sqlalchemy.orm import Session

from digest.core.models import (
    Announcement,
    AnnouncementStatus,
    Change,
    DigestRun,
    Item,
    RunAnnouncement,
    Source,
)
from digest.core.roles import covers_topics
from digest.delivery.announcements import as_view
from digest.delivery.sendable import SENDABLE, released_at, sendable_between
from digest.mail.compose import AnnouncementView
from digest.web.archive.text import shown_link, shown_text
from subscribers.models import Frequency


def _lower(value: str | None) -> str | None:
    return value.lower() if isinstance(value, str) else value


def folded(session: Session, column: SQLColumnExpression[str]) -> ColumnElement[str]:
    """`column` in lower case, for a search that ignores case in any letter: PostgreSQL's
    lower() knows «Ø», SQLite's only A to Z, so SQLite is given Python's for this query."""
    if session.get_bind().dialect.name == "sqlite":
        connection = session.connection().connection.driver_connection
        connection.create_function("archive_lower", 1, _lower, deterministic=True)  # type: ignore[union-attr]
        return func.archive_lower(column)
    return func.lower(column)


def contains(session: Session, column: SQLColumnExpression[str], text: str) -> ColumnElement[bool]:
    """`column` holds `text`, case aside (LIKE's own characters in `text` taken literally)."""
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return folded(session, column).like(f"%{escaped}%", escape="\\")


def source_ids(session: Session, topics: Collection[str]) -> list[int]:
    """The sources a reader of `topics` gets (the lists are JSON: read here): as compose
    decides it, those on any of them and those that name no topic (for every reader)."""
    rows = session.execute(select(Source.id, Source.topics)).all()
    return sorted(i for i, keys in rows if covers_topics(topics, keys or ()))


def public_announcements(session: Session, topics: Collection[str]) -> list[int]:
    """The announcements the archive shows without a role: targeted at no role and no
    municipality, and (when `topics`) at everyone or at one of them."""
    rows = session.execute(
        select(
            Announcement.id, Announcement.topics, Announcement.roles, Announcement.municipalities
        )
    ).all()
    return sorted(
        i
        for i, keys, roles, places in rows
        if not roles and not places and covers_topics(topics, keys or ())
    )


def _sent() -> ColumnElement[bool]:
    return DigestRun.first_sent_at.is_not(None)


@dataclass(frozen=True, slots=True)
class RunFilter:
    frequency: Frequency | None = None
    topics: tuple[str, ...] = ()
    search: str = ""


def _runs(session: Session, wanted: RunFilter) -> Select[DigestRun]:
    """Runs that sent at least one digest and hold something public that matches: a
    change (of the topics' sources; with a title holding the search), or an announcement
    for everyone (with such a title)."""
    change = (
        select(Change.id)
        .join(Item, Item.id == Change.item_id)
        .where(sendable_between(DigestRun.period_start, DigestRun.period_end))
    )
    if wanted.topics:
        change = change.where(Item.source_id.in_(source_ids(session, wanted.topics)))
    carried = (
        select(RunAnnouncement.announcement_id)
        .join(Announcement, Announcement.id == RunAnnouncement.announcement_id)
        .where(
            RunAnnouncement.run_id == DigestRun.id,
            Announcement.status == AnnouncementStatus.PUBLISHED,
            Announcement.id.in_(public_announcements(session, wanted.topics)),
        )
    )
    if wanted.search:
        title = func.coalesce(Change.corrected_title, Change.title)
        change = change.where(contains(session, title, wanted.search))
        carried = carried.where(contains(session, Announcement.title, wanted.search))
    query = select(DigestRun).where(
        _sent(),
        or_(change.correlate(DigestRun).exists(), carried.correlate(DigestRun).exists()),
    )
    if wanted.frequency is not None:
        query = query.where(DigestRun.frequency == wanted.frequency)
    return query


def sent_runs(
    session: Session, wanted: RunFilter, *, limit: int, offset: int = 0
) -> tuple[list[DigestRun], int]:
    """A page of the runs `wanted` finds, newest first, and how many it finds in all."""
    query = _runs(session, wanted)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    page = session.scalars(
        query.order_by(DigestRun.period_end.desc(), DigestRun.id.desc()).limit(limit).offset(offset)
    ).all()
    return list(page), total


def sent_run(session: Session, frequency: Frequency, start: datetime) -> DigestRun | None:
    """The run of `frequency` for the period starting at `start`, if it sent a digest."""
    return session.scalars(
        select(DigestRun).where(
            DigestRun.frequency == frequency, DigestRun.period_start == start, _sent()
        )
    ).first()


def carried(session: Session, run_ids: Sequence[int]) -> dict[int, list[AnnouncementView]]:
    """The announcements each run carried to someone (still published: one an editor
    withdrew is not shown again), whoever they were targeted at; the pages narrow them."""
    pairs = session.execute(
        select(RunAnnouncement.run_id, RunAnnouncement.announcement_id).where(
            RunAnnouncement.run_id.in_(run_ids)
        )
    ).all()
    shown = {
        a.id: as_view(a)
        for a in session.scalars(
            select(Announcement).where(
                Announcement.id.in_({a for _, a in pairs}),
                Announcement.status == AnnouncementStatus.PUBLISHED,
            )
        )
    }
    found: dict[int, list[AnnouncementView]] = {run_id: [] for run_id in run_ids}
    for run_id, announcement_id in sorted(pairs):
        if announcement_id in shown:
            found[run_id].append(shown[announcement_id])
    return found


@dataclass(frozen=True, slots=True)
class FeedChange:
    """A sendable change as the feeds and the snippet show it: its text without control or
    bidi characters, and its `url` "" unless http or https."""

    change_id: int
    kind: str
    title: str
    url: str
    summary: str
    note: str
    editor_note: str
    published_at: datetime | None
    released_at: datetime
    source_key: str
    source_name: str


def latest_changes(session: Session, sources: Sequence[int], limit: int) -> list[FeedChange]:
    """The latest sendable changes of `sources`, newest first (by when they went out)."""
    released = released_at().label("released")
    rows = session.execute(
        select(Change, released, Source.key, Source.name)
        .join(Item, Item.id == Change.item_id)
        .join(Source, Source.id == Item.source_id)
        .where(Item.source_id.in_(sources), Change.review.in_(SENDABLE))
        .order_by(released.desc(), Change.id.desc())
        .limit(limit)
    ).all()
    # Cleaned here, once, for the feeds and the snippet alike (see `text`).
    return [
        FeedChange(
            c.id,
            str(c.kind),
            shown_text(c.shown_title),
            shown_link(c.url),
            shown_text(c.summary_text),
            shown_text(c.note),
            shown_text(c.editor_note),
            c.published_at,
            at,
            key,
            shown_text(name),
        )
        for c, at, key, name in rows
    ]


def last_edited(session: Session, sources: Sequence[int]) -> datetime | None:
    """When an editor last changed a change of `sources` (hid or showed it, noted it,
    corrected its title, approved it), hidden ones included: a list or feed of them may
    show something else since, with no newer change."""
    edited, reviewed = session.execute(
        select(func.max(Change.edited_at), func.max(Change.reviewed_at))
        .join(Item, Item.id == Change.item_id)
        .where(Item.source_id.in_(sources))
    ).one()
    return max((t for t in (edited, reviewed) if t is not None), default=None)


def archive_edited(session: Session, topics: Collection[str]) -> datetime | None:
    """When an editor last changed what decides the archive's list: a change of the
    topics' sources (all sources without topics), or an announcement."""
    sources = source_ids(session, topics)  # every source when no topics
    announced = session.scalar(select(func.max(Announcement.updated_at)))
    times = (last_edited(session, sources), announced)
    return max((t for t in times if t is not None), default=None)


def source_of(session: Session, key: str) -> Source | None:
    """The source with `key`, compared in Python: a hostile key never reaches SQL."""
    keys: dict[str, int] = {k: i for k, i in session.execute(select(Source.key, Source.id))}
    return session.get(Source, keys[key]) if key in keys else None
