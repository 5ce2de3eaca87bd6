"""The `feed` reader: RSS and Atom through feedparser, sanitised once with nh3.

Plain RSS 2.0 and Atom 1.0 feeds take a fast path (`plainfeed`); feedparser reads the rest.
"""

from __future__ import annotations

import calendar
import io
import re
import xml.sax
from collections.abc import Mapping
from datetime import UTC, datetime
from time import struct_time
from typing import Any

from digest.core.clean import html_to_text, normalise_text, sanitise_html, shorten
from digest.watch.entries import Entry, ReadError, ReadResult, SkippedLinks
from digest.watch.html import text_codec
from digest.watch.readers.plainfeed import RawItem, read_plain
from digest.watch.urls import BadLink, canonical_url
from digest.watch.xmlguard import declares_entities, text_declares_entities

MAX_ENTRIES = 500


def read(
    body: bytes, headers: Mapping[str, str], url: str, options: Mapping[str, object]
) -> ReadResult:
    if not body.strip():
        raise ReadError("the feed is empty")
    if declares_entities(body, headers.get("content-type", "")):
        # No real feed declares entities; billion-laughs and external-entity attacks do.
        raise ReadError("refused unsafe XML: the feed declares entities or a DTD subset")
    items = read_plain(body, headers.get("content-type", ""), url)
    if items is None:
        items = _feedparser_items(body, headers, url)
    entries: list[Entry] = []
    seen: set[str] = set()
    skipped = SkippedLinks()
    for raw in items[:MAX_ENTRIES]:
        try:
            entry = _entry(raw, url)
        except BadLink as exc:
            skipped.add(exc)  # that item only; the rest of the feed is read
            continue
        if entry is not None and entry.key not in seen:
            seen.add(entry.key)
            entries.append(entry)
    return ReadResult(entries, warnings=skipped.warnings())


def _feedparser_items(body: bytes, headers: Mapping[str, str], url: str) -> list[RawItem]:
    parsed = _feedparser_parse(body, headers, url)
    problem = parsed.get("bozo_exception")
    if isinstance(problem, xml.sax.SAXException):
        # A feed cut off in transfer parses "loosely" into partial entries whose changed
        # text would be reported as revisions: refuse it and keep what is stored.
        raise ReadError(f"not a readable feed: not well-formed XML ({problem})")
    if not parsed.entries and (problem or not parsed.get("version")):
        raise ReadError(f"not a readable feed: {problem or 'no RSS or Atom document found'}")
    return [_raw_item(raw) for raw in parsed.entries]


def _feedparser_parse(body: bytes, headers: Mapping[str, str], url: str) -> Any:
    """feedparser's result for the feed (its own untyped dict), or ReadError."""
    # Only feeds off the fast path need feedparser; it is slow to import.
    import feedparser  # type: ignore[import-untyped]
    from feedparser.encodings import convert_to_utf8  # type: ignore[import-untyped]

    response_headers = {"content-location": url, **_usable_headers(headers)}
    try:
        # The very text feedparser's parsers will read, in whatever encoding it chose:
        # no entity declaration may be in it, however the bytes hid one.
        as_read = convert_to_utf8(dict(response_headers), body, {})
        if text_declares_entities(as_read.decode("utf-8", "ignore")):
            raise ReadError("refused unsafe XML: the feed declares entities or a DTD subset")
        return feedparser.parse(
            # A file object: given bytes or a string, feedparser first tries to open
            # them as a file name or URL («/etc/passwd», «/dev/zero»).
            io.BytesIO(body),
            response_headers=response_headers,
            # feedparser's own sanitiser is slow and we sanitise with nh3 anyway.
            sanitize_html=False,
            # Relative links are resolved by nh3 while sanitising, in the same pass.
            resolve_relative_uris=False,
        )
    except ReadError:
        raise
    except Exception as exc:  # feedparser gives up in its own ways (an unusable codec)
        raise ReadError(f"not a readable feed: {type(exc).__name__}: {exc}") from None


def _raw_item(raw: Any) -> RawItem:
    """One of feedparser's entries as the fast path would have read it."""
    return RawItem(
        title=raw.get("title") or "",
        link=raw.get("link") or "",
        guid=raw.get("id") or "",
        summary=raw.get("summary") or "",
        content=" ".join(c.get("value", "") for c in raw.get("content") or []),
        # dict.get: feedparser's own get maps a missing updated_parsed to published_parsed.
        published=_when(dict.get(raw, "published_parsed")),
        updated=_when(dict.get(raw, "updated_parsed")),
    )


def _usable_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers for feedparser, without a charset no feed can be in («undefined», «rot13»):
    feedparser would try it and fail; without it, feedparser finds the encoding itself."""
    usable = {k.lower(): v for k, v in headers.items()}
    content_type = usable.get("content-type", "")
    charset = re.search(r";\s*charset\s*=\s*[\"']?([^\"';\s]*)[\"']?", content_type, re.I)
    if charset and text_codec(charset[1]) is None:
        usable["content-type"] = content_type[: charset.start()] + content_type[charset.end() :]
    return usable


def _entry(raw: RawItem, feed_url: str) -> Entry | None:
    link = canonical_url(raw.link) if raw.link.startswith(("http://", "https://")) else ""
    guid = normalise_text(raw.guid)[:1000]
    key = guid or link
    if not key:
        return None
    content_source = raw.content or raw.summary
    summary_html = sanitise_html(raw.summary or content_source, link or feed_url)
    summary_text = shorten(html_to_text(summary_html), 600)
    title = html_to_text(raw.title)[:500] or shorten(summary_text, 80) or "(uten tittel)"
    return Entry(
        key=key,
        url=link or feed_url,
        title=title,
        summary_html=summary_html,
        summary_text=summary_text,
        content_text=html_to_text(content_source),
        published_at=raw.published,
        updated_at=raw.updated,
    )


def _when(value: struct_time | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), UTC)
    except (OverflowError, ValueError, TypeError, OSError):
        return None
