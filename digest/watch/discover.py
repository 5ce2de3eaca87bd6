"""Discovering how to watch a site: its feeds, sitemaps and article-link patterns.

`discover` fetches a few well-known places; the rest is pure and tested on bytes.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from digest.watch.entries import ReadError
from digest.watch.fetch import Fetcher, FetchError
from digest.watch.html import decode_html, parse
from digest.watch.readers import feed as feed_reader
from digest.watch.readers import sitemap as sitemap_reader

FEED_TYPES = ("application/rss+xml", "application/atom+xml", "application/feed+json")


@dataclass(slots=True)
class Discovery:
    url: str
    final_url: str = ""
    title: str = ""
    feeds: list[str] = field(default_factory=list)
    sitemaps: list[str] = field(default_factory=list)
    index_pattern: str | None = None
    index_examples: list[str] = field(default_factory=list)
    h2_count: int = 0
    notes: list[str] = field(default_factory=list)


def feed_links(html: str, base: str) -> list[str]:
    tree = parse(html)
    found = []
    for node in tree.css('link[rel~="alternate"][href]'):
        if (node.attributes.get("type") or "").split(";")[0].strip().lower() in FEED_TYPES:
            href = urljoin(base, node.attributes.get("href") or "")
            if href.startswith(("http://", "https://")) and href not in found:
                found.append(href)
    return found


def sitemaps_in_robots(text: str) -> list[str]:
    return [
        line.split(":", 1)[1].strip()
        for line in text.splitlines()
        if line.lower().startswith("sitemap:") and "://" in line
    ]


def guess_index_pattern(html: str, base: str) -> tuple[str | None, list[str]]:
    """A link pattern for the site's article links: its biggest family of same-host paths."""
    origin = urlsplit(base)
    families: dict[str, list[str]] = {}
    numbered: Counter[str] = Counter()
    for node in parse(html).css("a[href]"):
        absolute = urljoin(base, (node.attributes.get("href") or "").strip())
        parts = urlsplit(absolute)
        if parts.netloc != origin.netloc or parts.scheme not in ("http", "https"):
            continue
        segments = [s for s in parts.path.split("/") if s]
        if len(segments) < 2:
            continue
        url = f"{parts.scheme}://{parts.netloc}{parts.path}"
        family = families.setdefault(segments[0], [])
        if url not in family:
            family.append(url)
            if segments[1].isdigit():
                numbered[segments[0]] += 1
    if not families:
        return None, []
    segment, urls = max(families.items(), key=lambda kv: len(kv[1]))
    if len(urls) < 3:
        return None, []
    host = re.escape(f"{origin.scheme}://{origin.netloc}")
    if numbered[segment] * 2 >= len(urls):
        return f"^{host}/{re.escape(segment)}/\\d+/[^/?#]+/?$", urls[:5]
    return f"^{host}/{re.escape(segment)}/[^?#]+$", urls[:5]


def discover(fetcher: Fetcher, url: str) -> Discovery:
    found = Discovery(url)
    try:
        page = fetcher.get(url)
    except FetchError as exc:
        found.notes.append(f"{url}: {exc.reason}")
        return found
    found.final_url = page.url
    if page.url != url:
        found.notes.append(
            f"redirected to {page.url}" + (" (permanently)" if page.moved_to else "")
        )
    html = decode_html(page.body, page.headers)
    title = parse(html).css_first("title")
    found.title = " ".join((title.text() if title is not None else "").split())
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(page.url))
    found.feeds = _feeds(fetcher, html, page.url, origin)
    found.sitemaps = _sitemaps(fetcher, origin, found.notes)
    found.index_pattern, found.index_examples = guess_index_pattern(html, page.url)
    found.h2_count = len(parse(html).css("main h2, article h2") or parse(html).css("h2"))
    return found


def _feeds(fetcher: Fetcher, html: str, url: str, origin: str) -> list[str]:
    """The feeds the page links to, and /feed/ if it is one."""
    feeds = feed_links(html, url)
    for candidate in (urljoin(origin, "/feed/"),):
        if candidate not in feeds and _is_feed(fetcher, candidate):
            feeds.append(candidate)
    return feeds


def _sitemaps(fetcher: Fetcher, origin: str, notes: list[str]) -> list[str]:
    """The sitemaps robots.txt names, and those at the usual places, that are sitemaps."""
    robots = []
    try:
        robots = sitemaps_in_robots(
            fetcher.get(urljoin(origin, "/robots.txt")).body.decode("utf-8", errors="replace")
        )
    except FetchError as exc:
        notes.append(f"robots.txt: {exc.reason}")
    sitemaps: list[str] = []
    for candidate in [*robots, urljoin(origin, "/sitemap.xml"), urljoin(origin, "/wp-sitemap.xml")]:
        if candidate not in sitemaps and _is_sitemap(fetcher, candidate):
            sitemaps.append(candidate)
    return sitemaps


def _is_feed(fetcher: Fetcher, url: str) -> bool:
    try:
        page = fetcher.get(url)
        return bool(feed_reader.read(page.body, page.headers, page.url, {}).entries)
    except (FetchError, ReadError):
        return False


def _is_sitemap(fetcher: Fetcher, url: str) -> bool:
    try:
        page = fetcher.get(url)
        result = sitemap_reader.read(page.body, page.headers, page.url, {})
    except (FetchError, ReadError):
        return False
    return bool(result.links or result.sitemaps)


def suggest(found: Discovery) -> str:
    """A ready [[source]] table: a feed if there is one, else a sitemap, else an index."""
    host = urlsplit(found.final_url or found.url).hostname or "site"
    key = re.sub(r"[^a-z0-9]+", "-", host.removeprefix("www.").rsplit(".", 1)[0].lower())
    name = found.title or host
    lines = ["[[source]]", f'key = "{key}"', f'name = "{_toml(name)}"']
    if found.feeds:
        lines += ['kind = "feed"', f'url = "{_toml(found.feeds[0])}"']
    elif found.sitemaps:
        origin = re.escape("{0.scheme}://{0.netloc}".format(urlsplit(found.final_url)))
        lines += [
            'kind = "sitemap"',
            f'url = "{_toml(found.sitemaps[0])}"',
            f'options = {{ include = ["^{_toml(origin)}/"] }}',
        ]
    elif found.index_pattern:
        lines += [
            'kind = "index"',
            f'url = "{_toml(found.final_url)}"',
            f'options = {{ link_pattern = "{_toml(found.index_pattern)}" }}',
        ]
    else:
        lines += ['kind = "sections"', f'url = "{_toml(found.final_url or found.url)}"']
    lines += ["topics = []  # choose from [topics]", "audiences = []", 'language = "nb"']
    return "\n".join(lines)


def _toml(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')
