"""Refusing XML that declares entities, before any XML parser sees it.

No real feed or sitemap declares entities or has an internal DTD subset (the only place
entities can be declared); billion-laughs and external-entity attacks do. The price, taken
knowingly: a feed that quotes such markup unescaped inside CDATA (an article about XML)
is refused too, and its source says so. The whole
body is searched as every decoder could read it: the bytes as they are (ASCII-compatible
encodings), with NUL bytes removed (UTF-16 and UTF-32 in either byte order and
alignment), through every codec that can write "<!ENTITY" without its ASCII bytes
(EBCDIC, escape sequences, shift states, backslash escapes), and through whatever the
HTTP header or any encoding declaration in the head names, however it is spelled.
"""

from __future__ import annotations

import codecs
import functools
import re
from collections.abc import Iterator

# An entity declaration, or a document type declaration with an internal subset. Before
# its "[" only quoted literals may hold "<", ">" or "[", and possessive repeats never
# backtrack: the search stays linear in the length of the body.
_UNSAFE = re.compile(
    r"""<!(?:ENTITY|DOCTYPE(?:[^<>\[\]"']++|"[^"]*+"|'[^']*+')*+\[)""", re.IGNORECASE | re.ASCII
)
# Any encoding a declaration may name, as loosely as feedparser reads it (any quote,
# any spelling codecs.lookup accepts, not only the first declaration, nor only at the top).
_ENCODING_NAME = re.compile(r"""encoding\s*=\s*["']([^"'\r\n]{1,100})""")
_CHARSET = re.compile(r"""charset\s*=\s*["']?([^"';\s]{1,100})""", re.IGNORECASE)
_HEAD = 65_536  # how far into each reading of the body encoding names are looked for
# Every Python codec that can produce the characters of "<!ENTITY" or "<!DOCTYPE [" from
# other bytes than their ASCII ones; a test holds this list to the codecs Python has.
ESCAPING_CODECS = (
    # EBCDIC code pages
    "cp037",
    "cp273",
    "cp424",
    "cp500",
    "cp875",
    "cp1026",
    "cp1140",
    # Arabic Mac pages, with a second, right-to-left copy of ASCII punctuation
    "mac_arabic",
    "mac_farsi",
    # Stateful: escape sequences and shifts that vanish from the text
    "iso2022_jp",
    "iso2022_jp_1",
    "iso2022_jp_2",
    "iso2022_jp_2004",
    "iso2022_jp_3",
    "iso2022_jp_ext",
    "iso2022_kr",
    "hz",
    "utf_7",
    # Backslash escapes
    "unicode_escape",
    "raw_unicode_escape",
)
_ALWAYS = frozenset(codecs.lookup(name).name for name in ESCAPING_CODECS)
# The bytes without which a stateful codec reads exactly the ASCII bytes and drops the rest.
_STATEFUL = {
    codecs.lookup(name).name: (0x1B, 0x0E, 0x0F)
    for name in ESCAPING_CODECS
    if name.startswith("iso2022")
} | {codecs.lookup("hz").name: (0x7E,)}
# Codecs that map each byte on its own (code pages), decoded through a table.
_SINGLE_BYTE = frozenset(
    codecs.lookup(name).name for name in ESCAPING_CODECS if name.startswith(("cp", "mac"))
)
# unicode_escape reads an escape it does not know, or an octal one past \377, as it stands
# but with a DeprecationWarning; written out as Python would, it reads the same quietly.
_ESCAPE = re.compile(rb"\\([0-7]{1,3}|.)", re.DOTALL)
_KNOWN_ESCAPES = frozenset(b"\n\\'\"abfnrtvxNuU")
# These write "<!ENTITY" as the plain ASCII bytes, which the byte search already covers.
_ASCII_LIKE = re.compile(r"^(utf[-_]?8|ascii|us[-_]ascii|latin[-_]?1|iso8859[-_]\d+|cp125\d)$")


