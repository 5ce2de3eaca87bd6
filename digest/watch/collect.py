"""Collecting a source: the one unit of work in the watch made of several transactions.

A pass fetches from the network for up to minutes, and no transaction may be held across
that (on SQLite it would lock the whole database). So instead of a `Session`, the entry
points here take a session factory, and a pass is three steps: a snapshot read in one
short transaction (`snapshot`), fetching and reading with no session open (`gather`),
and what was found stored in another short one (`record`). Every other watch service
takes the caller's `Session`.

Whatever goes wrong with one source is caught at its boundary (`collect_by_id`) and
recorded in its health; it never reaches another source.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from sqlalchemy.orm import Session

from digest.core.db import get_engine, session_scope
from digest.core.settings import Settings
from digest.watch.fetch import Fetcher, make_fetcher
from digest.watch.follow import Budget
from digest.watch.gather import Gathered, gather
from digest.watch.record import CollectOutcome, record
from digest.watch.selection import SourceRef
from digest.watch.snapshot import Snapshot, take_snapshot

__all__ = ["CollectOutcome", "Sessions", "collect_by_id", "collect_sources", "sessions_for"]

log = logging.getLogger(__name__)

# Opens a session that commits when its block ends (as `session_scope` does).
Sessions = Callable[[], AbstractContextManager[Session]]


def sessions_for(database_url: str) -> Sessions:
    """The session factory of a database; it can be handed to another process."""
    return partial(session_scope, database_url)


def collect_by_id(
    source_id: int, at: datetime, *, sessions: Sessions, fetcher: Fetcher, settings: Settings
) -> CollectOutcome | None:
    """Collect one source as found at `at`; None if it is gone or disabled.

    Nothing raised while fetching, reading or storing leaves this function: it goes into
    the source's health. `settings` gives the pass's budget and the backfill window.
    """
    with sessions() as session:
        snapshot = take_snapshot(session, source_id)
    if snapshot is None:
        return None
    budget = Budget(settings.fetch_source_budget_seconds)
    found = gather(snapshot, fetcher, at, settings.backfill_days, budget)
    return _write(sessions, snapshot, found, at, settings.backfill_days)


def _write(
    sessions: Sessions, snapshot: Snapshot, found: Gathered, at: datetime, backfill_days: int
) -> CollectOutcome | None:
    try:
        with sessions() as session:
            return record(session, snapshot, found, at, backfill_days)
    except Exception as exc:  # a value or row the database refused: none of it is kept
        log.warning("storing what %s gave failed", snapshot.key, exc_info=True)
        failed = Gathered(status=found.status, failure=exc)
        with sessions() as session:
            return record(session, snapshot, failed, at, backfill_days)


def collect_sources(
    sources: Iterable[SourceRef | tuple[int, str]],
    at: datetime,
    *,
    sessions: Sessions,
    settings: Settings,
    jobs: int = 1,
) -> Iterator[CollectOutcome]:
    """Collect sources (id, host); with jobs > 1, hosts are spread over processes.

    All sources of one host stay in one process, with one fetcher, so pacing per host
    still holds. `sessions` must survive being handed to a process (`sessions_for`).
    """
    groups: dict[str, list[int]] = {}
    for source_id, host in sources:
        groups.setdefault(host, []).append(source_id)
    work = [_Group(ids, at, sessions, settings) for ids in groups.values()]
    if jobs <= 1 or len(work) <= 1:
        for group in work:
            yield from group.collect()
        return
    get_engine(settings.database_url).dispose()  # nothing open is inherited
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(
        min(jobs, len(work)), mp_context=context, initializer=_fresh_engines
    ) as pool:
        for outcomes in pool.map(_Group.collect, work):
            yield from outcomes


@dataclass(frozen=True, slots=True)
class _Group:
    """The sources of one host, collected one after the other with one fetcher."""

    ids: list[int]
    at: datetime
    sessions: Sessions
    settings: Settings

    def collect(self) -> list[CollectOutcome]:
        outcomes = []
        with make_fetcher(self.settings) as fetcher:
            for source_id in self.ids:
                outcome = self._one(source_id, fetcher)
                if outcome is not None:
                    outcomes.append(outcome)
        return outcomes

    def _one(self, source_id: int, fetcher: Fetcher) -> CollectOutcome | None:
        try:
            return collect_by_id(
                source_id, self.at, sessions=self.sessions, fetcher=fetcher, settings=self.settings
            )
        except Exception as exc:  # the database itself: still go on to the next source
            log.exception("collecting source %s failed", source_id)
            return CollectOutcome(f"source {source_id}", ok=False, error=str(exc))


def _fresh_engines() -> None:
    # A forked worker must not use the connections of its parent.
    get_engine.cache_clear()
