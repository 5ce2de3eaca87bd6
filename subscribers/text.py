"""Reducing outside text to safe text: no encoded words, control, line-break or bidi characters.

Everything that reaches a mail header, a title or a name passes through here, so that
what a form, a roster or a website sends can neither add a header line nor reorder what
a reader sees («Faktura \u202efdp.exe»). It is our own code, not the email package's,
so the result does not depend on the Python release.
"""

from __future__ import annotations

import re
import unicodedata
from email.errors import HeaderParseError
from email.header import decode_header, make_header

# Categories removed outright: controls (Cc), format characters (Cf: bidi embeddings and
# overrides, isolates, zero-width spaces and joiners, the BOM, soft hyphens), surrogates
# (Cs), private use (Co), unassigned (Cn), and the line and paragraph separators (Zl, Zp).
_REMOVED = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
# Whitespace that separates words, turned into a plain space before the rest is removed.
_SPACES = re.compile(r"[\t\n\v\f\r\x1c-\x1f\x85\u2028\u2029]+")
_BLANKS = re.compile(r"\s+")
_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")


def decode_encoded_words(text: str) -> str:
    """Text with RFC 2047 encoded words («=?utf-8?q?…?=») decoded; unreadable ones stay.

    Decoded again while words remain (up to three times), so a word wrapped in another
    does not survive to be decoded by the reader's mail program; a word that cannot be
    decoded is dropped.
    """
    for _ in range(3):
        if "=?" not in text or not _ENCODED_WORD.search(text):
            break
        try:
            text = str(make_header(decode_header(text)))
        except (HeaderParseError, LookupError, UnicodeError, ValueError):
            # One unreadable word (an unknown charset) spoils the lot: decode each word
            # alone and drop those nobody can read, which a mail program might still try.
            text = _ENCODED_WORD.sub(_decode_word, text)
    return text


def _decode_word(match: re.Match[str]) -> str:
    try:
        return str(make_header(decode_header(match.group())))
    except (HeaderParseError, LookupError, UnicodeError, ValueError):
        return ""


def strip_invisible(text: str) -> str:
    """`text` without control, format (bidi, zero-width) and separator characters.

    Line breaks and tabs become spaces; other whitespace is kept as it is.
    """
    text = _SPACES.sub(" ", text)
    if text.isascii():
        return "".join(c for c in text if c >= " " and c != "\x7f")
    return "".join(c for c in text if unicodedata.category(c) not in _REMOVED)


def clean_line(text: str, limit: int | None = None) -> str:
    """One line of safe text: encoded words decoded, invisible characters removed, spaces
    collapsed; cut to `limit` characters when given."""
    cleaned = _BLANKS.sub(" ", strip_invisible(decode_encoded_words(text))).strip()
    return cleaned[:limit].rstrip() if limit is not None else cleaned


def is_safe_line(text: str) -> bool:
    """Whether `text` is already one safe line (what message building insists on)."""
    return all(
        (" " <= c < "\x7f") if c.isascii() else unicodedata.category(c) not in _REMOVED
        for c in text
    )
