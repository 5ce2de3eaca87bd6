"""Article details from an HTML page (pure): title, dates, summary, main text and its blocks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from selectolax.lexbor import LexborHTMLParser, LexborNode

from digest.core.clean import html_to_text, normalise_text, shorten
from digest.watch.dates import ACCESS_DATE, is_date_line, labelled_dates, parse_date
from digest.watch.entries import Entry
from digest.watch.html import Piece, decode_html, json_ld, main_node, meta, parse, pieces
from digest.watch.urls import BadLink, canonical_url

SUMMARY_LENGTH = 400
HEAD_LENGTH = 400  # how far from the top a byline date is looked for


@dataclass(frozen=True, slots=True)
class Article:
    url: str
    title: str
    published: datetime | None
    updated: datetime | None
    declared: str  # the updated date as the page writes it, for change notes
    summary: str
    text: str
    blocks: tuple[tuple[str, str], ...]  # (nearest heading, paragraph text)

    def entry(self, key: str | None = None) -> Entry:
        return Entry(
            key=key or self.url,
            url=self.url,
            title=self.title,
            summary_text=self.summary,
            content_text=self.text,
            published_at=self.published,
            updated_at=self.updated,
            blocks=self.blocks,
            declared=self.declared,
        )


def _ld_value(objects: list[dict[str, object]], *keys: str) -> str:
    for obj in objects:
        for key in keys:
            value = obj.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
    return ""


def read_article(html: str, url: str) -> Article:
    tree = parse(html)
    ld = json_ld(tree)
    for node in tree.css("script, style, noscript, template"):
        node.decompose()  # their text is code, never the article's
    # Read before main_node, which removes the page's chrome from the tree.
    title = _title(tree, ld)
    description = html_to_text(meta(tree, "description", "og:description"))
    published, updated = _declared_dates(tree, ld)
    first_time = _first_time(tree)
    main = main_node(tree)
    parts = list(pieces(main)) if main is not None else []
    head = _head_text(main) if main is not None else ""
    text = " ".join(p.text for p in parts)
    blocks = _blocks(parts)
    labelled = labelled_dates(text)
    if labelled.published is None and labelled.updated is None:
        labelled = labelled_dates(head)  # a labelled date in a div or span of the byline
    published = published or labelled.published or first_time
    if published is None:
        # Bylines without a label («10.04.2018, kl. 11:15», «fredag 8. januar 2021»)
        # stand near the top, in a paragraph or in any other element: the first date in
        # document order, so a byline in spans wins over a date in the lead after it. The
        # paragraphs alone are the fallback when other text at the top is long.
        published = parse_date(head) or parse_date(text[:HEAD_LENGTH])
    return Article(
        url=_page_url(url),
        title=title or shorten(text, 80) or url,
        published=published,
        updated=labelled.updated or updated,
        declared=labelled.updated_text,
        summary=shorten(description or (blocks[0][1] if blocks else ""), SUMMARY_LENGTH),
        text=text,
        blocks=tuple(blocks),
    )


def _title(tree: LexborHTMLParser, ld: list[dict[str, object]]) -> str:
    h1 = tree.css_first("h1")
    title_node = tree.css_first("title")
    return normalise_text(
        html_to_text(meta(tree, "og:title"))
        or (h1.text(deep=True) if h1 is not None else "")
        or _ld_value(ld, "headline", "name")
        or (title_node.text(deep=True) if title_node is not None else "")
    )[:500]


def _declared_dates(
    tree: LexborHTMLParser, ld: list[dict[str, object]]
) -> tuple[datetime | None, datetime | None]:
    """(published, updated) as the page's metadata or JSON-LD declare them."""
    published = parse_date(meta(tree, "article:published_time", "datePublished")) or parse_date(
        _ld_value(ld, "datePublished")
    )
    updated = parse_date(meta(tree, "article:modified_time", "dateModified")) or parse_date(
        _ld_value(ld, "dateModified")
    )
    return published, updated


def _first_time(tree: LexborHTMLParser) -> datetime | None:
    """The date of the page's first <time datetime>, if it has one."""
    node = tree.css_first("time[datetime]")
    return parse_date(node.attributes.get("datetime") or "") if node else None


def _blocks(parts: list[Piece]) -> list[tuple[str, str]]:
    """(nearest heading, paragraph) pairs; date lines are not paragraphs that change."""
    blocks: list[tuple[str, str]] = []
    heading = ""
    for piece in parts:
        if piece.is_heading:
            heading = piece.text
        elif not is_date_line(piece.text):
            blocks.append((heading, piece.text))
    return blocks


def _head_text(main: LexborNode) -> str:
    """The text at the top of the article, whatever elements hold it (a byline in spans)."""
    raw = normalise_text((main.text(deep=True, separator=" ") or "")[: HEAD_LENGTH * 20])
    return normalise_text(ACCESS_DATE.sub(" ", raw))[:HEAD_LENGTH]


def _page_url(url: str) -> str:
    try:
        return canonical_url(url)
    except BadLink:
        return url  # the page was fetched from it, so it is usable as it is


def read_page(body: bytes, headers: Mapping[str, str], url: str, key: str) -> Entry:
    """The entry of one article page as fetched, known by `key` (the URL it was listed as)."""
    return read_article(decode_html(body, headers), url).entry(key=key)
