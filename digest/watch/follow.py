"""Reading the article pages a listing points to: which to read this pass (pure), and reading them.

New links come first, then links whose lastmod moved, then known pages due for their slow
re-read; a pass reads at most `max_pages`. At a source's baseline the pages read are
judged by their dates (only recent ones are new), and those beyond the budget are only
listed, to be read quietly over later passes instead of being reported. No page fetch
starts once the pass's wall-clock budget is spent; the pages left are read next pass.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from digest.watch.article import read_page
from digest.watch.entries import Entry, Link
from digest.watch.fetch import Fetcher, FetchError

log = logging.getLogger(__name__)

DEFAULT_MAX_PAGES = 30
DEFAULT_RECHECK_HOURS = 168


@dataclass(frozen=True, slots=True)
class Known:
    """What is stored of a page already known."""

    url: str
    read: bool  # False while only listed
    lastmod: datetime | None
    next_read_at: datetime | None
    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True, slots=True)
class Read:
    link: Link
    silent: bool  # a first read on the slow cycle: store, report nothing


@dataclass(slots=True)
class Plan:
    reads: list[Read] = field(default_factory=list)
    list_only: list[Link] = field(default_factory=list)
    # New or moved links beyond max_pages, neither read nor listed: only the listing
    # knows them, so it must be read again next pass.
    deferred: int = 0


@dataclass(slots=True)
class Budget:
    """The wall clock one pass over a source may use: no fetch starts once it is spent."""

    seconds: float
    clock: Callable[[], float] = time.monotonic
    started: float = field(init=False)

    def __post_init__(self) -> None:
        self.started = self.clock()

    def spent(self) -> bool:
        return self.clock() - self.started >= self.seconds

    def describe(self) -> str:
        return f"the pass's budget of {self.seconds:g} s was spent"


def plan_reads(
    links: Sequence[Link],
    known: Mapping[str, Known],
    *,
    at: datetime,
    baseline: bool,
    backfill_since: datetime,
    max_pages: int,
) -> Plan:
    plan = Plan()
    fresh, moved = _fresh_and_moved(links, known)
    if baseline:
        # Recently modified pages first; what the budget leaves is listed, read later.
        fresh.sort(key=lambda r: not (r.link.lastmod and r.link.lastmod >= backfill_since))
        plan.list_only = [r.link for r in fresh[max_pages:]]
        fresh = fresh[:max_pages]
    chosen = {r.link.url for r in fresh + moved}
    recheck = _rechecks(links, known, at, chosen)
    plan.reads = (fresh + moved + recheck)[:max_pages]
    plan.deferred = max(0, len(fresh) + len(moved) - max_pages)
    return plan


def _fresh_and_moved(
    links: Sequence[Link], known: Mapping[str, Known]
) -> tuple[list[Read], list[Read]]:
    """Reads of the links not known yet, and of those whose lastmod moved on."""
    fresh: list[Read] = []
    moved: list[Read] = []
    for link in links:
        state = known.get(link.url)
        if state is None:
            fresh.append(Read(link, silent=False))
        elif link.lastmod is not None and (state.lastmod is None or link.lastmod > state.lastmod):
            moved.append(Read(link, silent=False))
    return fresh, moved


def _rechecks(
    links: Sequence[Link], known: Mapping[str, Known], at: datetime, chosen: set[str]
) -> list[Read]:
    """Known pages due for their slow re-read, the longest due first (not those `chosen`)."""
    due = sorted(
        (
            s
            for s in known.values()
            if s.next_read_at is not None and s.next_read_at <= at and s.url not in chosen
        ),
        key=lambda s: s.next_read_at or at,
    )
    # A due page still in the listing keeps its lastmod; one gone from it is read anyway,
    # so that a page dropped from a sitemap is still watched on the slow cycle.
    lastmods = {link.url: link.lastmod for link in links}
    return [Read(Link(s.url, lastmods.get(s.url, s.lastmod)), silent=not s.read) for s in due]


@dataclass(slots=True)
class PageResult:
    link: Link
    entry: Entry | None = None  # None when not modified
    etag: str | None = None
    last_modified: str | None = None


@dataclass(slots=True)
class ReadPass:
    pages: list[PageResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    unread: list[Read] = field(default_factory=list)  # left when the budget was spent
    # Pages the site says are gone (404, 410): a stale link in its listing, not a site
    # that cannot be read.
    gone: int = 0


def read_pages(
    fetcher: Fetcher,
    reads: Sequence[Read],
    known: Mapping[str, Known],
    budget: Budget,
) -> ReadPass:
    """Fetch and read each planned page until the budget is spent; one page's failure
    does not stop the others."""
    result = ReadPass()
    for number, read in enumerate(reads):
        if budget.spent():
            result.unread = list(reads[number:])
            break
        try:
            result.pages.append(_read_page(fetcher, read.link, known.get(read.link.url)))
        except FetchError as exc:
            result.errors.append(f"{read.link.url}: {exc.reason}")
            result.gone += exc.status in (404, 410)
        except Exception as exc:  # one page's fault, whatever it is, stays with that page
            log.warning("reading %s failed", read.link.url, exc_info=True)
            result.errors.append(f"{read.link.url}: {type(exc).__name__}: {exc}")
    return result


def _read_page(fetcher: Fetcher, link: Link, state: Known | None) -> PageResult:
    """One article page, fetched on its stored validators; no entry when not modified."""
    response = fetcher.get(
        link.url, state.etag if state else None, state.last_modified if state else None
    )
    page = PageResult(
        link,
        etag=response.headers.get("etag"),
        last_modified=response.headers.get("last-modified"),
    )
    if not response.not_modified:
        # Known by the listed URL, whatever redirects the page went through.
        page.entry = read_page(response.body, response.headers, link.url, key=link.url)
    return page
