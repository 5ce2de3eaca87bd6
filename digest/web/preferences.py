"""Pages reached from links in mails: unsubscribe (with RFC 8058 one-click) and manage preferences.

Both are reached by signed tokens; a forged or altered token gets a 400 page and changes
nothing. GET never changes anything, so link scanners are harmless.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from digest.db import session_scope
from digest.paths import templates_dir
from digest.render import FREQUENCY_LABELS
from digest.watch.sources import SourcesFileError, load_sources
from subscribers.models import Status, Subscriber
from subscribers.service import SubscriberError, unsubscribe, update_preferences
from subscribers.tokens import BadToken, make_token, read_token

router = APIRouter()
templates = Jinja2Templates(directory=str(templates_dir() / "web"))
MAX_FORM_BYTES = 10_000


@lru_cache(maxsize=4)
def _topics(path: Path, _mtime: float) -> dict[str, str]:
    try:
        return load_sources(path).topics
    except SourcesFileError:
        return {}


def known_topics(request: Request) -> dict[str, str]:
    path = request.app.state.settings.sources_file
    return _topics(path, path.stat().st_mtime)


def _page(request: Request, name: str, status: int = 200, **context: object) -> HTMLResponse:
    return templates.TemplateResponse(request, name, context, status_code=status)


def _bad_link(request: Request) -> HTMLResponse:
    return _page(request, "bad_link.html", status=400)


def _subscriber(request: Request, purpose: str, token: str, session) -> Subscriber | None:  # type: ignore[no-untyped-def]
    try:
        subscriber_id, email = read_token(request.app.state.settings.secret_key, purpose, token)
    except BadToken:
        return None
    subscriber = session.get(Subscriber, subscriber_id)
    return subscriber if subscriber is not None and subscriber.email == email else None


@router.get("/avmelding/{token}", response_class=HTMLResponse)
def unsubscribe_page(request: Request, token: str) -> HTMLResponse:
    with session_scope(request.app.state.settings.database_url) as session:
        subscriber = _subscriber(request, "unsubscribe", token, session)
        if subscriber is None:
            return _bad_link(request)
        return _page(
            request,
            "unsubscribe.html",
            email=subscriber.email,
            already=subscriber.status == Status.UNSUBSCRIBED.value,
        )


@router.post("/avmelding/{token}", response_class=HTMLResponse)
def unsubscribe_post(request: Request, token: str) -> HTMLResponse:
    # The one-click POST of RFC 8058 and the page's own button land here alike.
    settings = request.app.state.settings
    with session_scope(settings.database_url) as session:
        subscriber = _subscriber(request, "unsubscribe", token, session)
        if subscriber is None:
            return _bad_link(request)
        unsubscribe(session, subscriber.id, subscriber.email)
        return _page(request, "unsubscribed.html", email=subscriber.email)


@router.get("/innstillinger/{token}", response_class=HTMLResponse)
def manage_page(request: Request, token: str) -> HTMLResponse:
    with session_scope(request.app.state.settings.database_url) as session:
        subscriber = _subscriber(request, "manage", token, session)
        if subscriber is None:
            return _bad_link(request)
        return _manage(request, subscriber)


def _manage(
    request: Request,
    subscriber: Subscriber,
    saved: bool = False,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    settings = request.app.state.settings
    unsubscribe_token = make_token(
        settings.secret_key, "unsubscribe", subscriber.id, subscriber.email
    )
    return _page(
        request,
        "manage.html",
        status=status,
        subscriber=subscriber,
        saved=saved,
        error=error,
        topics=known_topics(request),
        frequencies=FREQUENCY_LABELS,
        unsubscribe_path=f"/avmelding/{unsubscribe_token}",
        active=subscriber.status == Status.ACTIVE.value,
    )


@router.post("/innstillinger/{token}", response_class=HTMLResponse)
async def manage_post(request: Request, token: str) -> HTMLResponse:
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return _page(request, "bad_link.html", status=413)
    form = parse_qs(body.decode("utf-8", errors="replace"))
    return await run_in_threadpool(_save_sync, request, token, form)


def _save_sync(request: Request, token: str, form: dict[str, list[str]]) -> HTMLResponse:
    with session_scope(request.app.state.settings.database_url) as session:
        subscriber = _subscriber(request, "manage", token, session)
        if subscriber is None:
            return _bad_link(request)
        try:
            update_preferences(
                subscriber,
                frequency=(form.get("frequency") or [subscriber.frequency])[0],
                topics=form.get("topic", []),
                known_topics=set(known_topics(request)),
            )
        except SubscriberError:
            session.rollback()
            return _manage(
                request, subscriber, error="Valget ble ikke forstått. Prøv igjen.", status=400
            )
        return _manage(request, subscriber, saved=True)
