"""The API tokens page: a token is shown once and works, revoking stops it at once, the
name is checked beside its field, only one's own tokens (an admin's for anyone), and both
actions are in the audit log."""

from __future__ import annotations

import re

import httpx
from sqlalchemy import select

from digest.core.db import session_scope
from digest.core.models import ApiToken, AuditEntry, EditorRole
from digest.core.settings import Settings
from digest.editors import accounts, tokens
from tests.support.editors import make_editor
from tests.support.server import csrf

PAGE = "/redaksjon/nokler"
API = "/api/v1/announcements"


def make(web: httpx.Client, name: str, **extra: str) -> httpx.Response:
    return web.post(PAGE, data={"name": name, "csrf": csrf(web, PAGE), **extra})


def secret_in(page: str) -> str:
    found = re.search(r'id="ny-nokkel"[^>]*>(vv_[^<]+)</textarea>', page)
    assert found, "no new token on the page"
    return found[1]


def revoke_forms(page: str) -> list[str]:
    return re.findall(r'action="(/redaksjon/nokler/\d+/trekk-tilbake)"', page)


def test_the_page_needs_a_signed_in_editor(client: httpx.Client) -> None:
    answer = client.get(PAGE)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/redaksjon/logg-inn")


def test_a_new_token_is_shown_once_and_works(
    settings: Settings, editor_client: httpx.Client, client: httpx.Client
) -> None:
    empty = editor_client.get(PAGE)
    assert empty.status_code == 200
    assert "ingen API-nøkler" in empty.text
    assert 'aria-current="page">API-nøkler' in empty.text

    made = make(editor_client, "  CMS\u202e ")
    assert made.status_code == 200
    assert made.headers["cache-control"] == "no-store"
    secret = secret_in(made.text)
    assert "Den vises bare denne ene gangen" in made.text
    assert 'data-label="Navn">CMS<' in made.text

    with httpx.Client(base_url=str(client.base_url)) as cms:
        assert cms.get(API, headers={"Authorization": f"Bearer {secret}"}).status_code == 200

    again = editor_client.get(PAGE)
    assert secret not in again.text
    assert secret[:10] in again.text  # the prefix, to tell tokens apart
    assert "Aktiv" in again.text and "Aldri" not in again.text  # used just now

    with session_scope(settings.database_url) as session:
        row = session.scalars(select(ApiToken)).one()
        assert row.name == "CMS" and row.token_hash != secret
        entry = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "api_token_create")
        ).one()
        assert entry.editor_email == "redaktor@bufdir.no"
        assert entry.after == {"editor": "redaktor@bufdir.no", "name": "CMS", "prefix": secret[:10]}
        assert secret not in str(entry.after)


def test_a_revoked_token_stops_at_once(
    settings: Settings, editor_client: httpx.Client, client: httpx.Client
) -> None:
    secret = secret_in(make(editor_client, "Skript").text)
    kept = secret_in(make(editor_client, "CMS").text)
    page = editor_client.get(PAGE).text
    forms = revoke_forms(page)
    assert len(forms) == 2
    # Newest first: the second form is the first token's.
    answer = editor_client.post(forms[1], data={"csrf": csrf(editor_client, PAGE)})
    assert answer.status_code == 303
    assert answer.headers["location"] == f"{PAGE}?melding=trukket"
    shown = editor_client.get(answer.headers["location"]).text
    assert "Nøkkelen er trukket tilbake" in shown
    assert "Trukket tilbake" in shown and len(revoke_forms(shown)) == 1

    with httpx.Client(base_url=str(client.base_url)) as cms:
        assert cms.get(API, headers={"Authorization": f"Bearer {secret}"}).status_code == 401
        assert cms.get(API, headers={"Authorization": f"Bearer {kept}"}).status_code == 200

    # Revoking again changes nothing and writes no second entry.
    editor_client.post(forms[1], data={"csrf": csrf(editor_client, PAGE)})
    with session_scope(settings.database_url) as session:
        entries = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "api_token_revoke")
        ).all()
        assert len(entries) == 1
        assert entries[0].before is not None and entries[0].after is not None
        assert entries[0].before["revoked_at"] is None
        assert entries[0].after["revoked_at"] is not None
        assert entries[0].after["name"] == "Skript"


