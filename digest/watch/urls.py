"""Canonical URLs: the one form an article's address is stored and compared in.

No fragment, no tracking parameters, a lower-case host; a link that cannot be parsed or
stored is a `BadLink`, which skips that link only.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from digest.watch.errors import WatchError
from subscribers.text import strip_invisible

# Query parameters that identify a visit, not a page.
TRACKING_PARAMS = re.compile(
    r"^(utm_\w+|fbclid|gclid|mc_cid|mc_eid|_ga|_hs\w+|phpsessid|jsessionid|sid|sessionid)$",
    re.IGNORECASE,
)
# The longest URL an item can be stored under (Item.key and Item.url).
MAX_URL_LENGTH = 2000
_URL_BREAKS = re.compile(r"[\t\r\n]")  # removed from URLs, as browsers and urlsplit do


class BadLink(WatchError):
    """A link that cannot be parsed or stored: `url` as it was written, `reason` why not.

    The message names it (shortened) and says why.
    """

    def __init__(self, url: str, reason: object) -> None:
        shown = url if len(url) <= 120 else f"{url[:120]}…"
        # repr() shows control, bidi and surrogate characters escaped, never as they are.
        super().__init__(f"{shown!r} ({reason})")
        self.url = url
        self.reason = str(reason)


def canonical_url(url: str) -> str:
    """The URL an article is known by: no fragment, no tracking parameters, lower-case host.

    Raises BadLink for a URL that is not http or https, that cannot be parsed (a port
    that is not a number, an unclosed IPv6 bracket), whose host is none a name or an address can be
    («exa mple.org»), has no host, or is too long to store.
    """
    try:
        parts = urlsplit(_escape_invisible(_URL_BREAKS.sub("", url.strip())))
        port = parts.port
    except (ValueError, UnicodeError) as exc:
        raise BadLink(url, exc) from None
    scheme = parts.scheme.lower()
    # Only web addresses: an article's link is shown and followed, and «javascript://host/
    # %0Aalert(1)» parses with a host like any other.
    if scheme not in ("http", "https"):
        raise BadLink(url, f"the scheme {scheme!r} is not http or https")
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
