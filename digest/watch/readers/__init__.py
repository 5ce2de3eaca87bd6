"""Readers turn fetched bytes and headers into entries; one module per source kind.

A reader is a pure function `read(body, headers, url, options) -> ReadResult`, tested
without a network.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from digest.watch.entries import ReadResult
from digest.watch.readers import feed, index, sections, sitemap

Reader = Callable[[bytes, Mapping[str, str], str, Mapping[str, object]], ReadResult]

READERS: dict[str, Reader] = {
    "feed": feed.read,
    "sitemap": sitemap.read,
    "index": index.read,
    "sections": sections.read,
}


def get_reader(kind: str) -> Reader:
    try:
        return READERS[kind]
    except KeyError:
        raise ValueError(f"unknown source kind {kind!r}") from None
