"""What the archive's addresses may ask, read defensively: the topics, role, search and
page in a query string. Unknown topics and roles are dropped (an old link still shows
the digest); a search too long or a page that is not a number is a clear 400."""

from __future__ import annotations

import unicodedata
from collections.abc import Container
from dataclasses import dataclass

from starlette.datastructures import QueryParams

from digest.core.archive_links import (
    FREQUENCY_OF_SLUG,
    MUNICIPALITY_PARAM,
    NARROW_PARAM,
    ROLE_PARAM,
    TOPIC_PARAM,
)
from digest.core.errors import DigestError
from digest.core.i18n import N_
from subscribers.models import Frequency, Role

SEARCH_PARAM, PAGE_PARAM, FREQUENCY_PARAM = "q", "side", "frekvens"
MAX_SEARCH = 100  # characters, after control characters are dropped
MAX_PAGE = 100_000
MAX_TOPICS = 50  # values of `tema` read; a link of ours has a handful


class BadQuery(DigestError):
    """A query value the archive refuses (shown as a 400 page with `message`, in the page's
    language: a message marked with N_)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


TOO_LONG = N_("Søket kan ha høyst %(max)s tegn.")
NOT_A_PAGE = N_("Sidenummeret må være et helt tall fra 1 og oppover.")


@dataclass(frozen=True, slots=True)
class ArchiveQuery:
    topics: tuple[str, ...] = ()
    search: str = ""
    page: int = 1
    frequency: Frequency | None = None


def _text(value: str) -> str:
    """`value` without control or format characters, its blanks collapsed."""
    kept = "".join(" " if unicodedata.category(c)[0] in "CZ" else c for c in value)
    return " ".join(kept.split())


def topics_of(params: QueryParams, known: Container[str]) -> tuple[str, ...]:
    """The known topics asked for (`tema`, repeatable), each once, in the order asked."""
    keys = [k for k in params.getlist(TOPIC_PARAM)[:MAX_TOPICS] if k in known]
    return tuple(dict.fromkeys(keys))


def role_of(params: QueryParams) -> str:
    value = params.get(ROLE_PARAM, "")
    return value if value in {r.value for r in Role} else ""


def narrowed_of(params: QueryParams) -> bool:
    """Whether the changes are narrowed to what is made for the role (`avgrens=1`)."""
    return params.get(NARROW_PARAM, "") == "1"


def municipality_of(params: QueryParams) -> str:
    """A municipality's number (four ASCII digits), or nothing."""
    value = params.get(MUNICIPALITY_PARAM, "")
    return value if len(value) == 4 and value.isascii() and value.isdigit() else ""


def search_of(params: QueryParams) -> str:
    raw = params.get(SEARCH_PARAM, "")
    if len(raw) > MAX_SEARCH * 4:  # not worth cleaning
        raise BadQuery(TOO_LONG)
    search = _text(raw)
    if len(search) > MAX_SEARCH:
        raise BadQuery(TOO_LONG)
    return search


def page_of(params: QueryParams) -> int:
    raw = params.get(PAGE_PARAM, "")
    if not raw:
        return 1
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 6) or not 1 <= int(raw) <= MAX_PAGE:
        raise BadQuery(NOT_A_PAGE)
    return int(raw)


def archive_query(params: QueryParams, known_topics: Container[str]) -> ArchiveQuery:
    """The archive listing's query: topics, search, page and a frequency (`frekvens`)."""
    return ArchiveQuery(
        topics=topics_of(params, known_topics),
        search=search_of(params),
        page=page_of(params),
        frequency=FREQUENCY_OF_SLUG.get(params.get(FREQUENCY_PARAM, "")),
    )
