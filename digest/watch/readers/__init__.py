"""Readers turn fetched bytes and headers into entries; one module per source kind.

A reader is a pure function `read(body, headers, url, options) -> ReadResult`, tested
without a network.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from digest.watch.entries import ReadResult
from digest.watch.errors import WatchError
from digest.watch.readers import feed, index, sections, sitemap

Reader = Callable[[bytes, Mapping[str, str], str, Mapping[str, object]], ReadResult]

READERS: dict[str, Reader] = {
    "feed": feed.read,
    "sitemap": sitemap.read,
    "index": index.read,
    "sections": sections.read,
}


class UnknownKind(WatchError):
    """A source of a `kind` no reader reads (a row stored by another version of digest)."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"unknown source kind {kind!r}")
        self.kind = kind


def get_reader(kind: str) -> Reader:
    try:
        return READERS[kind]
    except KeyError:
        raise UnknownKind(kind) from None
