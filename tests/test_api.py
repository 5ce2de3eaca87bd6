"""The JSON API for announcements, through a live server: tokens required and revocable,
the whole life of an announcement, Idempotency-Key, 422s naming the field, 409 for a
stale edit, and the OpenAPI schema and its page."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from digest.core.db import session_scope
from digest.core.models import (
    Announcement,
    AuditEntry,
    EditorRole,
    IdempotentResponse,
)
from digest.core.settings import Settings
from digest.editors import accounts, tokens

BASE = "/api/v1/announcements"


def make_token(settings: Settings, email: str = "cms@bufdir.no") -> str:
    """A token for `email`, made as the tokens page makes it (the editor made if new)."""
    with session_scope(settings.database_url) as session:
        editor = accounts.find(session, email)
        if editor is None:
            editor = accounts.add_editor(
                session, email, "riktig hest batteri stift", EditorRole.EDITOR
            )
        return tokens.make_token(session, editor, "CMS").secret


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def token(settings: Settings) -> str:
    return make_token(settings)


@pytest.fixture
def api(client: httpx.Client, token: str) -> httpx.Client:
    """A client of the live app that sends a live token with every request."""
    client.headers.update(auth(token))
    return client


def count(settings: Settings, model: type[Any]) -> int:
    with session_scope(settings.database_url) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def locs(answer: httpx.Response) -> list[list[str | int]]:
    return [item["loc"] for item in answer.json()["detail"]]


# --- tokens --------------------------------------------------------------------------


def test_no_token_or_a_wrong_one_is_401_with_a_bearer_challenge(
    client: httpx.Client, token: str
) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer vv_not-a-token-anyone-has"},
        {"Authorization": "Bearer"},
        {"Authorization": f"Basic {token}"},
        {"Authorization": f"Bearer {token}x"},
        {"Authorization": "Bearer vv_" + "a" * 5000},
    ):
        answer = client.get(BASE, headers=headers)
        assert answer.status_code == 401, headers
        assert answer.headers["www-authenticate"].startswith("Bearer")
        assert answer.headers["content-type"] == "application/json"
        assert locs(answer) == [["header", "Authorization"]]
    # A write without a token creates nothing.
    assert client.post(BASE, json={"title": "Ny veileder"}).status_code == 401
    # Who asks is settled before what is asked.
    assert client.post(BASE, json={"colour": "red"}).status_code == 401
    # The same token works.
    assert client.get(BASE, headers=auth(token)).status_code == 200


def test_a_revoked_token_stops_at_once(settings: Settings, client: httpx.Client) -> None:
    kept, revoked = make_token(settings), make_token(settings)
    assert client.get(BASE, headers=auth(revoked)).status_code == 200
    with session_scope(settings.database_url) as session:
        editor = accounts.get(session, "cms@bufdir.no")
        row = next(t for t in tokens.tokens_of(session, editor) if revoked.startswith(t.prefix))
        tokens.revoke(session, editor, row.id)
    assert client.get(BASE, headers=auth(revoked)).status_code == 401
    assert client.get(BASE, headers=auth(kept)).status_code == 200


def test_a_disabled_editors_tokens_stop_at_once(
    settings: Settings, client: httpx.Client, token: str
) -> None:
    assert client.get(BASE, headers=auth(token)).status_code == 200
    with session_scope(settings.database_url) as session:
        accounts.disable(session, accounts.get(session, "cms@bufdir.no"))
    assert client.get(BASE, headers=auth(token)).status_code == 401
    answer = client.post(BASE, headers=auth(token), json={"title": "Etter deaktivering"})
    assert answer.status_code == 401
    assert count(settings, Announcement) == 0


def test_no_cookie_is_needed_or_read(settings: Settings, editor_client: httpx.Client) -> None:
    # A signed-in browser's cookies are no key to the API (so no CSRF on it either).
    assert editor_client.get(BASE).status_code == 401
    assert editor_client.post(BASE, json={"title": "Fra nettleseren"}).status_code == 401


# --- the life of an announcement ---------------------------------------------------------


def test_create_read_list_edit_publish_withdraw_and_delete(
    settings: Settings, api: httpx.Client
) -> None:
    made = api.post(
        BASE,
        json={
            "title": "Ny veileder om trygghetsplaner",
            "body": "Les **den nye** veilederen.",
            "link": "https://bufdir.no/veileder",
            "topics": ["vold"],
            "roles": ["krisesenter"],
            "municipalities": ["0301"],
            "publish_from": "2026-12-01T08:00:00+01:00",
            "publish_until": "2026-12-31T08:00:00+01:00",
            "pinned": True,
        },
    )
    assert made.status_code == 201, made.text
    draft = made.json()
    assert draft["status"] == "draft" and draft["version"] == 1
    assert draft["roles"] == ["krisesenter"] and draft["municipalities"] == ["0301"]
    assert draft["publish_from"] == "2026-12-01T07:00:00Z"
    one = f"{BASE}/{draft['id']}"
    assert api.get(one).json() == draft

    other = api.post(BASE, json={"title": "Kurs i januar", "publish": True}).json()
    assert other["status"] == "published" and other["published_at"]
    assert {a["id"] for a in api.get(BASE).json()["items"]} == {draft["id"], other["id"]}
    drafts = api.get(BASE, params={"status": "draft"}).json()["items"]
    assert [a["id"] for a in drafts] == [draft["id"]]

    patched = api.patch(one, json={"version": 1, "title": "Ny veileder", "link": None})
    assert patched.status_code == 200, patched.text
    assert patched.json()["title"] == "Ny veileder" and patched.json()["link"] is None
    assert patched.json()["topics"] == ["vold"] and patched.json()["version"] == 2
    replaced = api.put(one, json={"version": 2, "title": "Ny veileder ute"}).json()
    assert replaced["topics"] == [] and replaced["pinned"] is False
    assert replaced["publish_from"] == "2026-12-01T07:00:00Z"  # kept: not sent
    assert replaced["version"] == 3

    published = api.post(f"{one}/publish")
    assert published.status_code == 200 and published.json()["status"] == "published"
    withdrawn = api.post(f"{one}/withdraw")
    assert withdrawn.status_code == 200 and withdrawn.json()["status"] == "withdrawn"
    # What has gone out is withdrawn, never deleted; a draft is deleted.
    refused = api.delete(one)
    assert refused.status_code == 409
    assert locs(refused) == [["path", "announcement_id"]]
    third = api.post(BASE, json={"title": "Utkast"}).json()
    assert api.delete(f"{BASE}/{third['id']}").status_code == 204
    assert api.get(f"{BASE}/{third['id']}").status_code == 404
    # A draft cannot be withdrawn.
    fourth = api.post(BASE, json={"title": "Utkast"}).json()
    assert api.post(f"{BASE}/{fourth['id']}/withdraw").status_code == 409

    with session_scope(settings.database_url) as session:
        entries = session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
        actions = [(e.action, e.target_id) for e in entries]
        assert all(e.editor_email == "cms@bufdir.no" for e in entries)
        assert all((e.after or {}).get("via") == "api" for e in entries)
    assert actions == [
        ("announcement_create", str(draft["id"])),
        ("announcement_create", str(other["id"])),
        ("announcement_update", str(draft["id"])),
        ("announcement_update", str(draft["id"])),
        ("announcement_publish", str(draft["id"])),
        ("announcement_withdraw", str(draft["id"])),
        ("announcement_create", str(third["id"])),
        ("announcement_delete", str(third["id"])),
        ("announcement_create", str(fourth["id"])),
    ]
    update = entries[2]
    assert update.before is not None and update.after is not None
    assert update.before["title"] == "Ny veileder om trygghetsplaner"
    assert update.after["title"] == "Ny veileder"


def test_unknown_and_impossible_ids(api: httpx.Client) -> None:
    for method, path in (
        ("GET", f"{BASE}/999"),
        ("PUT", f"{BASE}/999"),
        ("PATCH", f"{BASE}/999"),
        ("POST", f"{BASE}/999/publish"),
        ("POST", f"{BASE}/999/withdraw"),
        ("DELETE", f"{BASE}/999"),
    ):
        body = {"version": 1, "title": "x"} if method in ("PUT", "PATCH") else None
        answer = api.request(method, path, json=body)
        assert answer.status_code == 404, (method, path)
        assert locs(answer) == [["path", "announcement_id"]]
    for wrong in ("abc", "0", "-1", "99999999999999999999"):
        answer = api.get(f"{BASE}/{wrong}")
        assert answer.status_code == 422
        assert locs(answer) == [["path", "announcement_id"]]
    assert api.get(f"{BASE}", params={"status": "deleted"}).status_code == 422
    assert api.get("/api/v2/nothing").status_code == 404


def test_a_stale_edit_is_409_with_the_stored_version(api: httpx.Client) -> None:
    made = api.post(BASE, json={"title": "Frist 1. mars"}).json()
    one = f"{BASE}/{made['id']}"
    assert api.patch(one, json={"version": 1, "title": "Frist 15. mars"}).status_code == 200
    stale = api.patch(one, json={"version": 1, "title": "Frist 1. april"})
    assert stale.status_code == 409
    assert stale.json()["version"] == 2
    assert locs(stale) == [["body", "version"]]
    assert api.put(one, json={"version": 1, "title": "Frist 1. april"}).status_code == 409
    assert api.get(one).json()["title"] == "Frist 15. mars"


# --- 422: the field named -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"body": "uten tittel"}, ["body", "title"]),
        ({"title": ""}, ["body", "title"]),
        ({"title": "x", "colour": "red"}, ["body", "colour"]),
        ({"title": "x" * 301}, ["body", "title"]),
        ({"title": "x", "body": "x" * 20_001}, ["body", "body"]),
        ({"title": "x", "link": "x" * 2001}, ["body", "link"]),
        ({"title": "x", "link": "javascript:alert(1)"}, ["body", "link"]),
        (
            {
                "title": "x",
                "publish_from": "2026-12-10T08:00:00+01:00",
                "publish_until": "2026-12-01T08:00:00+01:00",
            },
            ["body", "publish_until"],
        ),
        ({"title": "x", "publish_until": "2000-01-01T00:00:00Z"}, ["body", "publish_until"]),
        ({"title": "x", "publish_from": "2026-12-01T08:00:00"}, ["body", "publish_from"]),
        ({"title": "x", "topics": ["finnes-ikke"]}, ["body", "topics"]),
        ({"title": "x", "topics": ["t"] * 51}, ["body", "topics"]),
        ({"title": "x", "roles": ["sjef"]}, ["body", "roles", 0]),
        ({"title": "x", "municipalities": ["9999"]}, ["body", "municipalities"]),
        ({"title": "x", "municipalities": ["Oslo"]}, ["body", "municipalities", 0]),
        ({"title": "x", "pinned": "yes"}, ["body", "pinned"]),
        ({"title": "x", "publish": 1}, ["body", "publish"]),
        ({"title": ["x"]}, ["body", "title"]),
        ({"title": "\u202e\u200b "}, ["body", "title"]),
    ],
)
def test_a_body_that_does_not_fit_is_422_naming_the_field(
    settings: Settings, api: httpx.Client, body: dict[str, object], loc: list[str | int]
) -> None:
    answer = api.post(BASE, json=body)
    assert answer.status_code == 422, answer.text
    assert loc in locs(answer)
    assert all(item["msg"] for item in answer.json()["detail"])
    assert count(settings, Announcement) == 0


def test_a_body_that_is_not_json_is_422(settings: Settings, api: httpx.Client) -> None:
    answer = api.post(BASE, content=b"{title: x", headers={"content-type": "application/json"})
    assert answer.status_code == 422
    assert locs(answer)[0][0] == "body"
    assert api.post(BASE, json=["x"]).status_code == 422
    assert count(settings, Announcement) == 0


def test_a_body_too_large_is_413_unread(settings: Settings, api: httpx.Client) -> None:
    # The longest body, every character escaped as JSON may send it, fits.
    longest = json.dumps({"title": "Lang", "body": "ø" * 20_000}, ensure_ascii=True)
    answer = api.post(BASE, content=longest, headers={"content-type": "application/json"})
    assert answer.status_code == 201
    huge = json.dumps({"title": "x", "body": "x" * 300_000})
    answer = api.post(BASE, content=huge, headers={"content-type": "application/json"})
    assert answer.status_code == 413
    assert locs(answer) == [["body"]]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it comes
        yield b'{"title": "x", "body": "'
        for _ in range(100):
            yield b"x" * 10_000
        yield b'"}'

    answer = api.post(BASE, content=chunks(), headers={"content-type": "application/json"})
    assert answer.status_code == 413
    assert count(settings, Announcement) == 1


def test_edits_are_checked_as_creates_are(api: httpx.Client) -> None:
    made = api.post(BASE, json={"title": "Ny frist", "publish_from": "2026-12-10T08:00:00Z"})
    one = f"{BASE}/{made.json()['id']}"
    # Against the stored start of the window.
    answer = api.patch(one, json={"version": 1, "publish_until": "2026-12-01T08:00:00Z"})
    assert answer.status_code == 422 and locs(answer) == [["body", "publish_until"]]
    answer = api.patch(one, json={"version": 1, "title": None})
    assert answer.status_code == 422 and locs(answer) == [["body", "title"]]
    answer = api.patch(one, json={"title": "Uten versjon"})
    assert answer.status_code == 422 and ["body", "version"] in locs(answer)
    answer = api.put(one, json={"version": 1, "title": "x", "topics": ["ukjent"]})
    assert answer.status_code == 422 and locs(answer) == [["body", "topics"]]
    assert api.get(one).json()["version"] == 1


# --- Idempotency-Key ----------------------------------------------------------------------


def test_a_repeated_create_with_its_key_gets_the_first_answer(
    settings: Settings, api: httpx.Client
) -> None:
    body = {"title": "Påmelding til kurs", "publish": True}
    key = {"Idempotency-Key": "cms-sak-4411"}
    first = api.post(BASE, json=body, headers=key)
    again = api.post(BASE, json=body, headers=key)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert count(settings, Announcement) == 1
    # The same key for another request is refused, and creates nothing.
    other = api.post(BASE, json={**body, "title": "Noe annet"}, headers=key)
    assert other.status_code == 422
    assert locs(other) == [["header", "Idempotency-Key"]]
    assert other.json()["detail"][0]["type"] == "idempotency_key_reused"
    # Another key, or none, creates again.
    assert (
        api.post(BASE, json=body, headers={"Idempotency-Key": "cms-sak-4412"}).json()["id"]
        != (first.json()["id"])
    )
    assert api.post(BASE, json=body).status_code == 201
    assert count(settings, Announcement) == 3
    with session_scope(settings.database_url) as session:
        creates = session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "announcement_create")
        )
    assert creates == 3


def same_key_at_once(settings: Settings, url: str, token: str) -> None:
    """Eight clients send one create with one key at the same time: one is created, and
    every client gets its answer (the unique key makes the others wait, fail and replay)."""

    def post(_: int) -> httpx.Response:
        with httpx.Client(base_url=url, timeout=30) as web:
            return web.post(
                BASE, json={"title": "Samtidig"}, headers={**auth(token), "Idempotency-Key": "k"}
            )

    # Used once before, the token is not touched again: the requests meet at the key.
    with httpx.Client(base_url=url) as web:
        assert web.get(BASE, headers=auth(token)).status_code == 200
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(post, range(8)))
    assert [a.status_code for a in answers] == [201] * 8
    assert len({a.json()["id"] for a in answers}) == 1
    assert count(settings, Announcement) == 1
    assert count(settings, IdempotentResponse) == 1


def test_the_same_key_at_once_creates_once(
    settings: Settings, client: httpx.Client, token: str
) -> None:
    same_key_at_once(settings, str(client.base_url), token)


def test_the_same_key_at_once_creates_once_on_postgresql(
    env: pytest.MonkeyPatch, settings: Settings, pg_url: str
) -> None:
    from digest.core.migrate import upgrade
    from digest.core.settings import get_settings
    from digest.web.app import create_app
    from tests.support.server import LiveServer

    env.setenv("DIGEST_DATABASE_URL", pg_url)
    env.setenv("DIGEST_SECRET_KEY", "a-test-secret-key-long-enough")
    get_settings.cache_clear()
    pg = get_settings()
    upgrade(pg.database_url)
    server = LiveServer(create_app(pg)).start()
    try:
        same_key_at_once(pg, server.url, make_token(pg))
    finally:
        server.stop()


def test_a_refused_create_keeps_no_key(settings: Settings, api: httpx.Client) -> None:
    key = {"Idempotency-Key": "forsok-1"}
    assert api.post(BASE, json={"title": "x", "topics": ["ukjent"]}, headers=key).status_code == 422
    assert count(settings, IdempotentResponse) == 0
    # Corrected, the same key is free to use.
    assert api.post(BASE, json={"title": "x", "topics": ["vold"]}, headers=key).status_code == 201


def test_keys_are_per_editor(settings: Settings, api: httpx.Client) -> None:
    key = {"Idempotency-Key": "felles"}
    mine = api.post(BASE, json={"title": "Fra CMS"}, headers=key).json()
    theirs = api.post(
        BASE,
        json={"title": "Fra CMS"},
        headers={**key, **auth(make_token(settings, "annen@bufdir.no"))},
    ).json()
    assert mine["id"] != theirs["id"]


@pytest.mark.parametrize("key", ["", "x" * 201, "æøå", "a\tb"])
def test_an_unusable_key_is_422(settings: Settings, api: httpx.Client, key: str) -> None:
    answer = api.post(
        BASE,
        json={"title": "x"},
        headers={"Idempotency-Key": key.encode("utf-8")},  # type: ignore[dict-item]
    )
    assert answer.status_code == 422
    assert locs(answer) == [["header", "Idempotency-Key"]]
    assert count(settings, Announcement) == 0


def test_old_keys_are_purged_when_one_is_stored(settings: Settings, api: httpx.Client) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from subscribers.base import utcnow

    api.post(BASE, json={"title": "Gammel"}, headers={"Idempotency-Key": "gammel"})
    with session_scope(settings.database_url) as session:
        session.execute(
            update(IdempotentResponse).values(created_at=utcnow() - timedelta(hours=25))
        )
    api.post(BASE, json={"title": "Ny"}, headers={"Idempotency-Key": "ny"})
    with session_scope(settings.database_url) as session:
        assert session.scalars(select(IdempotentResponse.key)).all() == ["ny"]


# --- the schema and its page ----------------------------------------------------------------


def test_the_openapi_schema_is_served(client: httpx.Client) -> None:
    answer = client.get("/api/openapi.json")
    assert answer.status_code == 200
    schema = answer.json()
    assert schema["info"]["title"] == "Veiledervarsel API"
    paths = schema["paths"]
    assert set(paths["/v1/announcements"]) == {"get", "post"}
    assert set(paths["/v1/announcements/{announcement_id}"]) == {"get", "put", "patch", "delete"}
    assert "post" in paths["/v1/announcements/{announcement_id}/publish"]
    assert "post" in paths["/v1/announcements/{announcement_id}/withdraw"]
    create = schema["components"]["schemas"]["AnnouncementCreate"]
    assert create["additionalProperties"] is False
    assert create["properties"]["title"]["maxLength"] == 300
    assert schema["components"]["securitySchemes"]["token"]["scheme"] == "bearer"
    # The main app still has no schema or docs of its own.
    assert client.get("/openapi.json").status_code == 404
    assert client.get("/docs").status_code == 404


def test_the_docs_are_a_page_without_scripts(client: httpx.Client) -> None:
    answer = client.get("/api/docs")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert "script-src" not in answer.headers["content-security-policy"]
    page = answer.text
    assert "<script" not in page
    assert 'href="/api/openapi.json"' in page
    for text in (
        "POST /api/v1/announcements",
        "DELETE /api/v1/announcements/{announcement_id}",
        "POST /api/v1/announcements/{announcement_id}/publish",
        'id="schema-AnnouncementCreate"',
        "Idempotency-Key",
        "maks. 300 tegn",
    ):
        assert text in page, text


def test_the_guards_wrap_the_api(client: httpx.Client, token: str) -> None:
    answer = client.get(BASE, headers=auth(token))
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["cache-control"] == "no-store"
    foreign = client.get(BASE, headers={**auth(token), "host": "evil.example"})
    assert foreign.status_code == 400
    assert client.head("/api/docs").status_code == 200


def test_an_audit_entry_says_it_came_through_the_api(settings: Settings, api: httpx.Client) -> None:
    made = api.post(BASE, json={"title": "Revidert kapittel"}).json()
    with session_scope(settings.database_url) as session:
        entry = session.scalars(select(AuditEntry)).one()
        assert entry.after is not None
        assert json.loads(json.dumps(entry.after))["via"] == "api"
        assert entry.after["title"] == "Revidert kapittel"
        assert entry.target_type == "announcement" and entry.target_id == str(made["id"])
        assert entry.editor_email == "cms@bufdir.no"
