"""The `index` reader: an HTML listing page («Aktuelt»), its article links chosen by pattern.

Options: `link_pattern` (required), a regular expression (RE2) the absolute URL must match;
`link_selector` (optional), a CSS selector for the links or the elements holding them.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urljoin

from selectolax.lexbor import LexborHTMLParser, LexborNode

from digest.watch.entries import Link, ReadError, ReadResult, SkippedLinks
from digest.watch.html import decode_html, parse
from digest.watch.patterns import BadPattern, Pattern, compile_pattern
from digest.watch.urls import BadLink, canonical_url

MAX_LINKS = 500


def read(
    body: bytes, headers: Mapping[str, str], url: str, options: Mapping[str, object]
) -> ReadResult:
    pattern_text = options.get("link_pattern")
    if not isinstance(pattern_text, str) or not pattern_text:
        raise ReadError("an index source needs the option link_pattern")
    try:
        pattern = compile_pattern(pattern_text)
    except BadPattern as exc:
        raise ReadError(f"link_pattern: {exc}") from None
    if not body.strip():
        raise ReadError("the index page is empty")
    try:
        page = canonical_url(url)
    except BadLink as exc:
        raise ReadError(f"the page's own URL cannot be used: {exc}") from None
    tree = parse(decode_html(body, headers))
    selector = options.get("link_selector")
    anchors = _anchors(tree, str(selector or "a[href]"))
    result = _links(anchors, _base_url(tree, url), page, pattern)
    if not result.links:
        result.warnings.append(
            f"no link on the page matched link_pattern {pattern_text!r}"
            + (f" within {selector!r}" if selector else "")
        )
    return result


def _anchors(tree: LexborHTMLParser, selector: str) -> list[LexborNode]:
    """The links `selector` chooses: links themselves, or the links inside what it chooses."""
    try:
        chosen = tree.css(selector)
    except Exception as exc:  # selectolax raises plain exceptions for bad selectors
        raise ReadError(f"link_selector is not a valid CSS selector: {exc}") from None
    anchors = []
    for node in chosen:
        if node.tag == "a":
            anchors.append(node)
        else:
            anchors.extend(node.css("a[href]"))
    return anchors


def _links(anchors: list[LexborNode], base_url: str, page: str, pattern: Pattern) -> ReadResult:
    """The article links among `anchors`, at most MAX_LINKS; a bad link is skipped alone."""
    result = ReadResult()
    seen: set[str] = set()
    skipped = SkippedLinks()
    for anchor in anchors:
        href = (anchor.attributes.get("href") or "").strip()
        if not href or href.startswith(("#", "mailto:", "tel:", "javascript:")):
            continue
        try:
            absolute = urljoin(base_url, href)
            if not absolute.startswith(("http://", "https://")):
                continue
            canonical = canonical_url(absolute)
        except (BadLink, ValueError) as exc:  # ValueError: urljoin on «http://[::1/x»
            skipped.add(exc if isinstance(exc, BadLink) else BadLink(href, exc))
            continue  # that link only
        if canonical in seen or canonical == page or not pattern.search(canonical):
            continue
        seen.add(canonical)
        result.links.append(Link(canonical))
        if len(result.links) >= MAX_LINKS:
            break
    result.warnings.extend(skipped.warnings())
    return result


def _base_url(tree: LexborHTMLParser, url: str) -> str:
    """The URL links are relative to: the page's, or its <base href> if that is usable."""
    base = tree.css_first("base[href]")
    if base is None:
        return url
    try:
        joined = urljoin(url, base.attributes.get("href") or "")
        canonical_url(joined)  # raises for a port that is no number, and the like
    except (BadLink, ValueError):
        return url  # a broken <base> is ignored, as browsers do
    return joined
