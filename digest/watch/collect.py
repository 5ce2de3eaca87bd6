"""Collecting a source: fetch, read, ingest, and record the source's health."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from digest import SERVICE_NAME, __version__
from digest.db import get_engine, session_scope
from digest.models import Item, Source, SourceStatus
from digest.settings import Settings
from digest.watch.entries import Entry, Link, ReadError, ReadResult
from digest.watch.fetch import Fetcher, FetchError, FetchLimits
from digest.watch.follow import (
    DEFAULT_MAX_PAGES,
    DEFAULT_RECHECK_HOURS,
    Known,
    PageResult,
    plan_reads,
    read_pages,
)
from digest.watch.ingest import IngestReport, ingest
from digest.watch.polite import SharedHostPacer
from digest.watch.readers import get_reader

MAX_BACKOFF = timedelta(days=1)


@dataclass(slots=True)
class CollectOutcome:
    key: str
    ok: bool
    report: IngestReport | None = None
    not_modified: bool = False
    error: str | None = None
    warnings: list[str] = field(default_factory=list)

    def describe(self) -> str:
        if not self.ok:
            return f"{self.key}: failed: {self.error}"
        if self.not_modified:
            return f"{self.key}: not modified"
        r = self.report or IngestReport()
        text = f"{self.key}: {r.new} new, {r.updated} updated, {r.same} unchanged"
        if r.back_catalogue:
            text += f", {r.back_catalogue} back catalogue"
        if r.first_read:
            text += f", {r.first_read} read for the first time"
        return text + "".join(f"\n  warning: {w}" for w in self.warnings)


def due_source_ids(session: Session, at: datetime) -> list[int]:
    query = (
        select(Source.id)
        .where(
            Source.enabled.is_(True),
            or_(Source.next_check_at.is_(None), Source.next_check_at <= at),
        )
        .order_by(Source.next_check_at)
    )
    return list(session.scalars(query))


MAX_CHILD_SITEMAPS = 20


def collect_source(
    session: Session, source: Source, fetcher: Fetcher, at: datetime, backfill_days: int
) -> CollectOutcome:
    """Collect one source; failures are recorded on the source, never raised."""
    source.last_checked_at = at
    options = source.options or {}
    warnings: list[str] = []
    try:
        result = fetcher.get(source.url, source.etag, source.last_modified)
        if result.moved_to:
            source.error = f"moved permanently from {source.url}"
            source.url = result.moved_to
        else:
            source.error = None
        source.http_status = result.status
        read = ReadResult()
        if not result.not_modified:
            reader = get_reader(source.kind)
            read = reader(result.body, result.headers, result.url, options)
            for child in read.sitemaps[:MAX_CHILD_SITEMAPS]:
                try:
                    page = fetcher.get(child)
                    child_read = reader(page.body, page.headers, page.url, options)
                except (FetchError, ReadError) as exc:
                    warnings.append(f"sitemap {child}: {exc}")
                    continue
                read.links.extend(child_read.links)
            warnings.extend(read.warnings)
        entries = list(read.entries)
        silent: set[str] = set()
        read_state: dict[str, PageResult] = {}
        if source.kind in LINKING_KINDS:
            entries, silent, read_state = _read_linked(
                session, source, fetcher, read.links, at, backfill_days, warnings
            )
        report = None
        if entries or not result.not_modified:
            report = ingest(session, source, entries, at, backfill_days, silent)
        if read_state:
            _record_reads(session, source, read_state, at)
        if not result.not_modified:
            source.etag = result.headers.get("etag")
            source.last_modified = result.headers.get("last-modified")
    except (FetchError, ReadError) as exc:
        _failed(source, at, exc)
        return CollectOutcome(source.key, ok=False, error=source.error)
    if warnings or not result.not_modified:
        # An unchanged page (304) keeps the warning it had.
        source.warning = "; ".join(warnings)[:2000] or None
    source.status = SourceStatus.OK.value
    source.consecutive_failures = 0
    source.last_success_at = at
    source.next_check_at = at + timedelta(minutes=source.interval_minutes)
    return CollectOutcome(
        source.key, ok=True, report=report, not_modified=report is None, warnings=warnings
    )


LINKING_KINDS = ("sitemap", "index")


def _known_pages(session: Session, source: Source) -> dict[str, tuple[Item, Known]]:
    items = session.scalars(select(Item).where(Item.source_id == source.id))
    return {
        item.key: (
            item,
            Known(
                item.key,
                item.content_hash is not None,
                item.lastmod,
                item.next_read_at,
                item.etag,
                item.last_modified,
            ),
        )
        for item in items
    }


def _read_linked(
    session: Session,
    source: Source,
    fetcher: Fetcher,
    links: list[Link],
    at: datetime,
    backfill_days: int,
    warnings: list[str],
) -> tuple[list[Entry], set[str], dict[str, PageResult]]:
    """Plan and read the article pages of a sitemap or index source; list the rest."""
    options = source.options or {}
    known = _known_pages(session, source)
    plan = plan_reads(
        links,
        {key: state for key, (_item, state) in known.items()},
        at=at,
        baseline=source.baseline_at is None,
        backfill_since=at - timedelta(days=backfill_days),
        max_pages=_int_option(options, "max_pages", DEFAULT_MAX_PAGES),
    )
    for link in plan.list_only:
        session.add(
            Item(
                source_id=source.id,
                key=link.url,
                url=link.url,
                title=_title_from_url(link.url),
                content_hash=None,
                lastmod=link.lastmod,
                first_seen_at=at,
                last_seen_at=at,
                next_read_at=at,
            )
        )
    passed = read_pages(fetcher, plan.reads, {k: s for k, (_i, s) in known.items()})
    if passed.errors:
        warnings.append(
            f"{len(passed.errors)} page(s) could not be read, first: {passed.errors[0]}"
        )
    entries = [page.entry for page in passed.pages if page.entry is not None]
    silent = {r.link.url for r in plan.reads if r.silent}
    return entries, silent, {page.link.url: page for page in passed.pages}


def _record_reads(
    session: Session, source: Source, pages: dict[str, PageResult], at: datetime
) -> None:
    hours = _int_option(source.options or {}, "recheck_hours", DEFAULT_RECHECK_HOURS)
    items = session.scalars(
        select(Item).where(Item.source_id == source.id, Item.key.in_(list(pages)))
    )
    for item in items:
        page = pages[item.key]
        item.next_read_at = at + timedelta(hours=hours)
        item.lastmod = page.link.lastmod or item.lastmod
        item.last_seen_at = at
        if page.etag or page.last_modified:
            item.etag, item.last_modified = page.etag, page.last_modified


def _int_option(options: dict[str, object], name: str, default: int) -> int:
    value = options.get(name, default)
    return value if isinstance(value, int) else default  # checked when the file is loaded


def _title_from_url(url: str) -> str:
    tail = url.rstrip("/").rsplit("/", 1)[-1] or url
    return tail.replace("-", " ").replace("_", " ")[:500]


def _failed(source: Source, at: datetime, exc: Exception) -> None:
    status = getattr(exc, "status", None)
    source.http_status = status
    source.error = str(exc)[:2000]
    source.consecutive_failures += 1
    if status == 410:
        source.status = SourceStatus.DISABLED.value
        source.enabled = False
    elif status == 404:
        source.status = SourceStatus.BROKEN.value
    else:
        source.status = SourceStatus.FAILING.value
    # Back off exponentially so a broken site is not hammered, but keep trying daily.
    delay = timedelta(minutes=source.interval_minutes) * (2 ** min(source.consecutive_failures, 10))
    source.next_check_at = at + min(delay, MAX_BACKOFF)


# A due source is leased for this long when its collection is enqueued, so the
# scheduler does not enqueue it again while the message waits in the queue.
LEASE = timedelta(minutes=15)


def lease_due_sources(session: Session, at: datetime) -> list[int]:
    ids = due_source_ids(session, at)
    for source in session.scalars(select(Source).where(Source.id.in_(ids))):
        source.next_check_at = at + LEASE
    return ids


def make_fetcher(settings: Settings) -> Fetcher:
    contact = f"; {settings.user_agent_contact}" if settings.user_agent_contact else ""
    return Fetcher(
        user_agent=f"{SERVICE_NAME}/{__version__} (+{settings.base_url}{contact})",
        limits=FetchLimits(
            timeout=settings.fetch_timeout_seconds,
            deadline=settings.fetch_timeout_seconds * 3,
            max_bytes=settings.fetch_max_bytes,
            host_delay=settings.fetch_host_delay_seconds,
            allow_private=settings.allow_private_hosts,
        ),
        # With Redis at hand, all workers pace each host together.
        pacer=SharedHostPacer(settings.broker_url)
        if settings.broker_url.startswith(("redis://", "rediss://"))
        else None,
    )


def collect_by_id(
    settings: Settings, source_id: int, at: datetime, fetcher: Fetcher | None = None
) -> CollectOutcome | None:
    """Collect one source in its own transaction; None if the source is gone or disabled."""
    own = fetcher is None
    fetcher = fetcher or make_fetcher(settings)
    try:
        with session_scope(settings.database_url) as session:
            source = session.get(Source, source_id)
            if source is None or not source.enabled:
                return None
            return collect_source(session, source, fetcher, at, settings.backfill_days)
    finally:
        if own:
            fetcher.close()


def _collect_group(args: tuple[Settings, list[int], datetime]) -> list[CollectOutcome]:
    settings, ids, at = args
    with make_fetcher(settings) as fetcher:
        return [o for i in ids if (o := collect_by_id(settings, i, at, fetcher)) is not None]


def _fresh_engines() -> None:
    # A forked worker must not use the connections of its parent.
    get_engine.cache_clear()


def collect_sources(
    settings: Settings, sources: list[tuple[int, str]], at: datetime, jobs: int = 1
) -> Iterator[CollectOutcome]:
    """Collect (source id, host) pairs; with jobs > 1, hosts are spread over processes.

    All sources of one host stay in one process, so pacing per host still holds.
    """
    groups: dict[str, list[int]] = {}
    for source_id, host in sources:
        groups.setdefault(host, []).append(source_id)
    work = [(settings, ids, at) for ids in groups.values()]
    if jobs <= 1 or len(work) <= 1:
        for item in work:
            yield from _collect_group(item)
        return
    get_engine(settings.database_url).dispose()  # nothing open is inherited
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(
        min(jobs, len(work)), mp_context=context, initializer=_fresh_engines
    ) as pool:
        for outcomes in pool.map(_collect_group, work):
            yield from outcomes
