"""Fetching a URL within limits: timeouts, a wall-clock deadline, a size cap, conditional GET.

Connections go through `pinned` (checked addresses only, every step within the
deadline). Bodies are read raw and decompressed by `codings`, so the cap holds at every
step; redirects are followed here, without reading their bodies. The HTTP transport is
swappable (httpx), so tests can run the real client against an in-process server.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

import httpx

from digest import SERVICE_NAME, __version__
from digest.core.settings import Settings
from digest.watch.addresses import refusal
from digest.watch.codings import ACCEPT_ENCODING, CodingError, decoder_for
from digest.watch.errors import WatchError
from digest.watch.pinned import PinnedBackend, PinnedTransport, deadline
from digest.watch.polite import PACER, HostRefused, RobotsCache, SharedHostPacer, parse_robots

MAX_REDIRECTS = 5


class Pacer(Protocol):
    def run(self, host: str, delay: float, call: Callable[[], object]) -> object: ...


ROBOTS = RobotsCache()
PERMANENT_REDIRECTS = (301, 308)


class FetchError(WatchError):
    """A fetch that gave no usable body.

    `reason` is for people; `status` is the HTTP status of the answer (None when there was
    none: a refused host, a timeout, a broken connection), and `url` the URL that gave it.
    """

    def __init__(self, reason: str, status: int | None = None, url: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.url = url


@dataclass(slots=True)
class FetchResult:
    url: str  # the final URL, after redirects
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    # The target of a permanent redirect from the requested URL, if there was one.
    moved_to: str | None = None

    @property
    def not_modified(self) -> bool:
        return self.status == 304


@dataclass(slots=True)
class FetchLimits:
    timeout: float = 20.0  # connect and each read, each
    deadline: float = 60.0  # wall clock for the whole fetch: lookup, connect, headers, body
    max_bytes: int = 5_000_000
    host_delay: float = 1.0  # seconds between two requests to one host
    allow_private: bool = False  # only for tests and closed networks
    respect_robots: bool = True


class Fetcher:
    def __init__(
        self,
        user_agent: str,
        limits: FetchLimits | None = None,
        transport: httpx.BaseTransport | None = None,
        pacer: Pacer | None = None,
    ) -> None:
        self.limits = limits or FetchLimits()
        self.pacer: Pacer = pacer or PACER
        self.user_agent = user_agent
        if transport is None:
            # Each connection, redirect targets included, checks the addresses it uses.
            rule = None if self.limits.allow_private else refusal
            transport = PinnedTransport(PinnedBackend(rule=rule))
        self._client = httpx.Client(
            headers={"User-Agent": user_agent, "Accept-Encoding": ACCEPT_ENCODING},
            timeout=httpx.Timeout(self.limits.timeout),
            # Followed in `_exchange`: httpx would read each redirect's body in full.
            follow_redirects=False,
            transport=transport,
            # No proxy from the environment: the checked address must be the one reached.
            trust_env=False,
            # Checked for every request, redirect targets included.
            event_hooks={"request": [self._check_request]},
        )
        self._robots = ROBOTS

    def _check_request(self, request: httpx.Request) -> None:
        if request.url.scheme not in ("http", "https"):
            raise FetchError(f"only http and https URLs are fetched, not {request.url}")

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def get(
        self, url: str, etag: str | None = None, last_modified: str | None = None
    ) -> FetchResult:
        host = _host(url)
        if self.limits.respect_robots and not self.allowed(url):
            raise FetchError("disallowed by robots.txt")
        result = self.pacer.run(
            host, self.limits.host_delay, lambda: self._get(url, etag, last_modified)
        )
        assert isinstance(result, FetchResult)
        return result

    def allowed(self, url: str) -> bool:
        """Whether robots.txt lets this service fetch `url` (read once per host per hour)."""
        host = _host(url)
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        known, rules = self._robots.get(origin)
        if not known:
            try:
                response = self.pacer.run(
                    host,
                    self.limits.host_delay,
                    lambda: self._get(origin + "/robots.txt", None, None),
                )
                assert isinstance(response, FetchResult)
                rules = parse_robots(response.status, response.body)
            except FetchError as exc:
                if exc.status is None:
                    # No answer at all: the fetch itself will fail and say why.
                    return True
                rules = parse_robots(exc.status, b"")
            self._robots.put(origin, rules)
        assert rules is not None
        return bool(rules.can_fetch(url, self.user_agent))

    def _get(self, url: str, etag: str | None, last_modified: str | None) -> FetchResult:
        headers = _conditional_headers(etag, last_modified)
        started = time.monotonic()
        try:
            with (
                deadline(self.limits.deadline),
                self._exchange(url, headers) as (response, history),
            ):
                return self._result(url, response, history, started)
        except FetchError:
            raise
        except (HostRefused, httpx.HTTPError, httpx.InvalidURL, UnicodeError) as exc:
            raise self._failure(exc, started) from None

    def _result(
        self, url: str, response: httpx.Response, history: list[httpx.Response], started: float
    ) -> FetchResult:
        """The final response as a result: not modified, an HTTP error, or a body."""
        moved_to = _permanent_target(url, response, history)
        if response.status_code == 304:
            return FetchResult(
                str(response.url), 304, moved_to=moved_to, headers=dict(response.headers)
            )
        if response.status_code >= 400:
            raise FetchError(
                f"HTTP {response.status_code} {response.reason_phrase}".strip(),
                status=response.status_code,
                url=str(response.url),
            )
        body = self._read_capped(response, started)
        return FetchResult(
            url=str(response.url),
            status=response.status_code,
            body=body,
            headers={k.lower(): v for k, v in response.headers.items()},
            moved_to=moved_to,
        )

    def _failure(self, exc: Exception, started: float) -> FetchError:
        """What a refused host, a transport error or an unusable URL means for the fetch."""
        if isinstance(exc, HostRefused):
            return FetchError(f"refused: {exc}")
        if isinstance(exc, httpx.TimeoutException):
            if time.monotonic() - started >= self.limits.deadline:
                return FetchError(f"took longer than {self.limits.deadline:g} s")
            return FetchError(f"timed out ({type(exc).__name__})")
        if isinstance(exc, httpx.HTTPError):
            return FetchError(f"{type(exc).__name__}: {_one_line(exc)}")
        return FetchError(f"not a usable URL: {_one_line(exc)}")  # a redirect IDNA refuses

    @contextmanager
    def _exchange(
        self, url: str, headers: dict[str, str]
    ) -> Iterator[tuple[httpx.Response, list[httpx.Response]]]:
        """The final response to GET `url`, its body unread, and the redirects before it."""
        try:
            request = self._client.build_request("GET", url, headers=headers)
        except (httpx.InvalidURL, UnicodeError, ValueError) as exc:
            raise FetchError(f"not a usable URL: {_one_line(exc)}") from None
        history: list[httpx.Response] = []
        while True:
            response = self._client.send(request, stream=True)
            if response.next_request is None:
                break
            response.close()  # a redirect's body is never read, so never decompressed
            history.append(response)
            if len(history) > MAX_REDIRECTS:
                raise FetchError(f"more than {MAX_REDIRECTS} redirects")
            request = response.next_request
        try:
            yield response, history
        finally:
            response.close()

    def _read_capped(self, response: httpx.Response, started: float) -> bytes:
        """The body, decompressed here in bounded steps: the cap holds before and after."""
        cap = self.limits.max_bytes
        declared = response.headers.get("content-length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > cap:
            raise self._too_large(response)
        chunks: list[bytes] = []
        size = 0
        try:
            decoder = decoder_for(response.headers.get("content-encoding", ""))
            for piece in decoder.decode(self._raw(response, started)):
                size += len(piece)
                if size > cap:
                    raise self._too_large(response)
                chunks.append(piece)
        except CodingError as exc:
            raise FetchError(str(exc), status=response.status_code) from None
        return b"".join(chunks)

    def _raw(self, response: httpx.Response, started: float) -> Iterator[bytes]:
        """The body as sent, within the cap and the deadline."""
        received = 0
        for chunk in response.iter_raw():
            received += len(chunk)
            if received > self.limits.max_bytes:
                raise self._too_large(response)
            if time.monotonic() - started > self.limits.deadline:
                raise FetchError(
                    f"took longer than {self.limits.deadline:g} s", status=response.status_code
                )
            yield chunk

    def _too_large(self, response: httpx.Response) -> FetchError:
        return FetchError(
            f"response larger than {self.limits.max_bytes} bytes", status=response.status_code
        )


def make_fetcher(settings: Settings) -> Fetcher:
    """The fetcher the settings describe: its user agent, limits, and pacing per host."""
    contact = f"; {settings.user_agent_contact}" if settings.user_agent_contact else ""
    return Fetcher(
        user_agent=f"{SERVICE_NAME}/{__version__} (+{settings.base_url}{contact})",
        limits=FetchLimits(
            timeout=settings.fetch_timeout_seconds,
            deadline=settings.fetch_timeout_seconds * 3,
            max_bytes=settings.fetch_max_bytes,
            host_delay=settings.fetch_host_delay_seconds,
            allow_private=settings.allow_private_hosts,
        ),
        # With Redis at hand, all workers pace each host together.
        pacer=SharedHostPacer(settings.broker_url)
        if settings.broker_url.startswith(("redis://", "rediss://"))
        else None,
    )


def _conditional_headers(etag: str | None, last_modified: str | None) -> dict[str, str]:
    """The validators to send back. One stored before it was checked (or by an older
    version) that no request can carry is left out: the fetch is then unconditional, not
    impossible."""
    headers = {}
    if etag and usable_validator(etag):
        headers["If-None-Match"] = etag
    if last_modified and usable_validator(last_modified):
        headers["If-Modified-Since"] = last_modified
    return headers


def usable_validator(value: str) -> bool:
    """Whether an ETag or Last-Modified can be sent back as it came: printable ASCII only."""
    return value.isascii() and value.isprintable()


def _permanent_target(
    requested: str, response: httpx.Response, history: list[httpx.Response]
) -> str | None:
    """The final URL when every hop from the requested one was a permanent redirect."""
    if history and all(r.status_code in PERMANENT_REDIRECTS for r in history):
        final = str(response.url)
        return final if final != requested else None
    return None


def _host(url: str) -> str:
    """The host of an http or https URL, or FetchError saying why the URL is not usable."""
    try:
        parts = urlsplit(url)
        host, _port = parts.hostname, parts.port
    except ValueError as exc:  # «http://[::1%]/», a port past 65535
        raise FetchError(f"not a usable URL: {_one_line(exc)}") from None
    if parts.scheme not in ("http", "https") or not host:
        raise FetchError(f"only http and https URLs are fetched, not {url!r}")
    return host


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__
