"""Editors for tests: accounts made as `digest editors add` makes them, and signing in
through the real sign-in form."""

from __future__ import annotations

import httpx

from digest.core.db import session_scope
from digest.core.models import EditorRole
from digest.core.settings import Settings
from digest.editors import accounts
from tests.support.server import csrf

PASSWORD = "riktig hest batteri stift"


def make_editor(
    settings: Settings,
    email: str = "redaktor@bufdir.no",
    role: EditorRole = EditorRole.EDITOR,
    password: str = PASSWORD,
) -> int:
    with session_scope(settings.database_url) as session:
        return accounts.add_editor(session, email, password, role).id


def sign_in(
    client: httpx.Client, email: str = "redaktor@bufdir.no", password: str = PASSWORD
) -> httpx.Response:
    """Post the sign-in form as a browser would; the client keeps the session cookie."""
    token = csrf(client, "/redaksjon/logg-inn")
    return client.post(
        "/redaksjon/logg-inn", data={"email": email, "password": password, "csrf": token}
    )
