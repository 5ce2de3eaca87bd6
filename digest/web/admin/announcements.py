"""The editors' announcement pages: list, write, preview, edit, publish, withdraw, delete.

Every change goes through `digest.delivery.announcements` and leaves an audit entry. A
form with fields to correct, or made from a version someone else has changed since, is
shown again with a note by each field and everything the editor typed; nothing is saved
until the whole form is right.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, tzinfo

from fastapi import APIRouter, Request
from fastapi.responses import Response
from markupsafe import Markup
from sqlalchemy.orm import Session

from digest.core.i18n import N_, translate
from digest.core.models import Announcement, AnnouncementStatus, Editor
from digest.core.topics import topic_labels
from digest.delivery import announcements as service
from digest.delivery.announcements import (
    AnnouncementError,
    AnnouncementNotFound,
    StaleEdit,
)
from digest.editors import audit
from digest.web.admin.announcement_form import (
    AnnouncementForm,
    Typed,
    form_time,
    read_form,
    stored_values,
)
from digest.web.admin.common import (
    PREFIX,
    SignedIn,
    admin_page,
    in_language,
    row_id,
    see_other,
)
from digest.web.common import DbSession, role_labels, topics
from digest.web.forms import FormError, PostedForm, field
from digest.web.language import page_language
from subscribers.base import utcnow
from subscribers.municipalities import municipalities

router = APIRouter(prefix=PREFIX)

BASE = f"{PREFIX}/kunngjoringer"
SECTION = "announcements"

MESSAGES = {
    "utkast": N_("Utkastet er lagret."),
    "publisert": N_("Kunngjøringen er publisert."),
    "lagret": N_("Endringene er lagret."),
    "trukket": N_("Kunngjøringen er trukket tilbake. Den sendes ikke lenger ut."),
    "slettet": N_("Utkastet er slettet."),
}
STATE_LABELS = {
    AnnouncementStatus.DRAFT: N_("Utkast"),
    AnnouncementStatus.PUBLISHED: N_("Publisert"),
    AnnouncementStatus.WITHDRAWN: N_("Trukket tilbake"),
}
# The list's filter, by the value in the address; «Alle» shows every state.
FILTER_LABELS = {
    "": N_("Alle"),
    "utkast": STATE_LABELS[AnnouncementStatus.DRAFT],
    "publisert": STATE_LABELS[AnnouncementStatus.PUBLISHED],
    "trukket": STATE_LABELS[AnnouncementStatus.WITHDRAWN],
}
FILTERS = {
    "utkast": AnnouncementStatus.DRAFT,
    "publisert": AnnouncementStatus.PUBLISHED,
    "trukket": AnnouncementStatus.WITHDRAWN,
}
SUMMARY_NOTE = N_("Noe må rettes før kunngjøringen kan lagres.")


class AnnouncementMissing(FormError):
    """An announcement id that is not a number, or names no announcement."""

    title = N_("Fant ikke kunngjøringen")

    def __init__(self) -> None:
        super().__init__(404, N_("Kunngjøringen finnes ikke. Kanskje er den slettet."))


class NotNow(FormError):
    """An action the announcement's state does not allow (delete a published one, say)."""

    title = N_("Det går ikke")

    def __init__(self, message: str) -> None:
        super().__init__(409, message)


# --- what the pages show ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Preview:
    """An announcement as the mails show it: the HTML block and the text part."""

    title: str
    link: str | None
    html: Markup
    text: str


def preview_of(title: str, body: str, link: str | None) -> Preview:
    lines = [f"* {title}"]
    text = service.body_text(body)
    if text:
        lines.append(text)
    if link:
        lines.append(f"  {link}")
    return Preview(title, link, service.body_html(body), "\n".join(lines))


def state_of(a: Announcement, now: datetime, language: str) -> tuple[str, str]:
    """The state label (in `language`) and badge class: a published announcement may yet
    have to begin, or have ended."""
    if a.status == AnnouncementStatus.PUBLISHED:
        if a.publish_from > now:
            return translate(language, "Publisert, venter"), "scheduled"
        if a.publish_until is not None and a.publish_until <= now:
            return translate(language, "Utløpt"), "expired"
    return translate(language, STATE_LABELS[a.status]), a.status.value


def targeting(a: Announcement, labels: Mapping[str, str], language: str) -> dict[str, str]:
    """Who an announcement goes to, in words (in `language`): topics (`labels`: the topic
    labels, as the sources file writes them), roles, municipalities."""
    roles: dict[str, str] = {role.value: label for role, label in role_labels(language).items()}
    names = {m.number: m.name for m in municipalities()}
    places = [names.get(n, n) for n in a.municipalities or ()]
    shown = ", ".join(places[:5])
    if len(places) > 5:
        shown = translate(language, "%(places)s og %(more)s til") % {
            "places": shown,
            "more": len(places) - 5,
        }
    return {
        "topics": ", ".join(labels.get(t, t) for t in a.topics or ())
        or translate(language, "Alle temaer"),
        "roles": ", ".join(roles.get(r, r) for r in a.roles or ())
        or translate(language, "Alle roller"),
        "municipalities": shown or translate(language, "Alle kommuner"),
    }


