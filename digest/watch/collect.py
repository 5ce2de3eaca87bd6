"""Collecting a source: a snapshot of what is stored, fetching and reading with no session
open, then one short transaction for the items, changes and the source's health.

Whatever goes wrong with one source is caught at its boundary (`collect_by_id`) and
recorded in its health; it never reaches another source.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from digest import SERVICE_NAME, __version__
from digest.core.clean import MAX_URL_LENGTH
from digest.core.db import get_engine, session_scope
from digest.core.models import Item, Source, SourceStatus
from digest.core.settings import Settings
from digest.watch.entries import Entry, Link, ReadError, ReadResult, is_skip
from digest.watch.fetch import Fetcher, FetchError, FetchLimits, FetchResult, usable_validator
from digest.watch.follow import (
    DEFAULT_MAX_PAGES,
    DEFAULT_RECHECK_HOURS,
    Budget,
    Known,
    PageResult,
    plan_reads,
    read_pages,
)
from digest.watch.ingest import IngestReport, ingest
from digest.watch.polite import SharedHostPacer
from digest.watch.readers import get_reader
from subscribers.text import strip_invisible

log = logging.getLogger(__name__)

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
LINKING_KINDS = ("sitemap", "index")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What collecting a source needs from the database, read in one short transaction."""

    id: int
    key: str
    kind: str
    url: str
    options: Mapping[str, object]
    etag: str | None
    last_modified: str | None
    baseline: bool  # no successful collection yet
    known: Mapping[str, Known]  # the article pages of a sitemap or index source


@dataclass(slots=True)
class Gathered:
    """What fetching and reading a source found, before anything of it is stored."""

    status: int | None = None
    moved_to: str | None = None
    not_modified: bool = False
    etag: str | None = None
    last_modified: str | None = None
    entries: list[Entry] = field(default_factory=list)
    silent: set[str] = field(default_factory=set)
    pages: dict[str, PageResult] = field(default_factory=dict)
    list_only: list[Link] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    failure: Exception | None = None
    # Links from the listing were left unread (budget, max_pages): its validators are
    # not kept, so that the next pass reads it again instead of getting a 304.
    cut: bool = False


class NoPageRead(Exception):
    """Every article page read in a pass failed: the source gave nothing usable."""


def take_snapshot(session: Session, source_id: int) -> Snapshot | None:
    """The snapshot of an enabled source; None if it is gone or disabled."""
    source = session.get(Source, source_id)
    if source is None or not source.enabled:
        return None
    known: dict[str, Known] = {}
    if source.kind in LINKING_KINDS:
        items = session.scalars(select(Item).where(Item.source_id == source.id))
        known = {item.key: _known(item) for item in items}
    return Snapshot(
        source.id,
        source.key,
        source.kind,
        source.url,
        dict(source.options or {}),
        source.etag,
        source.last_modified,
        source.baseline_at is None,
        known,
    )


def _known(item: Item) -> Known:
    return Known(
        item.key,
        item.content_hash is not None,
        item.lastmod,
        item.next_read_at,
        item.etag,
        item.last_modified,
    )


def gather(
    snapshot: Snapshot, fetcher: Fetcher, at: datetime, backfill_days: int, budget: Budget
) -> Gathered:
    """Fetch and read a source, with no database session open; never raises.

    Any exception, expected (a fetch or read error) or not (a bug a site's bytes found),
    ends up in `failure`, to be recorded in the source's health. No fetch starts once
    `budget` is spent: what is left is read on the next pass.
    """
    found = Gathered()
    try:
        _fetch_and_read(snapshot, fetcher, at, backfill_days, budget, found)
    except (FetchError, ReadError) as exc:
        found.failure = exc
    except Exception as exc:  # a fault a site's bytes found in our code: kept with its trace
        log.warning("collecting %s failed", snapshot.key, exc_info=True)
        found.failure = exc
    return found


def _fetch_and_read(
    snapshot: Snapshot,
    fetcher: Fetcher,
    at: datetime,
    backfill_days: int,
    budget: Budget,
    found: Gathered,
) -> None:
    result = fetcher.get(snapshot.url, snapshot.etag, snapshot.last_modified)
    found.status, found.moved_to = result.status, result.moved_to
    found.not_modified = result.not_modified
    read = ReadResult()
    if not result.not_modified:
        read = _read_listing(snapshot, fetcher, result, budget, found)
        found.etag = result.headers.get("etag")
        found.last_modified = result.headers.get("last-modified")
    found.entries = list(read.entries)
    if snapshot.kind in LINKING_KINDS:
        _read_linked(snapshot, fetcher, read.links, at, backfill_days, budget, found)
    if found.cut:
        found.etag = found.last_modified = None


