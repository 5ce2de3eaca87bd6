"""Checking an announcement as an editor wrote it: every field at fault found at once,
in English for the command line and as notes for the pages (`AnnouncementError`): bokmål
text that each page shows in its own language (`Note`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from digest.core.errors import DigestError
from digest.core.i18n import N_, translate
from digest.core.topics import topic_labels
from subscribers.models import Role
from subscribers.municipalities import municipalities
from subscribers.text import clean_line, is_safe_line, strip_invisible

MAX_TITLE = 300
MAX_BODY = 20_000
MAX_LINK = 2000
# Stored, a time at the ends of the calendar cannot be shown in every zone.
FIRST_YEAR, LAST_YEAR = 1900, 2200


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


class Note(str):
    """A note for the pages: it reads as its bokmål text (the API and the commands use it
    so), and keeps its message and values to be shown in a page's language."""

    message: str
    values: dict[str, object]

    def __new__(cls, message: str, **values: object) -> Note:
        note = super().__new__(cls, message % values if values else message)
        note.message = message
        note.values = values
        return note

    def in_language(self, language: str) -> str:
        text = translate(language, self.message)
        return text % self.values if self.values else text


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
            f"no announcement {announcement_id}",
            "id",
            {"id": Note(N_("Kunngjøringen finnes ikke."))},
        )
        self.announcement_id = announcement_id


STALE_NOTE = Note(
    N_("Noen andre har endret kunngjøringen mens du skrev. Se over endringene og lagre igjen.")
)


@dataclass(frozen=True, slots=True)
class Checked:
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


class Problems:
    """The fields at fault, in English (for the message) and as notes for the page (a
    bokmål message, marked for translation where it is written, and its values)."""

    def __init__(self) -> None:
        self.english: list[str] = []
        self.notes: dict[str, str] = {}

    def add(self, field: str, english: str, message: str, **values: object) -> None:
        if field not in self.notes:
            self.english.append(english)
            self.notes[field] = Note(message, **values)

    def error(self) -> AnnouncementError:
        return AnnouncementError("; ".join(self.english), errors=self.notes)


def check_input(
    session: Session, data: AnnouncementInput, start: datetime | None
) -> tuple[Checked, Problems]:
    """`data` cleaned, and what is wrong with it; `start` is when a window without its own
    start begins (to check the end against)."""
    problems = Problems()
    # Editors paste from anywhere: no bidi, zero-width or control characters reach a mail.
    title = clean_line(data.title or "")
    if not title:
        problems.add("title", "the title is empty", N_("Skriv en tittel."))
    elif len(title) > MAX_TITLE:
        problems.add(
            "title",
            f"the title is longer than {MAX_TITLE} characters",
            N_("Tittelen kan ha høyst %(limit)s tegn (den har %(length)s)."),
            limit=MAX_TITLE,
            length=len(title),
        )
    body = "\n".join(strip_invisible(line) for line in (data.body or "").splitlines()).strip()
    if len(body) > MAX_BODY:
        problems.add(
            "body",
            "the body is longer than 20,000 characters",
            N_("Teksten kan ha høyst 20 000 tegn (den har %(length)s)."),
            length=len(body),
        )
    link = (data.link or "").strip() or None
    if link is not None and not _is_web_link(link):
        problems.add(
            "link",
            "the link must be an http:// or https:// URL",
            N_("Lenken må være en nettadresse som begynner med https:// eller http://."),
        )
    topics = sorted({t.strip().lower() for t in data.topics if t.strip()})
    known_topics = topic_labels(session) if topics else {}
    unknown = [t for t in topics if t not in known_topics]
    if unknown:
        problems.add(
            "topics",
            f"unknown topic(s): {', '.join(unknown)}",
            N_("Velg temaer fra listen."),
        )
    roles = sorted({r.strip() for r in data.roles if r.strip()})
    known_roles = {r.value for r in Role}
    bad_roles = [r for r in roles if r not in known_roles]
    if bad_roles:
        problems.add(
            "roles", f"unknown role(s): {', '.join(bad_roles)}", N_("Velg roller fra listen.")
        )
    numbers = sorted({_number(m) for m in data.municipalities if m.strip()})
    known_numbers = {m.number for m in municipalities()}
    bad_numbers = [m for m in numbers if m not in known_numbers]
    if bad_numbers:
        problems.add(
            "municipalities",
            f"unknown municipality number(s): {', '.join(bad_numbers)}",
            N_("Ukjent kommunenummer: %(numbers)s."),
            numbers=", ".join(bad_numbers),
        )
    for name, moment in (
        ("publish_from", data.publish_from),
        ("publish_until", data.publish_until),
    ):
        if moment is None:
            continue
        if moment.tzinfo is None:
            problems.add(
                name,
                f"{name}: give the time with its time zone",
                N_("Tidspunktet mangler tidssone."),
            )
        elif not FIRST_YEAR <= moment.year <= LAST_YEAR:
            problems.add(
                name,
                f"{name}: not a time between the years {FIRST_YEAR} and {LAST_YEAR}",
                N_("Velg et tidspunkt mellom år %(first)s og %(last)s."),
                first=FIRST_YEAR,
                last=LAST_YEAR,
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
            N_("Publiseringen må slutte etter at den begynner."),
        )
    checked = Checked(
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
