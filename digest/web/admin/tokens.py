"""The API tokens page (/redaksjon/nokler): an editor's own tokens, making one and revoking
one. An admin may do the same for another editor (`?redaktor=<id>`).

A new token is shown once, in the answer to the form that made it (never in a URL, which
a redirect would put in the history and the logs); only its hash is stored. Answers are
`Cache-Control: no-store` (see `digest.web.guards.SecurityHeaders`), so the page with the
token is not kept either. Making and revoking are written in the audit log.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from digest.core.i18n import N_, translate, translator
from digest.core.models import ApiToken, Editor
from digest.editors import accounts, audit, tokens
from digest.web.admin.common import (
    PREFIX,
    NotAllowed,
    NotFound,
    SignedIn,
    admin_page,
    row_id,
    see_other,
)
from digest.web.common import DbSession
from digest.web.forms import PostedForm, field
from digest.web.language import page_language
from subscribers.text import clean_line

router = APIRouter(prefix=PREFIX)

PAGE = f"{PREFIX}/nokler"
MAX_NAME = 100
MAX_LIVE = 20  # live tokens per editor: enough for every CMS and script, not a leak's worth
MESSAGES = {"trukket": N_("Nøkkelen er trukket tilbake. Den virker ikke lenger.")}


def _owner(session: Session, editor: Editor, asked: str) -> Editor:
    """Whose tokens: the editor's own, or for an admin the editor `asked` names."""
    if not asked or asked == str(editor.id):
        return editor
    if not editor.is_admin:
        raise NotAllowed()
    missing = NotFound(N_("Redaktøren finnes ikke."))
    owner = session.get(Editor, row_id(asked, missing))
    if owner is None:
        raise missing
    return owner


def _page(
    request: Request,
    session: Session,
    editor: Editor,
    owner: Editor,
    *,
    status: int = 200,
    **context: object,
) -> Response:
    return admin_page(
        request,
        "tokens.html",
        editor,
        status=status,
        section="tokens",
        messages={k: translate(page_language(request), v) for k, v in MESSAGES.items()},
        owner=owner,
        own=owner.id == editor.id,
        tokens=tokens.tokens_of(session, owner),
        editors=accounts.list_editors(session) if editor.is_admin else (),
        **{"values": {"name": ""}, "errors": {}, **context},
    )


@router.get("/nokler")
def token_list(
    request: Request, session: DbSession, editor: SignedIn, redaktor: str = ""
) -> Response:
    return _page(request, session, editor, _owner(session, editor, redaktor[:20]))


@router.post("/nokler")
def make_token(
    request: Request, session: DbSession, editor: SignedIn, form: PostedForm
) -> Response:
    owner = _owner(session, editor, field(form, "redaktor", 20))
    typed = field(form, "name", 1000)
    name = clean_line(typed)
    _ = translator(page_language(request)).gettext
    error = ""
    if not name:
        error = _("Gi nøkkelen et navn, for eksempel «CMS» eller «Publiseringsskript».")
    elif len(name) > MAX_NAME:
        error = _("Navnet kan ha høyst %(most)s tegn (det har %(count)s).") % {
            "most": MAX_NAME,
            "count": len(name),
        }
    elif owner.disabled_at is not None:
        error = _("Redaktøren er deaktivert, så en nøkkel ville ikke virke.")
    elif sum(t.revoked_at is None for t in tokens.tokens_of(session, owner)) >= MAX_LIVE:
        error = _(
            "Det finnes allerede %(count)s aktive nøkler. Trekk tilbake en du ikke bruker."
        ) % {"count": MAX_LIVE}
    if error:
        # Returned, not raised: nothing was changed, and the page keeps what was typed.
        return _page(
            request,
            session,
            editor,
            owner,
            status=400,
            values={"name": typed},
            errors={"name": error},
        )
    made = tokens.make_token(session, owner, name)
    audit.record(
        session,
        editor,
        "api_token_create",
        "api_token",
        made.token.id,
        after={"editor": owner.email, "name": made.token.name, "prefix": made.token.prefix},
    )
    return _page(request, session, editor, owner, new_token=made.secret, new_name=name)


@router.post("/nokler/{token_id}/trekk-tilbake")
def revoke_token(
    request: Request, session: DbSession, editor: SignedIn, form: PostedForm, token_id: str
) -> Response:
    owner = _owner(session, editor, field(form, "redaktor", 20))
    missing = NotFound(N_("Nøkkelen finnes ikke."))
    row = session.get(ApiToken, row_id(token_id, missing))
    if row is None or row.editor_id != owner.id:
        raise missing
    was = row.revoked_at
    tokens.revoke(session, owner, row.id)
    if was is None:
        audit.record(
            session,
            editor,
            "api_token_revoke",
            "api_token",
            row.id,
            before={
                "editor": owner.email,
                "name": row.name,
                "prefix": row.prefix,
                "revoked_at": None,
            },
            after={
                "editor": owner.email,
                "name": row.name,
                "prefix": row.prefix,
                "revoked_at": row.revoked_at,
            },
        )
    target = PAGE if owner.id == editor.id else f"{PAGE}?redaktor={owner.id}"
    return see_other(target, "trukket")
