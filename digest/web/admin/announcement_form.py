"""The announcement form: reading what an editor typed (times in the service's zone,
municipalities by name or number) into an `AnnouncementInput`, and showing a stored
announcement in the form again. The service checks the rest.

What is typed is read the same way whatever the page's language (its notes are `Note`s,
shown in it): a time in the formats of `_TIME_FORMATS`, numbers and names as listed."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Annotated

from fastapi import Depends, Request

from digest.core.i18n import N_
from digest.core.models import Announcement
from digest.delivery.announcement_checks import Note
from digest.delivery.announcements import AnnouncementInput
from digest.web import forms
from digest.web.forms import Form, field
from subscribers.municipalities import find_municipality, municipalities

# A body may have 20,000 characters; urlencoded, one of «æøå» takes 6 bytes and some
# characters 9, so this form gets more room than the 20 KB of the others.
MAX_ANNOUNCEMENT_FORM_BYTES = 400_000
TIME_NOTE = Note(N_("Skriv tidspunktet som 27.11.2026 09.30 (dato og klokkeslett)."))


async def announcement_form(request: Request) -> Form:
    """The form, within a limit that holds the longest body (each «æ» is 6 bytes posted)."""
    return await forms.read_form(request, MAX_ANNOUNCEMENT_FORM_BYTES)


AnnouncementForm = Annotated[Form, Depends(announcement_form)]


@dataclass(slots=True)
class Typed:
    """What the editor typed, as the form shows it again, and what it asks for."""

    values: dict[str, object]
    data: AnnouncementInput
    errors: dict[str, str]  # field -> note (a `Note` or a bokmål message)


_NUMBER_IN_LABEL = re.compile(r"\((\d{1,4})\)\s*$")
_TIME_FORMATS = (
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d %H.%M",
    "%d.%m.%Y %H:%M",
    "%d.%m.%Y %H.%M",
    "%d.%m.%Y kl. %H.%M",
    "%d.%m.%Y kl. %H:%M",
    "%Y-%m-%d",
    "%d.%m.%Y",
)


def read_form(form: Form, tz: tzinfo) -> Typed:
    """The announcement a form asks for, with notes for what cannot even be read (a time,
    an unknown municipality); the service checks the rest."""
    chosen_topics = [t[:100] for t in form.get("topic", [])][:100]
    chosen_roles = [r[:100] for r in form.get("role", [])][:50]
    values: dict[str, object] = {
        "title": field(form, "title", 2000),
        "body": field(form, "body", 200_000),
        "link": field(form, "link", 5000),
        "topics": chosen_topics,
        "roles": chosen_roles,
        "municipalities": field(form, "municipalities", 20_000),
        "publish_from": field(form, "publish_from", 100),
        "publish_until": field(form, "publish_until", 100),
        "pinned": bool(field(form, "pinned", 10)),
        "send_immediately": bool(field(form, "send_immediately", 10)),
    }
    errors: dict[str, str] = {}
    numbers, unknown = municipality_numbers(str(values["municipalities"]))
    if unknown:
        errors["municipalities"] = Note(
            N_(
                "Fant ikke %(names)s. Skriv kommunenummeret, eller navnet slik det står i "
                "listen, for eksempel «Herøy (Nordland)»."
            ),
            names=", ".join(f"«{u}»" for u in unknown[:5]),
        )
    times: dict[str, datetime | None] = {}
    for name in ("publish_from", "publish_until"):
        text = str(values[name])
        moment = parse_local(text, tz)
        if text.strip() and moment is None:
            errors[name] = TIME_NOTE
        times[name] = moment
    data = AnnouncementInput(
        title=str(values["title"]),
        body=str(values["body"]),
        link=str(values["link"]) or None,
        topics=tuple(chosen_topics),
        roles=tuple(chosen_roles),
        municipalities=tuple(numbers),
        publish_from=times["publish_from"],
        publish_until=times["publish_until"],
        pinned=bool(values["pinned"]),
        send_immediately=bool(values["send_immediately"]),
    )
    return Typed(values, data, errors)


def municipality_numbers(text: str) -> tuple[list[str], list[str]]:
    """The municipality numbers a text names («0301, Bergen; Herøy (Nordland)»), and the
    parts that name none."""
    numbers: list[str] = []
    unknown: list[str] = []
    for part in re.split(r"[,;\n]+", text):
        part = " ".join(part.split())
        if not part:
            continue
        in_label = _NUMBER_IN_LABEL.search(part)
        found = find_municipality(in_label[1] if in_label else part)
        if found is None:
            unknown.append(part[:60])
        elif found.number not in numbers:
            numbers.append(found.number)
    return numbers, unknown


def parse_local(text: str, tz: tzinfo) -> datetime | None:
    """A time as the form's datetime-local field (or a person) writes it, in `tz`."""
    text = " ".join(text.split())
    for pattern in _TIME_FORMATS:
        try:
            moment = datetime.strptime(text, pattern)
        except ValueError:
            continue
        return moment.replace(tzinfo=tz)
    return None


def form_time(moment: datetime | None, tz: tzinfo) -> str:
    """A time as a datetime-local field holds it."""
    if moment is None:
        return ""
    return moment.astimezone(tz).strftime("%Y-%m-%dT%H:%M")


def municipality_text(numbers: Sequence[str]) -> str:
    """Stored municipality numbers as the form's text field shows them."""
    labels = {m.number: m.label for m in municipalities()}
    return ", ".join(labels.get(n, n) for n in numbers)


def stored_values(a: Announcement, tz: tzinfo) -> dict[str, object]:
    return {
        "title": a.title,
        "body": a.body,
        "link": a.link or "",
        "topics": list(a.topics or ()),
        "roles": list(a.roles or ()),
        "municipalities": municipality_text(a.municipalities or ()),
        "publish_from": form_time(a.publish_from, tz),
        "publish_until": form_time(a.publish_until, tz),
        "pinned": a.pinned,
        "send_immediately": a.send_immediately,
    }
