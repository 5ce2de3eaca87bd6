"""What the public pages share: the request's database session, templates with the CSRF
field, and what the forms offer to choose from."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Annotated, TypedDict

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session

from digest.core.db import session_scope
from digest.core.paths import templates_dir
from digest.core.topics import topic_labels, topic_sources
from digest.mail.locale import translator
from digest.web import csrf as csrf_tokens
from subscribers.models import LANGUAGE_LABELS, ROLE_LABELS, Frequency, Language, Role
from subscribers.municipalities import Municipality, municipalities

templates = Jinja2Templates(directory=str(templates_dir() / "web"))
bokmal = translator("nb")  # the pages are in bokmål


def local_time(moment: datetime | None, tz: tzinfo) -> str:
    """A time as the pages show it, in the service's zone: «27.11.2026 kl. 09.30»."""
    if moment is None:
        return "–"
    try:
        return moment.astimezone(tz).strftime("%d.%m.%Y kl. %H.%M")
    except (OverflowError, ValueError):  # a row stored before times were checked
        return moment.isoformat()


templates.env.filters["local_time"] = local_time


def get_session(request: Request) -> Iterator[Session]:
    """The request's unit of work: committed when the route returns, rolled back when it
    raises. Routes take it as `DbSession`, whose function scope makes the commit happen
    before the response is sent and before any background task runs (enqueue after commit).
    """
    with session_scope(request.app.state.settings.database_url) as session:
        yield session


DbSession = Annotated[Session, Depends(get_session, scope="function")]


@dataclass(frozen=True, slots=True)
class Topic:
    key: str
    label: str
    resources: tuple[str, ...]  # the guidance resources that write about it


def _resources(source_names: list[str]) -> tuple[str, ...]:
    resources: list[str] = []
    for name in source_names:
        # «Bufdir – Krisesenterveileder» is Bufdir; «RVTS Øst» is one of the RVTS.
        resource = name.split(" – ")[0].strip()
        resource = "RVTS" if resource.startswith("RVTS") else resource
        if resource not in resources:
            resources.append(resource)
    return tuple(resources)


def topics(session: Session) -> tuple[Topic, ...]:
    """The topics `digest sources sync` stored, with the resources that write about each."""
    labels, sources = topic_labels(session), topic_sources(session)
    return tuple(Topic(k, label, _resources(sources.get(k, []))) for k, label in labels.items())


def frequency_labels() -> dict[Frequency, str]:
    """Each frequency as the pages name it (a member compares equal to its stored value)."""
    return {f: bokmal(f"frequency.{f}") for f in Frequency}


class ChoiceLists(TypedDict):
    """What the forms offer to choose from, as the templates name it (a choice's member
    writes its value in the page, and a value posted back compares equal to it)."""

    topics: tuple[Topic, ...]
    frequencies: dict[Frequency, str]
    roles: dict[Role, str]
    languages: dict[Language, str]
    municipalities: tuple[Municipality, ...]


def choice_lists(session: Session) -> ChoiceLists:
    """What the forms offer to choose from."""
    return {
        "topics": topics(session),
        "frequencies": frequency_labels(),
        "roles": ROLE_LABELS,
        "languages": LANGUAGE_LABELS,
        "municipalities": municipalities(),
    }


def page(request: Request, name: str, *, status: int = 200, **context: object) -> HTMLResponse:
    """A page from its template, with the CSRF field for this client's cookie.

    Responses are `Cache-Control: no-store` (see `digest.web.guards.SecurityHeaders`).
    """
    settings = request.app.state.settings
    cookie = csrf_tokens.cookie_name(settings.base_url)
    secret = request.cookies.get(cookie, "")
    fresh = not csrf_tokens.is_secret(secret)
    if fresh:
        secret = csrf_tokens.new_secret()
    field = csrf_tokens.field_for(settings.secret_key, secret)
    response = templates.TemplateResponse(
        request, name, {"csrf": field, **context}, status_code=status
    )
    if fresh:
        response.set_cookie(
            cookie,
            secret,
            path="/",
            httponly=True,
            samesite="strict",
            secure=cookie.startswith("__Host-"),
        )
    return response
