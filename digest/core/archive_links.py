"""Where a sent digest lives in the public archive (pure): one stable address per run,
`/arkiv/<frequency>/<period start>`, and the query that narrows it to a reader's topics,
role and language, which is what a mail's «Vis i nettleseren» link holds (no address or
name: nothing personal)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from urllib.parse import urlencode

from subscribers.models import Frequency

PREFIX = "/arkiv"
SLUGS = {
    Frequency.IMMEDIATE: "fortlopende",
    Frequency.DAILY: "daglig",
    Frequency.WEEKLY: "ukentlig",
}
FREQUENCY_OF_SLUG = {slug: frequency for frequency, slug in SLUGS.items()}
# The period's start in UTC to the minute: «2024-12-02T0700Z».
_KEY = "%Y-%m-%dT%H%MZ"
_KEY_SHAPE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{4}Z")  # ASCII digits only
# The query parameters the archive's digest page reads.
TOPIC_PARAM, ROLE_PARAM, LANGUAGE_PARAM = "tema", "rolle", "lang"


def period_key(start: datetime) -> str:
    return start.astimezone(UTC).strftime(_KEY)


def parse_period_key(key: str) -> datetime | None:
    """The period start a key names, or None for anything that is not a key."""
    if not _KEY_SHAPE.fullmatch(key):
        return None
    try:
        start = datetime.strptime(key, _KEY).replace(tzinfo=UTC)
    except ValueError:
        return None
    return start if period_key(start) == key else None  # one address per run


def archive_path(frequency: Frequency, start: datetime) -> str:
    """The run's own address in the archive, from the site's root."""
    return f"{PREFIX}/{SLUGS[frequency]}/{period_key(start)}"


def digest_url(
    base_url: str,
    frequency: Frequency,
    start: datetime,
    *,
    topics: Sequence[str] = (),
    role: str = "",
    language: str = "",
) -> str:
    """The whole digest a reader with these choices got for the run, on the web."""
    query: list[tuple[str, str]] = [(TOPIC_PARAM, topic) for topic in sorted(topics)]
    if role:
        query.append((ROLE_PARAM, role))
    if language:
        query.append((LANGUAGE_PARAM, language))
    url = base_url.rstrip("/") + archive_path(frequency, start)
    return f"{url}?{urlencode(query)}" if query else url
