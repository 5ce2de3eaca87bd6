"""The `feed` reader: RSS and Atom through feedparser, sanitised once with nh3."""

from __future__ import annotations

import calendar
import re
import xml.sax
from collections.abc import Mapping
from datetime import UTC, datetime
from time import struct_time
from typing import Any

import feedparser

from digest.watch.clean import canonical_url, html_to_text, normalise_text, sanitise_html, shorten
from digest.watch.entries import Entry, ReadError, ReadResult

MAX_ENTRIES = 500
_ENTITY_DECLARATION = re.compile(rb"<!ENTITY", re.IGNORECASE)


def read(
    body: bytes, headers: Mapping[str, str], url: str, options: Mapping[str, object]
) -> ReadResult:
    if not body.strip():
        raise ReadError("the feed is empty")
    if _ENTITY_DECLARATION.search(body, 0, 65536):
        # No real feed declares entities; billion-laughs and external-entity attacks do.
        raise ReadError("refused unsafe XML: the feed declares entities")
    # feedparser's own sanitiser is slow and we sanitise with nh3 anyway.
    parsed = feedparser.parse(
        body,
        response_headers={"content-location": url, **{k.lower(): v for k, v in headers.items()}},
        sanitize_html=False,
        # Relative links are resolved by nh3 while sanitising, in the same pass.
        resolve_relative_uris=False,
    )
    problem = parsed.get("bozo_exception")
    if isinstance(problem, xml.sax.SAXException):
        # A feed cut off in transfer parses "loosely" into partial entries whose changed
        # text would be reported as revisions: refuse it and keep what is stored.
        raise ReadError(f"not a readable feed: not well-formed XML ({problem})")
    if not parsed.entries and (problem or not parsed.get("version")):
        raise ReadError(f"not a readable feed: {problem or 'no RSS or Atom document found'}")
    entries: list[Entry] = []
    seen: set[str] = set()
    for raw in parsed.entries[:MAX_ENTRIES]:
        entry = _entry(raw, url)
        if entry is not None and entry.key not in seen:
            seen.add(entry.key)
            entries.append(entry)
    return ReadResult(entries)


def _entry(raw: Any, feed_url: str) -> Entry | None:
    link = raw.get("link") or ""
    link = canonical_url(link) if link.startswith(("http://", "https://")) else ""
    guid = normalise_text(raw.get("id") or "")[:1000]
    key = guid or link
    if not key:
        return None
    summary_source = raw.get("summary") or ""
    content_source = (
        " ".join(c.get("value", "") for c in raw.get("content") or []) or summary_source
    )
    summary_html = sanitise_html(summary_source or content_source, link or feed_url)
    summary_text = shorten(html_to_text(summary_html), 600)
    title = (
        html_to_text(raw.get("title") or "")[:500] or shorten(summary_text, 80) or "(uten tittel)"
    )
    return Entry(
        key=key,
        url=link or feed_url,
        title=title,
        summary_html=summary_html,
        summary_text=summary_text,
        content_text=html_to_text(content_source),
        # dict.get: feedparser's own get maps a missing updated_parsed to published_parsed.
        published_at=_when(dict.get(raw, "published_parsed")),
        updated_at=_when(dict.get(raw, "updated_parsed")),
    )


def _when(value: struct_time | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), UTC)
    except (OverflowError, ValueError, OSError):
        return None
