"""Signing in to the editors' pages: the cookie, one answer for unknown and wrong, the
throttle per account and per client, idle timeout, sign-out, and disabling at once."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from argon2 import PasswordHasher
from sqlalchemy import select, update

from digest.core.db import session_scope
from digest.core.models import AuditEntry, EditorRole, EditorSession, SignInFailure
from digest.core.settings import Settings
from digest.editors import accounts
from subscribers.base import utcnow
from tests.support.editors import PASSWORD, make_editor, sign_in
from tests.support.server import LiveServer, csrf


def test_pages_need_a_session_and_come_back_after_sign_in(
    settings: Settings, client: httpx.Client
) -> None:
    make_editor(settings)
    away = client.get("/redaksjon/kunngjoringer?side=2")
    assert away.status_code == 303
    assert (
        away.headers["location"] == "/redaksjon/logg-inn?neste=/redaksjon/kunngjoringer%3Fside%3D2"
    )
    form = client.get(away.headers["location"])
    assert 'name="neste" value="/redaksjon/kunngjoringer?side=2"' in form.text
    answer = client.post(
        "/redaksjon/logg-inn",
        data={
            "email": "Redaktor@Bufdir.no",
            "password": PASSWORD,
            "neste": "/redaksjon/kunngjoringer?side=2",
            "csrf": csrf(client, "/redaksjon/logg-inn"),
        },
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/redaksjon/kunngjoringer?side=2"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("editor=")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # the base URL is http here


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/", "/abonner"])
def test_sign_in_never_sends_the_browser_elsewhere(
    settings: Settings, client: httpx.Client, target: str
) -> None:
    make_editor(settings)
    answer = client.post(
        "/redaksjon/logg-inn",
        data={
            "email": "redaktor@bufdir.no",
            "password": PASSWORD,
            "neste": target,
            "csrf": csrf(client, "/redaksjon/logg-inn"),
        },
    )
    assert answer.headers["location"] == "/redaksjon"


def test_https_cookie_is_host_prefixed_and_secure(
    settings: Settings, env: pytest.MonkeyPatch
) -> None:
    from digest.web.app import create_app

    make_editor(settings)
    secure = settings.model_copy(update={"base_url": "https://varsel.example.no"})
    server = LiveServer(create_app(secure)).start()
    try:
        with server.client() as web:
            page = web.get("/redaksjon/logg-inn", headers={"host": "varsel.example.no"})
            token = page.text.split('name="csrf" value="')[1].split('"')[0]
            answer = web.post(
                "/redaksjon/logg-inn",
                # A Secure cookie does not go back over plain http by itself: send it.
                headers={
                    "host": "varsel.example.no",
                    "cookie": f"__Host-csrf={page.cookies['__Host-csrf']}",
                },
                data={"email": "redaktor@bufdir.no", "password": PASSWORD, "csrf": token},
            )
    finally:
        server.stop()
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("__Host-editor=")
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie


def test_unknown_account_and_wrong_password_get_the_same_answer(
    settings: Settings, client: httpx.Client
) -> None:
    make_editor(settings)
    wrong = sign_in(client, "redaktor@bufdir.no", "feil passord her")
    unknown = sign_in(client, "ingen@bufdir.no", "feil passord her")
    assert wrong.status_code == unknown.status_code == 400
    assert "Feil e-postadresse eller passord." in wrong.text
    strip = lambda html: html.replace("ingen@bufdir.no", "X").replace("redaktor@bufdir.no", "X")  # noqa: E731
    body = lambda html: strip(html.split("<main", 1)[1].split('name="csrf"')[0])  # noqa: E731
    assert body(wrong.text) == body(unknown.text)
    assert "set-cookie" not in wrong.headers or "editor=" not in wrong.headers["set-cookie"]


def test_failed_sign_ins_are_throttled_per_account(
    settings: Settings, live_app: LiveServer
) -> None:
    make_editor(settings)
    with live_app.client() as web:
        for _ in range(settings.sign_in_attempts):
            assert sign_in(web, password="feil passord her").status_code == 400
        # Now even the right password is refused, unread.
        assert sign_in(web).status_code == 429
    # From another client too: the account's count is what stops it.
    with session_scope(settings.database_url) as session:
        session.execute(
            update(SignInFailure)
            .where(SignInFailure.key.like("client:%"))
            .values(at=utcnow() - timedelta(hours=1))
        )
    with live_app.client() as web:
        refused = sign_in(web)
        assert refused.status_code == 429
        assert "For mange mislykkede forsøk" in refused.text
    # When the window has passed, it works again.
    with session_scope(settings.database_url) as session:
        session.execute(update(SignInFailure).values(at=utcnow() - timedelta(hours=1)))
    with live_app.client() as web:
        assert sign_in(web).status_code == 303


def test_failed_sign_ins_are_throttled_per_client(settings: Settings, client: httpx.Client) -> None:
    make_editor(settings)
    for n in range(settings.sign_in_attempts):
        assert sign_in(client, f"gjett{n}@bufdir.no", "feil passord her").status_code == 400
    assert sign_in(client).status_code == 429


def test_idle_session_ends(settings: Settings, editor_client: httpx.Client) -> None:
    assert editor_client.get("/redaksjon/kunngjoringer").status_code == 200
    with session_scope(settings.database_url) as session:
        session.execute(
            update(EditorSession).values(
                last_seen_at=utcnow() - timedelta(minutes=settings.editor_idle_minutes + 1)
            )
        )
    assert editor_client.get("/redaksjon/kunngjoringer").status_code == 303
    with session_scope(settings.database_url) as session:
        assert session.scalars(select(EditorSession)).all() == []


def test_sign_out_ends_the_session(settings: Settings, editor_client: httpx.Client) -> None:
    cookie = editor_client.cookies["editor"]
    token = csrf(editor_client, "/redaksjon/kunngjoringer")
    out = editor_client.post("/redaksjon/logg-ut", data={"csrf": token})
    assert out.status_code == 303
    # The old cookie, replayed, opens nothing.
    editor_client.cookies.set("editor", cookie)
    assert editor_client.get("/redaksjon/kunngjoringer").status_code == 303
    with session_scope(settings.database_url) as session:
        actions = session.scalars(select(AuditEntry.action)).all()
    assert actions == ["sign_in", "sign_out"]


def test_disabled_editor_is_out_at_once(settings: Settings, editor_client: httpx.Client) -> None:
    assert editor_client.get("/redaksjon/kunngjoringer").status_code == 200
    with session_scope(settings.database_url) as session:
        accounts.disable(session, accounts.get(session, "redaktor@bufdir.no"))
    assert editor_client.get("/redaksjon/kunngjoringer").status_code == 303
    assert sign_in(editor_client).status_code == 400


def test_forms_need_the_csrf_field(settings: Settings, client: httpx.Client) -> None:
    make_editor(settings)
    client.get("/redaksjon/logg-inn")
    answer = client.post(
        "/redaksjon/logg-inn", data={"email": "redaktor@bufdir.no", "password": PASSWORD}
    )
    assert answer.status_code == 403


def test_editors_cannot_open_admin_pages(settings: Settings, editor_client: httpx.Client) -> None:
    assert editor_client.get("/redaksjon/redaktorer").status_code == 403


def test_passwords_are_stored_as_argon2(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # At the cost the service uses, not the tests' quick one (see conftest).
    monkeypatch.setattr(accounts, "_hasher", PasswordHasher())
    make_editor(settings, role=EditorRole.ADMIN)
    with session_scope(settings.database_url) as session:
        editor = accounts.get(session, "redaktor@bufdir.no")
        assert editor.password_hash.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
        assert PASSWORD not in editor.password_hash
        assert accounts.verify(session, "redaktor@bufdir.no", PASSWORD).id == editor.id


def test_a_burst_of_guesses_in_parallel_is_counted_as_it_comes(
    settings: Settings, live_app: LiveServer
) -> None:
    """Each try is counted before its password is checked: thirty guesses sent at once do
    not all get checked while the first ones are still being hashed."""
    from concurrent.futures import ThreadPoolExecutor

    make_editor(settings)
    with live_app.client() as web:
        token = csrf(web, "/redaksjon/logg-inn")
        cookies = dict(web.cookies)

    def guess(n: int) -> int:
        with live_app.client() as web:
            web.cookies.update(cookies)
            return web.post(
                "/redaksjon/logg-inn",
                data={"email": "redaktor@bufdir.no", "password": f"gjett {n}", "csrf": token},
            ).status_code

    with ThreadPoolExecutor(max_workers=30) as pool:
        answers = list(pool.map(guess, range(30)))
    assert set(answers) <= {400, 429}
    # Checking the count before counting, about twenty of thirty were checked here.
    assert answers.count(400) <= settings.sign_in_attempts
