"""Pages reached from links in mails: managing preferences, and unsubscribing (RFC 8058).

Both are reached by signed tokens that name the subscriber's random reference only; a
forged or altered token gets a 400 page and changes nothing. GET never changes anything,
so link scanners are harmless.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from digest.core.i18n import translate
from digest.web.common import DbSession, choice_lists, page
from digest.web.errors import FormInvalid
from digest.web.forms import PostedForm, chosen_from
from digest.web.language import page_language
from subscribers.errors import SubscriberError
from subscribers.models import Status, Subscriber
from subscribers.people import by_link, update_preferences
from subscribers.signups import unsubscribe
from subscribers.tokens import make_token

router = APIRouter()


def _subscriber(request: Request, purpose: str, token: str, session: Session) -> Subscriber:
    return by_link(session, request.app.state.settings.secret_key, purpose, token)


@router.get("/avmelding/{token}", response_class=HTMLResponse)
def unsubscribe_page(request: Request, token: str, session: DbSession) -> HTMLResponse:
    subscriber = _subscriber(request, "unsubscribe", token, session)
    return page(
        request,
        "unsubscribe.html",
        lang=page_language(request, subscriber.language),
        email=subscriber.email,
        already=subscriber.status != Status.ACTIVE,
    )


@router.post("/avmelding/{token}", response_class=HTMLResponse)
def unsubscribe_post(request: Request, token: str, session: DbSession) -> HTMLResponse:
    # The one-click POST of RFC 8058 and the page's own button land here alike; the
    # RFC's bare POST carries no CSRF field, and the signed token is the proof.
    subscriber = unsubscribe(session, _subscriber(request, "unsubscribe", token, session))
    return page(
        request,
        "unsubscribed.html",
        lang=page_language(request, subscriber.language),
        email=subscriber.email,
    )


@router.get("/innstillinger/{token}", response_class=HTMLResponse)
def manage_page(request: Request, token: str, session: DbSession) -> HTMLResponse:
    subscriber = _subscriber(request, "manage", token, session)
    return page(request, "manage.html", status=200, **_manage(request, session, subscriber))


@router.post("/innstillinger/{token}", response_class=HTMLResponse)
def manage_post(request: Request, token: str, form: PostedForm, session: DbSession) -> HTMLResponse:
    subscriber = _subscriber(request, "manage", token, session)
    try:
        chosen = chosen_from(form, session)
    except SubscriberError:
        lang = page_language(request, subscriber.language)
        error = translate(lang, "Noe i skjemaet ble ikke forstått. Ingenting er endret.")
        raise FormInvalid(
            "manage.html", {}, _manage(request, session, subscriber, error=error)
        ) from None
    before = subscriber.language
    update_preferences(session, subscriber, chosen)
    # A new language chosen here is the page's at once, as it is the mails' from now on.
    new = str(subscriber.language) if subscriber.language != before else None
    context = _manage(request, session, subscriber, saved=True, lang=new)
    return page(request, "manage.html", status=200, **context)


def _manage(
    request: Request,
    session: Session,
    subscriber: Subscriber,
    *,
    saved: bool = False,
    error: str | None = None,
    lang: str | None = None,
) -> dict[str, object]:
    """What the settings page shows of a subscriber, as plain values (it may be shown once
    the session is gone, by `digest.web.errors`), in `lang` or else in their language
    (unless the address asks for another)."""
    settings = request.app.state.settings
    lang = lang or page_language(request, subscriber.language)
    unsubscribe_token = make_token(settings.secret_key, "unsubscribe", subscriber.ref)
    values = {
        "name": subscriber.name,
        "municipality": subscriber.municipality,
        "role": subscriber.role,
        # Shown ticked without a role too: on is the answer once one is chosen.
        "role_only": subscriber.role_only or not subscriber.role,
        "frequency": subscriber.frequency,
        "language": subscriber.language,
        "topic": list(subscriber.topics or []),
    }
    return {
        "lang": lang,
        "email": subscriber.email,
        "saved": saved,
        "error": error,
        "values": values,
        "errors": {},
        "unsubscribe_path": f"/avmelding/{unsubscribe_token}",
        "active": subscriber.status == Status.ACTIVE,
        **choice_lists(session, lang, list(subscriber.topics or [])),
    }
