"""The network edge: which addresses may be reached, that a connection goes to the very
address that was checked (every redirect hop too), and that one deadline bounds a fetch.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpcore
import pytest

from digest.watch.addresses import IPAddress, parse_address, refusal
from digest.watch.fetch import Fetcher, FetchError, FetchLimits
from digest.watch.pinned import PinnedBackend, PinnedTransport
from tests.support.site import FixtureSite, Route
from tests.support.trickle import SLOW_HEADERS, TrickleServer

REFUSED = [
    "0.0.0.0",
    "10.1.2.3",
    "100.64.0.1",
    "127.0.0.1",
    "169.254.169.254",
    "172.16.5.5",
    "192.0.0.8",
    "192.0.2.1",
    "192.88.99.1",
    "192.168.0.10",
    "198.18.0.1",
    "203.0.113.9",
    "224.0.0.1",  # multicast, which Python 3.11.7 calls global
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "::",
    "::1",
    "::127.0.0.1",  # IPv4-compatible
    "::8.8.8.8",  # IPv4-compatible is deprecated whatever it holds
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "64:ff9b:1::808:808",  # local-use NAT64
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:c0a8:1::1",  # 6to4 of 192.168.0.1
    "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1
    "2001:0:a00:1::1",  # Teredo, server 10.0.0.1
    "2001:db8::1",
    "100::1",
    "fc00::1",
    "fd12:3456::1",
    "fe80::1",
    "fe80::1%eth0",
    "fec0::1",
    "ff02::1",
    "ff0e::1",  # global-scope multicast
    "4000::1",  # not allocated as global unicast
]
ALLOWED = [
    "8.8.8.8",
    "1.1.1.1",
    "151.101.1.140",
    "2a00:1450:4010:c05::66",
    "2001:4860:4860::8888",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",  # NAT64 of 8.8.8.8, as DNS64 hands out on IPv6-only networks
    "2002:808:808::1",
    "2001:0:4136:e378:8000:63bf:f7f7:f7f7",  # Teredo, server and client public
]


@pytest.mark.parametrize("text", REFUSED)
def test_non_global_addresses_are_refused(text: str) -> None:
    assert refusal(parse_address(text)) is not None


@pytest.mark.parametrize("text", ALLOWED)
def test_globally_routable_addresses_pass(text: str) -> None:
    assert refusal(parse_address(text)) is None


def test_the_reason_names_the_embedded_address() -> None:
    assert refusal(parse_address("64:ff9b::7f00:1")) == "NAT64 form of 127.0.0.1, loopback"


# The pinning tests play "public" with 127.0.0.2 and "private" with 127.0.0.1: on Linux
# the whole of 127/8 answers locally, so both are real servers on this machine.
PUBLIC = "127.0.0.2"


def only_public(address: IPAddress) -> str | None:
    return None if str(address) == PUBLIC else "private in this test"


class Dns:
    """A resolver hook that gives each name its next answer, and counts the questions."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.questions: list[str] = []

    def __call__(self, host: str, port: int, timeout: float | None) -> list[str]:
        self.questions.append(host)
        queue = self.answers[host]
        return queue.pop(0) if len(queue) > 1 else queue[0]


def fetcher(dns: Dns, rule=only_public, verify: ssl.SSLContext | bool = True) -> Fetcher:
    limits = FetchLimits(timeout=2, host_delay=0, respect_robots=False)
    transport = PinnedTransport(PinnedBackend(resolve=dns, rule=rule), verify=verify)
    return Fetcher("x", limits, transport=transport)


@pytest.fixture
def public_site() -> Iterator[FixtureSite]:
    server = FixtureSite(PUBLIC).start()
    yield server
    server.stop()


def listener_on(host: str, port: int) -> socket.socket:
    sock = socket.create_server((host, port))
    sock.setblocking(False)
    return sock


def was_reached(sock: socket.socket) -> bool:
    # The kernel completes a connection to a listening socket without accept().
    try:
        sock.accept()[0].close()
    except BlockingIOError:
        return False
    return True