def announcement_id(text: str) -> int:
    """The id in a path; not a number (or one no row can have) is a missing announcement."""
    return row_id(text, AnnouncementMissing())


def existing(session: Session, text: str) -> Announcement:
    found = service.get(session, announcement_id(text))
    if found is None:
        raise AnnouncementMissing()
    return found


def form_page(
    request: Request,
    session: Session,
    editor: Editor,
    *,
    values: Mapping[str, object],
    errors: Mapping[str, str] | None = None,
    announcement: Announcement | None = None,
    version: int | None = None,
    preview: Preview | None = None,
    stored: Mapping[str, object] | None = None,
    status: int = 200,
) -> Response:
    language = page_language(request)
    notes = {name: in_language(language, note) for name, note in (errors or {}).items()}
    return admin_page(
        request,
        "announcement_form.html",
        editor,
        status=status,
        section=SECTION,
        values=values,
        errors=notes,
        summary_note=notes.get("version", translate(language, SUMMARY_NOTE)),
        announcement=announcement,
        version=version if version is not None else (announcement.version if announcement else 0),
        preview=preview,
        stored=stored,
        topics=topics(session),
        roles=role_labels(language),
        action=f"{BASE}/{announcement.id}/rediger" if announcement else f"{BASE}/ny",
    )


# --- the routes -------------------------------------------------------------------------


@router.get("/kunngjoringer")
def list_page(
    request: Request, session: DbSession, editor: SignedIn, tilstand: str = ""
) -> Response:
    status = FILTERS.get(tilstand)
    now = utcnow()
    labels = topic_labels(session)
    language = page_language(request)
    rows = [
        {"a": a, "state": state_of(a, now, language), "targeting": targeting(a, labels, language)}
        for a in service.list_all(session, status)
    ]
    return admin_page(
        request,
        "announcements.html",
        editor,
        section=SECTION,
        messages=MESSAGES,
        rows=rows,
        chosen=tilstand if status is not None else "",
        filters={value: translate(language, label) for value, label in FILTER_LABELS.items()},
    )


@router.get("/kunngjoringer/ny")
def new_form(request: Request, session: DbSession, editor: SignedIn) -> Response:
    empty: dict[str, object] = {
        "title": "",
        "body": "",
        "link": "",
        "topics": [],
        "roles": [],
        "municipalities": "",
        "publish_from": "",
        "publish_until": "",
        "pinned": False,
        "send_immediately": False,
    }
    return form_page(request, session, editor, values=empty)


@router.post("/kunngjoringer/ny")
def create(
    request: Request, session: DbSession, editor: SignedIn, form: AnnouncementForm
) -> Response:
    typed = read_form(form, request.app.state.settings.tz)
    handling = field(form, "handling", 20)
    try:
        checked = service.check(session, typed.data)
    except AnnouncementError as exc:
        checked = None
        typed.errors = {**exc.errors, **typed.errors}
    if typed.errors or checked is None:
        return form_page(
            request, session, editor, values=typed.values, errors=typed.errors, status=400
        )
    if handling == "forhandsvis":
        return form_page(
            request,
            session,
            editor,
            values=typed.values,
            preview=preview_of(checked.title, checked.body, checked.link),
        )
    publish = handling == "publiser"
    item = service.create(session, typed.data, editor_id=editor.id, publish=publish)
    audit.record(
        session,
        editor,
        "announcement_create",
        "announcement",
        item.id,
        after=service.snapshot(item),
    )
    return see_other(f"{BASE}/{item.id}", "publisert" if publish else "utkast")


@router.get("/kunngjoringer/{id_text}")
def show(request: Request, session: DbSession, editor: SignedIn, id_text: str) -> Response:
    a = existing(session, id_text)
    creator = session.get(Editor, a.created_by_id) if a.created_by_id else None
    language = page_language(request)
    return admin_page(
        request,
        "announcement.html",
        editor,
        section=SECTION,
        messages=MESSAGES,
        a=a,
        state=state_of(a, utcnow(), language),
        targeting=targeting(a, topic_labels(session), language),
        preview=preview_of(a.title, a.body, a.link),
        heading=translate("nb", "Fra redaksjonen"),
        creator=creator.email if creator else "",
    )


