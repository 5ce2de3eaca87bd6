"""What the public pages share: the request's database session, templates with the CSRF
field and the page's language, and what the forms offer to choose from."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Annotated, TypedDict

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from jinja2.runtime import Context
from sqlalchemy.orm import Session

from digest.core import i18n
from digest.core.db import session_scope
from digest.core.paths import templates_dir
from digest.core.roles import enabled_sources, matching_sources, role_audiences
from digest.core.topics import topic_labels, topic_sources
from digest.web import csrf as csrf_tokens
from digest.web.language import page_language, switch_links
from subscribers.models import LANGUAGE_LABELS, ROLE_LABELS, Frequency, Language, Role
from subscribers.municipalities import Municipality, municipalities

templates = Jinja2Templates(directory=str(templates_dir() / "web"))
i18n.install(templates.env)


@pass_context
def local_time(context: Context, moment: datetime | None, tz: tzinfo) -> str:
    """A time as the pages show it, in the service's zone and the page's language:
    «27.11.2026 kl. 09.30»."""
    return i18n.date_time(moment, tz, i18n.language_or_default(context.get("lang")))


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


FREQUENCY_LABELS = {
    Frequency.IMMEDIATE: i18n.N_("fortløpende"),
    Frequency.DAILY: i18n.N_("daglig"),
    Frequency.WEEKLY: i18n.N_("ukentlig"),
}


def frequency_labels(language: str = i18n.DEFAULT) -> dict[Frequency, str]:
    """Each frequency as the pages name it (a member compares equal to its stored value)."""
    return {f: i18n.translate(language, FREQUENCY_LABELS[f]) for f in Frequency}


def role_labels(language: str = i18n.DEFAULT) -> dict[Role, str]:
    """Each role as the pages name it, in `language`."""
    return {role: i18n.translate(language, ROLE_LABELS[role]) for role in Role}


def role_resources(
    session: Session, chosen_topics: Sequence[str] = ()
) -> dict[str, tuple[str, ...]]:
    """For each role the sources file narrows, the resources a reader of it gets with «only
    what is made for my role» and `chosen_topics` (none: all). A role not here (none in
    the file, or an empty list) is not narrowed: its reader gets everything."""
    sources = enabled_sources(session)
    return {
        role: _resources([s.name for s in matching_sources(sources, keys, chosen_topics)])
        for role, keys in role_audiences(session).items()
        if keys
    }


class ChoiceLists(TypedDict):
    """What the forms offer to choose from, as the templates name it (a choice's member
    writes its value in the page, and a value posted back compares equal to it)."""

    topics: tuple[Topic, ...]
    frequencies: dict[Frequency, str]
    roles: dict[Role, str]
    # Each language named in itself, as a language picker should (the switch does too).
    languages: dict[Language, str]
    municipalities: tuple[Municipality, ...]
    # What each role brings (see `role_resources`), with the topics the form has chosen.
    role_resources: dict[str, tuple[str, ...]]


def choice_lists(
    session: Session, language: str = i18n.DEFAULT, chosen_topics: Sequence[str] = ()
) -> ChoiceLists:
    """What the forms offer to choose from, labelled in `language`, and what each role
    brings with `chosen_topics`."""
    return {
        "topics": topics(session),
        "frequencies": frequency_labels(language),
        "roles": role_labels(language),
        "languages": LANGUAGE_LABELS,
        "municipalities": municipalities(),
        "role_resources": role_resources(session, chosen_topics),
    }


def page(request: Request, name: str, *, status: int = 200, **context: object) -> HTMLResponse:
    """A page from its template, with the CSRF field for this client's cookie, in the
    request's language (`lang` in `context` overrides it: see `digest.web.language`) with
    the language switch (`language_links`; `languages` is what the forms offer) and the
    service's zone (`tz`).

    Responses are `Cache-Control: no-store` (see `digest.web.guards.SecurityHeaders`).
    """
    settings = request.app.state.settings
    lang = i18n.language_or_default(context.pop("lang", None) or page_language(request))
    # A form posted elsewhere keeps a language the address asked for (`lang_query`): the
    # cookie remembers it too, but not for a browser that refuses cookies.
    asked = getattr(request.state, "language_asked", False)
    context.setdefault("lang_query", f"?lang={lang}" if asked else "")
    context.setdefault("tz", settings.tz)
    cookie = csrf_tokens.cookie_name(settings.base_url)
    secret = request.cookies.get(cookie, "")
    fresh = not csrf_tokens.is_secret(secret)
    if fresh:
        secret = csrf_tokens.new_secret()
    field = csrf_tokens.field_for(settings.secret_key, secret)
    response = templates.TemplateResponse(
        request,
        name,
        {"csrf": field, "lang": lang, "language_links": switch_links(request, lang), **context},
        status_code=status,
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
