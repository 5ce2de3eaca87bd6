"""Cleaning text from websites: allow-listed HTML and plain text, for the watch and for mail.

Text and HTML leave here without control, bidi or zero-width characters, so nothing a site
writes can reorder or hide what a reader sees («Faktura \u202efdp.exe»). Canonical URLs
are the watch's own business (`digest.watch.urls`).
"""

from __future__ import annotations

import html
import re

import nh3

from subscribers.text import strip_invisible

ALLOWED_TAGS = {
    "a",
    "b",
    "blockquote",
    "br",
    "code",
    "em",
    "h3",
    "h4",
    "i",
    "li",
    "ol",
    "p",
    "strong",
    "ul",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}}
URL_SCHEMES = {"http", "https", "mailto"}

_BLOCK_BOUNDARY = re.compile(
    r"<(/?)(p|div|br|li|h[1-6]|tr|td|th|blockquote|section|article)\b", re.IGNORECASE
)
_SPACE = re.compile(r"\s+")
# Text made only of these characters has nothing for strip_invisible to remove: a quick
# test that spares the per-character look-up for most of what sites write.
_VISIBLE = re.compile(
    "[\t\n\r\x0b\x0c\x20-\x7e\u00a0-\u00ac\u00ae-\u024f\u2010-\u2027\u2030-\u205e\u20ac]*"
)
_TEXT_ONLY = nh3.Cleaner(tags=set(), attributes={}, url_relative="deny")


def sanitise_html(fragment: str, base_url: str | None = None) -> str:
    """Allow-listed HTML: no script, style, event handlers, or non-http(s) links.

    Relative links are resolved against `base_url` when given.
    """
    if not fragment:
        return ""
    cleaned = nh3.clean(
        fragment,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        url_relative=("rewrite_with_base", base_url) if base_url else "deny",
    )
    return _visible(cleaned).strip()


def html_to_text(fragment: str) -> str:
    """Plain text of an HTML fragment, with block boundaries kept as spaces."""
    if not fragment:
        return ""
    spaced = _BLOCK_BOUNDARY.sub(r" <\1\2", fragment)
    stripped = _TEXT_ONLY.clean(spaced)
    return normalise_text(html.unescape(stripped))


def normalise_text(text: str) -> str:
    """One line of visible text: invisible characters removed, white space collapsed."""
    return _SPACE.sub(" ", _visible(text).replace("\u00a0", " ")).strip()


def _visible(text: str) -> str:
    return text if _VISIBLE.fullmatch(text) else strip_invisible(text)


def shorten(text: str, limit: int = 280) -> str:
    """Cut at a word boundary near `limit` and mark the cut with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0].rstrip(" ,;:.-–")
    return f"{cut}…"
