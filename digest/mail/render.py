"""Rendering a mail: subject, HTML and text parts from Jinja2 templates in the reader's
language (gettext catalogues, Babel dates), CSS inlined for the clients that drop a
<style>, a small <style> kept for what cannot be inlined (narrow screens, dark mode)."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from zoneinfo import ZoneInfo

import css_inline
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markdown_it import MarkdownIt
from markupsafe import Markup

from digest.core.clean import sanitise_html
from digest.core.i18n import N_, OSLO, install, language_or_default, translate
from digest.core.paths import templates_dir
from digest.mail.compose import Digest, Recipient
from digest.mail.letter import (
    DEFAULT_LETTERHEAD,
    Letterhead,
    counts,
    item_date,
    period_text,
    preheader,
    shown,
    subject_for,
    title_for,
    view_url,
)
from digest.mail.markdown_text import markdown_text
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


@lru_cache(maxsize=1)
def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(templates_dir()),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    install(env)  # _(), ngettext(), {% trans %} and the date filters, in the render's `lang`
    env.filters["markdown"] = announcement_html
    env.filters["markdown_text"] = announcement_text
    return env


def _inlined(html: str) -> str:
    """The CSS of the template's <style> moved onto its elements; the <style> marked
    data-css-inline="keep" (media queries, dark mode) stays for the clients that read it."""
    return css_inline.inline(html)


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
    letterhead: Letterhead = DEFAULT_LETTERHEAD,
) -> MailTemplate:
    """The digest rendered for anyone with its content, from a bounded cache: the
    recipient's language, frequency, topics and audiences count, and their role and
    municipality where the archive link names them (below), not who they are; and the
    letterhead, which the frame shows and links with."""
    recipient = digest.recipient
    # The role and municipality count only where they change what the archive's copy
    # shows (its link names them then): the role for a reader narrowed to it or with an
    # announcement for it, the municipality with an announcement for it. Readers who
    # differ in nothing else share one rendering.
    announcements = digest.announcements
    role = recipient.role if recipient.audiences or any(a.roles for a in announcements) else ""
    municipality = recipient.municipality if any(a.municipalities for a in announcements) else ""
    content = replace(
        digest,
        recipient=Recipient(
            0,
            "",
            "",
            recipient.frequency,
            recipient.topics,
            recipient.language,
            role,
            municipality,
            audiences=recipient.audiences,
        ),
    )
    labels = topic_labels or {}
    topics = tuple(labels.get(t, t) for t in digest.topics)
    return _template(content, tz, service_name, topics, letterhead)


@lru_cache(maxsize=256)
def _template(
    digest: Digest,
    tz: ZoneInfo,
    service_name: str,
    topics: tuple[str, ...],
    letterhead: Letterhead,
) -> MailTemplate:
    links = MailLinks(unsubscribe=UNSUBSCRIBE_SLOT, manage=MANAGE_SLOT)
    return rendered(digest, tz, service_name, topics, EMAIL_SLOT, links, letterhead)


def rendered(
    digest: Digest,
    tz: ZoneInfo,
    service_name: str,
    topics: tuple[str, ...],
    email: str,
    links: MailLinks,
    letterhead: Letterhead = DEFAULT_LETTERHEAD,
) -> MailTemplate:
    """The templates rendered with `email` and `links` (slots, or a reader's own: the tests
    check that filling the slots makes what rendering with the reader's values makes)."""
    env = _environment()
    language = language_or_default(digest.recipient.language)
    subject = subject_for(digest, tz, service_name)
    context = {
        "lang": language,
        "tz": tz,
        "subject": subject,
        "title": title_for(digest, tz, service_name),
        "period_text": period_text(digest.period, tz, language),
        "counts": counts(digest),
        "preheader": preheader(digest),
        "view_url": view_url(digest, letterhead.base_url),
        "digest": digest,
        "shown": shown(digest, letterhead.max_items),
        "frequency": str(digest.period.frequency),
        "narrowed": bool(digest.recipient.audiences),
        "item_date": lambda moment: item_date(moment, digest.period, tz, language),
        "topics": list(topics),
        "email": email,
        "links": links,
        "service_name": service_name,
        "letterhead": letterhead,
    }
    html = env.get_template("email/digest.html").render(**context)
    text = env.get_template("email/digest.txt").render(**context)
    return MailTemplate(subject, _inlined(html), text.strip())


def render(
    digest: Digest,
    links: MailLinks,
    tz: ZoneInfo,
    service_name: str,
    topic_labels: Mapping[str, str] | None = None,
    letterhead: Letterhead = DEFAULT_LETTERHEAD,
) -> RenderedMail:
    """One reader's digest mail: its template, filled with their address and links."""
    template = digest_template(digest, tz, service_name, topic_labels, letterhead)
    return template.fill(digest.recipient.email, links)


# Each notice's subject (digest.delivery.notices.NoticeKind).
NOTICE_SUBJECTS = {
    "confirm": N_("Bekreft abonnementet ditt på %(service)s"),
    "link": N_("Lenken til innstillingene dine i %(service)s"),
    "already": N_("Du abonnerer allerede på %(service)s"),
}


def render_notice(
    kind: str,
    *,
    service_name: str,
    email: str,
    name: str,
    confirm_url: str,
    links: MailLinks,
    language: str = "nb",
    letterhead: Letterhead = DEFAULT_LETTERHEAD,
) -> RenderedMail:
    """A notice about the subscription itself (see digest.delivery.notices)."""
    env = _environment()
    language = language_or_default(language)
    subject = clean_line(translate(language, NOTICE_SUBJECTS[kind]) % {"service": service_name})
    context = {
        "lang": language,
        "tz": OSLO,
        "kind": kind,
        "subject": subject,
        "service_name": service_name,
        "email": email,
        "name": name,
        "confirm_url": confirm_url,
        "links": links,
        "letterhead": letterhead,
    }
    html = env.get_template("email/notice.html").render(**context)
    text = env.get_template("email/notice.txt").render(**context)
    return RenderedMail(subject, _inlined(html), text.strip() + "\n")