def test_a_name_is_needed_and_kept_when_wrong(
    settings: Settings, editor_client: httpx.Client
) -> None:
    for typed, note in (("", "Gi nøkkelen et navn"), ("x" * 101, "høyst 100 tegn")):
        answer = make(editor_client, typed)
        assert answer.status_code == 400
        assert note in answer.text
        assert 'aria-invalid="true" aria-describedby="name-error"' in answer.text
        assert 'role="alert"' in answer.text
        assert f'value="{typed}"' in answer.text
        assert 'id="ny-nokkel"' not in answer.text
    with session_scope(settings.database_url) as session:
        assert session.scalars(select(ApiToken)).all() == []


def test_a_form_without_its_csrf_field_is_refused(
    settings: Settings, editor_client: httpx.Client
) -> None:
    assert editor_client.post(PAGE, data={"name": "CMS"}).status_code == 403
    with session_scope(settings.database_url) as session:
        assert session.scalars(select(ApiToken)).all() == []


def test_only_ones_own_tokens(settings: Settings, editor_client: httpx.Client) -> None:
    other = make_editor(settings, "annen@bufdir.no")
    with session_scope(settings.database_url) as session:
        theirs = tokens.make_token(session, accounts.get(session, "annen@bufdir.no"), "Deres")
        their_id, their_secret = theirs.token.id, theirs.secret
    page = editor_client.get(PAGE).text
    assert "Deres" not in page and their_secret[:10] not in page
    token = csrf(editor_client, PAGE)
    for path in (
        f"{PAGE}/{their_id}/trekk-tilbake",
        f"{PAGE}/abc/trekk-tilbake",
        f"{PAGE}/%C2%B2/trekk-tilbake",
        f"{PAGE}/99999999999999/trekk-tilbake",
    ):
        assert editor_client.post(path, data={"csrf": token}).status_code == 404, path
    # An editor cannot ask for another's page, or make a token for them.
    assert editor_client.get(PAGE, params={"redaktor": str(other)}).status_code == 403
    assert make(editor_client, "Snik", redaktor=str(other)).status_code == 403
    with session_scope(settings.database_url) as session:
        assert session.get(ApiToken, their_id).revoked_at is None  # type: ignore[union-attr]
        assert len(session.scalars(select(ApiToken)).all()) == 1


def test_an_admin_manages_another_editors_tokens(
    settings: Settings, admin_client: httpx.Client, client: httpx.Client
) -> None:
    other = make_editor(settings, "cms@bufdir.no", EditorRole.EDITOR)
    page = admin_client.get(PAGE, params={"redaktor": str(other)})
    assert page.status_code == 200
    assert "API-nøkler for cms@bufdir.no" in page.text
    made = make(admin_client, "Nettsted", redaktor=str(other))
    assert made.status_code == 200
    secret = secret_in(made.text)
    with httpx.Client(base_url=str(client.base_url)) as cms:
        created = cms.post(
            API, headers={"Authorization": f"Bearer {secret}"}, json={"title": "Kurs"}
        )
        assert created.status_code == 201
    forms = revoke_forms(made.text)
    answer = admin_client.post(
        forms[0], data={"csrf": csrf(admin_client, PAGE), "redaktor": str(other)}
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == f"{PAGE}?redaktor={other}&melding=trukket"
    with httpx.Client(base_url=str(client.base_url)) as cms:
        assert cms.get(API, headers={"Authorization": f"Bearer {secret}"}).status_code == 401
    with session_scope(settings.database_url) as session:
        entries = session.scalars(
            select(AuditEntry).where(AuditEntry.target_type == "api_token").order_by(AuditEntry.id)
        ).all()
        assert [(e.action, e.editor_email) for e in entries] == [
            ("api_token_create", "admin@bufdir.no"),
            ("api_token_revoke", "admin@bufdir.no"),
        ]
        assert all((e.after or {}).get("editor") == "cms@bufdir.no" for e in entries)
    for unknown in ("404404", "²", "x" * 50):
        assert admin_client.get(PAGE, params={"redaktor": unknown}).status_code == 404
    # The admin's own page does not show them.
    assert "Nettsted" not in admin_client.get(PAGE).text
