"""The admins' pages for editors: adding one, a duplicate refused by its field, disabling
(their session stops at once), never oneself nor the last admin, the role, a new password."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from sqlalchemy import select

from digest.core.db import session_scope
from digest.core.models import AuditEntry, Editor, EditorRole
from digest.core.settings import Settings
from tests.support.editors import PASSWORD, make_editor, sign_in
from tests.support.server import LiveServer, csrf

EDITORS = "/redaksjon/redaktorer"
NEW_PASSWORD = "et helt nytt langt passord"


def editor_id(settings: Settings, email: str) -> int:
    with session_scope(settings.database_url) as session:
        found = session.scalar(select(Editor.id).where(Editor.email == email))
        assert found is not None
        return found


def audit(settings: Settings, action: str) -> list[AuditEntry]:
    with session_scope(settings.database_url) as session:
        return list(session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def post(client: httpx.Client, path: str, page: str, **data: str) -> httpx.Response:
    return client.post(path, data={"csrf": csrf(client, page), **data})


@contextmanager
def signed_in(live_app: LiveServer, email: str, password: str = PASSWORD) -> Iterator[httpx.Client]:
    """A second browser, signed in as `email`."""
    with live_app.client() as web:
        assert sign_in(web, email, password).status_code == 303
        yield web


def works(web: httpx.Client) -> bool:
    """Does the browser's session still open an editor's page?"""
    answer = web.get("/redaksjon/redaktorer")
    return answer.status_code in (200, 403)


def test_editors_get_403(editor_client: httpx.Client) -> None:
    assert editor_client.get(EDITORS).status_code == 403
    assert editor_client.get(f"{EDITORS}/1").status_code == 403


def test_add_an_editor_and_refuse_a_duplicate(
    settings: Settings, admin_client: httpx.Client, live_app: LiveServer
) -> None:
    answer = post(
        admin_client,
        EDITORS,
        EDITORS,
        email="Ny.Redaktor@Bufdir.no",
        name="Ny \u202eRedaktør",
        role="editor",
        password=NEW_PASSWORD,
        password2=NEW_PASSWORD,
    )
    assert answer.status_code == 303
    listed = admin_client.get(answer.headers["location"])
    assert "Redaktøren er lagt til" in listed.text
    assert "ny.redaktor@bufdir.no" in listed.text and "Ny Redaktør" in listed.text
    with signed_in(live_app, "ny.redaktor@bufdir.no", NEW_PASSWORD) as web:
        assert web.get("/redaksjon/redaktorer").status_code == 403  # an editor, not an admin
    entry = audit(settings, "editor_add")[0]
    assert entry.after == {
        "email": "ny.redaktor@bufdir.no",
        "name": "Ny Redaktør",
        "role": "editor",
        "disabled_at": None,
    }
    assert NEW_PASSWORD not in str(entry.after) and "argon2" not in str(entry.after)

    again = post(
        admin_client,
        EDITORS,
        EDITORS,
        email="ny.redaktor@bufdir.no",
        name="Kept name",
        role="admin",
        password=NEW_PASSWORD,
        password2=NEW_PASSWORD,
    )
    assert again.status_code == 400
    assert 'aria-invalid="true" aria-describedby="email-feil"' in again.text
    assert "Det finnes allerede en redaktør" in again.text
    assert 'value="Kept name"' in again.text
    assert re.search(r'<option value="admin" selected>', again.text)
    assert NEW_PASSWORD not in again.text  # a password is never shown again


def test_bad_fields_are_explained_beside_them(admin_client: httpx.Client) -> None:
    answer = post(
        admin_client,
        EDITORS,
        EDITORS,
        email="ikke en adresse",
        role="superuser",
        password="kort",
        password2="kort",
    )
    assert answer.status_code == 400
    for name in ("email", "role", "password"):
        assert f'id="{name}-feil"' in answer.text
    assert 'value="ikke en adresse"' in answer.text
    differ = post(
        admin_client,
        EDITORS,
        EDITORS,
        email="a@bufdir.no",
        role="editor",
        password=NEW_PASSWORD,
        password2=NEW_PASSWORD + "x",
    )
    assert differ.status_code == 400 and 'id="password2-feil"' in differ.text
    assert post(admin_client, EDITORS, EDITORS, csrf="x").status_code in (400, 403)
    forged = admin_client.post(EDITORS, data={"csrf": "forged", "email": "b@bufdir.no"})
    assert forged.status_code == 403


def test_disable_stops_the_session_at_once_and_enable_lets_them_back(
    settings: Settings, admin_client: httpx.Client, live_app: LiveServer
) -> None:
    make_editor(settings, "redaktor@bufdir.no")
    other = editor_id(settings, "redaktor@bufdir.no")
    page = f"{EDITORS}/{other}"
    with signed_in(live_app, "redaktor@bufdir.no") as web:
        assert works(web)
        answer = post(admin_client, f"{page}/deaktiver", page)
        assert answer.status_code == 303
        assert "deaktivert" in admin_client.get(answer.headers["location"]).text
        assert not works(web)
        assert sign_in(web, "redaktor@bufdir.no").status_code == 400
    assert post(admin_client, f"{page}/aktiver", page).status_code == 303
    with signed_in(live_app, "redaktor@bufdir.no") as web:
        assert works(web)
    disabled = audit(settings, "editor_disable")[0]
    assert disabled.before is not None and disabled.before["disabled_at"] is None
    assert disabled.after is not None and disabled.after["disabled_at"] is not None
    enabled = audit(settings, "editor_enable")[0]
    assert enabled.after is not None and enabled.after["disabled_at"] is None


def test_an_admin_cannot_disable_or_demote_themselves_nor_the_last_admin(
    settings: Settings, admin_client: httpx.Client, live_app: LiveServer
) -> None:
    me = editor_id(settings, "admin@bufdir.no")
    page = f"{EDITORS}/{me}"
    refused = post(admin_client, f"{page}/deaktiver", page)
    assert refused.status_code == 400 and "Du kan ikke deaktivere deg selv" in refused.text
    demoted = post(admin_client, f"{page}/rolle", page, role="editor")
    assert demoted.status_code == 400 and "din egen rolle" in demoted.text
    assert works(admin_client)
    # A second admin may disable the first; then the second is the last active admin.
    make_editor(settings, "admin2@bufdir.no", EditorRole.ADMIN)
    second = editor_id(settings, "admin2@bufdir.no")
    with signed_in(live_app, "admin2@bufdir.no") as web:
        assert post(web, f"{page}/deaktiver", f"{EDITORS}/{me}").status_code == 303
        assert not works(admin_client)
        mine = f"{EDITORS}/{second}"
        assert post(web, f"{mine}/deaktiver", mine).status_code == 400
    make_editor(settings, "admin3@bufdir.no", EditorRole.ADMIN)
    with signed_in(live_app, "admin3@bufdir.no") as web:
        # admin3 and admin2 are active: admin2 may be demoted, then admin3 is the last one.
        mine = f"{EDITORS}/{second}"
        assert post(web, f"{mine}/rolle", mine, role="editor").status_code == 303
        third = f"{EDITORS}/{editor_id(settings, 'admin3@bufdir.no')}"
        assert post(web, f"{third}/rolle", third, role="editor").status_code == 400
    assert len(audit(settings, "editor_disable")) == 1


def test_role_change(settings: Settings, admin_client: httpx.Client, live_app: LiveServer) -> None:
    make_editor(settings, "redaktor@bufdir.no")
    page = f"{EDITORS}/{editor_id(settings, 'redaktor@bufdir.no')}"
    with signed_in(live_app, "redaktor@bufdir.no") as web:
        assert web.get(EDITORS).status_code == 403
        answer = post(admin_client, f"{page}/rolle", page, role="admin")
        assert answer.status_code == 303
        assert "Rollen er endret" in admin_client.get(answer.headers["location"]).text
        assert web.get(EDITORS).status_code == 200  # at once, in the same session
    bad = post(admin_client, f"{page}/rolle", page, role="owner")
    assert bad.status_code == 400 and 'id="role-feil"' in bad.text
    entry = audit(settings, "editor_role")[0]
    assert entry.before is not None and entry.before["role"] == "editor"
    assert entry.after is not None and entry.after["role"] == "admin"


def test_a_new_password_ends_their_sessions(
    settings: Settings, admin_client: httpx.Client, live_app: LiveServer
) -> None:
    make_editor(settings, "redaktor@bufdir.no")
    page = f"{EDITORS}/{editor_id(settings, 'redaktor@bufdir.no')}"
    with signed_in(live_app, "redaktor@bufdir.no") as web:
        short = post(admin_client, f"{page}/passord", page, password="kort", password2="kort")
        assert short.status_code == 400 and 'id="password-feil"' in short.text
        assert works(web)
        answer = post(
            admin_client, f"{page}/passord", page, password=NEW_PASSWORD, password2=NEW_PASSWORD
        )
        assert answer.status_code == 303
        assert not works(web)
        assert sign_in(web, "redaktor@bufdir.no").status_code == 400
        assert sign_in(web, "redaktor@bufdir.no", NEW_PASSWORD).status_code == 303
    entry = audit(settings, "editor_reset_password")[0]
    assert NEW_PASSWORD not in str(entry.before) + str(entry.after)
    assert "password_hash" not in str(entry.after)


def test_unknown_editors_are_404(admin_client: httpx.Client) -> None:
    for unknown in ("999999", "abc", "9" * 40, "-1"):
        assert admin_client.get(f"{EDITORS}/{unknown}").status_code == 404
    assert post(admin_client, f"{EDITORS}/999999/deaktiver", EDITORS).status_code == 404
