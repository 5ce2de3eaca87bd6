"""Stored text and links as the archive shows them: what a site wrote, less what no page
should carry raw (control characters, noncharacters, bidi embeddings and overrides that
could turn the text around them), and a link only when it is http or https."""

from __future__ import annotations

from urllib.parse import urlsplit

from subscribers.text import strip_invisible


def shown_text(value: str | None) -> str:
    """`value` without control, format (bidi, zero-width), surrogate and unassigned
    characters (U+FFFE among them); runs of blanks and line breaks become one space."""
    return " ".join(strip_invisible(value or "").split())


def shown_link(value: str | None) -> str:
    """`value` if it is an http or https address, else "" (shown as text, not a link)."""
    url = (value or "").strip()
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        return ""
    return url if scheme in ("http", "https") and url.isprintable() else ""
