"""What collecting a source needs from the database, read in one short transaction.

The snapshot is plain data, so that fetching and reading (`gather`) can run with no
session open.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.core.models import Item, Source
from digest.watch.follow import Known

# Kinds whose document lists article pages to read, rather than holding the entries.
LINKING_KINDS = ("sitemap", "index")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A source as stored when its pass began."""

    id: int
    key: str
    kind: str
    url: str
    options: Mapping[str, object]
    etag: str | None
    last_modified: str | None
    baseline: bool  # no successful collection yet
    known: Mapping[str, Known]  # the article pages of a sitemap or index source


def take_snapshot(session: Session, source_id: int) -> Snapshot | None:
    """The snapshot of an enabled source; None if it is gone or disabled."""
    source = session.get(Source, source_id)
    if source is None or not source.enabled:
        return None
    return Snapshot(
        source.id,
        source.key,
        source.kind,
        source.url,
        dict(source.options or {}),
        source.etag,
        source.last_modified,
        source.baseline_at is None,
        _known_pages(session, source) if source.kind in LINKING_KINDS else {},
    )


def _known_pages(session: Session, source: Source) -> dict[str, Known]:
    items = session.scalars(select(Item).where(Item.source_id == source.id))
    return {item.key: _known(item) for item in items}


def _known(item: Item) -> Known:
    return Known(
        item.key,
        item.content_hash is not None,
        item.lastmod,
        item.next_read_at,
        item.etag,
        item.last_modified,
    )


def int_option(options: Mapping[str, object], name: str, default: int) -> int:
    """A whole-number option of a source, or `default` when it is not set."""
    value = options.get(name, default)
    return value if isinstance(value, int) else default  # checked when the file is loaded