def test_a_second_dns_answer_cannot_move_the_connection(public_site: FixtureSite) -> None:
    port = public_site.server.server_address[1]
    private = listener_on("127.0.0.1", port)
    dns = Dns({"rebind.example": [[PUBLIC], ["127.0.0.1"]]})
    public_site.routes["/feed"] = Route(b"public", content_type="text/plain")
    try:
        with fetcher(dns) as first:
            result = first.get(f"http://rebind.example:{port}/feed")
        assert result.body == b"public"
        assert dns.questions == ["rebind.example"]  # one lookup, checked and used
        assert public_site.requests[0][1]["Host"] == f"rebind.example:{port}"
        assert not was_reached(private)
        # A new connection asks again; the rebound answer is checked, not used.
        with fetcher(dns) as second, pytest.raises(FetchError, match="non-public address"):
            second.get(f"http://rebind.example:{port}/feed")
        assert not was_reached(private)
    finally:
        private.close()


def test_every_redirect_hop_is_checked(public_site: FixtureSite, site: FixtureSite) -> None:
    inner_port = site.server.server_address[1]
    public_site.routes["/go"] = Route(
        status=302, headers={"Location": f"http://inner.example:{inner_port}/secret"}
    )
    site.routes["/secret"] = Route(b"metadata", content_type="text/plain")
    public_port = public_site.server.server_address[1]
    dns = Dns({"outer.example": [[PUBLIC]], "inner.example": [["127.0.0.1"]]})
    with fetcher(dns) as client, pytest.raises(FetchError, match="non-public address"):
        client.get(f"http://outer.example:{public_port}/go")
    assert [path for path, _ in public_site.requests] == ["/go"]
    assert site.requests == []


@pytest.mark.parametrize(
    "answer", [["8.8.8.8", "127.0.0.1"], ["64:ff9b::7f00:1"], ["2002:7f00:1::1"], ["::127.0.0.1"]]
)
def test_a_name_with_any_non_public_address_is_refused(site: FixtureSite, answer) -> None:
    port = site.server.server_address[1]
    site.routes["/feed"] = Route(b"private", content_type="text/plain")
    dns = Dns({"mixed.example": [answer]})
    with fetcher(dns, rule=refusal) as client, pytest.raises(FetchError, match="non-public"):
        client.get(f"http://mixed.example:{port}/feed")
    assert site.requests == []


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=pinned.example"),
            *("-addext", "subjectAltName=DNS:pinned.example"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_tls_is_verified_for_the_host_name_not_the_address(certificate) -> None:
    cert, key = certificate
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(cert, key)
    tls_site = FixtureSite(PUBLIC)
    tls_site.server.socket = server_side.wrap_socket(tls_site.server.socket, server_side=True)
    tls_site.routes["/feed"] = Route(b"over tls", content_type="text/plain")
    tls_site.start()
    port = tls_site.server.server_address[1]
    trust = ssl.create_default_context(cafile=str(cert))
    dns = Dns({"pinned.example": [[PUBLIC]], "other.example": [[PUBLIC]]})
    try:
        with fetcher(dns, verify=trust) as client:
            assert client.get(f"https://pinned.example:{port}/feed").body == b"over tls"
        with fetcher(dns, verify=trust) as client, pytest.raises(FetchError, match="certif"):
            client.get(f"https://other.example:{port}/feed")
    finally:
        tls_site.stop()


def test_a_server_trickling_its_headers_is_cut_off_at_the_deadline() -> None:
    # One byte every 50 ms: each read is well within the 0.5 s timeout.
    server = TrickleServer(SLOW_HEADERS, pause=0.05).start()
    limits = FetchLimits(
        timeout=0.5, deadline=1.5, host_delay=0, allow_private=True, respect_robots=False
    )
    try:
        with Fetcher("x", limits) as client, pytest.raises(FetchError) as info:
            client.get(server.url("/feed"))
        assert info.value.reason == "took longer than 1.5 s"
        assert server.cut_off.wait(timeout=60)
        assert not server.finished.is_set()
    finally:
        server.stop()


def plain_resolver(host: str, port: int, timeout: float | None) -> list[str]:
    """A resolver that lets the socket layer's own errors out, as a third-party one may."""
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


@pytest.mark.parametrize("host", ["a..b", "x" * 70 + ".no"])
def test_a_name_no_resolver_takes_is_a_connect_error(host: str) -> None:
    # IDNA refuses an empty label or one past 63 characters with UnicodeError.
    backend = PinnedBackend(resolve=plain_resolver, rule=None)
    with pytest.raises(httpcore.ConnectError, match="cannot resolve"):
        backend.connect_tcp(host, 80, timeout=2)
