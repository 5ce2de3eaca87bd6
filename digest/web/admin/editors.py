"""The admins' pages for editors: the list, adding one, and per editor their role,
disabling and enabling, and a new password.

The admin types a first password and tells it to the new editor (it is never shown
again, here or anywhere). An admin cannot disable or demote themselves, and the last
active admin cannot be disabled or demoted by anyone: someone must be left who can sign
in and manage the others. A new password and disabling both end the editor's sessions
at once (`digest.editors.accounts`).
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from digest.core.models import Editor, EditorRole
from digest.editors import accounts, audit
from digest.editors.accounts import MAX_PASSWORD, MIN_PASSWORD, AccountError
from digest.web.admin.common import (
    PREFIX,
    AdminOnly,
    admin_page,
    row_id,
    see_other,
)
from digest.web.common import DbSession
from digest.web.forms import Form, FormError, PostedForm, field
from subscribers.addresses import InvalidAddress, normalise_email
from subscribers.text import clean_line

router = APIRouter(prefix=PREFIX)

ROLE_LABELS = {EditorRole.EDITOR: "Redaktør", EditorRole.ADMIN: "Administrator"}
FIELDS = ("email", "name", "role", "disabled_at")  # what the audit log keeps of an editor
MESSAGES = {
    "lagt-til": "Redaktøren er lagt til. Gi dem passordet på en trygg måte.",
    "rolle": "Rollen er endret.",
    "deaktivert": "Redaktøren er deaktivert og logget ut overalt; API-nøklene er trukket tilbake.",
    "aktivert": "Redaktøren er aktivert igjen. Trukne API-nøkler må lages på nytt.",
    "passord": "Passordet er endret, og redaktøren er logget ut overalt.",
}
PASSWORD_SHORT = f"Passordet må ha minst {MIN_PASSWORD} tegn."
PASSWORD_LONG = f"Passordet kan ha høyst {MAX_PASSWORD} tegn."
PASSWORDS_DIFFER = "De to passordene er ikke like."
NOT_SELF = "Du kan ikke deaktivere deg selv. Be en annen administrator om det."
NOT_SELF_ROLE = "Du kan ikke endre din egen rolle. Be en annen administrator om det."
LAST_ADMIN = "Dette er den siste aktive administratoren. Gjør en annen til administrator først."


class EditorMissing(FormError):
    title = "Fant ikke redaktøren"

    def __init__(self) -> None:
        super().__init__(404, "Det finnes ingen redaktør med denne lenken.")


def _editor(session: Session, editor_id: str) -> Editor:
    found = session.get(Editor, row_id(editor_id, EditorMissing()))
    if found is None:
        raise EditorMissing()
    return found


def _other_active_admins(session: Session, editor: Editor) -> int:
    return sum(
        1
        for e in accounts.list_editors(session)
        if e.id != editor.id and e.is_admin and e.disabled_at is None
    )


def _role(value: str) -> EditorRole | None:
    return EditorRole(value) if value in tuple(EditorRole) else None


def _password(form: Form, errors: dict[str, str]) -> str:
    """The password typed twice, or a note by the field at fault."""
    password = field(form, "password", MAX_PASSWORD + 1)
    if len(password) < MIN_PASSWORD:
        errors["password"] = PASSWORD_SHORT
    elif len(password) > MAX_PASSWORD:
        errors["password"] = PASSWORD_LONG
    elif password != field(form, "password2", MAX_PASSWORD + 1):
        errors["password2"] = PASSWORDS_DIFFER
    return password


# --- the list and adding ---------------------------------------------------------------


@router.get("/redaktorer")
def editor_list(request: Request, session: DbSession, editor: AdminOnly) -> Response:
    return _list_page(request, session, editor)


def _list_page(
    request: Request,
    session: Session,
    editor: Editor,
    *,
    status: int = 200,
    values: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None,
) -> Response:
    return admin_page(
        request,
        "editors.html",
        editor,
        status=status,
        section="editors",
        messages=MESSAGES,
        editors=accounts.list_editors(session),
        role_labels=ROLE_LABELS,
        values={"email": "", "name": "", "role": EditorRole.EDITOR, **(values or {})},
        errors=dict(errors or {}),
        min_password=MIN_PASSWORD,
    )


@router.post("/redaktorer")
def editor_add(
    request: Request, session: DbSession, editor: AdminOnly, form: PostedForm
) -> Response:
    typed = {
        "email": clean_line(field(form, "email", 300), 300),
        "name": clean_line(field(form, "name", 300), 300),
        "role": field(form, "role", 20),
    }
    errors: dict[str, str] = {}
    address = ""
    try:
        address = normalise_email(typed["email"])
    except InvalidAddress:
        errors["email"] = "Skriv en gyldig e-postadresse, for eksempel navn@bufdir.no."
    if address and accounts.find(session, address) is not None:
        errors["email"] = "Det finnes allerede en redaktør med denne adressen."
    if len(typed["name"]) > 200:
        errors["name"] = "Navnet kan ha høyst 200 tegn."
    role = _role(typed["role"])
    if role is None:
        errors["role"] = "Velg en rolle fra listen."
    password = _password(form, errors)
    if errors or role is None:
        return _list_page(request, session, editor, status=400, values=typed, errors=errors)
    try:
        added = accounts.add_editor(session, address, password, role, typed["name"])
    except AccountError as exc:  # checked above; a second admin adding the same address
        errors[exc.field or "email"] = "Det finnes allerede en redaktør med denne adressen."
        return _list_page(request, session, editor, status=400, values=typed, errors=errors)
    audit.record(
        session, editor, "editor_add", "editor", added.id, after=audit.snapshot(added, FIELDS)
    )
    return see_other(f"{PREFIX}/redaktorer", "lagt-til")


# --- one editor ------------------------------------------------------------------------


@router.get("/redaktorer/{editor_id}")
def editor_page(
    editor_id: str, request: Request, session: DbSession, editor: AdminOnly
) -> Response:
    return _editor_page(request, editor, _editor(session, editor_id))


def _editor_page(
    request: Request,
    editor: Editor,
    shown: Editor,
    *,
    status: int = 200,
    errors: Mapping[str, str] | None = None,
) -> Response:
    return admin_page(
        request,
        "editor.html",
        editor,
        status=status,
        section="editors",
        messages=MESSAGES,
        shown=shown,
        role_labels=ROLE_LABELS,
        errors=dict(errors or {}),
        min_password=MIN_PASSWORD,
    )


@router.post("/redaktorer/{editor_id}/rolle")
def editor_role(
    editor_id: str, request: Request, session: DbSession, editor: AdminOnly, form: PostedForm
) -> Response:
    target = _editor(session, editor_id)
    role = _role(field(form, "role", 20))
    if role is None:
        return _editor_page(
            request, editor, target, status=400, errors={"role": "Velg en rolle fra listen."}
        )
    if role == target.role:
        return see_other(f"{PREFIX}/redaktorer/{target.id}")
    if target.id == editor.id:
        return _editor_page(request, editor, target, status=400, errors={"role": NOT_SELF_ROLE})
    if target.is_admin and target.disabled_at is None and not _other_active_admins(session, target):
        return _editor_page(request, editor, target, status=400, errors={"role": LAST_ADMIN})
    before = audit.snapshot(target, FIELDS)
    accounts.set_role(target, role)
    audit.record(
        session,
        editor,
        "editor_role",
        "editor",
        target.id,
        before=before,
        after=audit.snapshot(target, FIELDS),
    )
    return see_other(f"{PREFIX}/redaktorer/{target.id}", "rolle")


@router.post("/redaktorer/{editor_id}/deaktiver")
def editor_disable(
    editor_id: str, request: Request, session: DbSession, editor: AdminOnly, form: PostedForm
) -> Response:
    target = _editor(session, editor_id)
    if target.id == editor.id:
        return _editor_page(request, editor, target, status=400, errors={"state": NOT_SELF})
    if target.disabled_at is not None:
        return see_other(f"{PREFIX}/redaktorer/{target.id}")
    if target.is_admin and not _other_active_admins(session, target):
        return _editor_page(request, editor, target, status=400, errors={"state": LAST_ADMIN})
    before = audit.snapshot(target, FIELDS)
    accounts.disable(session, target)
    audit.record(
        session,
        editor,
        "editor_disable",
        "editor",
        target.id,
        before=before,
        after=audit.snapshot(target, FIELDS),
    )
    return see_other(f"{PREFIX}/redaktorer/{target.id}", "deaktivert")


@router.post("/redaktorer/{editor_id}/aktiver")
def editor_enable(
    editor_id: str, request: Request, session: DbSession, editor: AdminOnly, form: PostedForm
) -> Response:
    target = _editor(session, editor_id)
    if target.disabled_at is None:
        return see_other(f"{PREFIX}/redaktorer/{target.id}")
    before = audit.snapshot(target, FIELDS)
    accounts.enable(target)
    audit.record(
        session,
        editor,
        "editor_enable",
        "editor",
        target.id,
        before=before,
        after=audit.snapshot(target, FIELDS),
    )
    return see_other(f"{PREFIX}/redaktorer/{target.id}", "aktivert")


@router.post("/redaktorer/{editor_id}/passord")
def editor_password(
    editor_id: str, request: Request, session: DbSession, editor: AdminOnly, form: PostedForm
) -> Response:
    target = _editor(session, editor_id)
    errors: dict[str, str] = {}
    password = _password(form, errors)
    if errors:
        return _editor_page(request, editor, target, status=400, errors=errors)
    before = {"password_changed_at": audit.plain(target.password_changed_at)}
    accounts.set_password(session, target, password)
    audit.record(
        session,
        editor,
        "editor_reset_password",
        "editor",
        target.id,
        before=before,
        after={"password_changed_at": audit.plain(target.password_changed_at)},
    )
    if target.id == editor.id:  # their own sessions ended too, this one with them
        return see_other(f"{PREFIX}/logg-inn")
    return see_other(f"{PREFIX}/redaktorer/{target.id}", "passord")