def _read_listing(
    snapshot: Snapshot, fetcher: Fetcher, result: FetchResult, budget: Budget, found: Gathered
) -> ReadResult:
    """The source's own document read, with the child sitemaps of a sitemap index."""
    warnings = found.warnings
    reader = get_reader(snapshot.kind)
    read = reader(result.body, result.headers, result.url, snapshot.options)
    children = read.sitemaps[:MAX_CHILD_SITEMAPS]
    for number, child in enumerate(children):
        if budget.spent():
            found.cut = True
            left = len(children) - number
            warnings.append(f"{budget.describe()}: {left} sitemap(s) left for the next pass")
            break
        try:
            page = fetcher.get(child)
            child_read = reader(page.body, page.headers, page.url, snapshot.options)
        except (FetchError, ReadError) as exc:
            warnings.append(f"sitemap {child}: {exc}")
            continue
        except Exception as exc:  # one child's fault stays with that child
            log.warning("reading sitemap %s failed", child, exc_info=True)
            warnings.append(f"sitemap {child}: {type(exc).__name__}: {exc}")
            continue
        read.links.extend(child_read.links)
        # Links a child had to skip are worth a warning; that a child matched none of the
        # patterns is not (an index has sitemaps of images, tags and so on).
        warnings.extend(f"sitemap {child}: {w}" for w in child_read.warnings if is_skip(w))
    warnings.extend(read.warnings)
    return read


def _read_linked(
    snapshot: Snapshot,
    fetcher: Fetcher,
    links: list[Link],
    at: datetime,
    backfill_days: int,
    budget: Budget,
    found: Gathered,
) -> None:
    """Plan and read the article pages of a sitemap or index source; list the rest."""
    plan = plan_reads(
        links,
        snapshot.known,
        at=at,
        baseline=snapshot.baseline,
        backfill_since=at - timedelta(days=backfill_days),
        max_pages=_int_option(snapshot.options, "max_pages", DEFAULT_MAX_PAGES),
    )
    found.list_only = plan.list_only
    found.cut = found.cut or plan.deferred > 0
    passed = read_pages(fetcher, plan.reads, snapshot.known, budget)
    notes = []
    if passed.errors:
        notes.append(f"{len(passed.errors)} page(s) could not be read, first: {passed.errors[0]}")
    if passed.unread:
        found.cut = True
        notes.append(f"{budget.describe()}: {len(passed.unread)} page(s) left for the next pass")
        if snapshot.baseline:
            # As with pages beyond max_pages at the baseline: listed, read quietly later.
            found.list_only += [r.link for r in passed.unread if r.link.url not in snapshot.known]
    if passed.errors and not passed.pages and len(passed.errors) > passed.gone:
        found.failure = NoPageRead("no page could be read: " + "; ".join(notes))
        return
    found.warnings.extend(notes)
    found.entries = [page.entry for page in passed.pages if page.entry is not None]
    found.silent = {r.link.url for r in plan.reads if r.silent}
    found.pages = {page.link.url: page for page in passed.pages}


def record(
    session: Session, snapshot: Snapshot, found: Gathered, at: datetime, backfill_days: int
) -> CollectOutcome | None:
    """Store what was found and the source's health, in the caller's (short) transaction."""
    source = session.get(Source, snapshot.id)
    if source is None:
        return None  # removed while it was being read
    source.last_checked_at = at
    if found.moved_to and source.url == snapshot.url and len(found.moved_to) <= MAX_URL_LENGTH:
        source.url = found.moved_to
    if found.failure is not None:
        _failed(source, at, found.failure)
        return CollectOutcome(source.key, ok=False, error=source.error)
    source.error = f"moved permanently from {snapshot.url}" if found.moved_to else None
    source.http_status = found.status
    report = _store(session, source, found, at, backfill_days)
    if not found.not_modified:
        source.etag = _fits(found.etag, 500)
        source.last_modified = _fits(found.last_modified, 100)
    if found.warnings or not found.not_modified:
        # An unchanged page (304) keeps the warning it had.
        source.warning = _health_text("; ".join(found.warnings)) or None
    source.status = SourceStatus.OK
    source.consecutive_failures = 0
    source.last_success_at = at
    source.next_check_at = at + timedelta(minutes=source.interval_minutes)
    return CollectOutcome(
        source.key,
        ok=True,
        report=report,
        not_modified=report is None,
        warnings=found.warnings,
    )


