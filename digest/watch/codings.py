"""Undoing a response's content coding ourselves, one bounded step at a time.

Only the codings the fetcher asks for are undone (gzip, with its alias x-gzip, and
deflate), one at a time: a body coded twice or in another compression is refused, and a
single value that names no compression at all («none», «binary») is ignored.
No step produces more than `STEP` bytes, so a few hundred bytes of compressed zeros
cannot fill memory before the caller has counted them against its cap.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator

from digest.watch.errors import WatchError

ACCEPT_ENCODING = "gzip, deflate"
STEP = 64 * 1024  # the most one decompression step may produce
_GZIP = 16 + zlib.MAX_WBITS
# Compressions we do not undo: a body in one of them is refused, not read as it is.
COMPRESSIONS = frozenset({"br", "zstd", "compress", "x-compress", "bzip2", "x-bzip2", "lzma"})


class CodingError(WatchError):
    """A refused content coding, or a body that is not in the coding it names (`coding`)."""

    def __init__(self, coding: str, problem: str) -> None:
        super().__init__(problem)
        self.coding = coding


class Decoder:
    """The body as it came; subclasses undo a coding."""

    def decode(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """The decoded body of raw `chunks`, in pieces of at most `STEP` bytes when coded."""
        for chunk in chunks:
            yield from self.feed(chunk)
        yield from self.finish()

    def feed(self, data: bytes) -> Iterator[bytes]:
        if data:
            yield data

    def finish(self) -> Iterator[bytes]:
        return iter(())


class Inflater(Decoder):
    """gzip or deflate (zlib-wrapped, or raw as some servers send it), in bounded steps."""

    def __init__(self, coding: str) -> None:
        self.coding = coding
        self._zlib = zlib.decompressobj(_GZIP) if coding == "gzip" else None
        self._head = b""  # deflate: the first bytes, until they show which kind it is

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._zlib is None:
            self._head += data
            if len(self._head) < 2:
                return
            data, self._head = self._head, b""
            self._zlib = zlib.decompressobj(
                zlib.MAX_WBITS if _zlib_header(data) else -zlib.MAX_WBITS
            )
        yield from self._steps(self._zlib, data)

    def finish(self) -> Iterator[bytes]:
        if self._zlib is None and self._head:  # a deflate body of one byte
            self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
            yield from self._steps(self._zlib, self._head)
        if self._zlib is not None and not self._zlib.eof:
            # A cut-off body would be read as a shorter page, and its missing text as
            # deleted paragraphs.
            raise CodingError(self.coding, f"the {self.coding} body ends before its data does")

    def _steps(self, inflater: zlib._Decompress, data: bytes) -> Iterator[bytes]:
        # Each call makes at most STEP bytes; what it could not use waits in
        # unconsumed_tail, and a full step may leave output pending inside zlib.
        while not inflater.eof:
            try:
                out = inflater.decompress(data, STEP)
            except zlib.error as exc:
                raise CodingError(self.coding, f"broken {self.coding} data: {exc}") from None
            if out:
                yield out
            data = inflater.unconsumed_tail
            if not data and len(out) < STEP:
                return


def decoder_for(content_encoding: str) -> Decoder:
    """The decoder for a Content-Encoding header, or CodingError if it is not one we take."""
    codings = [c.strip().lower() for c in content_encoding.split(",")]
    codings = [c for c in codings if c and c != "identity"]
    if not codings:
        return Decoder()
    if len(codings) == 1 and codings[0] in ("gzip", "x-gzip", "deflate"):
        return Inflater("deflate" if codings[0] == "deflate" else "gzip")
    if len(codings) == 1 and codings[0] not in COMPRESSIONS:
        # Misconfigured servers send "none", "UTF-8" or "binary" for a plain body; as
        # browsers and httpx do, a single value that names no compression is ignored.
        return Decoder()
    shown = " ".join(content_encoding.split())[:100]
    raise CodingError(shown, f"refused Content-Encoding {shown!r}: one of gzip or deflate only")


def _zlib_header(data: bytes) -> bool:
    """Whether deflate data starts with a zlib header (RFC 1950) rather than a raw block."""
    return data[0] & 0x0F == 8 and data[0] >> 4 <= 7 and (data[0] << 8 | data[1]) % 31 == 0
