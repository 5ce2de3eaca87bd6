"""Reading HTML pages (pure): decoding bytes, finding the main content, and its blocks.

Parsing is Lexbor's HTML5 parser (selectolax). The main content is what is left of
`<main>`, `<article>` or the body once navigation, headers, footers, scripts and forms
are removed; blocks are its paragraphs and list items, each under its nearest heading.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from selectolax.lexbor import LexborHTMLParser, LexborNode

from digest.core.clean import normalise_text
from digest.watch.dates import ACCESS_DATE

HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
BLOCKS = frozenset({"p", "li", "blockquote", "pre", "dd", "dt", "td", "th", "figcaption"})
CHROME = (
    "nav, header, footer, aside, script, style, noscript, form, iframe, svg, button, "
    "template, [role=navigation], [role=banner], [role=contentinfo], [aria-hidden=true]"
)
MAIN = ("main", "article", "[role=main]")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
# Python codecs that are no page's encoding: they decode escapes or host names, or are
# refused by browsers (UTF-7), and could turn bytes into lone surrogates or hidden text.
_NOT_PAGE_ENCODINGS = frozenset(
    {"unicode-escape", "raw-unicode-escape", "undefined", "idna", "punycode", "utf-7"}
)


def text_codec(name: str) -> str | None:
    """The Python codec for a charset a page or feed declares, or None if there is none a
    page can be in (unknown names, «undefined», «unicode_escape», «rot13», «hex»)."""
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):
        return None
    # Only text encodings decode bytes to str; the binary transforms (hex, zlib) do not.
    if info.name in _NOT_PAGE_ENCODINGS or not getattr(info, "_is_text_encoding", True):
        return None
    return info.name


def decode_html(body: bytes, headers: Mapping[str, str]) -> str:
    """Text of an HTML body: BOM, then valid UTF-8, then the declared charset, then cp1252.

    UTF-8 is tried before the declared charset because a page whose bytes are valid UTF-8
    is UTF-8 whatever its header claims (a wrong declaration is common).
    """
    for bom, encoding in (
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ):
        if body.startswith(bom):
            return body[len(bom) :].decode(encoding, errors="replace")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    declared = _declared_charset(body, headers)
    codec = text_codec(declared) if declared else None
    for encoding in [codec, "windows-1252"] if codec else ["windows-1252"]:
        try:
            return body.decode(encoding)
        except (LookupError, UnicodeError):
            continue
    return body.decode("windows-1252", errors="replace")


def _declared_charset(body: bytes, headers: Mapping[str, str]) -> str | None:
    content_type = headers.get("content-type", "")
    header = re.search(r"charset\s*=\s*[\"']?([A-Za-z0-9_.:-]+)", content_type, re.I)
    if header:
        return header[1].lower()
    in_page = _META_CHARSET.search(body[:4096])
    return in_page[1].decode("ascii").lower() if in_page else None


def parse(html: str) -> LexborHTMLParser:
    return LexborHTMLParser(html)


def meta(tree: LexborHTMLParser, *names: str) -> str:
    """The first non-empty content of <meta name=…> or <meta property=…> among `names`."""
    for name in names:
        for attribute in ("property", "name", "itemprop"):
            node = tree.css_first(f'meta[{attribute}="{name}"]')
            if node is not None and (content := (node.attributes.get("content") or "").strip()):
                return content
    return ""


def json_ld(tree: LexborHTMLParser) -> list[dict[str, Any]]:
    """Objects from JSON-LD scripts, flattened through @graph; broken JSON is skipped."""
    found: list[dict[str, Any]] = []
    for node in tree.css('script[type="application/ld+json"]')[:10]:
        raw = node.text(deep=True) or ""
        if len(raw) > 200_000:
            continue
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):  # broken, or nested deeper than Python goes
            continue
        stack = data if isinstance(data, list) else [data]
        while stack:
            item = stack.pop(0)
            if isinstance(item, dict):
                found.append(item)
                graph = item.get("@graph")
                if isinstance(graph, list):
                    stack.extend(graph)
    return found


def main_node(tree: LexborHTMLParser) -> LexborNode | None:
    """The main content with chrome removed (the tree is changed in place)."""
    for selector in MAIN:
        node = tree.css_first(selector)
        if node is not None:
            break
    else:
        node = tree.body
    if node is None:
        return None
    for chrome in node.css(CHROME):
        chrome.decompose()
    return node


def node_text(node: LexborNode) -> str:
    return normalise_text(node.text(deep=True, separator="") or "")


def _has_block_inside(node: LexborNode) -> bool:
    for child in node.iter(include_text=False):
        if child.tag in BLOCKS or child.tag in HEADINGS or _has_block_inside(child):
            return True
    return False


@dataclass(frozen=True, slots=True)
class Piece:
    """A heading or a block of text in document order."""

    node: LexborNode
    is_heading: bool
    text: str


def pieces(root: LexborNode) -> Iterator[Piece]:
    """Headings and innermost text blocks under `root`, in document order."""
    for node in root.traverse(include_text=False):
        tag = node.tag
        if tag in HEADINGS:
            text = node_text(node)
            if text:
                yield Piece(node, True, text)
        elif tag in BLOCKS and not _has_block_inside(node):
            text = normalise_text(ACCESS_DATE.sub(" ", node_text(node)))
            if text:
                yield Piece(node, False, text)
