"""The web app under hostile requests: forged CSRF pairs, foreign Host headers, caching of
personal pages, HEAD, and a per-client rate limit that stays bounded and is shared."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator

import httpx
import pytest

from digest.core.db import session_scope
from digest.core.settings import Settings
from digest.web.app import create_app
from digest.web.ratelimit import LocalRateLimiter, RedisRateLimiter, build_limiter
from subscribers.choices import choices
from subscribers.models import Subscriber
from subscribers.signups import add_subscriber
from subscribers.tokens import make_token
from tests.conftest import REDIS_URL
from tests.support.server import LiveServer
from tests.support.smtp import free_port


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
    manage = make_token(settings.secret_key, "manage", kari.ref)
    unsubscribe = make_token(settings.secret_key, "unsubscribe", kari.ref)
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
    manage = make_token(settings.secret_key, "manage", kari.ref)
    unsubscribe = make_token(settings.secret_key, "unsubscribe", kari.ref)
    confirm = make_token(settings.secret_key, "confirm", "n" * 22)
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
    unsubscribe = make_token(settings.secret_key, "unsubscribe", kari.ref)
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


# --- 12. the per-client rate limit -----------------------------------------------------------


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_the_local_limit_allows_ten_in_ten_minutes_per_client() -> None:
    clock = Clock()
    limiter = LocalRateLimiter(limit=10, window=600, clock=clock)
    assert [limiter.allow("a") for _ in range(11)] == [True] * 10 + [False]
    assert limiter.allow("b")
    clock.now += 599
    assert not limiter.allow("a")
    clock.now += 2
    assert limiter.allow("a")


def test_the_local_table_stays_bounded_and_forgets_idle_clients() -> None:
    clock = Clock()
    limiter = LocalRateLimiter(limit=10, window=600, max_keys=1_000, clock=clock)
    for n in range(5_000):
        assert limiter.allow(f"10.0.{n // 256}.{n % 256}")
        assert len(limiter) <= 1_000
    clock.now += 601
    limiter.allow("late")
    assert len(limiter) == 1  # everyone idle for a window is forgotten


def test_a_client_at_its_limit_stays_limited_while_others_come_and_go() -> None:
    clock = Clock()
    limiter = LocalRateLimiter(limit=10, window=600, max_keys=1_000, clock=clock)
    assert all(limiter.allow("busy") for _ in range(10))
    for n in range(500):
        clock.now += 0.5
        limiter.allow(f"once-{n}")
    assert not limiter.allow("busy") and len(limiter) == 501
    clock.now += 351  # 601 s after busy's ten, 351 to 600.5 s after the others
    assert limiter.allow("busy")
    assert len(limiter) == 500  # once-0, 600.5 s idle, is gone


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    import redis

    prefix = f"test:rate:{uuid.uuid4().hex}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(prefix + "*"):
        client.delete(key)
    client.close()


def test_two_web_processes_share_one_count_in_redis(redis_prefix: str) -> None:
    import redis

    clock = Clock()
    first = RedisRateLimiter(REDIS_URL, limit=10, window=600, prefix=redis_prefix, clock=clock)
    second = RedisRateLimiter(REDIS_URL, limit=10, window=600, prefix=redis_prefix, clock=clock)
    answers = [(first if n % 2 else second).allow("192.0.2.1") for n in range(10)]
    assert answers == [True] * 10
    assert not first.allow("192.0.2.1") and not second.allow("192.0.2.1")
    assert first.allow("192.0.2.2")
    keys = list(redis.Redis.from_url(REDIS_URL).scan_iter(redis_prefix + "*"))
    assert len(keys) == 2
    assert all(0 < redis.Redis.from_url(REDIS_URL).pttl(key) <= 600_000 for key in keys)
    clock.now += 601
    assert second.allow("192.0.2.1")


def test_a_dead_redis_falls_back_to_the_local_limit(caplog) -> None:
    dead = RedisRateLimiter(f"redis://127.0.0.1:{free_port()}/0", limit=2, window=600)
    with caplog.at_level(logging.WARNING, logger="digest.web.ratelimit"):
        answers = [dead.allow("192.0.2.1") for _ in range(3)]
    assert answers == [True, True, False]
    assert "Redis" in caplog.text and len(caplog.records) == 1  # said once, not per request


def test_two_web_apps_on_redis_share_the_limit(settings: Settings) -> None:
    import redis

    from digest.web.ratelimit import PREFIX

    store = redis.Redis.from_url(REDIS_URL)
    for key in store.scan_iter(PREFIX + "*"):
        store.delete(key)
    shared = settings.model_copy(update={"broker_url": REDIS_URL})
    servers = [LiveServer(create_app(shared)).start() for _ in range(2)]
    try:
        clients = [server.client() for server in servers]
        fields = [csrf_field(c.get("/lenke").text) for c in clients]
        answers = [link_request(clients[n % 2], fields[n % 2]).status_code for n in range(12)]
    finally:
        for server in servers:
            server.stop()
        for key in store.scan_iter(PREFIX + "*"):
            store.delete(key)
    assert answers == [200] * 10 + [429, 429]
    assert isinstance(build_limiter("memory://"), LocalRateLimiter)
    assert isinstance(build_limiter("amqp://guest:guest@127.0.0.1:5672/%2F"), LocalRateLimiter)


def test_clients_are_counted_by_address_or_ipv6_64() -> None:
    from digest.web.ratelimit import client_key

    assert (
        client_key("2001:db8:1:2::1") == client_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    )
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:192.0.2.1") == client_key("192.0.2.1") == "192.0.2.1"
    assert client_key(None) == "unknown"


# --- Expected errors become pages, in one place ---------------------------------------------


def test_a_database_out_of_reach_is_a_503_page_not_a_traceback(settings: Settings, tmp_path):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    broken = settings.model_copy(update={"database_url": f"sqlite:///{blocked}/digest.db"})
    live = LiveServer(create_app(broken)).start()
    try:
        with live.client() as client:
            response = client.get("/innstillinger/anything")
    finally:
        live.stop()
    assert response.status_code == 503 and "Tjenesten er ikke tilgjengelig" in response.text
    assert response.headers["cache-control"] == "no-store"
