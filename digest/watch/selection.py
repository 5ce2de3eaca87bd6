"""Which sources to collect: the due ones for the scheduler, and all or one for a command.

A source an operator paused (`controls.pause`) is neither due nor among all the sources;
a command that names it by key collects it all the same.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import NamedTuple
from urllib.parse import urlsplit

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from digest.core.models import Source
from digest.watch.errors import WatchError

# A due source is leased for this long when its collection is enqueued, so the
# scheduler does not enqueue it again while the message waits in the queue.
LEASE = timedelta(minutes=15)


class SourceRef(NamedTuple):
    """A source to collect, with the host it is fetched from (sources of one host are
    collected together, so that pacing per host holds)."""

    id: int
    host: str


class UnknownSource(WatchError):
    """No source has the `key` a command named."""

    def __init__(self, key: str) -> None:
        super().__init__(f"no source with key {key!r}; see `digest sources list`")
        self.key = key


def due_source_ids(session: Session, at: datetime) -> list[int]:
    query = (
        select(Source.id)
        .where(
            Source.enabled.is_(True),
            Source.paused_at.is_(None),
            or_(Source.next_check_at.is_(None), Source.next_check_at <= at),
        )
        .order_by(Source.next_check_at)
    )
    return list(session.scalars(query))


def lease_due_sources(session: Session, at: datetime) -> list[int]:
    """The due sources, each leased (`LEASE`) so that it is enqueued once."""
    ids = due_source_ids(session, at)
    for source in session.scalars(select(Source).where(Source.id.in_(ids))):
        source.next_check_at = at + LEASE
    return ids


def sources_to_collect(session: Session, key: str | None = None) -> list[SourceRef]:
    """Every enabled source not paused, by key, or the one source `key` (enabled, paused
    or not).

    UnknownSource if no source has that key.
    """
    query = (
        select(Source.id, Source.url)
        .where(Source.enabled.is_(True), Source.paused_at.is_(None))
        .order_by(Source.key)
    )
    if key:
        query = select(Source.id, Source.url).where(Source.key == key)
    refs = [SourceRef(i, urlsplit(url).hostname or "") for i, url in session.execute(query)]
    if key and not refs:
        raise UnknownSource(key)
    return refs
