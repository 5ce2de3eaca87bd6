"""Rendering a digest: subject, HTML and text parts from Jinja2 templates, CSS inlined."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

import css_inline
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markdown_it import MarkdownIt
from markupsafe import Markup

from digest.core.clean import sanitise_html
from digest.core.paths import templates_dir
from digest.mail.compose import Digest, Recipient
from digest.mail.locale import counted, format_date, translator
from digest.mail.markdown_text import markdown_text
from subscribers.models import Frequency
from subscribers.text import clean_line

_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False})


# A run renders the same announcements for every reader: each body is rendered once.
@lru_cache(maxsize=256)
def announcement_html(body: str) -> Markup:
    """An announcement's Markdown as HTML for a mail or a page: raw HTML is shown as text,
    and what the Markdown makes is allow-listed again (no script, no javascript: links)."""
    return Markup(sanitise_html(_markdown.render(body or "")))


@lru_cache(maxsize=256)
def announcement_text(body: str) -> str:
    """An announcement's Markdown as plain text for the text part: paragraphs and list
    items on their own lines, links as «text (address)» when the address is http(s),
    no markup and no HTML that was typed into it."""
    return markdown_text(_markdown.parse(body or ""))


@dataclass(frozen=True, slots=True)
class MailLinks:
    unsubscribe: str
    manage: str


@dataclass(frozen=True, slots=True)
class RenderedMail:
    subject: str
    html: str
    text: str


def subject_for(digest: Digest, tz: ZoneInfo, service_name: str) -> str:
    language = digest.recipient.language
    t = translator(language)
    period_end = digest.period.end.astimezone(tz)
    if digest.period.frequency == Frequency.DAILY:
        label = f"{service_name} {format_date(period_end, tz, language)}"
    elif digest.period.frequency == Frequency.WEEKLY:
        week = digest.period.start.astimezone(tz).isocalendar().week
        label = f"{service_name} {t('digest.week', week=week)}"
    else:
        label = service_name
    parts = []
    new = digest.new_count
    updated = digest.item_count - new
    if new:
        parts.append(counted(language, new, "digest.new"))
    if updated:
        parts.append(counted(language, updated, "digest.updated"))
    if digest.announcements:
        parts.append(counted(language, len(digest.announcements), "digest.announcement"))
    # A header: reduced to one safe line here, whatever the catalogue or service name holds.
    return clean_line(f"{label}: {', '.join(parts)}")


@lru_cache(maxsize=1)
def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(templates_dir()),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["markdown"] = announcement_html
    env.filters["markdown_text"] = announcement_text
    return env


def _date_or_nothing(moment: datetime, tz: ZoneInfo, language: str) -> str:
    """An item's date as the reader's language writes it, or nothing if it cannot be shown
    in `tz`: one item's date never stops a mail."""
    try:
        return format_date(moment, tz, language)
    except (OverflowError, ValueError, TypeError):
        return ""


# The personal parts of a digest, rendered as these words and replaced per reader: letters
# and digits only, so autoescape and css_inline leave them as they are, and random, so no
# content can contain them.
_TOKEN = secrets.token_hex(8)
EMAIL_SLOT = f"zzemail{_TOKEN}"
MANAGE_SLOT = f"zzmanage{_TOKEN}"
UNSUBSCRIBE_SLOT = f"zzunsubscribe{_TOKEN}"
_SLOTS = re.compile(f"{EMAIL_SLOT}|{MANAGE_SLOT}|{UNSUBSCRIBE_SLOT}")


def _html_text(value: str) -> str:
    """`value` as css_inline writes it in a text node, after Jinja escaped it: the HTML
    parser reads line ends as \n and drops NUL, the serialiser escapes only & < > and
    no-break space."""
    value = value.replace("\r\n", "\n").replace("\r", "\n").replace("\0", "")
    value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return value.replace("\xa0", "&nbsp;")


def _html_attribute(value: str) -> str:
    """`value` as css_inline writes it in a quoted attribute (NUL becomes U+FFFD there)."""
    value = value.replace("\r\n", "\n").replace("\r", "\n").replace("\0", "\ufffd")
    value = value.replace("&", "&amp;").replace('"', "&quot;")
    return value.replace("\xa0", "&nbsp;")


