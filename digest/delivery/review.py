"""The editors' review of detected changes: the list, and hiding, approving, a note and a
corrected title.

A change of a source that wants review (`Source.review_before_sending`) is detected
`waiting` and goes into no digest until approved; an approved change goes into the
digests whose period includes its approval, an `auto` one into those whose period
includes its detection, a `hidden` one into none (see `digests.changes_in`).

Each action returns a `Revision` (the fields it touched, before and after) for the
caller's audit entry, or None when there was nothing to do: hiding a hidden change,
approving an approved one (a second click, or two editors at once).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, select, update
from sqlalchemy.orm import Session

from digest.core.errors import DigestError
from digest.core.models import Change, ChangeKind, ChangeReview, Editor, Item, Source
from subscribers.base import utcnow
from subscribers.text import clean_line

NOTE_MAX = 200
TITLE_MAX = 300
PER_PAGE = 50
_REVIEW_FIELDS = ("review", "reviewed_at", "reviewed_by_id")


class ReviewError(DigestError):
    """A review action that cannot be done as asked; `field` names the form field at fault
    ("note", "title"), or is "" when the change's state is what stands in the way."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


class UnknownChange(ReviewError):
    """No change has this id."""

    def __init__(self, change_id: int) -> None:
        super().__init__(f"no change {change_id}", field="change")
        self.change_id = change_id


class NotWaiting(ReviewError):
    """Only a waiting change can be approved; `review` is where this one stands."""

    def __init__(self, change_id: int, review: ChangeReview) -> None:
        super().__init__(f"change {change_id} is {review.value}, not waiting for approval")
        self.change_id = change_id
        self.review = review


@dataclass(frozen=True, slots=True)
class ChangeRow:
    """One change as the editors' pages show it, with its item and source."""

    change_id: int
    kind: ChangeKind
    detected_at: datetime
    title: str  # as detected
    corrected_title: str | None
    url: str
    summary: str  # what changed (the reader's note)
    summary_text: str  # the item's own summary when detected
    published_at: datetime | None
    declared: str  # the date the page declares, as it says it («Sist oppdatert …»)
    editor_note: str
    review: ChangeReview
    reviewed_at: datetime | None
    source_key: str
    source_name: str
    source_topics: tuple[str, ...]
    source_wants_review: bool

    @property
    def shown_title(self) -> str:
        return self.corrected_title or self.title


@dataclass(frozen=True, slots=True)
class ChangePage:
    rows: list[ChangeRow]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


@dataclass(frozen=True, slots=True)
class Revision:
    """What an action changed on one change, for the audit log."""

    change_id: int
    before: dict[str, object]
    after: dict[str, object]


def _query() -> Select[Change, Item, Source]:
    return (
        select(Change, Item, Source)
        .join(Item, Change.item_id == Item.id)
        .join(Source, Item.source_id == Source.id)
    )


def _row(change: Change, item: Item, source: Source) -> ChangeRow:
    return ChangeRow(
        change_id=change.id,
        kind=change.kind,
        detected_at=change.detected_at,
        title=change.title,
        corrected_title=change.corrected_title,
        url=change.url or item.url,
        summary=change.note,
        summary_text=change.summary_text,
        published_at=change.published_at,
        declared=item.declared or "",
        editor_note=change.editor_note or "",
        review=change.review,
        reviewed_at=change.reviewed_at,
        source_key=source.key,
        source_name=source.name,
        source_topics=tuple(source.topics or ()),
        source_wants_review=bool(source.review_before_sending),
    )


def _with_topic(session: Session, topic: str) -> list[int]:
    # Topics are a JSON list per source, which SQLite and PostgreSQL query differently;
    # there are tens of sources, so they are picked here.
    return [
        source_id
        for source_id, topics in session.execute(select(Source.id, Source.topics))
        if topic in (topics or ())
    ]


