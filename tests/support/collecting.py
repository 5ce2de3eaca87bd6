"""Sources for a test and collecting them as the `collect_source` actor does: a fetcher
built from the settings for the pass, and the pass's own short sessions."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlalchemy import select

from digest.core.db import session_scope
from digest.core.models import Source
from digest.core.settings import Settings
from digest.watch.collect import CollectOutcome, collect_by_id, sessions_for
from digest.watch.fetch import make_fetcher
from digest.watch.sources import load_sources, sync_sources


def watch(settings: Settings, path: Path, toml: str) -> dict[str, int]:
    """Write `toml` as a sources file at `path` and sync it, as `digest sources sync`
    does; the id of each source by its key."""
    path.write_text(toml, encoding="utf-8")
    with session_scope(settings.database_url) as session:
        sync_sources(session, load_sources(path))
        return {s.key: s.id for s in session.scalars(select(Source))}


def collect_once(settings: Settings, source_id: int, at: datetime) -> CollectOutcome | None:
    sessions = sessions_for(settings.database_url)
    with make_fetcher(settings) as fetcher:
        return collect_by_id(source_id, at, sessions=sessions, fetcher=fetcher, settings=settings)


def collect_key(settings: Settings, key: str, at: datetime) -> CollectOutcome | None:
    """Collect the source with this key."""
    with session_scope(settings.database_url) as session:
        source_id = session.scalar(select(Source.id).where(Source.key == key))
    assert source_id is not None, f"no source {key!r}"
    return collect_once(settings, source_id, at)
