"""Fetching and reading a source with no database session open: the middle of a pass.

`gather` never raises: whatever goes wrong ends up in `Gathered.failure`, to be recorded
in the source's health by `record`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from digest.watch.entries import Entry, Link, ReadError, ReadResult, is_skip
from digest.watch.errors import WatchError
from digest.watch.fetch import Fetcher, FetchError, FetchResult
from digest.watch.follow import (
    DEFAULT_MAX_PAGES,
    Budget,
    PageResult,
    Plan,
    ReadPass,
    plan_reads,
    read_pages,
)
from digest.watch.readers import Reader, get_reader
from digest.watch.snapshot import LINKING_KINDS, Snapshot, int_option

log = logging.getLogger(__name__)

MAX_CHILD_SITEMAPS = 20


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


class NoPageRead(WatchError):
    """Every article page read in a pass failed: the source gave nothing usable."""


@dataclass(frozen=True, slots=True)
class Pass:
    """One pass over a source: what it reads, with what, when, and within which budget."""

    snapshot: Snapshot
    fetcher: Fetcher
    at: datetime
    backfill_days: int
    budget: Budget


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
        _fetch_and_read(Pass(snapshot, fetcher, at, backfill_days, budget), found)
    except (FetchError, ReadError) as exc:
        found.failure = exc
    except Exception as exc:  # a fault a site's bytes found in our code: kept with its trace
        log.warning("collecting %s failed", snapshot.key, exc_info=True)
        found.failure = exc
    return found


def _fetch_and_read(run: Pass, found: Gathered) -> None:
    snapshot = run.snapshot
    result = run.fetcher.get(snapshot.url, snapshot.etag, snapshot.last_modified)
    found.status, found.moved_to = result.status, result.moved_to
    found.not_modified = result.not_modified
    read = ReadResult()
    if not result.not_modified:
        read = _read_listing(run, result, found)
        found.etag = result.headers.get("etag")
        found.last_modified = result.headers.get("last-modified")
    found.entries = list(read.entries)
    if snapshot.kind in LINKING_KINDS:
        _read_linked(run, read.links, found)
    if found.cut:
        found.etag = found.last_modified = None


def _read_listing(run: Pass, result: FetchResult, found: Gathered) -> ReadResult:
    """The source's own document read, with the child sitemaps of a sitemap index."""
    reader = get_reader(run.snapshot.kind)
    read = reader(result.body, result.headers, result.url, run.snapshot.options)
    _read_children(run, reader, read, found)
    found.warnings.extend(read.warnings)
    return read


def _read_children(run: Pass, reader: Reader, read: ReadResult, found: Gathered) -> None:
    """Add the links of a sitemap index's children to `read`, until the budget is spent."""
    children = read.sitemaps[:MAX_CHILD_SITEMAPS]
    for number, child in enumerate(children):
        if run.budget.spent():
            found.cut = True
            left = len(children) - number
            found.warnings.append(
                f"{run.budget.describe()}: {left} sitemap(s) left for the next pass"
            )
            return
        child_read = _read_child(run, reader, child, found.warnings)
        if child_read is None:
            continue
        read.links.extend(child_read.links)
        # Links a child had to skip are worth a warning; that a child matched none of the
        # patterns is not (an index has sitemaps of images, tags and so on).
        found.warnings.extend(f"sitemap {child}: {w}" for w in child_read.warnings if is_skip(w))


def _read_child(run: Pass, reader: Reader, child: str, warnings: list[str]) -> ReadResult | None:
    """One child sitemap read, or None with a warning: its fault stays with it."""
    try:
        page = run.fetcher.get(child)
        return reader(page.body, page.headers, page.url, run.snapshot.options)
    except (FetchError, ReadError) as exc:
        warnings.append(f"sitemap {child}: {exc}")
    except Exception as exc:  # one child's fault stays with that child
        log.warning("reading sitemap %s failed", child, exc_info=True)
        warnings.append(f"sitemap {child}: {type(exc).__name__}: {exc}")
    return None


def _read_linked(run: Pass, links: list[Link], found: Gathered) -> None:
    """Plan and read the article pages of a sitemap or index source; list the rest."""
    snapshot = run.snapshot
    plan = plan_reads(
        links,
        snapshot.known,
        at=run.at,
        baseline=snapshot.baseline,
        backfill_since=run.at - timedelta(days=run.backfill_days),
        max_pages=int_option(snapshot.options, "max_pages", DEFAULT_MAX_PAGES),
    )
    found.list_only = plan.list_only
    found.cut = found.cut or plan.deferred > 0
    passed = read_pages(run.fetcher, plan.reads, snapshot.known, run.budget)
    notes = _notes(run, passed, found)
    if passed.errors and not passed.pages and len(passed.errors) > passed.gone:
        found.failure = NoPageRead("no page could be read: " + "; ".join(notes))
        return
    found.warnings.extend(notes)
    _keep_pages(plan, passed, found)


def _notes(run: Pass, passed: ReadPass, found: Gathered) -> list[str]:
    """What the pass over the pages should warn of; pages it left unread cut the pass."""
    notes = []
    if passed.errors:
        notes.append(f"{len(passed.errors)} page(s) could not be read, first: {passed.errors[0]}")
    if passed.unread:
        found.cut = True
        notes.append(
            f"{run.budget.describe()}: {len(passed.unread)} page(s) left for the next pass"
        )
        if run.snapshot.baseline:
            # As with pages beyond max_pages at the baseline: listed, read quietly later.
            known = run.snapshot.known
            found.list_only += [r.link for r in passed.unread if r.link.url not in known]
    return notes


def _keep_pages(plan: Plan, passed: ReadPass, found: Gathered) -> None:
    found.entries = [page.entry for page in passed.pages if page.entry is not None]
    found.silent = {r.link.url for r in plan.reads if r.silent}
    found.pages = {page.link.url: page for page in passed.pages}
