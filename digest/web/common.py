"""What the public pages share: the request's database session, templates with the CSRF
field, and what the forms offer to choose from."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, TypedDict

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session

from digest.core.db import session_scope
from digest.core.paths import templates_dir
from digest.mail.locale import translator
from digest.watch.sources import SourcesFileError, load_sources
from digest.web import csrf as csrf_tokens
from subscribers.models import LANGUAGE_LABELS, ROLE_LABELS, Frequency
from subscribers.municipalities import Municipality, municipalities

templates = Jinja2Templates(directory=str(templates_dir() / "web"))
bokmal = translator("nb")  # the pages are in bokmål


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


@lru_cache(maxsize=4)
def _topics(path: Path, _mtime: float) -> tuple[Topic, ...]:
    try:
        catalogue = load_sources(path)
    except SourcesFileError:
        return ()
    resources: dict[str, list[str]] = {key: [] for key in catalogue.topics}
    for source in catalogue.sources:
        # «Bufdir – Krisesenterveileder» is Bufdir; «RVTS Øst» is one of the RVTS.
        resource = source.name.split(" – ")[0].strip()
        resource = "RVTS" if resource.startswith("RVTS") else resource
        for key in source.topics:
            if resource not in resources.setdefault(key, []):
                resources[key].append(resource)
    return tuple(
        Topic(k, label, tuple(resources.get(k, ()))) for k, label in catalogue.topics.items()
    )


def topics(request: Request) -> tuple[Topic, ...]:
    path = request.app.state.settings.sources_file
    return _topics(path, path.stat().st_mtime)


class ChoiceLists(TypedDict):
    """What the forms offer to choose from, as the templates name it."""

    topics: tuple[Topic, ...]
    frequencies: dict[str, str]
    roles: dict[str, str]
    languages: dict[str, str]
    municipalities: tuple[Municipality, ...]


def choice_lists(request: Request) -> ChoiceLists:
    """What the forms offer to choose from."""
    return {
        "topics": topics(request),
        "frequencies": {f.value: bokmal(f"frequency.{f.value}") for f in Frequency},
        "roles": {k.value: v for k, v in ROLE_LABELS.items()},
        "languages": {k.value: v for k, v in LANGUAGE_LABELS.items()},
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