def recent(
    session: Session,
    *,
    source_key: str = "",
    topic: str = "",
    review: ChangeReview | None = None,
    page: int = 1,
    per_page: int = PER_PAGE,
) -> ChangePage:
    """Changes newest first, filtered by source, topic and review state, a page at a time."""
    query = _query()
    if source_key:
        query = query.where(Source.key == source_key)
    if topic:
        query = query.where(Source.id.in_(_with_topic(session, topic)))
    if review is not None:
        query = query.where(Change.review == review)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    page = max(1, page)
    rows = session.execute(
        query.order_by(Change.detected_at.desc(), Change.id.desc())
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    return ChangePage([_row(*r) for r in rows], total, page, per_page)


def get_row(session: Session, change_id: int) -> ChangeRow:
    found = session.execute(_query().where(Change.id == change_id)).first()
    if found is None:
        raise UnknownChange(change_id)
    return _row(*found)


def waiting_count(session: Session) -> int:
    query = select(func.count()).select_from(Change).where(Change.review == ChangeReview.WAITING)
    return session.scalar(query) or 0


def waiting_changes(session: Session, limit: int = 100) -> list[ChangeRow]:
    """Changes waiting for approval, oldest first (the order they would have gone out)."""
    rows = session.execute(
        _query()
        .where(Change.review == ChangeReview.WAITING)
        .order_by(Change.detected_at, Change.id)
        .limit(limit)
    ).all()
    return [_row(*r) for r in rows]


def review_sources(session: Session) -> Sequence[Source]:
    """The sources, by name, for the list's filter; those wanting review are marked there."""
    return session.scalars(select(Source).order_by(Source.name, Source.key)).all()


def _change(session: Session, change_id: int) -> Change:
    change = session.get(Change, change_id)
    if change is None:
        raise UnknownChange(change_id)
    return change


def _snapshot(change: Change, fields: Sequence[str]) -> dict[str, object]:
    return {name: getattr(change, name) for name in fields}


def _revised(change: Change, before: dict[str, object], fields: Sequence[str]) -> Revision | None:
    """What the action changed, or None; a change is stamped `edited_at` when it was
    changed, so that what shows it (the feeds' Last-Modified) knows when."""
    after = _snapshot(change, fields)
    if after == before:
        return None
    change.edited_at = utcnow()
    return Revision(change.id, before, after)


def hide(session: Session, change_id: int) -> Revision | None:
    """Hide a change as noise: it goes into no digest (one already sent stays sent)."""
    change = _change(session, change_id)
    before = _snapshot(change, _REVIEW_FIELDS)
    change.review = ChangeReview.HIDDEN
    return _revised(change, before, _REVIEW_FIELDS)


def unhide(session: Session, change_id: int) -> Revision | None:
    """Show a hidden change again, where it stood before: approved if it had been approved,
    else waiting if its source wants review, else sent as detected.

    Nothing is sent again: a change goes into the digests of the period of its detection
    (or approval), and a period already sent is not sent twice.
    """
    change = _change(session, change_id)
    if change.review is not ChangeReview.HIDDEN:
        return None
    before = _snapshot(change, _REVIEW_FIELDS)
    source = session.scalars(
        select(Source).join(Item, Item.source_id == Source.id).where(Item.id == change.item_id)
    ).one()
    if change.reviewed_at is not None:
        change.review = ChangeReview.APPROVED
    elif source.review_before_sending:
        change.review = ChangeReview.WAITING
    else:
        change.review = ChangeReview.AUTO
    return _revised(change, before, _REVIEW_FIELDS)


def approve(session: Session, change_id: int, editor: Editor, now: datetime) -> Revision | None:
    """Approve a waiting change: it goes into the digests whose period includes `now`.

    Approving it again does nothing; a change that is not waiting (sent as detected, or
    hidden: show it again first) raises `NotWaiting`.
    """
    change = _change(session, change_id)
    if change.review is ChangeReview.APPROVED:
        return None
    if change.review is not ChangeReview.WAITING:
        raise NotWaiting(change.id, change.review)
    before = _snapshot(change, _REVIEW_FIELDS)
    # Only while it still waits: of two editors approving at once, the second changes
    # nothing (its approval time could put the change in a second period's digests).
    approved = session.execute(
        update(Change)
        .where(Change.id == change.id, Change.review == ChangeReview.WAITING)
        .values(review=ChangeReview.APPROVED, reviewed_at=now, reviewed_by_id=editor.id)
    )
    if not getattr(approved, "rowcount", 0):
        return None
    return _revised(change, before, _REVIEW_FIELDS)


def set_note(session: Session, change_id: int, note: str) -> Revision | None:
    """The editors' one-line note shown with the change in digests; empty removes it."""
    change = _change(session, change_id)
    cleaned = clean_line(note)
    if len(cleaned) > NOTE_MAX:
        raise ReviewError(f"the note is {len(cleaned)} characters; at most {NOTE_MAX}", "note")
    before = _snapshot(change, ("editor_note",))
    change.editor_note = cleaned
    return _revised(change, before, ("editor_note",))


def correct_title(session: Session, change_id: int, title: str) -> Revision | None:
    """A title shown instead of the detected one; empty (or the detected title itself)
    restores the detected one."""
    change = _change(session, change_id)
    cleaned = clean_line(title)
    if len(cleaned) > TITLE_MAX:
        raise ReviewError(f"the title is {len(cleaned)} characters; at most {TITLE_MAX}", "title")
    before = _snapshot(change, ("corrected_title",))
    change.corrected_title = cleaned if cleaned and cleaned != change.title else None
    return _revised(change, before, ("corrected_title",))
