"""The `sitemap` reader: sitemaps.org urlsets and sitemap indexes, filtered by URL patterns.

XML is parsed with defusedxml: no DTDs, no entity expansion, no external entities.
Options: `include` and `exclude`, lists of regular expressions (RE2) on the absolute URL.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Mapping
from datetime import datetime
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from digest.watch.dates import parse_date
from digest.watch.entries import Link, ReadError, ReadResult, SkippedLinks
from digest.watch.patterns import BadPattern, Pattern, compile_pattern
from digest.watch.urls import BadLink, canonical_url
from digest.watch.xmlguard import declares_entities

MAX_URLS = 50_000  # the sitemaps.org limit per file
# Well under the protocol's 50 MB: every later step (the XML guard, the parser) holds
# the text in memory, and a real sitemap of 50,000 URLs is about 10 MB.
MAX_UNZIPPED = 20_000_000


def compile_patterns(options: Mapping[str, object], name: str) -> list[Pattern]:
    raw = options.get(name) or []
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list):
        raise ReadError(f"option {name!r} must be a list of regular expressions")
    try:
        return [compile_pattern(str(p)) for p in raw]
    except BadPattern as exc:
        raise ReadError(f"option {name!r}: {exc}") from None


def wanted(url: str, include: list[Pattern], exclude: list[Pattern]) -> bool:
    if include and not any(p.search(url) for p in include):
        return False
    return not any(p.search(url) for p in exclude)


def _gunzip(body: bytes) -> bytes:
    try:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        data = inflater.decompress(body, MAX_UNZIPPED)
    except zlib.error as exc:
        raise ReadError(f"broken gzip data: {exc}") from None
    if inflater.unconsumed_tail:
        raise ReadError(f"sitemap larger than {MAX_UNZIPPED} bytes unzipped")
    return data


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def read(
    body: bytes, headers: Mapping[str, str], url: str, options: Mapping[str, object]
) -> ReadResult:
    root = _root(body, headers)
    include = compile_patterns(options, "include")
    exclude = compile_patterns(options, "exclude")
    kind = _local(root.tag)
    if kind not in ("urlset", "sitemapindex"):
        raise ReadError(f"not a sitemap: the document is <{kind}>")
    result = ReadResult()
    seen: set[str] = set()
    skipped = SkippedLinks()
    for loc, lastmod in _locations(root):
        try:
            canonical = canonical_url(loc)
        except BadLink as exc:
            skipped.add(exc)  # that URL only; the rest of the sitemap is read
            continue
        if kind == "sitemapindex":
            result.sitemaps.append(loc)
        elif canonical not in seen and wanted(canonical, include, exclude):
            seen.add(canonical)
            result.links.append(Link(canonical, lastmod))
    result.warnings.extend(skipped.warnings())
    if kind == "urlset" and not result.links:
        result.warnings.append("no URL in the sitemap matched the include/exclude patterns")
    return result


def _root(body: bytes, headers: Mapping[str, str]) -> Element:
    """The sitemap's root element, parsed safely (gunzipped first if need be), or ReadError."""
    if body[:2] == b"\x1f\x8b":
        body = _gunzip(body)
    if not body.strip():
        raise ReadError("the sitemap is empty")
    if declares_entities(body, headers.get("content-type", "")):
        # Refused before any parser sees the bytes, not only because defusedxml would.
        raise ReadError("refused unsafe XML in the sitemap: it declares entities")
    try:
        return fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise ReadError(f"refused unsafe XML in the sitemap: {type(exc).__name__}") from None
    except (ParseError, LookupError, UnicodeError) as exc:  # LookupError: unknown encoding
        raise ReadError(f"not a readable sitemap: {exc}") from None


def _locations(root: Element) -> Iterator[tuple[str, datetime | None]]:
    """(loc, lastmod) of each <url> or <sitemap> with an http(s) loc, up to MAX_URLS."""
    for element in list(root)[:MAX_URLS]:
        loc = lastmod = None
        for child in element:
            name = _local(child.tag)
            if name == "loc":
                loc = (child.text or "").strip()
            elif name == "lastmod":
                lastmod = parse_date((child.text or "").strip())
        if loc and loc.startswith(("http://", "https://")):
            yield loc, lastmod
