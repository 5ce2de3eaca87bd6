"""The web app under hostile requests: forged CSRF pairs."""

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
