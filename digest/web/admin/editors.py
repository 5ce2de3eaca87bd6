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

from digest.core.i18n import N_, translate, translator
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
from digest.web.language import page_language
from subscribers.addresses import InvalidAddress, normalise_email
from subscribers.text import clean_line

router = APIRouter(prefix=PREFIX)

# Labels, notices and form notes in bokmål, each shown in the page's language.
ROLE_LABELS = {EditorRole.EDITOR: N_("Redaktør"), EditorRole.ADMIN: N_("Administrator")}
FIELDS = ("email", "name", "role", "disabled_at")  # what the audit log keeps of an editor
MESSAGES = {
    "lagt-til": N_("Redaktøren er lagt til. Gi dem passordet på en trygg måte."),
    "rolle": N_("Rollen er endret."),
    "deaktivert": N_(
        "Redaktøren er deaktivert og logget ut overalt; API-nøklene er trukket tilbake."
    ),
    "aktivert": N_("Redaktøren er aktivert igjen. Trukne API-nøkler må lages på nytt."),
    "passord": N_("Passordet er endret, og redaktøren er logget ut overalt."),
}
PASSWORD_SHORT = N_("Passordet må ha minst %(count)s tegn.")
PASSWORD_LONG = N_("Passordet kan ha høyst %(count)s tegn.")
PASSWORDS_DIFFER = N_("De to passordene er ikke like.")
NOT_SELF = N_("Du kan ikke deaktivere deg selv. Be en annen administrator om det.")
NOT_SELF_ROLE = N_("Du kan ikke endre din egen rolle. Be en annen administrator om det.")
LAST_ADMIN = N_("Dette er den siste aktive administratoren. Gjør en annen til administrator først.")
CHOOSE_ROLE = N_("Velg en rolle fra listen.")
TAKEN = N_("Det finnes allerede en redaktør med denne adressen.")


class EditorMissing(FormError):
    title = N_("Fant ikke redaktøren")

    def __init__(self) -> None:
        super().__init__(404, N_("Det finnes ingen redaktør med denne lenken."))


def _editor(session: Session, editor_id: str) -> Editor:
    found = session.get(Editor, row_id(editor_id, EditorMissing()))
    if found is None:
        raise EditorMissing()
    return found


def _messages(request: Request) -> dict[str, str]:
    lang = page_language(request)
    return {k: translate(lang, v) for k, v in MESSAGES.items()}


def _role_labels(request: Request) -> dict[EditorRole, str]:
    lang = page_language(request)
    return {k: translate(lang, v) for k, v in ROLE_LABELS.items()}


def _role(value: str) -> EditorRole | None:
    return EditorRole(value) if value in tuple(EditorRole) else None


def _password(form: Form, errors: dict[str, str], lang: str) -> str:
    """The password typed twice, or a note (in `lang`) by the field at fault."""
    _ = translator(lang).gettext
    password = field(form, "password", MAX_PASSWORD + 1)
    if len(password) < MIN_PASSWORD:
        errors["password"] = _(PASSWORD_SHORT) % {"count": MIN_PASSWORD}
    elif len(password) > MAX_PASSWORD:
        errors["password"] = _(PASSWORD_LONG) % {"count": MAX_PASSWORD}
    elif password != field(form, "password2", MAX_PASSWORD + 1):
        errors["password2"] = _(PASSWORDS_DIFFER)
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
        editors=accounts.list_editors(session),
        messages=_messages(request),
        role_labels=_role_labels(request),
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
    lang = page_language(request)
    _ = translator(lang).gettext
    errors: dict[str, str] = {}
    address = ""
    try:
        address = normalise_email(typed["email"])
    except InvalidAddress:
        errors["email"] = _("Skriv en gyldig e-postadresse, for eksempel navn@bufdir.no.")
    if address and accounts.find(session, address) is not None:
        errors["email"] = _(TAKEN)
    if len(typed["name"]) > 200:
        errors["name"] = _("Navnet kan ha høyst %(count)s tegn.") % {"count": 200}
    role = _role(typed["role"])
    if role is None:
        errors["role"] = _(CHOOSE_ROLE)
    password = _password(form, errors, lang)
    if errors or role is None:
        return _list_page(request, session, editor, status=400, values=typed, errors=errors)
    try:
        added = accounts.add_editor(session, address, password, role, typed["name"])
    except AccountError as exc:  # checked above; a second admin adding the same address
        errors[exc.field or "email"] = _(TAKEN)
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
        shown=shown,
        messages=_messages(request),
        role_labels=_role_labels(request),
        errors=dict(errors or {}),
        min_password=MIN_PASSWORD,
    )


@router.post("/redaktorer/{editor_id}/rolle")
def editor_role(
    editor_id: str, request: Request, session: DbSession, editor: AdminOnly, form: PostedForm
) -> Response:
    target = _editor(session, editor_id)
    _ = translator(page_language(request)).gettext
    role = _role(field(form, "role", 20))
    if role is None:
        return _editor_page(request, editor, target, status=400, errors={"role": _(CHOOSE_ROLE)})
    if role == target.role:
        return see_other(f"{PREFIX}/redaktorer/{target.id}")
    if target.id == editor.id:
        return _editor_page(request, editor, target, status=400, errors={"role": _(NOT_SELF_ROLE)})
    last = target.is_admin and not accounts.other_active_admins(session, target)
    if last and target.disabled_at is None:
        return _editor_page(request, editor, target, status=400, errors={"role": _(LAST_ADMIN)})
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
    _ = translator(page_language(request)).gettext
    if target.id == editor.id:
        return _editor_page(request, editor, target, status=400, errors={"state": _(NOT_SELF)})
    if target.disabled_at is not None:
        return see_other(f"{PREFIX}/redaktorer/{target.id}")
    if target.is_admin and not accounts.other_active_admins(session, target):
        return _editor_page(request, editor, target, status=400, errors={"state": _(LAST_ADMIN)})
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
    password = _password(form, errors, page_language(request))
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