def _store(
    session: Session, source: Source, found: Gathered, at: datetime, backfill_days: int
) -> IngestReport | None:
    _add_listed(session, source, found.list_only, at)
    report = None
    if found.entries or not found.not_modified:
        report = ingest(session, source, found.entries, at, backfill_days, found.silent)
    if found.pages:
        _record_reads(session, source, found.pages, at)
    return report


def _add_listed(session: Session, source: Source, links: list[Link], at: datetime) -> None:
    """Items for pages only listed this pass, to be read quietly on later passes."""
    if not links:
        return
    urls = [link.url for link in links]
    stored: set[str] = set()
    for start in range(0, len(urls), 500):
        batch = urls[start : start + 500]
        query = select(Item.key).where(Item.source_id == source.id, Item.key.in_(batch))
        stored.update(session.scalars(query))
    for link in links:
        if link.url in stored:
            continue  # another pass listed it meanwhile
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
            item.etag, item.last_modified = _fits(page.etag, 500), _fits(page.last_modified, 100)


def _int_option(options: Mapping[str, object], name: str, default: int) -> int:
    value = options.get(name, default)
    return value if isinstance(value, int) else default  # checked when the file is loaded


def _title_from_url(url: str) -> str:
    tail = url.rstrip("/").rsplit("/", 1)[-1] or url
    return tail.replace("-", " ").replace("_", " ")[:500]


def _fits(header: str | None, limit: int) -> str | None:
    """A validator header as it was, or None if it is too long to store (never cut: a cut
    ETag would never match) or could not be sent back (not printable ASCII)."""
    if header is None or len(header) > limit or not usable_validator(header):
        return None
    return header


def _health_text(text: str) -> str:
    """Text for the source's error or warning: one visible line, as long as is useful."""
    return strip_invisible(text)[:2000]


def _reason(exc: BaseException) -> str:
    """The reason a collection failed, for people: fetch and read errors say it themselves;
    anything else is named by its type, so that a bug is told from a broken site."""
    if isinstance(exc, FetchError | ReadError | NoPageRead):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _failed(source: Source, at: datetime, exc: Exception) -> None:
    status = getattr(exc, "status", None)
    source.http_status = status if isinstance(status, int) else None
    source.error = _health_text(_reason(exc)) or type(exc).__name__
    source.consecutive_failures += 1
    if status == 410:
        source.status = SourceStatus.DISABLED
        source.enabled = False
    elif status == 404:
        source.status = SourceStatus.BROKEN
    else:
        source.status = SourceStatus.FAILING
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
    """Collect one source; None if it is gone or disabled.

    A snapshot is read in one short transaction, the source is fetched and read with no
    session open, and what was found is stored in another short one. Nothing raised while
    fetching, reading or storing leaves this function: it goes into the source's health.
    """
    with session_scope(settings.database_url) as session:
        snapshot = take_snapshot(session, source_id)
    if snapshot is None:
        return None
    budget = Budget(settings.fetch_source_budget_seconds)
    if fetcher is None:
        with make_fetcher(settings) as own:
            found = gather(snapshot, own, at, settings.backfill_days, budget)
    else:
        found = gather(snapshot, fetcher, at, settings.backfill_days, budget)
    return _write(settings, snapshot, found, at)


def _write(
    settings: Settings, snapshot: Snapshot, found: Gathered, at: datetime
) -> CollectOutcome | None:
    try:
        with session_scope(settings.database_url) as session:
            return record(session, snapshot, found, at, settings.backfill_days)
    except Exception as exc:  # a value or row the database refused: none of it is kept
        log.warning("storing what %s gave failed", snapshot.key, exc_info=True)
        failed = Gathered(status=found.status, failure=exc)
        with session_scope(settings.database_url) as session:
            return record(session, snapshot, failed, at, settings.backfill_days)


def _collect_group(args: tuple[Settings, list[int], datetime]) -> list[CollectOutcome]:
    settings, ids, at = args
    outcomes = []
    with make_fetcher(settings) as fetcher:
        for source_id in ids:
            try:
                outcome = collect_by_id(settings, source_id, at, fetcher)
            except Exception as exc:  # the database itself: still go on to the next source
                log.exception("collecting source %s failed", source_id)
                outcome = CollectOutcome(f"source {source_id}", ok=False, error=str(exc))
            if outcome is not None:
                outcomes.append(outcome)
    return outcomes


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
