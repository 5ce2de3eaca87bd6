"""Cleaning what comes from websites: allow-listed HTML, plain text, canonical URLs."""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import nh3

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

# Query parameters that identify a visit, not a page.
TRACKING_PARAMS = re.compile(
    r"^(utm_\w+|fbclid|gclid|mc_cid|mc_eid|_ga|_hs\w+|phpsessid|jsessionid|sid|sessionid)$",
    re.IGNORECASE,
)
_BLOCK_BOUNDARY = re.compile(
    r"<(/?)(p|div|br|li|h[1-6]|tr|td|th|blockquote|section|article)\b", re.IGNORECASE
)
_SPACE = re.compile(r"\s+")
_TEXT_ONLY = nh3.Cleaner(tags=set(), attributes={}, url_relative="deny")


def sanitise_html(fragment: str, base_url: str | None = None) -> str:
    """Allow-listed HTML: no script, style, event handlers, or non-http(s) links.

    Relative links are resolved against `base_url` when given.
    """
    if not fragment:
        return ""
    return nh3.clean(
        fragment,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        url_relative=("rewrite_with_base", base_url) if base_url else "deny",
    ).strip()


def html_to_text(fragment: str) -> str:
    """Plain text of an HTML fragment, with block boundaries kept as spaces."""
    if not fragment:
        return ""
    spaced = _BLOCK_BOUNDARY.sub(r" <\1\2", fragment)
    stripped = _TEXT_ONLY.clean(spaced)
    return normalise_text(html.unescape(stripped))


def normalise_text(text: str) -> str:
    return _SPACE.sub(" ", text.replace("\u00a0", " ")).strip()


def shorten(text: str, limit: int = 280) -> str:
    """Cut at a word boundary near `limit` and mark the cut with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0].rstrip(" ,;:.-–")
    return f"{cut}…"


def canonical_url(url: str) -> str:
    """The URL an article is known by: no fragment, no tracking parameters, lower-case host."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port
    if port and not ((scheme == "http" and port == 80) or (scheme == "https" and port == 443)):
        host = f"{host}:{port}"
    query = urlencode(
        [
            (k, v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
            if not TRACKING_PARAMS.match(k)
        ]
    )
    return urlunsplit((scheme, host, parts.path or "/", query, ""))
