"""Collecting one source as the `collect_source` actor does: a fetcher built from the
settings for the pass, and the pass's own short sessions."""

from __future__ import annotations

from datetime import datetime

from digest.core.settings import Settings
from digest.watch.collect import CollectOutcome, collect_by_id, sessions_for
from digest.watch.fetch import make_fetcher


def collect_once(settings: Settings, source_id: int, at: datetime) -> CollectOutcome | None:
    sessions = sessions_for(settings.database_url)
    with make_fetcher(settings) as fetcher:
        return collect_by_id(source_id, at, sessions=sessions, fetcher=fetcher, settings=settings)
