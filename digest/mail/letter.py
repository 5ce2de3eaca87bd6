"""What a digest mail says around its items (pure): subject, counts, period, preheader, the
address of the whole digest in the archive, and which items a long digest shows.

Every string is in the reader's language (digest.core.i18n); the sites' own text is not.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo

from babel.dates import format_date, format_time

from digest.core.archive_links import digest_url
from digest.core.i18n import (
    BABEL_LOCALE,
    language_or_default,
    long_date,
    short_date,
    translate,
    translate_plural,
    week_label,
)
from digest.core.periods import Period
from digest.core.settings import Settings
from digest.mail.compose import Digest, SourceGroup
from subscribers.models import Frequency
from subscribers.text import clean_line

_DEFAULTS = Settings.model_fields
# Times as each language writes them: «kl. 08.00» in Norwegian, «08:00» in English.
_TIME = {"nb": "HH.mm", "nn": "HH.mm", "en": "HH:mm"}
# A day without its weekday, for subjects and items: «2. desember 2024», «2 December 2024».
_DAY = {"nb": "d. MMMM y", "nn": "d. MMMM y", "en": "d MMMM y"}
# How many titles the preheader names after the counts (clients show a line or two).
PREHEADER_TITLES = 3


@dataclass(frozen=True, slots=True)
class Letterhead:
    """The settings a mail's frame shows or links with. A rendering depends on them, so
    they are part of its cache key; the defaults are the settings' own."""

    base_url: str = _DEFAULTS["base_url"].default
    max_items: int = _DEFAULTS["digest_max_items"].default
    sender_name: str = _DEFAULTS["sender_name"].default
    postal_address: str = _DEFAULTS["postal_address"].default

    @classmethod
    def of(cls, settings: Settings) -> Letterhead:
        return cls(
            settings.base_url,
            settings.digest_max_items,
            settings.sender_name,
            settings.postal_address,
        )


DEFAULT_LETTERHEAD = Letterhead()


def counts(digest: Digest) -> list[str]:
    """«3 nye artikler», «1 oppdatert», «1 kunngjøring»: those that are not none."""
    language = digest.recipient.language
    new = digest.new_count
    updated = digest.item_count - new
    announcements = len(digest.announcements)
    parts = []
    if new:
        parts.append(
            translate_plural(language, "%(num)d ny artikkel", "%(num)d nye artikler", new)
            % {"num": new}
        )
    if updated:
        parts.append(
            translate_plural(language, "%(num)d oppdatert", "%(num)d oppdaterte", updated)
            % {"num": updated}
        )
    if announcements:
        parts.append(
            translate_plural(
                language, "%(num)d kunngjøring", "%(num)d kunngjøringer", announcements
            )
            % {"num": announcements}
        )
    return parts


def title_for(digest: Digest, tz: tzinfo, service_name: str) -> str:
    """The service and the run: «Veiledervarsel uke 49», «Veiledervarsel 2. desember 2024»."""
    language = digest.recipient.language
    if digest.period.frequency == Frequency.DAILY:
        return f"{service_name} {day(digest.period.end, tz, language)}"
    if digest.period.frequency == Frequency.WEEKLY:
        return f"{service_name} {week_label(digest.period.start, tz, language)}"
    return service_name


def subject_for(digest: Digest, tz: tzinfo, service_name: str) -> str:
    """«Veiledervarsel uke 49: 3 nye artikler, 1 oppdatert, 1 kunngjøring», one safe line
    whatever the catalogue or the service name holds (it becomes a header)."""
    return clean_line(f"{title_for(digest, tz, service_name)}: {', '.join(counts(digest))}")


def day(moment: datetime, tz: tzinfo, language: str) -> str:
    """«2. desember 2024», «2 December 2024»."""
    language = language_or_default(language)
    return format_date(moment.astimezone(tz), _DAY[language], locale=BABEL_LOCALE[language])


def _time(moment: datetime, tz: tzinfo, language: str) -> str:
    language = language_or_default(language)
    return format_time(moment.astimezone(tz), _TIME[language], locale=BABEL_LOCALE[language])


def period_text(period: Period, tz: tzinfo, language: str) -> str:
    """«mandag 2. desember 2024 kl. 08.00 – tirsdag 3. desember 2024 kl. 08.00», or one
    date with the two times when the period is within a day."""
    start, end = period.start.astimezone(tz), period.end.astimezone(tz)
    first_day = long_date(start, tz, language)
    if start.date() == end.date():
        return translate(language, "%(date)s kl. %(start)s–%(end)s") % {
            "date": first_day,
            "start": _time(start, tz, language),
            "end": _time(end, tz, language),
        }
    at = translate(language, "%(date)s kl. %(time)s")
    first = at % {"date": first_day, "time": _time(start, tz, language)}
    last = at % {"date": long_date(end, tz, language), "time": _time(end, tz, language)}
    return f"{first} – {last}"


def item_date(moment: datetime, period: Period, tz: tzinfo, language: str) -> str:
    """An item's date: «2. desember» in the period's year, with the year otherwise;
    nothing when `tz` cannot show it (one item's date never stops a mail)."""
    try:
        if moment.astimezone(tz).year == period.end.astimezone(tz).year:
            return short_date(moment, tz, language)
        return day(moment, tz, language)
    except (OverflowError, ValueError, TypeError):
        return ""


@dataclass(frozen=True, slots=True)
class Shown:
    """The groups a mail shows: all, or the first `max_items` items in their order."""

    groups: tuple[SourceGroup, ...]
    total: int  # items in the digest

    @property
    def count(self) -> int:
        return sum(len(g.items) for g in self.groups)

    @property
    def is_cut(self) -> bool:
        return self.count < self.total


def shown(digest: Digest, max_items: int) -> Shown:
    """The first `max_items` items across the groups, in order; groups left empty go."""
    left = max(max_items, 1)
    groups = []
    for group in digest.groups:
        if left <= 0:
            break
        items = group.items[:left]
        left -= len(items)
        groups.append(group if len(items) == len(group.items) else SourceGroup(group.name, items))
    return Shown(tuple(groups), digest.item_count)


def preheader(digest: Digest) -> str:
    """The first line a mail list shows under the subject: the counts and the first
    titles (announcements first, as in the mail)."""
    titles = [a.title for a in digest.announcements]
    titles += [item.title for group in digest.groups for item in group.items]
    head = ", ".join(counts(digest))
    return clean_line(f"{head}: {' · '.join(titles[:PREHEADER_TITLES])}")


def view_url(digest: Digest, base_url: str) -> str:
    """The whole digest this reader got, in the archive («Vis i nettleseren»): their
    topics, role (narrowed to it or not), municipality and language, as far as the reader
    given holds them (`digest_template` keeps the role and municipality only where they
    change the archive's copy). None ("") for a mail
    of another frequency's run (a daily reader's «send with the next immediate run»
    announcement): that run's page holds changes their own digest brings later."""
    recipient = digest.recipient
    if recipient.frequency != digest.period.frequency:
        return ""
    return digest_url(
        base_url,
        digest.period.frequency,
        digest.period.start,
        topics=recipient.topics,
        role=recipient.role,
        narrowed=bool(recipient.audiences),
        municipality=recipient.municipality,
        language=language_or_default(recipient.language),
    )
