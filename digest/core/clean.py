"""Cleaning what comes from websites: allow-listed HTML, plain text, canonical URLs.

Text and HTML leave here without control, bidi or zero-width characters, so nothing a site
writes can reorder or hide what a reader sees («Faktura \u202efdp.exe»).
"""

from __future__ import annotations

import html
import ipaddress
import re
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

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

# Query parameters that identify a visit, not a page.
TRACKING_PARAMS = re.compile(
    r"^(utm_\w+|fbclid|gclid|mc_cid|mc_eid|_ga|_hs\w+|phpsessid|jsessionid|sid|sessionid)$",
    re.IGNORECASE,
)
_BLOCK_BOUNDARY = re.compile(
    r"<(/?)(p|div|br|li|h[1-6]|tr|td|th|blockquote|section|article)\b", re.IGNORECASE
)
_SPACE = re.compile(r"\s+")
# Text made only of these characters has nothing for strip_invisible to remove: a quick
# test that spares the per-character look-up for most of what sites write.
_VISIBLE = re.compile(
    "[\t\n\r\x0b\x0c\x20-\x7e\u00a0-\u00ac\u00ae-\u024f\u2010-\u2027\u2030-\u205e\u20ac]*"
)
# The longest URL an item can be stored under (Item.key and Item.url).
MAX_URL_LENGTH = 2000
_URL_BREAKS = re.compile(r"[\t\r\n]")  # removed from URLs, as browsers and urlsplit do
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


class BadLink(ValueError):
    """A link that cannot be parsed or stored; the message names it and says why."""

    def __init__(self, url: str, reason: object) -> None:
        shown = url if len(url) <= 120 else f"{url[:120]}…"
        # repr() shows control, bidi and surrogate characters escaped, never as they are.
        super().__init__(f"{shown!r} ({reason})")


def canonical_url(url: str) -> str:
    """The URL an article is known by: no fragment, no tracking parameters, lower-case host.

    Raises BadLink (a ValueError) for a URL that cannot be parsed (a port that is not a
    number, an unclosed IPv6 bracket), whose host is none a name or an address can be
    («exa mple.org»), has no host, or is too long to store.
    """
    try:
        parts = urlsplit(_escape_invisible(_URL_BREAKS.sub("", url.strip())))
        port = parts.port
    except (ValueError, UnicodeError) as exc:
        raise BadLink(url, exc) from None
    scheme = parts.scheme.lower()
    host = _host(url, parts.netloc, (parts.hostname or "").lower())
    if port and not ((scheme == "http" and port == 80) or (scheme == "https" and port == 443)):
        host = f"{host}:{port}"
    query = urlencode(
        [
            (k, v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
            if not TRACKING_PARAMS.match(k)
        ]
    )
    canonical = urlunsplit((scheme, host, parts.path or "/", query, ""))
    if len(canonical) > MAX_URL_LENGTH:
        raise BadLink(url, f"longer than {MAX_URL_LENGTH} characters")
    return canonical


def _host(url: str, netloc: str, host: str) -> str:
    """The host as a URL writes it: an IPv6 address in its brackets, a name as it is."""
    if not host:
        raise BadLink(url, "no host")
    if netloc.rpartition("@")[2].startswith("["):
        # Only an IPv6 address: no zone («%eth0», which names this machine's interface)
        # and no future literal («[v1.fe]»).
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise BadLink(url, "not an IPv6 address in the brackets") from None
        if "%" in host:
            raise BadLink(url, "an IPv6 zone is local to one machine")
        return f"[{host}]"
    if not all(c.isalnum() or c in _HOST_PUNCTUATION for c in host):
        raise BadLink(url, "a character no host name has")
    return host


# Besides letters and digits (IDN names included): label separators, hyphens, and the
# underscores some intranet names have.
_HOST_PUNCTUATION = frozenset("-._")


def _escape_invisible(url: str) -> str:
    """`url` with control and invisible characters percent-encoded, as a browser sends them;
    everything else, non-ASCII letters included, as it was (keys stay what they were)."""
    if url.isascii() and url.isprintable():
        return url
    # A lone surrogate has no UTF-8 form: quote() raises UnicodeEncodeError, a BadLink.
    return "".join(quote(c, safe="") if strip_invisible(c) != c else c for c in url)
