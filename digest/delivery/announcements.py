"""Editors' announcements: writing them (checked as a whole), their life from draft to
published to withdrawn, the publish window and targeting, and who still gets them.

Pages, the JSON API and `digest announce` all go through `create`, `update`, `publish`,
`withdraw` and `delete_draft`; each takes the caller's session and leaves the unit of work
to the caller. An edit carries the version it was made from, and an edit made meanwhile
by someone else is refused (`StaleEdit`) rather than overwritten.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from html import unescape
from urllib.parse import urlsplit

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup
from sqlalchemy import delete, or_, select
from sqlalchemy import update as sql_update
from sqlalchemy.orm import Session

from digest.core.clean import sanitise_html
from digest.core.errors import DigestError
from digest.core.models import Announcement, AnnouncementReceipt, AnnouncementStatus
from digest.core.topics import topic_labels
from digest.mail.compose import AnnouncementView
from subscribers.base import utcnow
from subscribers.models import Role
from subscribers.municipalities import municipalities
from subscribers.text import clean_line, is_safe_line, strip_invisible

MAX_TITLE = 300
MAX_BODY = 20_000
MAX_LINK = 2000
# Stored, a time at the ends of the calendar cannot be shown in every zone.
FIRST_YEAR, LAST_YEAR = 1900, 2200

# What an edit's audit entry and a page compare: the fields an editor writes.
FIELDS = (
    "title",
    "body",
    "link",
    "topics",
    "roles",
    "municipalities",
    "publish_from",
    "publish_until",
    "pinned",
    "send_immediately",
)
# ... and with the state it is in, for audit snapshots.
SNAPSHOT = (*FIELDS, "status", "version", "published_at")


@dataclass(frozen=True, slots=True)
class AnnouncementInput:
    """An announcement as an editor writes it, before it is checked.

    `publish_from` None means «from now» when creating and «unchanged» when updating;
    each of topics, roles and municipalities empty means everyone.
    """

    title: str
    body: str = ""  # Markdown
    link: str | None = None
    topics: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    municipalities: tuple[str, ...] = ()  # numbers, e.g. "0301"
    publish_from: datetime | None = None
    publish_until: datetime | None = None
    pinned: bool = False
    send_immediately: bool = False


class AnnouncementError(DigestError):
    """An announcement that cannot be stored or changed as asked.

    `errors` holds every field at fault at once (field -> what the page says, in bokmål);
    `field` is the first of them ("title", "body", "link", "topics", "roles",
    "municipalities", "publish_from", "publish_until", "version", or "status" for a
    change its state does not allow, "id" for one that does not exist). The message (str)
    is in English, for the command line.
    """

    def __init__(self, message: str, field: str = "", errors: Mapping[str, str] | None = None):
        super().__init__(message)
        self.errors = dict(errors) if errors else {}
        self.field = field or next(iter(self.errors), "")


class StaleEdit(AnnouncementError):
    """The edit was made from a version that is no longer the stored one."""

    def __init__(self, stored_version: int, errors: Mapping[str, str] | None = None) -> None:
        super().__init__(
            "someone else changed the announcement meanwhile; load it again",
            "version",
            {"version": STALE_NOTE, **(errors or {})},
        )
        self.stored_version = stored_version


class AnnouncementNotFound(AnnouncementError):
    """No announcement has this id."""

    def __init__(self, announcement_id: int) -> None:
        super().__init__(
            f"no announcement {announcement_id}", "id", {"id": "Kunngjøringen finnes ikke."}
        )
        self.announcement_id = announcement_id


STALE_NOTE = "Noen andre har endret kunngjøringen mens du skrev. Se over endringene og lagre igjen."


@dataclass(frozen=True, slots=True)
class _Checked:
    title: str
    body: str
    link: str | None
    topics: list[str]
    roles: list[str]
    municipalities: list[str]
    publish_from: datetime | None
    publish_until: datetime | None
    pinned: bool
    send_immediately: bool


class _Problems:
    """The fields at fault, in English (for the message) and bokmål (for the page)."""

    def __init__(self) -> None:
        self.english: list[str] = []
        self.notes: dict[str, str] = {}

    def add(self, field: str, english: str, bokmal: str) -> None:
        if field not in self.notes:
            self.english.append(english)
            self.notes[field] = bokmal

    def error(self) -> AnnouncementError:
        return AnnouncementError("; ".join(self.english), errors=self.notes)


def _check(
    session: Session, data: AnnouncementInput, start: datetime | None
) -> tuple[_Checked, _Problems]:
    """`data` cleaned, and what is wrong with it; `start` is when a window without its own
    start begins (to check the end against)."""
    problems = _Problems()
    # Editors paste from anywhere: no bidi, zero-width or control characters reach a mail.
    title = clean_line(data.title or "")
    if not title:
        problems.add("title", "the title is empty", "Skriv en tittel.")
    elif len(title) > MAX_TITLE:
        problems.add(
            "title",
            f"the title is longer than {MAX_TITLE} characters",
            f"Tittelen kan ha høyst {MAX_TITLE} tegn (den har {len(title)}).",
        )
    body = "\n".join(strip_invisible(line) for line in (data.body or "").splitlines()).strip()
    if len(body) > MAX_BODY:
        problems.add(
            "body",
            "the body is longer than 20,000 characters",
            f"Teksten kan ha høyst 20 000 tegn (den har {len(body)}).",
        )
    link = (data.link or "").strip() or None
    if link is not None and not _is_web_link(link):
        problems.add(
            "link",
            "the link must be an http:// or https:// URL",
            "Lenken må være en nettadresse som begynner med https:// eller http://.",
        )
    topics = sorted({t.strip().lower() for t in data.topics if t.strip()})
    known_topics = topic_labels(session) if topics else {}
    unknown = [t for t in topics if t not in known_topics]
    if unknown:
        problems.add(
            "topics",
            f"unknown topic(s): {', '.join(unknown)}",
            "Velg temaer fra listen.",
        )
    roles = sorted({r.strip() for r in data.roles if r.strip()})
    known_roles = {r.value for r in Role}
    bad_roles = [r for r in roles if r not in known_roles]
    if bad_roles:
        problems.add("roles", f"unknown role(s): {', '.join(bad_roles)}", "Velg roller fra listen.")
    numbers = sorted({_number(m) for m in data.municipalities if m.strip()})
    known_numbers = {m.number for m in municipalities()}
    bad_numbers = [m for m in numbers if m not in known_numbers]
    if bad_numbers:
        problems.add(
            "municipalities",
            f"unknown municipality number(s): {', '.join(bad_numbers)}",
            f"Ukjent kommunenummer: {', '.join(bad_numbers)}.",
        )
    for name, moment in (
        ("publish_from", data.publish_from),
        ("publish_until", data.publish_until),
    ):
        if moment is None:
            continue
        if moment.tzinfo is None:
            problems.add(
                name, f"{name}: give the time with its time zone", "Tidspunktet mangler tidssone."
            )
        elif not FIRST_YEAR <= moment.year <= LAST_YEAR:
            problems.add(
                name,
                f"{name}: not a time between the years {FIRST_YEAR} and {LAST_YEAR}",
                f"Velg et tidspunkt mellom år {FIRST_YEAR} og {LAST_YEAR}.",
            )
    begins = data.publish_from or start
    if (
        data.publish_until is not None
        and begins is not None
        and "publish_until" not in problems.notes
        and "publish_from" not in problems.notes
        and data.publish_until <= begins
    ):
        problems.add(
            "publish_until",
            "the publish window ends before it starts",
            "Publiseringen må slutte etter at den begynner.",
        )
    checked = _Checked(
        title,
        body,
        link,
        topics,
        roles,
        numbers,
        data.publish_from,
        data.publish_until,
        bool(data.pinned),
        bool(data.send_immediately),
    )
    return checked, problems


def _number(text: str) -> str:
    text = text.strip()
    return text.zfill(4) if text.isdigit() and len(text) <= 4 else text


def _is_web_link(link: str) -> bool:
    """An http(s) URL with a host and nothing a header or an href could be broken with."""
    try:
        parts = urlsplit(link)
        host = parts.hostname
    except ValueError:  # a malformed port or IPv6 literal
        return False
    return (
        parts.scheme in ("http", "https")
        and bool(host)
        and len(link) <= MAX_LINK
        and is_safe_line(link)
        and " " not in link
    )


# --- the service -----------------------------------------------------------------------


def check(
    session: Session, data: AnnouncementInput, *, starts: datetime | None = None
) -> AnnouncementInput:
    """`data` as it would be stored (cleaned), or AnnouncementError with every field at
    fault; stores nothing (for a preview, or to check a form before saving). `starts`:
    when a window without its own start begins (default now)."""
    checked, problems = _check(session, data, starts or utcnow())
    if problems.notes:
        raise problems.error()
    return AnnouncementInput(
        title=checked.title,
        body=checked.body,
        link=checked.link,
        topics=tuple(checked.topics),
        roles=tuple(checked.roles),
        municipalities=tuple(checked.municipalities),
        publish_from=checked.publish_from,
        publish_until=checked.publish_until,
        pinned=checked.pinned,
        send_immediately=checked.send_immediately,
    )


def create(
    session: Session, data: AnnouncementInput, *, editor_id: int | None, publish: bool
) -> Announcement:
    """A new announcement, published at once or kept as a draft; AnnouncementError (with
    every field at fault) if it cannot be stored as given."""
    now = utcnow()
    checked, problems = _check(session, data, now)
    if problems.notes:
        raise problems.error()
    announcement = Announcement(
        title=checked.title,
        body=checked.body,
        link=checked.link,
        topics=checked.topics,
        roles=checked.roles,
        municipalities=checked.municipalities,
        publish_from=checked.publish_from or now,
        publish_until=checked.publish_until,
        pinned=checked.pinned,
        send_immediately=checked.send_immediately,
        status=AnnouncementStatus.PUBLISHED if publish else AnnouncementStatus.DRAFT,
        published_at=now if publish else None,
        created_at=now,
        version=1,
        created_by_id=editor_id,
    )
    session.add(announcement)
    session.flush()
    return announcement


def update(
    session: Session, announcement_id: int, data: AnnouncementInput, *, version: int
) -> Announcement:
    """Store an edit made from `version`: StaleEdit if the stored one is another (someone
    else edited meanwhile), AnnouncementError for fields at fault. Bumps the version."""
    announcement = _existing(session, announcement_id)
    checked, problems = _check(session, data, announcement.publish_from)
    if announcement.version != version:
        raise StaleEdit(announcement.version, problems.notes)
    if problems.notes:
        raise problems.error()
    values = {
        "title": checked.title,
        "body": checked.body,
        "link": checked.link,
        "topics": checked.topics,
        "roles": checked.roles,
        "municipalities": checked.municipalities,
        "publish_from": checked.publish_from or announcement.publish_from,
        "publish_until": checked.publish_until,
        "pinned": checked.pinned,
        "send_immediately": checked.send_immediately,
        "updated_at": utcnow(),
        "version": version + 1,
    }
    # The version is compared in the UPDATE itself: of two edits made from one version,
    # whichever commits second changes no row and is refused, even between our read and
    # our write.
    result = session.execute(
        sql_update(Announcement)
        .where(Announcement.id == announcement_id, Announcement.version == version)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if not getattr(result, "rowcount", 0):
        session.refresh(announcement)
        raise StaleEdit(announcement.version, problems.notes)
    session.refresh(announcement)
    return announcement


def publish(session: Session, announcement_id: int) -> Announcement:
    """Publish a draft, or publish again a withdrawn announcement; a published one stays."""
    announcement = _existing(session, announcement_id)
    if announcement.status != AnnouncementStatus.PUBLISHED:
        now = utcnow()
        announcement.status = AnnouncementStatus.PUBLISHED
        announcement.published_at = now
        announcement.updated_at = now
        session.flush()
    return announcement


def withdraw(session: Session, announcement_id: int) -> Announcement:
    """Stop a published announcement going out; a withdrawn one stays withdrawn, a draft
    cannot be withdrawn (delete it instead)."""
    announcement = _existing(session, announcement_id)
    if announcement.status == AnnouncementStatus.DRAFT:
        raise AnnouncementError(
            "a draft cannot be withdrawn; delete it instead",
            "status",
            {"status": "Et utkast kan ikke trekkes tilbake, men kan slettes."},
        )
    if announcement.status == AnnouncementStatus.PUBLISHED:
        announcement.status = AnnouncementStatus.WITHDRAWN
        announcement.updated_at = utcnow()
        session.flush()
    return announcement


def delete_draft(session: Session, announcement_id: int) -> None:
    """Delete a draft; an announcement that has been published is withdrawn, never deleted,
    so that what went out stays on record."""
    announcement = _existing(session, announcement_id)
    if announcement.status != AnnouncementStatus.DRAFT:
        raise AnnouncementError(
            "only a draft can be deleted; withdraw a published announcement instead",
            "status",
            {"status": "Bare utkast kan slettes. Trekk tilbake en publisert kunngjøring."},
        )
    session.execute(delete(Announcement).where(Announcement.id == announcement_id))
    session.expunge(announcement)


def get(session: Session, announcement_id: int) -> Announcement | None:
    return session.get(Announcement, announcement_id)


def _existing(session: Session, announcement_id: int) -> Announcement:
    announcement = get(session, announcement_id)
    if announcement is None:
        raise AnnouncementNotFound(announcement_id)
    return announcement


def list_all(session: Session, status: AnnouncementStatus | None = None) -> Sequence[Announcement]:
    """Announcements, pinned first, then newest first; only those in `status` if given."""
    query = select(Announcement).order_by(
        Announcement.pinned.desc(), Announcement.created_at.desc(), Announcement.id.desc()
    )
    if status is not None:
        query = query.where(Announcement.status == status)
    return session.scalars(query).all()


def snapshot(announcement: Announcement) -> dict[str, object]:
    """What an audit entry keeps of an announcement, before and after an action."""
    return {name: getattr(announcement, name) for name in SNAPSHOT}


def as_view(a: Announcement) -> AnnouncementView:
    return AnnouncementView(
        announcement_id=a.id,
        title=a.title,
        body=a.body,
        link=a.link,
        topics=tuple(a.topics or ()),
        publish_from=a.publish_from,
        roles=tuple(a.roles or ()),
        municipalities=tuple(a.municipalities or ()),
        pinned=a.pinned,
        send_immediately=a.send_immediately,
    )


# --- Markdown, as the mails show it ------------------------------------------------------

# As digest.mail.render's `markdown` filter: CommonMark with raw HTML off, then sanitised.
_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False})


def body_html(body: str) -> Markup:
    """An announcement's Markdown as safe HTML: raw HTML is shown as text, links are
    http(s) or mailto only, nothing runs."""
    return Markup(sanitise_html(_markdown.render(body or "")))


def body_text(body: str) -> str:
    """An announcement's Markdown as plain text: paragraphs apart, list items as «- »,
    a link as «text (address)»; no markup, no invisible characters, and only the links
    that the HTML part keeps (http, https, mailto)."""
    html = sanitise_html(_markdown.render(body or ""))
    html = _LINK.sub(_link_text, html)
    html = _LIST_ITEM.sub("\n- ", html)
    html = _BLOCK.sub("\n\n", html)
    html = _LINE_BREAK.sub("\n", html)
    text = unescape(_TEXT_ONLY.clean(html))
    lines = [" ".join(strip_invisible(line).split()) for line in text.splitlines()]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


_LINK = re.compile(r'<a\b[^>]*?href="([^"]*)"[^>]*>(.*?)</a>', re.DOTALL)
_LIST_ITEM = re.compile(r"\s*<li>\s*(?:<p>)?")
_BLOCK = re.compile(r"</?(?:p|ul|ol|blockquote|h[1-6])\b[^>]*>")
_LINE_BREAK = re.compile(r"<br\s*/?>\n?")
_BLANK_LINES = re.compile(r"\n\s*\n(?:\s*\n)*")
_TEXT_ONLY = nh3.Cleaner(tags=set(), attributes={}, url_relative="deny")


def _link_text(match: re.Match[str]) -> str:
    href, label = match.group(1), match.group(2)  # both still HTML
    shown = unescape(_TEXT_ONLY.clean(label)).strip()
    address = unescape(href)
    if not shown:
        return href
    if shown in (address, address.removeprefix("mailto:")):
        return label
    return f"{label} ({href})"


# --- the command line's and the digests' side -------------------------------------------


def add_announcement(
    session: Session,
    *,
    title: str,
    body: str = "",
    link: str | None = None,
    topics: Iterable[str] = (),
    roles: Iterable[str] = (),
    municipalities: Iterable[str] = (),
    publish_from: datetime | None = None,
    publish_until: datetime | None = None,
    pinned: bool = False,
    send_immediately: bool = False,
    draft: bool = False,
) -> Announcement:
    """`create` with keywords, for the command line (whose operator has no editor id)."""
    return create(
        session,
        AnnouncementInput(
            title=title,
            body=body,
            link=link,
            topics=tuple(topics),
            roles=tuple(roles),
            municipalities=tuple(municipalities),
            publish_from=publish_from,
            publish_until=publish_until,
            pinned=pinned,
            send_immediately=send_immediately,
        ),
        editor_id=None,
        publish=not draft,
    )


def list_announcements(session: Session) -> Sequence[Announcement]:
    return session.scalars(select(Announcement).order_by(Announcement.publish_from.desc())).all()


def published_at(session: Session, moment: datetime) -> list[AnnouncementView]:
    """Published announcements whose publish window includes `moment`:
    publish_from <= moment < publish_until."""
    query = (
        select(Announcement)
        .where(
            Announcement.status == AnnouncementStatus.PUBLISHED,
            Announcement.publish_from <= moment,
            or_(Announcement.publish_until.is_(None), Announcement.publish_until > moment),
        )
        .order_by(Announcement.pinned.desc(), Announcement.publish_from, Announcement.id)
    )
    return [as_view(a) for a in session.scalars(query)]


def received_by(session: Session, subscriber_id: int) -> set[int]:
    query = select(AnnouncementReceipt.announcement_id).where(
        AnnouncementReceipt.subscriber_id == subscriber_id
    )
    return set(session.scalars(query))


def record_receipts(
    session: Session, subscriber_id: int, delivery_id: int, announcement_ids: Iterable[int]
) -> None:
    known = received_by(session, subscriber_id)
    for announcement_id in set(announcement_ids) - known:
        session.add(
            AnnouncementReceipt(
                announcement_id=announcement_id,
                subscriber_id=subscriber_id,
                delivery_id=delivery_id,
            )
        )