@dataclass(frozen=True, slots=True)
class MailTemplate:
    """A digest rendered once for everyone who gets the same content: subject, HTML (CSS
    inlined) and text with the reader's address and links as slots; `fill` makes one
    reader's mail from it."""

    subject: str
    html: str
    text: str

    def fill(self, email: str, links: MailLinks) -> RenderedMail:
        """The mail `render` makes for the reader with `email` and `links`."""
        text, html = slot_values(email, links)
        return RenderedMail(
            self.subject,
            _SLOTS.sub(lambda m: html[m[0]], self.html),
            # Stripped again: a link may end in blanks, which render() strips.
            _SLOTS.sub(lambda m: text[m[0]], self.text).strip() + "\n",
        )


def slot_values(email: str, links: MailLinks) -> tuple[dict[str, str], dict[str, str]]:
    """What goes in each slot of a template's text and of its HTML for one reader."""
    text = {EMAIL_SLOT: email, MANAGE_SLOT: links.manage, UNSUBSCRIBE_SLOT: links.unsubscribe}
    html = {
        EMAIL_SLOT: _html_text(email),
        MANAGE_SLOT: _html_attribute(links.manage),
        UNSUBSCRIBE_SLOT: _html_attribute(links.unsubscribe),
    }
    return text, html


def digest_template(
    digest: Digest,
    tz: ZoneInfo,
    service_name: str,
    topic_labels: Mapping[str, str] | None = None,
) -> MailTemplate:
    """The digest rendered for anyone with its content, from a bounded cache: the
    recipient's language, frequency and topics count, not who they are."""
    recipient = digest.recipient
    content = replace(
        digest,
        recipient=Recipient(0, "", "", recipient.frequency, recipient.topics, recipient.language),
    )
    labels = topic_labels or {}
    return _template(content, tz, service_name, tuple(labels.get(t, t) for t in digest.topics))


@lru_cache(maxsize=256)
def _template(
    digest: Digest, tz: ZoneInfo, service_name: str, topics: tuple[str, ...]
) -> MailTemplate:
    links = MailLinks(unsubscribe=UNSUBSCRIBE_SLOT, manage=MANAGE_SLOT)
    return rendered(digest, tz, service_name, topics, EMAIL_SLOT, links)


def rendered(
    digest: Digest,
    tz: ZoneInfo,
    service_name: str,
    topics: tuple[str, ...],
    email: str,
    links: MailLinks,
) -> MailTemplate:
    """The templates rendered with `email` and `links` (slots, or a reader's own: the tests
    check that filling the slots makes what rendering with the reader's values makes)."""
    env = _environment()
    language = digest.recipient.language
    t = translator(language)
    start, end = digest.period.start.astimezone(tz), digest.period.end.astimezone(tz)
    context = {
        "digest": digest,
        "email": email,
        "links": links,
        "service_name": service_name,
        "t": t,
        "lang": language,
        "frequency_label": t(f"frequency.{digest.recipient.frequency}"),
        "period_text": (
            f"{format_date(start, tz, language, False)} {t('at_time', time=f'{start:%H:%M}')} – "
            f"{format_date(end, tz, language)} {t('at_time', time=f'{end:%H:%M}')}"
        ),
        "date": lambda moment: _date_or_nothing(moment, tz, language),
        "topics": list(topics),
    }
    subject = subject_for(digest, tz, service_name)
    html = env.get_template("email/digest.html").render(subject=subject, **context)
    text = env.get_template("email/digest.txt").render(subject=subject, **context)
    return MailTemplate(subject, css_inline.inline(html), text.strip())


def render(
    digest: Digest,
    links: MailLinks,
    tz: ZoneInfo,
    service_name: str,
    topic_labels: Mapping[str, str] | None = None,
) -> RenderedMail:
    """One reader's digest mail: its template, filled with their address and links."""
    template = digest_template(digest, tz, service_name, topic_labels)
    return template.fill(digest.recipient.email, links)


def render_notice(
    kind: str,
    *,
    service_name: str,
    email: str,
    name: str,
    confirm_url: str,
    links: MailLinks,
    language: str = "nb",
) -> RenderedMail:
    """A notice about the subscription itself (see digest.delivery.notices)."""
    env = _environment()
    t = translator(language)
    subject = clean_line(t(f"notice.subject_{kind}", service=service_name))
    context = {
        "kind": kind,
        "subject": subject,
        "service_name": service_name,
        "email": email,
        "name": name,
        "confirm_url": confirm_url,
        "links": links,
        "t": t,
        "lang": language,
    }
    html = env.get_template("email/notice.html").render(**context)
    text = env.get_template("email/notice.txt").render(**context)
    return RenderedMail(subject, css_inline.inline(html), text.strip() + "\n")
