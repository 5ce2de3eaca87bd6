"""Signing up (with double opt-in), confirming, and asking for one's link again.

The answer to a sign-up or a link request is the same whether or not the address is
known, and both are limited per client here and per address in `digest.notices`.
"""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from digest.db import session_scope
from digest.notices import queue_notice, send_notices
from digest.web.common import choice_lists, field, form_or_page, page, topics
from subscribers.addresses import InvalidAddress, normalise_email
from subscribers.models import Status
from subscribers.service import (
    Choices,
    SubscriberError,
    choices,
    confirm,
    find_by_email,
    sign_up,
)
from subscribers.tokens import BadToken, ExpiredToken, TokenData, read_token

router = APIRouter()


def chosen_from(form: dict[str, list[str]], request: Request) -> Choices:
    return choices(
        name=field(form, "name", 250),
        municipality=field(form, "municipality", 10),
        role=field(form, "role", 30),
        frequency=field(form, "frequency", 20) or "daily",
        topics=[t[:40] for t in form.get("topic", [])][:50],
        language=field(form, "language", 5),
        known_topics={t.key for t in topics(request)},
    )


@router.get("/", response_class=HTMLResponse)
def signup_page(request: Request) -> HTMLResponse:
    return page(
        request,
        "signup.html",
        values={"frequency": "daily", "language": "nb"},
        errors={},
        **choice_lists(request),
    )


@router.post("/abonner", response_class=HTMLResponse)
async def signup_post(request: Request, tasks: BackgroundTasks) -> HTMLResponse:
    form = await form_or_page(request, request.app.state.limiter)
    if isinstance(form, HTMLResponse):
        return form
    return await run_in_threadpool(_signup, request, form, tasks)


def _signup(request: Request, form: dict[str, list[str]], tasks: BackgroundTasks) -> HTMLResponse:
    settings = request.app.state.settings
    errors: dict[str, str] = {}
    email = field(form, "email", 400)
    try:
        email = normalise_email(email)
    except InvalidAddress:
        errors["email"] = "Skriv en gyldig e-postadresse, for eksempel navn@kommune.no."
    chosen = None
    try:
        chosen = chosen_from(form, request)
    except SubscriberError as exc:
        errors[_field_of(str(exc))] = _message_of(str(exc))
    if errors or chosen is None:
        values = {k: v[0] for k, v in form.items() if k != "topic" and v}
        values["topic"] = form.get("topic", [])
        return page(
            request,
            "signup.html",
            status=400,
            values=values,
            errors=errors,
            **choice_lists(request),
        )
    with session_scope(settings.database_url) as session:
        outcome = sign_up(session, email, chosen)
        notice = queue_notice(session, outcome.subscriber, outcome.send)
        notice_id = notice.id if notice else None
    if notice_id is not None:
        tasks.add_task(send_notices, settings, [notice_id])  # after the response
    return page(
        request,
        "message.html",
        title="Sjekk e-posten din",
        message="Vi har sendt en e-post til adressen du oppga. Følg lenken i den for "
        "å bekrefte abonnementet. Lenken virker i sju dager.",
    )


def _field_of(message: str) -> str:
    for name in ("municipality", "role", "frequency", "topic", "language", "name"):
        if name in message:
            return name
    return "form"


def _message_of(message: str) -> str:
    return {
        "municipality": "Velg en kommune fra listen.",
        "role": "Velg en rolle fra listen.",
        "frequency": "Velg hvor ofte du vil ha e-post.",
        "topic": "Velg temaer fra listen.",
        "language": "Velg et språk fra listen.",
        "name": "Navnet kan ha høyst 200 tegn.",
    }.get(_field_of(message), "Noe i skjemaet ble ikke forstått.")


def _confirm_token(request: Request, token: str) -> TokenData:
    return read_token(request.app.state.settings.secret_key, "confirm", token)


@router.get("/bekreft/{token}", response_class=HTMLResponse)
def confirm_page(request: Request, token: str) -> HTMLResponse:
    # A GET changes nothing: mail scanners open links, people press buttons.
    try:
        _confirm_token(request, token)
    except ExpiredToken:
        return _expired(request)
    except BadToken:
        return page(request, "bad_link.html", status=400)
    return page(request, "confirm.html")


@router.post("/bekreft/{token}", response_class=HTMLResponse)
async def confirm_post(request: Request, token: str) -> HTMLResponse:
    form = await form_or_page(request)
    if isinstance(form, HTMLResponse):
        return form
    try:
        data = _confirm_token(request, token)
    except ExpiredToken:
        return _expired(request)
    except BadToken:
        return page(request, "bad_link.html", status=400)
    settings = request.app.state.settings

    def run() -> tuple[str, str]:
        with session_scope(settings.database_url) as session:
            outcome, _ = confirm(
                session, settings.secret_key, data.subscriber_id, data.email, data.nonce
            )
        return outcome, data.email

    outcome, email = await run_in_threadpool(run)
    messages = {
        "confirmed": (
            "Abonnementet er bekreftet",
            f"Takk! {email} får nå oversikter fra Veiledervarsel. Hver e-post har en "
            "lenke til innstillingene dine.",
        ),
        "already": (
            "Abonnementet er allerede bekreftet",
            "Du trenger ikke gjøre noe mer. Hver e-post har en lenke til innstillingene.",
        ),
        "used": (
            "Lenken er allerede brukt",
            "Denne lenken er brukt opp. Vil du abonnere igjen, kan du melde deg på på nytt.",
        ),
    }
    if outcome not in messages:
        return page(request, "bad_link.html", status=400)
    title, message = messages[outcome]
    return page(
        request,
        "message.html",
        status=200 if outcome != "used" else 400,
        title=title,
        message=message,
        signup_link=outcome == "used",
    )


def _expired(request: Request) -> HTMLResponse:
    return page(
        request,
        "message.html",
        status=400,
        title="Lenken er utløpt",
        message="Bekreftelseslenker virker i sju dager. Meld deg på igjen, så sender vi en ny.",
        signup_link=True,
    )


@router.get("/lenke", response_class=HTMLResponse)
def link_page(request: Request) -> HTMLResponse:
    return page(request, "link.html", errors={}, email="")


@router.post("/lenke", response_class=HTMLResponse)
async def link_post(request: Request, tasks: BackgroundTasks) -> HTMLResponse:
    form = await form_or_page(request, request.app.state.limiter)
    if isinstance(form, HTMLResponse):
        return form
    raw = field(form, "email", 400)
    try:
        email = normalise_email(raw)
    except InvalidAddress:
        return page(
            request,
            "link.html",
            status=400,
            email=raw,
            errors={"email": "Skriv en gyldig e-postadresse."},
        )
    settings = request.app.state.settings

    def run() -> int | None:
        with session_scope(settings.database_url) as session:
            subscriber = find_by_email(session, email)
            if subscriber is None or subscriber.status not in (
                Status.ACTIVE.value,
                Status.PENDING.value,
            ):
                return None
            kind = "link" if subscriber.status == Status.ACTIVE.value else "confirm"
            notice = queue_notice(session, subscriber, kind)
            return notice.id if notice else None

    notice_id = await run_in_threadpool(run)
    if notice_id is not None:
        tasks.add_task(send_notices, settings, [notice_id])
    # The same words whether or not we know the address.
    return page(
        request,
        "message.html",
        title="Sjekk e-posten din",
        message="Hvis adressen abonnerer hos oss, har vi sendt en lenke til den.",
    )
