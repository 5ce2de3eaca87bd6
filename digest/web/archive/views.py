"""A sent run as the archive shows it: its title and period in the page's language, and
its digest composed for a reader made of the address's topics and role (no one real),
from the changes as delivery loads them and the announcements the run carried."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, tzinfo
from urllib.parse import urlencode

from sqlalchemy.orm import Session

from digest.core import i18n
from digest.core.archive_links import TOPIC_PARAM, archive_path
from digest.core.i18n import N_
from digest.core.models import DigestRun
from digest.core.periods import Period
from digest.delivery.digests import changes_in
from digest.mail.compose import AnnouncementView, Digest, Recipient, SourceGroup, compose
from digest.web.archive import queries
from digest.web.archive.text import shown_link, shown_text
from subscribers.models import Frequency, Language

TITLES = {
    Frequency.DAILY: N_("Daglig oversikt %(date)s"),
    Frequency.WEEKLY: N_("Ukentlig oversikt, %(week)s %(year)s"),
    Frequency.IMMEDIATE: N_("Fortløpende varsel %(time)s"),
}


def run_title(run: DigestRun, tz: tzinfo, language: str) -> str:
    """«Daglig oversikt tirsdag 3. desember 2024», «Ukentlig oversikt, uke 49 2024»."""
    template = i18n.translate(language, TITLES[run.frequency])
    end = run.period_end
    if run.frequency == Frequency.DAILY:
        return template % {"date": i18n.long_date(end, tz, language)}
    if run.frequency == Frequency.WEEKLY:
        start = run.period_start.astimezone(tz)
        week = i18n.week_label(start, tz, language)
        return template % {"week": week, "year": start.isocalendar().year}
    return template % {"time": i18n.date_time(end, tz, language)}


def period_text(run: DigestRun, tz: tzinfo, language: str) -> str:
    """«27.11.2026 kl. 08.00 – 28.11.2026 kl. 08.00»."""
    return (
        f"{i18n.date_time(run.period_start, tz, language)} – "
        f"{i18n.date_time(run.period_end, tz, language)}"
    )


def reader(
    run: DigestRun,
    topics: tuple[str, ...],
    language: str,
    role: str = "",
    audiences: tuple[str, ...] = (),
    municipality: str = "",
) -> Recipient:
    """The reader the address describes: its topics, its role with the audiences that
    role is narrowed to (digest.core.roles.audiences_for), if it is, and its municipality
    (for the announcements targeted at it); nobody's address."""
    return Recipient(
        0,
        "",
        "",
        run.frequency,
        topics,
        Language(language),
        role,
        municipality,
        audiences=audiences,
    )


def run_digest(
    session: Session,
    run: DigestRun,
    recipient: Recipient,
    announcements: dict[int, list[AnnouncementView]] | None = None,
) -> Digest:
    """The digest `recipient` got from `run`: composed as delivery composes it, from the
    changes it loads for the period and the announcements the run carried."""
    period = Period(run.frequency, run.period_start, run.period_end)
    if announcements is None:
        announcements = queries.carried(session, [run.id])
    digest = compose(recipient, changes_in(session, period), announcements.get(run.id, []), period)
    return shown_digest(digest)


def shown_digest(digest: Digest) -> Digest:
    """`digest` as a page shows it: the sites' and editors' text cleaned and only http(s)
    links kept (composed first, so that it holds what the mail held)."""
    return replace(
        digest,
        announcements=tuple(
            replace(a, title=shown_text(a.title), link=shown_link(a.link) or None)
            for a in digest.announcements
        ),
        groups=tuple(
            SourceGroup(
                shown_text(group.name),
                tuple(
                    replace(
                        item,
                        title=shown_text(item.title),
                        url=shown_link(item.url),
                        summary=shown_text(item.summary),
                        note=shown_text(item.note),
                        editor_note=shown_text(item.editor_note),
                        also_at=tuple(shown_text(name) for name in item.also_at),
                    )
                    for item in group.items
                ),
            )
            for group in digest.groups
        ),
    )


@dataclass(frozen=True, slots=True)
class RunEntry:
    """One run in the listing."""

    title: str
    period: str
    url: str
    new: int
    updated: int
    announcements: int
    sent_on: datetime


def path_with(path: str, topics: tuple[str, ...], language: str = "") -> str:
    """`path` narrowed to `topics`, as the mails' links narrow it, in `language` if asked."""
    pairs = [(TOPIC_PARAM, t) for t in topics] + ([("lang", language)] if language else [])
    return f"{path}?{urlencode(pairs)}" if pairs else path


def entries(
    session: Session,
    runs: list[DigestRun],
    topics: tuple[str, ...],
    tz: tzinfo,
    language: str,
    asked: str = "",
) -> list[RunEntry]:
    """The listing's rows: each run's title, period, address (with `lang` when `asked`)
    and what a reader of `topics` (all when none) got in it."""
    carried = queries.carried(session, [r.id for r in runs])
    rows = []
    for run in runs:
        digest = run_digest(session, run, reader(run, topics, language), carried)
        rows.append(
            RunEntry(
                run_title(run, tz, language),
                period_text(run, tz, language),
                path_with(archive_path(run.frequency, run.period_start), topics, asked),
                digest.new_count,
                digest.item_count - digest.new_count,
                len(digest.announcements),
                run.period_end,
            )
        )
    return rows
