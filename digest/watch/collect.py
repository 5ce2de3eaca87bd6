"""Collecting a source: fetch, read, ingest, and record the source's health."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from digest import SERVICE_NAME, __version__
from digest.db import session_scope
from digest.models import Source, SourceStatus
from digest.settings import Settings
from digest.watch.entries import ReadError
from digest.watch.fetch import Fetcher, FetchError, FetchLimits
from digest.watch.ingest import IngestReport, ingest
from digest.watch.readers import get_reader

MAX_BACKOFF = timedelta(days=1)


@dataclass(slots=True)
class CollectOutcome:
    key: str
    ok: bool
    report: IngestReport | None = None
    not_modified: bool = False
    error: str | None = None

    def describe(self) -> str:
        if not self.ok:
            return f"{self.key}: failed: {self.error}"
        if self.not_modified:
            return f"{self.key}: not modified"
        r = self.report or IngestReport()
        return f"{self.key}: {r.new} new, {r.updated} updated, {r.same} unchanged" + (
            f", {r.back_catalogue} back catalogue" if r.back_catalogue else ""
        )


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


def collect_source(
    session: Session, source: Source, fetcher: Fetcher, at: datetime, backfill_days: int
) -> CollectOutcome:
    """Collect one source; failures are recorded on the source, never raised."""
    source.last_checked_at = at
    try:
        result = fetcher.get(source.url, source.etag, source.last_modified)
        if result.moved_to:
            source.error = f"moved permanently from {source.url}"
            source.url = result.moved_to
        else:
            source.error = None
        source.http_status = result.status
        report = None
        if not result.not_modified:
            entries = get_reader(source.kind)(
                result.body, result.headers, result.url, source.options or {}
            ).entries
            report = ingest(session, source, entries, at, backfill_days)
            source.etag = result.headers.get("etag")
            source.last_modified = result.headers.get("last-modified")
    except (FetchError, ReadError) as exc:
        _failed(source, at, exc)
        return CollectOutcome(source.key, ok=False, error=source.error)
    source.status = SourceStatus.OK.value
    source.consecutive_failures = 0
    source.last_success_at = at
    source.next_check_at = at + timedelta(minutes=source.interval_minutes)
    return CollectOutcome(source.key, ok=True, report=report, not_modified=report is None)


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
