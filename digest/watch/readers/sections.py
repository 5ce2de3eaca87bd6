"""The `sections` reader: one long guide page split at its headings, each section an item.

Each section has its own URL (the page's, with the heading's anchor), its own declared
date («Sist faglig oppdatert 14. november 2023») and its own text, so a revised chapter
is reported as that chapter. Option `heading`: CSS selector of the headings (default h2).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field

from selectolax.lexbor import LexborNode

from digest.core.clean import normalise_text, shorten
from digest.watch.dates import is_date_line, labelled_dates
from digest.watch.entries import Entry, ReadError, ReadResult
from digest.watch.html import decode_html, main_node, parse, pieces
from digest.watch.urls import MAX_URL_LENGTH, BadLink, canonical_url


def slug(text: str) -> str:
    text = text.lower().replace("æ", "ae").replace("ø", "o").replace("å", "a")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")[:80] or "del"


MAX_ANCHOR = 100


def _anchor(given: str, heading: str) -> str:
    """The heading's own id when it is one a URL can carry, else a slug of its text."""
    anchor = normalise_text(given)
    if not anchor or len(anchor) > MAX_ANCHOR or " " in anchor:
        return slug(heading)
    return anchor


@dataclass(slots=True)
class _Section:
    title: str
    anchor: str
    blocks: list[tuple[str, str]] = field(default_factory=list)  # (sub-heading, paragraph)
    # Date lines count for the hash and the declared date, not as paragraphs that changed.
    date_lines: list[str] = field(default_factory=list)


def read(
    body: bytes, headers: Mapping[str, str], url: str, options: Mapping[str, object]
) -> ReadResult:
    if not body.strip():
        raise ReadError("the page is empty")
    selector = str(options.get("heading") or "h2")
    main = main_node(parse(decode_html(body, headers)))
    if main is None:
        raise ReadError("the page has no body")
    try:
        heading_ids = {node.mem_id for node in main.css(selector)}
    except Exception as exc:  # selectolax raises plain exceptions for bad selectors
        raise ReadError(f"heading is not a valid CSS selector: {exc}") from None
    page = _page_url(url)
    sections = _sections(main, heading_ids)
    result = ReadResult(entries=[_entry(page, section) for section in sections])
    if not sections:
        result.warnings.append(f"no heading on the page matched {selector!r}")
    return result


def _page_url(url: str) -> str:
    """The page's canonical URL, with room for an anchor, or ReadError."""
    try:
        page = canonical_url(url)
    except BadLink as exc:
        raise ReadError(f"the page's own URL cannot be used: {exc}") from None
    if len(page) > MAX_URL_LENGTH - MAX_ANCHOR - 10:  # room for «#anchor-2»
        raise ReadError("the page's URL is too long to name its sections by")
    return page


def _sections(main: LexborNode, heading_ids: set[int]) -> list[_Section]:
    """The page split at the chosen headings; text before the first belongs to none."""
    sections: list[_Section] = []
    anchors: set[str] = set()
    sub_heading = ""
    for piece in pieces(main):
        if piece.is_heading and piece.node.mem_id in heading_ids:
            anchor = _unique(_anchor(piece.node.attributes.get("id") or "", piece.text), anchors)
            sections.append(_Section(piece.text, anchor))
            sub_heading = piece.text
        elif not sections:
            continue
        elif piece.is_heading:
            sub_heading = piece.text
        elif is_date_line(piece.text):
            sections[-1].date_lines.append(piece.text)
        else:
            sections[-1].blocks.append((sub_heading, piece.text))
    return sections


def _unique(anchor: str, anchors: set[str]) -> str:
    """`anchor`, numbered when an earlier chapter of the same name has it; kept in `anchors`."""
    base, n = anchor, 2
    while anchor in anchors:
        anchor, n = f"{base}-{n}", n + 1
    anchors.add(anchor)
    return anchor


def _entry(page: str, section: _Section) -> Entry:
    date_lines = " ".join(section.date_lines)
    text = " ".join(t for _, t in section.blocks)
    dates = labelled_dates(f"{date_lines} {text}")
    return Entry(
        key=f"{page}#{section.anchor}",
        url=f"{page}#{section.anchor}",
        title=section.title[:500],
        summary_text=shorten(section.blocks[0][1] if section.blocks else "", 400),
        content_text=f"{section.title} {text} {date_lines}".strip(),
        published_at=dates.published,
        updated_at=dates.updated,
        blocks=tuple(section.blocks),
        declared=dates.updated_text,
    )
