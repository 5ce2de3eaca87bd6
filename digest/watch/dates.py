"""Norwegian dates as the guidance sites write them (pure): labels, month names, numeric forms.

«Sist faglig oppdatert 14. november 2023», «Først publisert: 23. juni 2023»,
«10.04.2018, kl. 11:15», «fredag 8. januar 2021», nynorsk «Sist endra 3. mars 2024»,
and ISO 8601 from `<time>`, meta tags and JSON-LD. Local times are read in Europe/Oslo.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

OSLO = ZoneInfo("Europe/Oslo")

MONTHS = {
    "januar": 1,
    "jan": 1,
    "februar": 2,
    "feb": 2,
    "mars": 3,
    "mar": 3,
    "april": 4,
    "apr": 4,
    "mai": 5,
    "juni": 6,
    "jun": 6,
    "juli": 7,
    "jul": 7,
    "august": 8,
    "aug": 8,
    "september": 9,
    "sep": 9,
    "sept": 9,
    "oktober": 10,
    "okt": 10,
    "november": 11,
    "nov": 11,
    "desember": 12,
    "des": 12,
}
WEEKDAYS = "mandag|måndag|tirsdag|tysdag|onsdag|torsdag|fredag|lørdag|laurdag|søndag|sundag"

PUBLISHED_LABELS = ("først publisert", "publisert på", "publisert", "publisert dato")
UPDATED_LABELS = (
    "sist faglig oppdatert",
    "siste faglige endring",
    "sist oppdatert",
    "sist endret",
    "sist endra",
    "sist revidert",
    "oppdatert",
    "endret",
    "endra",
)

_MONTH_NAMES = "|".join(sorted(MONTHS, key=len, reverse=True))
_TIME = r"(?:,?\s*(?:kl\.?|klokka|klokken)?\s*(?P<hour>\d{1,2})[:.](?P<minute>\d{2}))?"
_TEXTUAL = re.compile(
    rf"(?:(?:{WEEKDAYS})\s+)?(?P<day>\d{{1,2}})\.\s*(?P<month>{_MONTH_NAMES})\.?\s+(?P<year>\d{{4}})"
    + _TIME,
    re.IGNORECASE,
)
_NUMERIC = re.compile(
    r"(?<![\d.])(?P<day>\d{1,2})\.(?P<month>\d{1,2})\.(?P<year>\d{4})(?![\d])" + _TIME
)
_ISO = re.compile(
    r"(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})"
    r"(?:[T ](?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.\d+)?)?"
    r"(?P<tz>Z|[+-]\d{2}:?\d{2})?)?"
)
_LABEL = re.compile(
    "(?P<label>"
    + "|".join(
        re.escape(x) for x in sorted(PUBLISHED_LABELS + UPDATED_LABELS, key=len, reverse=True)
    )
    + r")\s*:?\s*",
    re.IGNORECASE,
)
# «Lest 21.11.2018.» in reference lists is an access date, never the article's.
ACCESS_DATE = re.compile(
    r"\b(?:lest|lasta ned|besøkt|hentet)\s+\d{1,2}\.\s*\w+\.?\s*\d{4}\.?", re.IGNORECASE
)


# Dates outside these bounds are no date at all: a site's «9999-12-31» or «0001-01-01»
# is a placeholder or a mistake, and cannot be shown in every zone (9999-12-31T23:30Z is
# already year 10000 in Oslo).
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
# The widest offsets in use are -12:00 and +14:00; «+99:00» is no zone.
MAX_OFFSET_MINUTES = 14 * 60


def plausible(moment: datetime | None) -> datetime | None:
    """`moment` if it is a date an article can have, else None.

    A naive moment, or one outside EARLIEST..LATEST, is not: whatever reads a date from a
    site passes it through here, so that every date stored can be shown in any zone.
    """
    if moment is None:
        return None
    try:
        if moment.utcoffset() is None or not EARLIEST <= moment <= LATEST:
            return None
    except (OverflowError, ValueError):  # a tzinfo whose offset is out of range
        return None
    return moment


def _build(match: re.Match[str], month: int, tz: ZoneInfo) -> datetime | None:
    hour = int(match["hour"]) if match["hour"] else 0
    minute = int(match["minute"]) if match["minute"] else 0
    try:
        local = datetime(int(match["year"]), month, int(match["day"]), hour, minute, tzinfo=tz)
    except ValueError:
        return None
    if not 1990 <= local.year <= 2100:
        return None
    return local.astimezone(UTC)


def parse_date(text: str, tz: ZoneInfo = OSLO) -> datetime | None:
    """The first date in `text`, in any of the forms the sites use; None if there is none."""
    if not text:
        return None
    text = text.replace("\u00a0", " ")
    candidates: list[tuple[int, datetime]] = []
    if (m := _ISO.search(text)) is not None:
        moment = _iso(m, tz)
        if moment is not None:
            candidates.append((m.start(), moment))
    if (m := _TEXTUAL.search(text)) is not None:
        moment = _build(m, MONTHS[m["month"].lower().rstrip(".")], tz)
        if moment is not None:
            candidates.append((m.start(), moment))
    if (m := _NUMERIC.search(text)) is not None:
        moment = _build(m, int(m["month"]), tz) if 1 <= int(m["month"]) <= 12 else None
        if moment is not None:
            candidates.append((m.start(), moment))
    return min(candidates, key=lambda c: c[0])[1] if candidates else None


def _iso(match: re.Match[str], tz: ZoneInfo) -> datetime | None:
    try:
        moment = datetime(
            int(match["year"]),
            int(match["month"]),
            int(match["day"]),
            int(match["hour"] or 0),
            int(match["minute"] or 0),
            int(match["second"] or 0),
        )
    except ValueError:
        return None
    zone = match["tz"]
    try:
        if zone:
            if zone == "Z":
                return plausible(moment.replace(tzinfo=UTC))
            digits = zone[1:].replace(":", "")
            hours, minutes = int(digits[:2]), int(digits[2:])
            if minutes >= 60 or hours * 60 + minutes > MAX_OFFSET_MINUTES:
                return None  # «+99:00»: a zone no place has, so the time is unknown
            offset = (1 if zone[0] == "+" else -1) * (hours * 60 + minutes)
            seconds = moment.replace(tzinfo=UTC).timestamp() - offset * 60
            return plausible(datetime.fromtimestamp(seconds, UTC))
        return plausible(moment.replace(tzinfo=tz).astimezone(UTC))
    except (OverflowError, ValueError, OSError):
        return None  # «0001-01-01», «9999-12-31T23:59-23:59»: off the end of the calendar


@dataclass(frozen=True, slots=True)
class LabelledDates:
    published: datetime | None = None
    updated: datetime | None = None
    updated_text: str = ""  # as written, e.g. «Sist faglig oppdatert 14. november 2023»


def labelled_dates(text: str, tz: ZoneInfo = OSLO) -> LabelledDates:
    """Dates that follow a published or updated label in running text."""
    text = ACCESS_DATE.sub(" ", text.replace("\u00a0", " "))
    published = updated = None
    updated_text = ""
    for label in _LABEL.finditer(text):
        window = text[label.end() : label.end() + 60]
        moment = parse_date(window, tz)
        if moment is None:
            continue
        name = label["label"].lower()
        if name in UPDATED_LABELS:
            if updated is None or moment > updated:
                updated = moment
                written = _TEXTUAL.search(window) or _NUMERIC.search(window) or _ISO.search(window)
                end = label.end() + (written.end() if written else 0)
                updated_text = " ".join(text[label.start() : end].split())
        elif published is None:
            published = moment
    return LabelledDates(published, updated, updated_text)


def is_date_line(text: str) -> bool:
    """A block that is only a labelled date («Sist faglig oppdatert 14. november 2023»)."""
    if len(text) > 100:
        return False
    label = _LABEL.match(text.strip())
    return label is not None and parse_date(text[label.end() :]) is not None
