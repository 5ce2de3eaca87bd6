"""Signing up (with double opt-in), confirming, and asking for one's link again.

The answer to a sign-up or a link request is the same whether or not the address is
known, and both are limited per client here and per address in `digest.delivery.notices`.
"""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from digest.core.db import session_scope
from digest.delivery.notices import queue_notice, send_notices
from digest.web.common import bokmal, choice_lists, field, form_or_page, page, topics
from subscribers.addresses import InvalidAddress, normalise_email
from subscribers.models import LANGUAGE_LABELS, ROLE_LABELS, Channel, NoticeKind, Status
from subscribers.municipalities import find_municipality
from subscribers.service import (
    Choices,
    SubscriberError,
    choices,
    confirm,
    find_by_email,
    find_request,
    is_expired,
    request_confirmation,
    requested_choices,
    sign_up,
)
from subscribers.tokens import BadToken, ExpiredToken, read_token

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
        values: dict[str, object] = {k: v[0] for k, v in form.items() if k != "topic" and v}
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
        notice = queue_notice(session, outcome.subscriber, outcome.send, outcome.request)
        if notice is None:
            # The address has had its share of mail this hour: keep nothing of this sign-up.
            session.rollback()
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


def _confirm_token(request: Request, token: str) -> str:
    return read_token(request.app.state.settings.secret_key, "confirm", token)


@router.get("/bekreft/{token}", response_class=HTMLResponse)
def confirm_page(request: Request, token: str) -> HTMLResponse:
    # A GET changes nothing: mail scanners open links, people press buttons.
    try:
        nonce = _confirm_token(request, token)
    except ExpiredToken:
        return _expired(request)
    except BadToken:
        return page(request, "bad_link.html", status=400)
    with session_scope(request.app.state.settings.database_url) as session:
        asked = find_request(session, nonce)
        if asked is None:
            return _answer(request, "used", "")
        if is_expired(asked):
            return _expired(request)
        # Show what confirming applies: it may be someone else's sign-up for this address.
        return page(request, "confirm.html", summary=_summary(request, requested_choices(asked)))


def _summary(request: Request, chosen: Choices) -> list[tuple[str, str]]:
    """The choices a confirmation applies, as the page shows them (label, value)."""
    topic_labels = {t.key: t.label for t in topics(request)}
    municipality = find_municipality(chosen.municipality) if chosen.municipality else None
    rows = [
        ("Navn", chosen.name),
        ("Kommune", municipality.name if municipality else ""),
        ("Rolle", {k.value: v for k, v in ROLE_LABELS.items()}.get(chosen.role, "")),
        ("Hvor ofte", bokmal(f"frequency.{chosen.frequency}")),
        ("Temaer", ", ".join(topic_labels.get(t, t) for t in chosen.topics) or "Alle"),
        ("Språk", {k.value: v for k, v in LANGUAGE_LABELS.items()}.get(chosen.language, "")),
    ]
    return [(label, value) for label, value in rows if value]


@router.post("/bekreft/{token}", response_class=HTMLResponse)
async def confirm_post(request: Request, token: str) -> HTMLResponse:
    form = await form_or_page(request)
    if isinstance(form, HTMLResponse):
        return form
    try:
        nonce = _confirm_token(request, token)
    except ExpiredToken:
        return _expired(request)
    except BadToken:
        return page(request, "bad_link.html", status=400)
    settings = request.app.state.settings

    def run() -> tuple[str, str]:
        with session_scope(settings.database_url) as session:
            outcome, subscriber = confirm(session, settings.secret_key, nonce)
            return outcome, subscriber.email if subscriber else ""

    outcome, email = await run_in_threadpool(run)
    return _answer(request, outcome, email)


def _answer(request: Request, outcome: str, email: str) -> HTMLResponse:
    if outcome == "expired":
        return _expired(request)
    if outcome == "confirmed":
        return page(
            request,
            "message.html",
            title="Abonnementet er bekreftet",
            message=f"Takk! {email} får nå oversikter fra Veiledervarsel. Hver e-post har en "
            "lenke til innstillingene dine.",
        )
    return page(
        request,
        "message.html",
        status=400,
        title="Lenken er allerede brukt",
        message="Denne lenken er brukt opp. Har du alt bekreftet, trenger du ikke gjøre noe "
        "mer: hver e-post har en lenke til innstillingene. Ellers kan du melde deg på igjen.",
        signup_link=True,
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
            if subscriber.status == Status.ACTIVE.value:
                notice = queue_notice(session, subscriber, NoticeKind.LINK)
            else:  # pending: the link of their latest open request, or of a new one
                asked = request_confirmation(session, subscriber, Channel.WEB)
                notice = queue_notice(session, subscriber, NoticeKind.CONFIRM, asked)
            if notice is None:
                session.rollback()  # its share of mail this hour: keep nothing
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
