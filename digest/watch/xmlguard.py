"""Refusing XML that declares entities, before any XML parser sees it.

No real feed or sitemap declares entities; billion-laughs and external-entity attacks
do. The whole body is searched, in every encoding a parser could read it in: the bytes
as they are (ASCII-compatible encodings), with NUL bytes removed (UTF-16 and UTF-32 in
either byte order and alignment), EBCDIC, and whatever the HTTP header, the XML
declaration or a byte-order mark names.
"""

from __future__ import annotations

import codecs
import re

_DECLARATION = re.compile(rb"<!ENTITY", re.IGNORECASE)
_TEXT_DECLARATION = re.compile(r"<!ENTITY", re.IGNORECASE | re.ASCII)
_XML_ENCODING = re.compile(rb"""^[^<]{0,8}<\?xml[^>]{0,200}?encoding\s*=\s*["']([\w.:+-]{1,40})""")
_CHARSET = re.compile(r"""charset\s*=\s*["']?([\w.:+-]{1,40})""", re.IGNORECASE)
# UTF-32 LE before UTF-16 LE: its mark begins with the other's.
_BOMS = (
    codecs.BOM_UTF32_BE,
    codecs.BOM_UTF32_LE,
    codecs.BOM_UTF8,
    codecs.BOM_UTF16_BE,
    codecs.BOM_UTF16_LE,
)
# EBCDIC is what a parser guesses from "<?xm" in code page 037; UTF-7 needs no BOM.
_ALWAYS = ("cp037", "utf-7")
# These write "<!ENTITY" as the plain ASCII bytes, which the byte search already covers.
_ASCII_LIKE = re.compile(r"^(utf[-_]?8|ascii|us[-_]ascii|latin[-_]?1|iso8859[-_]\d+|cp125\d)$")


def declares_entities(body: bytes, content_type: str = "") -> bool:
    """Whether `body`, read in any encoding a parser might choose, declares an entity."""
    if _DECLARATION.search(body) or _DECLARATION.search(body.replace(b"\x00", b"")):
        return True
    bare = _without_bom(body)
    for encoding in _encodings(body, content_type):
        for data in {body, bare}:
            text = _decoded(data, encoding)
            if text is not None and _TEXT_DECLARATION.search(text):
                return True
    return False


def _decoded(data: bytes, encoding: str) -> str | None:
    """The text as a strict reader would see it, or as near as a lenient one gets."""
    for errors in ("strict", "replace"):
        try:
            return data.decode(encoding, errors)
        except UnicodeDecodeError:
            continue
        except (LookupError, UnicodeError, TypeError, ValueError):
            return None  # not a text encoding Python can use, so no parser reads it so
    return None


def _encodings(body: bytes, content_type: str) -> list[str]:
    named = [*_ALWAYS]
    header = _CHARSET.search(content_type)
    if header:
        named.append(header.group(1))
    head = body[:512]
    for sample in (
        head,
        head.replace(b"\x00", b""),
        head.decode("cp037").encode("latin-1", "replace"),
    ):
        declared = _XML_ENCODING.search(_without_bom(sample))
        if declared:
            named.append(declared.group(1).decode("ascii"))
    found: list[str] = []
    for name in named:
        try:
            canonical = codecs.lookup(name).name
        except LookupError:
            continue
        if canonical not in found and not _ASCII_LIKE.match(canonical):
            found.append(canonical)
    return found


def _without_bom(data: bytes) -> bytes:
    for bom in _BOMS:
        if data.startswith(bom):
            return data[len(bom) :]
    return data
