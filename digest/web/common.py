"""What the public pages share: templates, the stored topics, forms with CSRF, limits."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from digest.core.db import session_scope
from digest.core.paths import templates_dir
from digest.core.topics import topic_labels, topic_sources
from digest.mail.locale import translator
from digest.web import csrf as csrf_tokens
from digest.web import ratelimit
from subscribers.models import LANGUAGE_LABELS, ROLE_LABELS, Frequency
from subscribers.municipalities import municipalities

templates = Jinja2Templates(directory=str(templates_dir() / "web"))
MAX_FORM_BYTES = 20_000
bokmal = translator("nb")  # the pages are in bokmål


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


def topics(request: Request) -> tuple[Topic, ...]:
    with session_scope(request.app.state.settings.database_url) as session:
        labels, sources = topic_labels(session), topic_sources(session)
    return tuple(Topic(k, label, _resources(sources.get(k, []))) for k, label in labels.items())


def choice_lists(request: Request) -> dict[str, object]:
    """What the forms offer to choose from."""
    return {
        "topics": topics(request),
        "frequencies": {f.value: bokmal(f"frequency.{f.value}") for f in Frequency},
        "roles": {k.value: v for k, v in ROLE_LABELS.items()},
        "languages": {k.value: v for k, v in LANGUAGE_LABELS.items()},
        "municipalities": municipalities(),
    }


def page(request: Request, name: str, status: int = 200, **context: object) -> HTMLResponse:
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


class FormError(Exception):
    """A form that cannot be read; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def read_form(request: Request, *, csrf: bool = True) -> dict[str, list[str]]:
    """The urlencoded form, read within a size limit and, by default, checked for CSRF."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        raise FormError(413, "Skjemaet er for stort.")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise FormError(413, "Skjemaet er for stort.")
    form = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    if csrf:
        settings = request.app.state.settings
        secret = request.cookies.get(csrf_tokens.cookie_name(settings.base_url), "")
        sent = (form.get("csrf") or [""])[0]
        if not csrf_tokens.is_valid(settings.secret_key, secret, sent):
            raise FormError(403, "Skjemaet var utløpt. Last siden på nytt og prøv igjen.")
    return form


async def form_or_page(
    request: Request, limiter: ratelimit.Limiter | None = None
) -> dict[str, list[str]] | HTMLResponse:
    """The posted form, or the page that says why it cannot be used (size, CSRF, rate)."""
    try:
        form = await read_form(request)
    except FormError as exc:
        return page(
            request, "message.html", status=exc.status, title="Noe gikk galt", message=str(exc)
        )
    # A shared limiter asks Redis: not on the event loop.
    if limiter is not None and not await run_in_threadpool(limiter.allow, client_key(request)):
        return page(
            request,
            "message.html",
            status=429,
            title="For mange forsøk",
            message="Vent litt før du prøver igjen.",
        )
    return form


def field(form: dict[str, list[str]], name: str, limit: int = 300) -> str:
    return (form.get(name) or [""])[0][:limit]


def client_key(request: Request) -> str:
    return ratelimit.client_key(request.client.host if request.client else None)