@router.get("/kunngjoringer/{id_text}/rediger")
def edit_form(request: Request, session: DbSession, editor: SignedIn, id_text: str) -> Response:
    a = existing(session, id_text)
    tz = request.app.state.settings.tz
    return form_page(request, session, editor, values=stored_values(a, tz), announcement=a)


@router.post("/kunngjoringer/{id_text}/rediger")
def edit(
    request: Request, session: DbSession, editor: SignedIn, form: AnnouncementForm, id_text: str
) -> Response:
    a = existing(session, id_text)
    tz = request.app.state.settings.tz
    typed = read_form(form, tz)
    start_text = str(typed.values["publish_from"]).strip()
    if start_text == form_time(a.publish_from, tz):
        # Unchanged in the form (which shows minutes): keep the stored start to the second.
        typed.data = replace(typed.data, publish_from=None)
    elif not start_text:
        typed.data = replace(typed.data, publish_from=utcnow())  # «tomt betyr fra nå»
    handling = field(form, "handling", 20)
    sent_version = field(form, "version", 20)
    version = int(sent_version) if sent_version.isascii() and sent_version.isdigit() else -1
    before = service.snapshot(a)
    stale = version != a.version
    try:
        checked = service.check(session, typed.data, starts=a.publish_from)
    except AnnouncementError as exc:
        checked = None
        typed.errors = {**exc.errors, **typed.errors}
    if stale:
        typed.errors = {"version": service.STALE_NOTE, **typed.errors}
    if typed.errors or checked is None:
        return _again(request, session, editor, a, typed, stale, tz)
    if handling == "forhandsvis":
        return form_page(
            request,
            session,
            editor,
            values=typed.values,
            announcement=a,
            version=version,
            preview=preview_of(checked.title, checked.body, checked.link),
        )
    try:
        a = service.update(session, a.id, typed.data, version=version)
    except StaleEdit:
        # Someone saved between our look and our write: as above, with what they stored.
        session.refresh(a)
        typed.errors = {"version": service.STALE_NOTE}
        return _again(request, session, editor, a, typed, True, tz)
    audit.record(
        session,
        editor,
        "announcement_update",
        "announcement",
        a.id,
        before=before,
        after=service.snapshot(a),
    )
    message = "lagret"
    if handling == "publiser" and a.status != AnnouncementStatus.PUBLISHED:
        before = service.snapshot(a)
        service.publish(session, a.id)
        audit.record(
            session,
            editor,
            "announcement_publish",
            "announcement",
            a.id,
            before=before,
            after=service.snapshot(a),
        )
        message = "publisert"
    return see_other(f"{BASE}/{a.id}", message)


def _again(
    request: Request,
    session: Session,
    editor: Editor,
    a: Announcement,
    typed: Typed,
    stale: bool,
    tz: tzinfo,
) -> Response:
    """The edit form again with what was typed; when stale, with what is stored now beside
    it and the stored version in the form, so that saving again is a choice made knowingly."""
    return form_page(
        request,
        session,
        editor,
        values=typed.values,
        errors=typed.errors,
        announcement=a,
        stored=stored_values(a, tz) if stale else None,
        status=409 if stale else 400,
    )


def _act(session: Session, editor: Editor, id_text: str, action: str) -> Announcement | None:
    a = existing(session, id_text)
    target, before = a.id, service.snapshot(a)
    try:
        if action == "publish":
            changed: Announcement | None = service.publish(session, a.id)
        elif action == "withdraw":
            changed = service.withdraw(session, a.id)
        else:
            service.delete_draft(session, a.id)
            changed = None
    except AnnouncementNotFound:
        raise AnnouncementMissing() from None
    except AnnouncementError as exc:
        raise NotNow(next(iter(exc.errors.values()), str(exc))) from None
    after = service.snapshot(changed) if changed else None
    if after != before:  # publishing what is published (a second click) is no action
        audit.record(
            session,
            editor,
            f"announcement_{action}",
            "announcement",
            target,
            before=before,
            after=after,
        )
    return changed


@router.post("/kunngjoringer/{id_text}/publiser")
def publish(session: DbSession, editor: SignedIn, form: PostedForm, id_text: str) -> Response:
    a = _act(session, editor, id_text, "publish")
    return see_other(f"{BASE}/{a.id if a else id_text}", "publisert")


@router.post("/kunngjoringer/{id_text}/trekk-tilbake")
def withdraw(session: DbSession, editor: SignedIn, form: PostedForm, id_text: str) -> Response:
    a = _act(session, editor, id_text, "withdraw")
    return see_other(f"{BASE}/{a.id if a else id_text}", "trukket")


@router.post("/kunngjoringer/{id_text}/slett")
def delete(session: DbSession, editor: SignedIn, form: PostedForm, id_text: str) -> Response:
    _act(session, editor, id_text, "delete")
    return see_other(BASE, "slettet")
