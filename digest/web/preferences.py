"""Pages reached from links in mails: managing preferences, and unsubscribing (RFC 8058).

Both are reached by signed tokens that name the subscriber's random reference only; a
forged or altered token gets a 400 page and changes nothing. GET never changes anything,
so link scanners are harmless.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from digest.core.db import session_scope
from digest.web.common import choice_lists, form_or_page, page
from digest.web.signup import chosen_from
from subscribers.models import Status, Subscriber
from subscribers.service import SubscriberError, find_by_ref, unsubscribe, update_preferences
from subscribers.tokens import BadToken, make_token, read_legacy_token, read_token

router = APIRouter()


def _subscriber(request: Request, purpose: str, token: str, session: Session) -> Subscriber | None:
    key = request.app.state.settings.secret_key
    try:
        return find_by_ref(session, read_token(key, purpose, token))
    except BadToken:
        pass
    try:
        subscriber_id, email = read_legacy_token(key, purpose, token)
    except BadToken:
        return None
    # A link from a mail sent before links became opaque: the address must still match.
    subscriber = session.get(Subscriber, subscriber_id)
    return subscriber if subscriber is not None and subscriber.email == email else None


@router.get("/avmelding/{token}", response_class=HTMLResponse)
def unsubscribe_page(request: Request, token: str) -> HTMLResponse:
    with session_scope(request.app.state.settings.database_url) as session:
        subscriber = _subscriber(request, "unsubscribe", token, session)
        if subscriber is None:
            return page(request, "bad_link.html", status=400)
        return page(
            request,
            "unsubscribe.html",
            email=subscriber.email,
            already=subscriber.status != Status.ACTIVE.value,
        )


@router.post("/avmelding/{token}", response_class=HTMLResponse)
def unsubscribe_post(request: Request, token: str) -> HTMLResponse:
    # The one-click POST of RFC 8058 and the page's own button land here alike; the
    # RFC's bare POST carries no CSRF field, and the signed token is the proof.
    settings = request.app.state.settings
    with session_scope(settings.database_url) as session:
        subscriber = _subscriber(request, "unsubscribe", token, session)
        if subscriber is None:
            return page(request, "bad_link.html", status=400)
        unsubscribe(session, subscriber)
        return page(request, "unsubscribed.html", email=subscriber.email)


@router.get("/innstillinger/{token}", response_class=HTMLResponse)
def manage_page(request: Request, token: str) -> HTMLResponse:
    with session_scope(request.app.state.settings.database_url) as session:
        subscriber = _subscriber(request, "manage", token, session)
        if subscriber is None:
            return page(request, "bad_link.html", status=400)
        return _manage(request, subscriber)


def _manage(
    request: Request,
    subscriber: Subscriber,
    saved: bool = False,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    settings = request.app.state.settings
    unsubscribe_token = make_token(settings.secret_key, "unsubscribe", subscriber.ref)
    values = {
        "name": subscriber.name,
        "municipality": subscriber.municipality,
        "role": subscriber.role,
        "frequency": subscriber.frequency,
        "language": subscriber.language,
        "topic": list(subscriber.topics or []),
    }
    return page(
        request,
        "manage.html",
        status=status,
        subscriber=subscriber,
        saved=saved,
        error=error,
        values=values,
        errors={},
        unsubscribe_path=f"/avmelding/{unsubscribe_token}",
        active=subscriber.status == Status.ACTIVE.value,
        **choice_lists(request),
    )


@router.post("/innstillinger/{token}", response_class=HTMLResponse)
async def manage_post(request: Request, token: str) -> HTMLResponse:
    form = await form_or_page(request)
    if isinstance(form, HTMLResponse):
        return form
    return await run_in_threadpool(_save, request, token, form)


def _save(request: Request, token: str, form: dict[str, list[str]]) -> HTMLResponse:
    with session_scope(request.app.state.settings.database_url) as session:
        subscriber = _subscriber(request, "manage", token, session)
        if subscriber is None:
            return page(request, "bad_link.html", status=400)
        try:
            update_preferences(session, subscriber, chosen_from(form, request))
        except SubscriberError:
            session.rollback()
            return _manage(
                request,
                subscriber,
                status=400,
                error="Noe i skjemaet ble ikke forstått. Ingenting er endret.",
            )
        return _manage(request, subscriber, saved=True)