def declares_entities(body: bytes, content_type: str = "") -> bool:
    """Whether `body`, read in any encoding a parser might choose, declares an entity or
    has an internal DTD subset."""
    heads: list[str] = []  # the start of each reading, where encodings are declared
    for text in _readings(body):
        if text_declares_entities(text):
            return True
        heads.append(text[:_HEAD])
    named = _named_encodings(heads, content_type) - _ALWAYS
    return any(text_declares_entities(_decoded(body, codec)) for codec in sorted(named))


def _readings(body: bytes) -> Iterator[str]:
    """The body as each reader could see it, one at a time (a 20 MB sitemap must not be
    held in twenty decodings at once), each by the cheapest exact route.

    Latin-1 maps each byte to the character of the same number: a search of the bytes.
    Without an escape, shift-out or "~" byte the stateful codecs read the ASCII bytes as
    ASCII and drop the rest: one ASCII reading stands for them all.
    """
    yield body.decode("latin-1")
    if b"\x00" in body:
        yield body.replace(b"\x00", b"").decode("latin-1")
    yield body.decode("ascii", "ignore")
    for codec in sorted(_ALWAYS):
        if codec in _STATEFUL and not any(byte in body for byte in _STATEFUL[codec]):
            continue  # the ASCII reading is what this codec would read
        yield _decoded(body, codec)


def text_declares_entities(text: str) -> bool:
    """Whether decoded XML text declares an entity or has an internal DTD subset."""
    return _UNSAFE.search(text) is not None


def _decoded(data: bytes, codec: str) -> str:
    """The text as near as any reader gets: what a strict decoder refuses is left out."""
    if codec == "unicode-escape":
        data = _ESCAPE.sub(_quiet_escape, data)
    table = _single_byte_table(codec)
    if table is not None:
        # The codec's own "ignore" runs Python code for each byte it cannot map (most of
        # cp424's); a whole table with those bytes as NUL, then NULs removed, is C speed.
        return codecs.charmap_decode(data, "strict", table)[0].replace("\x00", "")
    try:
        return data.decode(codec, "ignore")
    except (LookupError, UnicodeError, TypeError, ValueError):
        return ""  # not a text encoding Python can use, so no parser reads it so


@functools.cache
def _single_byte_table(codec: str) -> str | None:
    """A 256-character decoding table for a codec that maps each byte alone, else None."""
    if codec not in _SINGLE_BYTE:
        return None
    characters = [bytes([byte]).decode(codec, "ignore") for byte in range(256)]
    if any(len(character) > 1 for character in characters):
        return None
    return "".join(character or "\x00" for character in characters)


def _quiet_escape(match: re.Match[bytes]) -> bytes:
    escape = match[1]
    if escape[0] in b"01234567":
        value = int(escape, 8)
        return match[0] if value <= 0o377 else b"\\u%04x" % value
    return match[0] if escape[0] in _KNOWN_ESCAPES else b"\\" + match[0]


def _named_encodings(readings: list[str], content_type: str) -> set[str]:
    names = [match[1] for match in [_CHARSET.search(content_type)] if match]
    for text in set(readings):
        names += _declared_names(text[:_HEAD])
    found = set()
    for name in names:
        codec = _text_codec(name)
        if codec and not _ASCII_LIKE.match(codec):
            found.add(codec)
    return found


def _declared_names(head: str) -> list[str]:
    """The names after each «encoding=»: found by a plain search for the word, then matched
    there, since a case-blind search of 64 KB per reading was most of the guard's time.
    XML, expat and feedparser all read the declaration's «encoding» in lower case."""
    names = []
    start = head.find("encoding")
    while start >= 0:
        match = _ENCODING_NAME.match(head, start)
        if match:
            names.append(match[1])
        start = head.find("encoding", start + 8)
    return names


def _text_codec(name: str) -> str | None:
    try:
        info = codecs.lookup(name.strip())
    except (LookupError, ValueError):
        return None
    return info.name if getattr(info, "_is_text_encoding", True) else None
