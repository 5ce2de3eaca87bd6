"""Entry: what a reader makes of one article, as plain, already-sanitised data."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

from digest.watch.dates import plausible
from digest.watch.errors import WatchError


@dataclass(frozen=True, slots=True)
class Entry:
    key: str  # stable identity within its source: guid, or canonical URL
    url: str
    title: str
    summary_html: str = ""  # allow-listed HTML only
    summary_text: str = ""
    content_text: str = ""  # normalised text of the whole article, for change detection
    published_at: datetime | None = None
    updated_at: datetime | None = None
    # (nearest heading, paragraph) pairs, for naming what changed; empty for feeds.
    blocks: tuple[tuple[str, str], ...] = ()
    declared: str = ""  # the page's own updated line, e.g. «Sist faglig oppdatert 14. mars 2024»
    content_hash: str = field(init=False)

    def __post_init__(self) -> None:
        # Every reader builds entries, so an absurd date from any of them ends here.
        object.__setattr__(self, "published_at", plausible(self.published_at))
        object.__setattr__(self, "updated_at", plausible(self.updated_at))
        digest = hashlib.sha256(f"{self.title}\n{self.content_text}".encode()).hexdigest()
        object.__setattr__(self, "content_hash", digest)


@dataclass(frozen=True, slots=True)
class Link:
    """An article page a listing (sitemap or index) points to."""

    url: str
    lastmod: datetime | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "lastmod", plausible(self.lastmod))


@dataclass(slots=True)
class ReadResult:
    entries: list[Entry] = field(default_factory=list)
    # Article pages to read (sitemaps, index pages) and further sitemaps (sitemap indexes).
    links: list[Link] = field(default_factory=list)
    sitemaps: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class ReadError(WatchError):
    """The body could not be read as the source's kind; the message says why."""


_SKIPPED = "skipped"


@dataclass(slots=True)
class SkippedLinks:
    """Links a reader could not use: each is skipped, and all of them make one warning."""

    count: int = 0
    first: str = ""

    def add(self, problem: object) -> None:
        self.count += 1
        self.first = self.first or str(problem)

    def warnings(self) -> list[str]:
        if not self.count:
            return []
        return [f"{_SKIPPED} {self.count} link(s) that cannot be read, first: {self.first}"]


def is_skip(warning: str) -> bool:
    """Whether a reader's warning is the one about links it skipped."""
    return warning.startswith(f"{_SKIPPED} ")
