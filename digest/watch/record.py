"""Storing what a pass over a source found, and the source's health, in the caller's
(short) transaction: the end of a pass."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.core.models import Item, Source, SourceStatus
from digest.watch.entries import Link, ReadError
from digest.watch.fetch import FetchError, usable_validator
from digest.watch.follow import DEFAULT_RECHECK_HOURS, PageResult
from digest.watch.gather import Gathered, NoPageRead
from digest.watch.ingest import IngestReport, ingest
from digest.watch.snapshot import Snapshot, int_option
from digest.watch.urls import MAX_URL_LENGTH
from subscribers.text import strip_invisible

MAX_BACKOFF = timedelta(days=1)


@dataclass(slots=True)
class CollectOutcome:
    """What one pass over a source came to, for the log and the `collect` command."""

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


def record(
    session: Session, snapshot: Snapshot, found: Gathered, at: datetime, backfill_days: int
) -> CollectOutcome | None:
    """Store what was found and the source's health; None if the source was removed."""
    source = session.get(Source, snapshot.id)
    if source is None:
        return None  # removed while it was being read
    source.last_checked_at = at
    if found.moved_to and source.url == snapshot.url and len(found.moved_to) <= MAX_URL_LENGTH:
        source.url = found.moved_to
    if found.failure is not None:
        _failed(source, at, found.failure)
        return CollectOutcome(source.key, ok=False, error=source.error)
    report = _store(session, source, found, at, backfill_days)
    _succeeded(source, snapshot, found, at)
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
    stored = _stored_keys(session, source, [link.url for link in links])
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


def _stored_keys(session: Session, source: Source, urls: list[str]) -> set[str]:
    """Which of `urls` the source has items for, asked in batches the database takes."""
    stored: set[str] = set()
    for start in range(0, len(urls), 500):
        batch = urls[start : start + 500]
        query = select(Item.key).where(Item.source_id == source.id, Item.key.in_(batch))
        stored.update(session.scalars(query))
    return stored


def _record_reads(
    session: Session, source: Source, pages: dict[str, PageResult], at: datetime
) -> None:
    hours = int_option(source.options or {}, "recheck_hours", DEFAULT_RECHECK_HOURS)
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


def _succeeded(source: Source, snapshot: Snapshot, found: Gathered, at: datetime) -> None:
    source.error = f"moved permanently from {snapshot.url}" if found.moved_to else None
    source.http_status = found.status
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


def _failed(source: Source, at: datetime, exc: Exception) -> None:
    status = exc.status if isinstance(exc, FetchError) else None
    source.http_status = status
    source.error = _health_text(_reason(exc)) or type(exc).__name__
    source.consecutive_failures += 1
    source.status = _status_after(status)
    if status == 410:
        source.enabled = False
    source.next_check_at = at + _backoff(source)


def _status_after(http_status: int | None) -> SourceStatus:
    """What a failed fetch's HTTP status says of the source: 410 gone for good (it is
    disabled), 404 broken, anything else failing for now."""
    if http_status == 410:
        return SourceStatus.DISABLED
    if http_status == 404:
        return SourceStatus.BROKEN
    return SourceStatus.FAILING


def _backoff(source: Source) -> timedelta:
    """Exponential, so a broken site is not hammered, but at most a day: it is still tried."""
    doublings = min(source.consecutive_failures, 10)
    return min(timedelta(minutes=source.interval_minutes) * (1 << doublings), MAX_BACKOFF)


def _reason(exc: BaseException) -> str:
    """The reason a collection failed, for people: fetch and read errors say it themselves;
    anything else is named by its type, so that a bug is told from a broken site."""
    if isinstance(exc, FetchError | ReadError | NoPageRead):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


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
