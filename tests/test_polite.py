"""Politeness and safety of fetching: private hosts, robots.txt, User-Agent, pacing per host."""

from __future__ import annotations

import itertools
import time

import pytest

from digest.core.errors import DigestError
from digest.watch.fetch import Fetcher, FetchError, FetchLimits
from digest.watch.polite import HostRefused, check_addresses, resolve_host
from tests.support.feeds import rss
from tests.support.site import FixtureSite, Route


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "localhost",
        "10.1.2.3",
        "192.168.0.10",
        "172.16.5.5",
        "169.254.169.254",
        "::1",
        "::ffff:127.0.0.1",
        "0.0.0.0",
        "100.64.0.1",
    ],
)
def test_non_public_hosts_are_refused(host: str) -> None:
    with pytest.raises(HostRefused):
        check_addresses(host, resolve_host(host, 80, timeout=10.0))


def test_a_refusal_names_host_and_address_as_attributes() -> None:
    with pytest.raises(HostRefused) as info:
        check_addresses("intranett.example", ["10.1.2.3"])
    assert (info.value.host, str(info.value.address)) == ("intranett.example", "10.1.2.3")
    assert isinstance(info.value, DigestError)


def test_an_http_error_carries_its_status_and_url(site: FixtureSite) -> None:
    limits = FetchLimits(host_delay=0, allow_private=True)
    with Fetcher("test", limits) as fetcher, pytest.raises(FetchError) as info:
        fetcher.get(site.url("/borte"))  # no route: 404
    assert (info.value.status, info.value.url) == (404, site.url("/borte"))
    assert isinstance(info.value, DigestError)


def test_a_public_address_passes() -> None:
    # A literal address needs no DNS.
    check_addresses("8.8.8.8", resolve_host("8.8.8.8", 80, timeout=10.0))


def test_the_fixture_server_is_refused_without_the_switch(site: FixtureSite) -> None:
    site.routes["/feed/"] = Route(b"<rss/>")
    with Fetcher("test", FetchLimits(host_delay=0)) as fetcher, pytest.raises(FetchError) as info:
        fetcher.get(site.url("/feed/"))
    assert "non-public address" in info.value.reason
    assert site.requests == []  # nothing was sent, not even for robots.txt


def test_robots_txt_is_respected(site: FixtureSite) -> None:
    site.routes["/robots.txt"] = Route(
        b"User-agent: *\nDisallow: /privat/\n", content_type="text/plain"
    )
    site.routes["/privat/feed"] = Route(b"<rss/>")
    site.routes["/open/feed"] = Route(rss("T", site.url("/"), []))
    limits = FetchLimits(host_delay=0, allow_private=True)
    with Fetcher("Veiledervarsel/0.1", limits) as fetcher:
        with pytest.raises(FetchError, match=r"robots\.txt"):
            fetcher.get(site.url("/privat/feed"))
        assert fetcher.get(site.url("/open/feed")).status == 200
    assert [path for path, _ in site.requests].count("/robots.txt") == 1  # cached


def test_robots_server_error_means_stay_out(site: FixtureSite) -> None:
    site.routes["/robots.txt"] = Route(b"oops", status=503, content_type="text/plain")
    site.routes["/feed"] = Route(b"<rss/>")
    with (
        Fetcher("x", FetchLimits(host_delay=0, allow_private=True)) as fetcher,
        pytest.raises(FetchError, match=r"robots\.txt"),
    ):
        fetcher.get(site.url("/feed"))


def test_user_agent_names_the_service_and_contact(settings, site: FixtureSite, env) -> None:
    from digest.core.settings import get_settings
    from digest.watch.fetch import make_fetcher

    env.setenv("DIGEST_USER_AGENT_CONTACT", "drift@kommune.no")
    get_settings.cache_clear()
    site.routes["/feed"] = Route(rss("T", site.url("/"), []))
    with make_fetcher(get_settings()) as fetcher:
        fetcher.get(site.url("/feed"))
    agent = site.requests[-1][1]["User-Agent"]
    assert agent.startswith("Veiledervarsel/") and "drift@kommune.no" in agent


def test_one_host_is_paced(site: FixtureSite) -> None:
    site.routes["/a"] = Route(b"a", content_type="text/plain")
    limits = FetchLimits(host_delay=0.3, allow_private=True, respect_robots=False)
    with Fetcher("x", limits) as fetcher:
        started = time.monotonic()
        for _ in range(3):
            fetcher.get(site.url("/a"))
        # Sleeping guarantees a lower bound, so this cannot flake on a slow machine.
        assert time.monotonic() - started >= 0.6


def _fetch_three(url: str, redis_url: str, prefix: str) -> None:
    from digest.watch.polite import SharedHostPacer

    limits = FetchLimits(host_delay=0.3, allow_private=True, respect_robots=False)
    with Fetcher("x", limits, pacer=SharedHostPacer(redis_url, prefix)) as fetcher:
        for _ in range(3):
            fetcher.get(url)


def test_workers_in_several_processes_pace_a_host_together(site: FixtureSite) -> None:
    import multiprocessing
    import uuid

    from tests.conftest import REDIS_URL

    site.routes["/a"] = Route(b"a", content_type="text/plain")
    prefix = f"test:pace:{uuid.uuid4().hex}:"
    context = multiprocessing.get_context("fork")
    workers = [
        context.Process(target=_fetch_three, args=(site.url("/a"), REDIS_URL, prefix))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    arrivals = sorted(site.arrivals)
    assert len(arrivals) == 6
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    # Sleeping and key expiry only ever make the gaps longer, so this cannot flake.
    assert min(gaps) >= 0.28, gaps
