"""What the editors' pages share: who is signed in, the session cookie, and the page helper.

A request's editor comes from the session cookie (`SignedIn`); without a live session the
browser is sent to the sign-in page, and a disabled editor's session is gone at once.
Pages are in the request's language; texts made before it is known (notices, notes, an
error's title and message) are bokmål messages, translated where the page shows them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, Response

from digest.core.errors import DigestError
from digest.core.i18n import N_, translate
from digest.core.models import Editor
from digest.delivery.announcement_checks import Note
from digest.editors import signins
from digest.web.common import DbSession, page
from digest.web.forms import FormError
from digest.web.language import page_language

PREFIX = "/redaksjon"
MAX_ID = 2**31 - 1  # ids are INTEGER columns (32 bits on PostgreSQL)
# What a Location may hold as it is: the URL's own punctuation and escapes.
URL_SAFE = "/?&=%#:;,+@!$'()*~[]"


def cookie_name(base_url: str) -> str:
    # As for the CSRF cookie: `__Host-` (Secure, Path=/, host-only) needs HTTPS.
    return "__Host-editor" if base_url.startswith("https://") else "editor"


@dataclass(frozen=True, slots=True)
class StaffMember:
    """Who is signed in, as the menu shows it."""

    id: int
    email: str
    name: str
    is_admin: bool


class SignInNeeded(DigestError):
    """No live session: the browser is sent to sign in, and back to `next_path` after."""

    def __init__(self, next_path: str) -> None:
        super().__init__("sign-in needed")
        self.next_path = next_path


class NotAllowed(FormError):
    """An editor asking for an admin's page or action."""

    title = N_("Ikke tilgang")

    def __init__(self) -> None:
        super().__init__(403, N_("Denne siden er bare for administratorer."))


class NotFound(FormError):
    """An id in an editors' page address that names nothing (or is not an id at all)."""

    title = N_("Fant ikke siden")

    def __init__(
        self, message: str = N_("Det du ser etter finnes ikke, eller er slettet.")
    ) -> None:
        super().__init__(404, message)


def row_id(value: str, missing: FormError) -> int:
    """An id from a page address; anything that is not one (letters, other digits, more
    than an INTEGER column holds) names nothing, and `missing` (a 404) says so."""
    if not value.isascii() or not value.isdigit() or len(value) > 10 or int(value) > MAX_ID:
        raise missing
    return int(value)


def page_number(value: str) -> int:
    """A page number from the query; anything else is the first page."""
    if value.isascii() and value.isdigit() and len(value) < 7:
        return max(int(value), 1)
    return 1


def session_token(request: Request) -> str:
    return request.cookies.get(cookie_name(request.app.state.settings.base_url), "")


def current_editor(request: Request, session: DbSession) -> Editor:
    settings = request.app.state.settings
    editor = signins.editor_of(session, session_token(request), signins.Lifetimes.of(settings))
    if editor is None:
        # Only a GET comes back to where it was; a form posted after the session ended
        # lands on the list it came from.
        target = request.url.path if request.method in ("GET", "HEAD") else PREFIX
        if request.method in ("GET", "HEAD") and request.url.query:
            target += "?" + request.url.query
        # The ended session's row (if any) is deleted: commit that before refusing.
        session.commit()
        raise SignInNeeded(target)
    # A plain copy for the error pages: by then the request's session is rolled back and
    # the row expired (see digest.web.errors).
    request.state.editor = StaffMember(editor.id, editor.email, editor.name, editor.is_admin)
    return editor


SignedIn = Annotated[Editor, Depends(current_editor)]


def admin_editor(editor: SignedIn) -> Editor:
    if not editor.is_admin:
        raise NotAllowed()
    return editor


AdminOnly = Annotated[Editor, Depends(admin_editor)]


def sign_in_url(next_path: str) -> str:
    return f"{PREFIX}/logg-inn?neste={quote(next_path, safe='/')}"


def safe_next(value: str, base: str = PREFIX) -> str:
    """Where to go after a form (signing in, an action from a list): a page at or under
    `base` on this site, never another site; else `base` itself."""
    if (
        (value == base or value.startswith((base + "/", base + "?")))
        and "\\" not in value
        and all(c.isprintable() for c in value)
        and len(value) < 500
    ):
        return value
    return base


def in_language(language: str, text: str) -> str:
    """A text made before the page's language was known, in that language: a `Note` with
    its values, else a bokmål message (a text that is none stays as it is)."""
    if not text:
        return ""  # gettext's "" is the catalogue's header
    if isinstance(text, Note):
        return text.in_language(language)
    return translate(language, text)


def admin_page(
    request: Request,
    name: str,
    editor: Editor,
    *,
    status: int = 200,
    messages: Mapping[str, str] | None = None,
    **context: object,
) -> HTMLResponse:
    """An editors' page (`templates/web/admin/<name>`) with who is signed in and the menu;
    templates show times as `{{ moment | local_time(tz) }}`.

    A page reached by `see_other(url, "key")` shows `messages[key]` as its notice (a bokmål
    message, in the page's language): only our own texts, never anything from the query
    string itself.
    """
    shown = (messages or {}).get(request.query_params.get("melding", ""), "")
    shown = in_language(page_language(request), shown)
    tz = request.app.state.settings.tz
    return page(
        request, f"admin/{name}", status=status, editor=editor, flash=shown, tz=tz, **context
    )


def see_other(url: str, message: str = "") -> Response:
    """After a form: 303 to the page that shows the result (so a reload does not resend),
    with the key of the notice that page shows (see `admin_page`)."""
    if message:
        url += ("&" if "?" in url else "?") + "melding=" + quote(message)
    # A header is latin-1: anything else in a path or query we were given is escaped.
    return Response(status_code=303, headers={"Location": quote(url, safe=URL_SAFE)})
