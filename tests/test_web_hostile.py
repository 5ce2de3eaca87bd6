"""The web app under hostile requests: forged CSRF pairs, foreign Host headers, caching of
personal pages, and HEAD."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from digest.db import session_scope
from digest.settings import Settings
from digest.web.app import create_app
from subscribers.models import Subscriber
from subscribers.service import add_subscriber, choices
from subscribers.tokens import make_token
from tests.support.server import LiveServer


@pytest.fixture
def server(settings: Settings) -> Iterator[LiveServer]:
    live = LiveServer(create_app(settings)).start()
    yield live
    live.stop()


@pytest.fixture
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.fixture
def kari(settings: Settings) -> Subscriber:
    with session_scope(settings.database_url) as session:
        return add_subscriber(session, "kari@kommune.no", choices(topics=["vold"]), confirmed=True)


def csrf_field(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html)[1]


def link_request(client: httpx.Client, field: str, cookie: str | None = None) -> httpx.Response:
    headers = {"Cookie": f"csrf={cookie}"} if cookie is not None else None
    return client.post(
        "/lenke", data={"email": "ukjent@kommune.no", "csrf": field}, headers=headers
    )


# --- 6. CSRF bound to the client's secret ---------------------------------------------------


@pytest.mark.parametrize("made_up", ["a", "A" * 32, "abcdefghijklmnopqrstuvwxyz_-0123"])
def test_a_made_up_equal_cookie_and_field_are_refused(server: LiveServer, made_up: str) -> None:
    with server.client() as fresh:
        response = link_request(fresh, made_up, cookie=made_up)
    assert response.status_code == 403


def test_the_pair_a_page_gives_is_accepted(client: httpx.Client) -> None:
    field = csrf_field(client.get("/lenke").text)
    assert client.cookies["csrf"] != field  # the field is derived, not a copy
    assert link_request(client, field).status_code == 200


def test_a_field_from_another_clients_page_is_refused(server: LiveServer) -> None:
    with server.client() as mallory, server.client() as victim:
        mallory_field = csrf_field(mallory.get("/lenke").text)
        victim.get("/lenke")  # the victim has a cookie of their own
        assert link_request(victim, mallory_field).status_code == 403
        # ...and a stolen cookie is no use with the victim's own field either.
        victim_field = csrf_field(victim.get("/lenke").text)
        assert link_request(mallory, victim_field).status_code == 403


def test_an_https_base_url_uses_a_host_prefixed_secure_cookie(settings: Settings) -> None:
    https = settings.model_copy(update={"base_url": "https://varsel.example.no"})
    live = LiveServer(create_app(https)).start()
    # Behind its TLS proxy: plain HTTP to the app, with the public name as Host.
    headers = {"Host": "varsel.example.no"}
    try:
        with httpx.Client(base_url=live.url, headers=headers) as browser:
            page = browser.get("/lenke")
            cookie = page.headers["set-cookie"]
            secret = cookie.split(";")[0].split("=", 1)[1]
            field = csrf_field(page.text)
            form = {"email": "ukjent@kommune.no", "csrf": field}

            def post(cookie_header: str) -> httpx.Response:
                browser.cookies.clear()
                return browser.post("/lenke", data=form, headers={"Cookie": cookie_header})

            # A plain `csrf` cookie (as a sibling subdomain could plant one) is not read.
            planted = post(f"csrf={secret}").status_code
            accepted = post(f"__Host-csrf={secret}").status_code
    finally:
        live.stop()
    assert cookie.startswith("__Host-csrf=")
    assert "secure" in cookie.lower() and "path=/" in cookie.lower()
    assert "domain" not in cookie.lower()
    assert (planted, accepted) == (403, 200)


# --- 7. Host header -------------------------------------------------------------------------


def paths(settings: Settings, kari: Subscriber) -> list[str]:
    manage = make_token(settings.secret_key, "manage", kari.id, kari.email)
    unsubscribe = make_token(settings.secret_key, "unsubscribe", kari.id, kari.email)
    return [
        "/",
        "/lenke",
        "/lenke/",
        "/lenke/?x=1",
        f"/innstillinger/{manage}",
        f"/innstillinger/{manage}/",
        f"/avmelding/{unsubscribe}/",
        "/bekreft/nope/",
        "/abonner/",
        "/static/site.css",
        "/static/",
        "/healthz/",
        "/metrics/",
        "/finnes-ikke/",
        "//evil.example/",
    ]


def test_a_foreign_host_gets_400_and_never_a_redirect_to_it(client, settings, kari) -> None:
    for path in paths(settings, kari):
        for method in ("GET", "HEAD", "POST"):
            response = client.request(method, path, headers={"Host": "evil.example"})
            assert response.status_code == 400, (method, path)
            assert "evil.example" not in response.headers.get("location", "")
    assert client.get("/lenke", headers={"Host": "127.0.0.1.evil.example"}).status_code == 400


def test_redirects_are_built_from_the_base_url(client, settings, kari) -> None:
    response = client.get("/lenke/")
    assert response.status_code in (307, 308)
    assert response.headers["location"] == f"{settings.base_url}/lenke"
    assert client.get("/lenke/?a=b").headers["location"] == f"{settings.base_url}/lenke?a=b"
    for path in paths(settings, kari):
        location = client.get(path).headers.get("location", "")
        assert location == "" or location.startswith(settings.base_url + "/"), path


def test_the_base_urls_host_is_the_one_served(settings: Settings) -> None:
    public = settings.model_copy(update={"base_url": "https://varsel.example.no"})
    live = LiveServer(create_app(public)).start()
    try:
        with live.client() as client:
            answers = {
                host: client.get("/lenke", headers={"Host": host}).status_code
                for host in ("varsel.example.no", "VARSEL.example.no:443", "127.0.0.1", "localhost")
            }
    finally:
        live.stop()
    # Loopback names are served only when the base URL is one.
    assert answers == {
        "varsel.example.no": 200,
        "VARSEL.example.no:443": 200,
        "127.0.0.1": 400,
        "localhost": 400,
    }


def test_healthz_answers_load_balancers_that_probe_by_address(client: httpx.Client) -> None:
    # Probes send the instance's address as Host; /healthz builds no URL and shows nothing
    # personal, so it is exempt from the host check.
    for method in ("GET", "HEAD"):
        assert client.request(method, "/healthz", headers={"Host": "10.0.0.7"}).status_code == 200


# --- 8. no-store on pages, HEAD wherever GET works ------------------------------------------


def personal_pages(settings: Settings, kari: Subscriber) -> list[str]:
    manage = make_token(settings.secret_key, "manage", kari.id, kari.email)
    unsubscribe = make_token(settings.secret_key, "unsubscribe", kari.id, kari.email)
    confirm = make_token(settings.secret_key, "confirm", kari.id, kari.email, "n")
    return [
        "/",
        "/lenke",
        f"/innstillinger/{manage}",
        f"/avmelding/{unsubscribe}",
        f"/bekreft/{confirm}",
        "/bekreft/ugyldig",
        "/healthz",
    ]


def test_pages_are_not_stored_by_caches(client, settings, kari) -> None:
    for path in personal_pages(settings, kari):
        response = client.get(path)
        assert response.headers.get("cache-control") == "no-store", path
    field = csrf_field(client.get("/lenke").text)
    posted = link_request(client, field)
    assert posted.status_code == 200 and posted.headers["cache-control"] == "no-store"
    unsubscribe = make_token(settings.secret_key, "unsubscribe", kari.id, kari.email)
    left = client.post(f"/avmelding/{unsubscribe}")
    assert left.status_code == 200 and left.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in left.headers["content-security-policy"]


def test_head_works_wherever_get_does(client, settings, kari) -> None:
    for path in [*personal_pages(settings, kari), "/metrics", "/static/site.css"]:
        get, head = client.get(path), client.head(path)
        assert head.status_code == get.status_code, path
        assert head.content == b"", path
        assert head.headers["content-type"] == get.headers["content-type"], path
    assert client.head("/abonner").status_code == 405  # POST only, as GET is
