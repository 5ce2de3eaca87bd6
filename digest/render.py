"""Rendering a digest: subject, HTML and text parts from Jinja2 templates, CSS inlined."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

import css_inline
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markdown_it import MarkdownIt
from markupsafe import Markup

from digest.compose import Digest
from digest.paths import templates_dir
from digest.watch.clean import sanitise_html

MONTHS = (
    "januar",
    "februar",
    "mars",
    "april",
    "mai",
    "juni",
    "juli",
    "august",
    "september",
    "oktober",
    "november",
    "desember",
)
FREQUENCY_LABELS = {"immediate": "fortløpende", "daily": "daglig", "weekly": "ukentlig"}

_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False})


@dataclass(frozen=True, slots=True)
class MailLinks:
    unsubscribe: str
    manage: str


@dataclass(frozen=True, slots=True)
class RenderedMail:
    subject: str
    html: str
    text: str


def format_date(moment: datetime, tz: ZoneInfo, with_year: bool = True) -> str:
    local = moment.astimezone(tz)
    text = f"{local.day}. {MONTHS[local.month - 1]}"
    return f"{text} {local.year}" if with_year else text


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def subject_for(digest: Digest, tz: ZoneInfo, service_name: str) -> str:
    period_end = digest.period.end.astimezone(tz)
    if digest.period.frequency == "daily":
        label = f"{service_name} {format_date(period_end, tz)}"
    elif digest.period.frequency == "weekly":
        week = digest.period.start.astimezone(tz).isocalendar().week
        label = f"{service_name} uke {week}"
    else:
        label = service_name
    parts = []
    new = digest.new_count
    updated = digest.item_count - new
    if new:
        parts.append(_count(new, "ny artikkel", "nye artikler"))
    if updated:
        parts.append(_count(updated, "oppdatert", "oppdaterte"))
    if digest.announcements:
        parts.append(_count(len(digest.announcements), "kunngjøring", "kunngjøringer"))
    return f"{label}: {', '.join(parts)}"


@lru_cache(maxsize=1)
def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(templates_dir()),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["markdown"] = lambda text: Markup(sanitise_html(_markdown.render(text or "")))
    return env


def render(
    digest: Digest,
    links: MailLinks,
    tz: ZoneInfo,
    service_name: str,
    topic_labels: Mapping[str, str] | None = None,
) -> RenderedMail:
    env = _environment()
    labels = topic_labels or {}
    period_start = digest.period.start.astimezone(tz)
    context = {
        "digest": digest,
        "links": links,
        "service_name": service_name,
        "frequency_label": FREQUENCY_LABELS.get(digest.recipient.frequency, ""),
        "period_text": (
            f"{format_date(period_start, tz, False)} kl. {period_start:%H:%M} – "
            f"{format_date(digest.period.end, tz)} kl. "
            f"{digest.period.end.astimezone(tz):%H:%M}"
        ),
        "date": lambda moment: format_date(moment, tz),
        "topics": [labels.get(t, t) for t in digest.topics],
    }
    subject = subject_for(digest, tz, service_name)
    html = env.get_template("email/digest.html").render(subject=subject, **context)
    text = env.get_template("email/digest.txt").render(subject=subject, **context)
    return RenderedMail(subject, css_inline.inline(html), text.strip() + "\n")


NOTICE_SUBJECTS = {
    "confirm": "Bekreft abonnementet ditt på {service}",
    "link": "Lenken til innstillingene dine i {service}",
    "already": "Du abonnerer allerede på {service}",
}


def render_notice(
    kind: str, *, service_name: str, email: str, name: str, confirm_url: str, links: MailLinks
) -> RenderedMail:
    """A notice about the subscription itself (see digest.notices)."""
    env = _environment()
    subject = NOTICE_SUBJECTS[kind].format(service=service_name)
    context = {
        "kind": kind,
        "subject": subject,
        "service_name": service_name,
        "email": email,
        "name": name,
        "confirm_url": confirm_url,
        "links": links,
    }
    html = env.get_template("email/notice.html").render(**context)
    text = env.get_template("email/notice.txt").render(**context)
    return RenderedMail(subject, css_inline.inline(html), text.strip() + "\n")
