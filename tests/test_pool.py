"""The send pool against a real relay (aiosmtpd on loopback) that can refuse at any step or
hang: what each failure means, several mails in flight on connections kept across
submits, the relay breaker, the rate limit shared through Redis, and forked workers."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from aiosmtpd.controller import Controller
from prometheus_client import REGISTRY

from digest.core.settings import Settings
from digest.mail import pool as pool_module
from digest.mail.mailer import SendError, SMTPTransport
from digest.mail.pool import RelayBreaker, SendPool, send_pool
from digest.mail.ratelimit import LocalRateLimit, rate_limit
from digest.mail.wire import Wire
from tests.conftest import REDIS_URL
from tests.support.smtp import free_port


def wire(to: str = "kari@kommune.no") -> Wire:
    data = f"From: varsel@veiledervarsel.no\r\nTo: {to}\r\nSubject: Hei\r\n\r\nHei\r\n"
    return Wire("varsel@veiledervarsel.no", (to,), data.encode(), smtputf8=False)


class FaultyRelay:
    """An aiosmtpd handler answering as told at MAIL, RCPT or DATA, or hanging at DATA
    until released; it notes each connection (by the client's port) and how many
    transactions were in DATA at once, holding each there until `together` are."""

    def __init__(self) -> None:
        self.replies: dict[str, str] = {}  # "MAIL" | "RCPT" | "DATA" -> the reply
        self.hang = threading.Event()
        self.release = threading.Event()
        self.together = 1
        self.mails = 0  # MAIL commands seen
        self.accepted: list[tuple[int, list[str]]] = []  # (client port, recipients)
        self.quits = 0
        self.in_data = 0
        self.most_in_data = 0
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def ports(self) -> set[int]:
        return {port for port, _ in self.accepted}

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        self.mails += 1
        if reply := self.replies.get("MAIL"):
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if reply := self.replies.get("RCPT"):
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.hang.is_set():
            while not self.release.is_set():
                await asyncio.sleep(0.02)
        if reply := self.replies.get("DATA"):
            return reply
        self.in_data += 1
        self.most_in_data = max(self.most_in_data, self.in_data)
        for _ in range(200):  # at most 4 s: a pool that sends one at a time fails below
            if self.most_in_data >= self.together:
                break
            await asyncio.sleep(0.02)
        self.in_data -= 1
        self.accepted.append((session.peer[1], list(envelope.rcpt_tos)))
        return "250 Message accepted"

    async def handle_QUIT(self, server, session, envelope):
        self.quits += 1
        return "221 Bye"


@pytest.fixture
def relay() -> Iterator[FaultyRelay]:
    server = FaultyRelay()
    server.controller.start()
    yield server
    server.release.set()
    server.controller.stop()


def configured(env: pytest.MonkeyPatch, url: str, **values: object) -> Settings:
    """Settings on `url` with short timeouts and a quick breaker, as fault tests want."""
    base: dict[str, object] = {
        "smtp_url": url,
        "smtp_timeout_seconds": 0.5,
        "relay_failure_limit": 3,
        "relay_pause_seconds": 60.0,
    }
    return Settings(**{**base, **values})


@pytest.fixture
def make_pool(env: pytest.MonkeyPatch) -> Iterator[list[SendPool]]:
    """Pools a test made, closed after it."""
    pools: list[SendPool] = []
    yield pools
    for made in pools:
        made.close()


def new_pool(pools: list[SendPool], settings: Settings, **options: object) -> SendPool:
    made = SendPool(settings, **options)
    pools.append(made)
    return made


def failure(future_error: BaseException | None) -> SendError:
    assert isinstance(future_error, SendError), future_error
    return future_error


def send_one(url: str, timeout: float = 0.5) -> SendError | None:
    """One mail on a fresh transport, and then one more to show the transport still works
    (the relay's replies are changed by the caller in between)."""

    async def go() -> SendError | None:
        transport = SMTPTransport(url, timeout)
        try:
            await transport.send_wire(wire())
        except SendError as exc:
            return exc
        finally:
            await transport.close()
        return None

    return asyncio.run(go())


# --- What each failure means -----------------------------------------------------------


@pytest.mark.parametrize(
    ("step", "reply", "relay_fault", "recipient", "permanent"),
    [
        ("MAIL", "451 4.3.0 Try later", True, False, False),
        ("MAIL", "550 5.7.1 Sender refused", True, False, False),
        ("MAIL", "421 4.3.2 Shutting down", True, False, False),
        ("RCPT", "550 5.1.1 No such user", False, True, True),
        ("RCPT", "452 4.2.2 Mailbox full", False, True, False),
        # RFC 5321 4.5.3.1.10: "too many recipients" is 452, and a 552 for it is to be
        # taken as temporary; a 452 without an enhanced code is the relay's storage.
        ("RCPT", "452 4.5.3 Too many recipients", True, False, False),
        ("RCPT", "552 5.5.3 Too many recipients", True, False, False),
        ("RCPT", "452 4.3.1 Insufficient system storage", True, False, False),
        ("RCPT", "452 Insufficient system storage", True, False, False),
        # A full mailbox with 552 (RFC 5321's "exceeded storage allocation") is the
        # recipient's, but temporary: never a suppression.
        ("RCPT", "552 5.2.2 Mailbox full", False, True, False),
        # A relay refusing to relay for us, or refusing our sender (Postfix says so at
        # RCPT), refuses everyone: never a bounce that suppresses, but a refusal held
        # until someone is accepted after it (the relay's when nobody is).
        ("RCPT", "554 5.7.1 <kari@kommune.no>: Relay access denied", False, True, False),
        (
            "RCPT",
            "553 5.1.8 <varsel@veiledervarsel.no>: Sender address rejected",
            False,
            True,
            False,
        ),
        ("RCPT", "421 4.3.2 Shutting down", True, False, False),
        ("DATA", "451 4.3.0 Queue trouble", True, False, False),
        ("DATA", "554 5.6.0 Transaction failed", True, False, False),
        ("DATA", "421 4.3.2 Shutting down", True, False, False),
    ],
)
def test_each_refusal_is_the_recipients_or_the_relays(
    relay: FaultyRelay, step: str, reply: str, relay_fault: bool, recipient: bool, permanent: bool
) -> None:
    relay.replies[step] = reply

    async def twice() -> SendError:
        transport = SMTPTransport(relay.url, 0.5)
        try:
            with pytest.raises(SendError) as info:
                await transport.send_wire(wire())
            relay.replies.clear()
            await transport.send_wire(wire("neste@kommune.no"))  # the transport goes on
            return info.value
        finally:
            await transport.close()

    error = asyncio.run(twice())
    assert (error.relay, error.recipient, error.permanent) == (relay_fault, recipient, permanent)
    assert error.code == int(reply[:3]) and reply[4:] in str(error)
    assert [rcpts for _, rcpts in relay.accepted] == [["neste@kommune.no"]]


class OneMailASession:
    """A relay that takes one recipient a connection (a session limit, as some impose):
    any more on the same connection get 452 4.5.3."""

    def __init__(self) -> None:
        self.accepted: list[int] = []  # the client port of each mail taken

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if session.peer[1] in self.accepted:
            return "452 4.5.3 Too many recipients for this session"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.accepted.append(session.peer[1])
        return "250 Message accepted"


def test_a_relay_over_its_recipient_limit_gets_a_new_connection() -> None:
    handler = OneMailASession()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()

    async def three() -> list[SendError | None]:
        transport = SMTPTransport(f"smtp://127.0.0.1:{controller.port}", 0.5)
        outcomes: list[SendError | None] = []
        try:
            for to in ("a@kommune.no", "b@kommune.no", "c@kommune.no"):
                try:
                    await transport.send_wire(wire(to))
                    outcomes.append(None)
                except SendError as exc:
                    outcomes.append(exc)
        finally:
            await transport.close()
        return outcomes

    try:
        first, refused, third = asyncio.run(three())
    finally:
        controller.stop()
    assert first is None and refused is not None and refused.relay
    assert third is None  # on a new connection, not the one over its limit
    assert len(set(handler.accepted)) == 2


def test_a_relay_nobody_listens_on_is_the_relays_fault() -> None:
    error = send_one(f"smtp://127.0.0.1:{free_port()}")
    assert error is not None and error.relay and not error.permanent and not error.recipient


def test_a_relay_that_never_greets_times_out_as_the_relays_fault() -> None:
    with socket.socket() as silent:  # connections are taken, and never answered
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        error = send_one(f"smtp://127.0.0.1:{silent.getsockname()[1]}", timeout=0.3)
    assert error is not None and error.relay and not error.permanent


def test_a_relay_that_hangs_after_data_drops_the_connection(relay: FaultyRelay) -> None:
    relay.hang.set()

    async def hang_then_send() -> tuple[SendError, bool]:
        transport = SMTPTransport(relay.url, 0.3)
        try:
            with pytest.raises(SendError) as info:
                await transport.send_wire(wire())
            dropped = not transport.connected
            relay.hang.clear()
            await transport.send_wire(wire("neste@kommune.no"))  # on a new connection
            return info.value, dropped
        finally:
            await transport.close()

    error, dropped = asyncio.run(hang_then_send())
    relay.release.set()
    assert error.relay and not error.permanent and dropped
    assert ["neste@kommune.no"] in [rcpts for _, rcpts in relay.accepted]


# --- The pool ----------------------------------------------------------------------------


def test_the_pool_keeps_several_mails_in_flight(
    env: pytest.MonkeyPatch, relay: FaultyRelay, make_pool: list[SendPool]
) -> None:
    relay.together = 4  # each transaction waits in DATA until four are there at once
    pool = new_pool(make_pool, configured(env, relay.url, smtp_connections=4))
    futures = [pool.submit(wire(f"k{n}@kommune.no")) for n in range(8)]
    for future in futures:
        assert future.result(timeout=30) is None
    assert relay.most_in_data == 4
    assert len(relay.ports()) == 4
    assert sorted(r for _, rcpts in relay.accepted for r in rcpts) == sorted(
        f"k{n}@kommune.no" for n in range(8)
    )


def test_connections_are_reused_across_submits_from_many_threads(
    env: pytest.MonkeyPatch, relay: FaultyRelay, make_pool: list[SendPool]
) -> None:
    pool = new_pool(make_pool, configured(env, relay.url, smtp_connections=2))

    def chunk(n: int) -> None:  # a worker thread sending its chunk, one mail at a time
        for m in range(3):
            pool.submit(wire(f"k{n}-{m}@kommune.no")).result(timeout=30)

    for _round in range(2):  # two rounds of chunks, as consecutive messages to a worker
        with ThreadPoolExecutor(4) as threads:
            list(threads.map(chunk, range(4)))
    assert len(relay.accepted) == 24
    assert len(relay.ports()) <= 2  # every mail on one of the two connections
    assert relay.quits == 0


def test_an_idle_connection_is_closed_with_quit_and_reopened(
    env: pytest.MonkeyPatch, relay: FaultyRelay, make_pool: list[SendPool]
) -> None:
    pool = new_pool(make_pool, configured(env, relay.url, smtp_connections=1), idle_seconds=0.1)
    pool.submit(wire()).result(timeout=10)
    deadline = time.monotonic() + 10
    while relay.quits == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert relay.quits == 1
    pool.submit(wire("neste@kommune.no")).result(timeout=10)
    assert len(relay.ports()) == 2


def test_closing_the_pool_says_quit_and_refuses_more(
    env: pytest.MonkeyPatch, relay: FaultyRelay, make_pool: list[SendPool]
) -> None:
    pool = new_pool(make_pool, configured(env, relay.url, smtp_connections=2))
    for future in [pool.submit(wire(f"k{n}@kommune.no")) for n in range(4)]:
        future.result(timeout=10)
    pool.close()
    assert relay.quits == len(relay.ports())
    refused = failure(pool.submit(wire()).exception(timeout=1))
    assert refused.relay and "closed" in str(refused)


def test_a_process_says_quit_on_its_way_out(relay: FaultyRelay, tmp_path: Path) -> None:
    script = (
        "from digest.core.settings import Settings\n"
        "from digest.mail.pool import send_pool\n"
        "from tests.test_pool import wire\n"
        f"pool = send_pool(Settings(smtp_url={relay.url!r}, data_dir={str(tmp_path)!r}))\n"
        "pool.submit(wire()).result(timeout=10)\n"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    done = subprocess.run([sys.executable, "-c", script], env=clean, timeout=60, check=False)
    assert done.returncode == 0
    assert len(relay.accepted) == 1 and relay.quits == 1


def test_the_pool_writes_the_outbox_when_no_relay_is_set(
    env: pytest.MonkeyPatch, tmp_path: Path, make_pool: list[SendPool]
) -> None:
    pool = new_pool(make_pool, Settings(data_dir=tmp_path / "var"))
    assert pool.connections == 1
    for future in [pool.submit(wire(f"k{n}@kommune.no")) for n in range(3)]:
        assert future.result(timeout=10) is None
    files = sorted((tmp_path / "var" / "outbox" / "new").iterdir())
    assert len(files) == 3 and b"\r\n" not in files[0].read_bytes()


def test_a_failure_comes_back_on_its_future_and_the_pool_goes_on(
    env: pytest.MonkeyPatch, relay: FaultyRelay, make_pool: list[SendPool]
) -> None:
    pool = new_pool(make_pool, configured(env, relay.url, smtp_connections=1))
    relay.replies["RCPT"] = "550 5.1.1 No such user"
    bounced = failure(pool.submit(wire("nei@kommune.no")).exception(timeout=10))
    assert bounced.recipient and bounced.permanent and not bounced.relay
    relay.replies.clear()
    assert pool.submit(wire()).result(timeout=10) is None


class BrokenLimit:
    """A rate limit whose every acquire fails, as a bug in it would."""

    async def acquire(self) -> None:
        raise RuntimeError("the limit broke")

    async def close(self) -> None:
        return None


def test_a_bug_on_the_way_to_the_relay_fails_that_mail_and_the_pool_goes_on(
    env: pytest.MonkeyPatch, relay: FaultyRelay, make_pool: list[SendPool]
) -> None:
    pool = new_pool(make_pool, configured(env, relay.url, smtp_connections=1))
    working = pool._limit
    pool._limit = BrokenLimit()  # type: ignore[assignment]
    broken = failure(pool.submit(wire()).exception(timeout=10))
    assert broken.relay and not broken.permanent and "the limit broke" in str(broken)
    pool._limit = working
    assert pool.submit(wire()).result(timeout=10) is None


def mails(outcome: str) -> float:
    return REGISTRY.get_sample_value("digest_mails_total", {"outcome": outcome}) or 0.0


def test_each_mail_is_counted_by_its_outcome(
    env: pytest.MonkeyPatch, relay: FaultyRelay, make_pool: list[SendPool]
) -> None:
    pool = new_pool(make_pool, configured(env, relay.url, smtp_connections=1))
    before = {o: mails(o) for o in ("sent", "bounced", "deferred", "relay")}
    assert pool.submit(wire()).result(timeout=10) is None
    for step, reply in (
        ("RCPT", "550 5.1.1 No such user"),
        ("RCPT", "450 4.2.1 Try later"),
        ("MAIL", "451 4.3.0 Try later"),
    ):
        relay.replies = {step: reply}
        failure(pool.submit(wire()).exception(timeout=10))
    assert {o: mails(o) - before[o] for o in before} == {
        "sent": 1,
        "bounced": 1,
        "deferred": 1,
        "relay": 1,
    }


# --- The relay breaker -----------------------------------------------------------------


def test_the_breaker_trips_fails_fast_and_recovers(
    env: pytest.MonkeyPatch, relay: FaultyRelay, make_pool: list[SendPool]
) -> None:
    settings = configured(env, relay.url, smtp_connections=1, relay_pause_seconds=0.3)
    pool = new_pool(make_pool, settings)
    relay.replies["MAIL"] = "451 4.3.0 Try later"
    for n in range(3):
        error = failure(pool.submit(wire(f"k{n}@kommune.no")).exception(timeout=10))
        assert error.relay and not error.recipient
    paused_until = pool.breaker.paused_until
    assert paused_until is not None and paused_until > datetime.now(UTC)
    assert pool.breaker.failures_in_row == 3 and "451" in (pool.breaker.last_error or "")
    future = pool.submit(wire("k3@kommune.no"))
    assert future.done()  # refused at once, the relay untouched
    refused = failure(future.exception())
    assert refused.relay and not refused.permanent and "paused until" in str(refused)
    assert relay.mails == 3
    relay.replies.clear()
    while pool.breaker.paused_until is not None:
        time.sleep(0.02)
    assert pool.submit(wire("k4@kommune.no")).result(timeout=10) is None
    assert pool.breaker.failures_in_row == 0 and pool.breaker.paused_until is None


def test_the_same_deferral_for_recipient_after_recipient_trips_the_breaker(
    env: pytest.MonkeyPatch, relay: FaultyRelay, make_pool: list[SendPool]
) -> None:
    pool = new_pool(make_pool, configured(env, relay.url, smtp_connections=1))
    relay.replies["RCPT"] = "451 4.7.1 Greylisted, try again later"
    for n in range(2):
        error = failure(pool.submit(wire(f"k{n}@kommune.no")).exception(timeout=10))
        assert error.recipient and not error.relay and not error.permanent
    # The third in a row shows it is the relay's trouble, not this recipient's.
    third = failure(pool.submit(wire("k2@kommune.no")).exception(timeout=10))
    assert third.relay and not third.recipient and third.code == 451
    assert pool.breaker.paused_until is not None
    assert failure(pool.submit(wire("k3@kommune.no")).exception(timeout=1)).relay
    assert relay.mails == 3


def test_different_deferrals_and_bounces_do_not_trip_the_breaker() -> None:
    breaker = RelayBreaker(limit=2, pause=30, pause_max=600)
    for code in (451, 452, 451, 452, 550, 550, 550):
        breaker.record(SendError(str(code), code >= 500, recipient=True, code=code))
    assert breaker.paused_until is None


def test_each_failure_right_after_a_pause_doubles_it_up_to_the_most() -> None:
    clock = [datetime(2026, 11, 27, 12, 0, tzinfo=UTC)]
    breaker = RelayBreaker(limit=2, pause=10, pause_max=25, clock=lambda: clock[0])
    relay_down = SendError("421 4.3.2 Going away", False, code=421, relay=True)

    def fail() -> float:
        """One relay failure; the pause it began, in seconds (0: none), which then passes."""
        breaker.record(relay_down)
        until = breaker.paused_until
        if until is None:
            return 0
        seconds = (until - clock[0]).total_seconds()
        clock[0] = until
        return seconds

    assert [fail() for _ in range(5)] == [0, 10, 20, 25, 25]
    assert breaker.pauses == 4
    breaker.record(None)  # a success closes it, and the next pause is short again
    assert breaker.failures_in_row == 0
    breaker.record(relay_down)
    breaker.record(relay_down)
    until = breaker.paused_until
    assert until == clock[0] + timedelta(seconds=10)
    breaker.record(relay_down)  # a mail in flight when the pause began changes nothing
    assert breaker.paused_until == until and breaker.pauses == 5


# --- The rate limit ----------------------------------------------------------------------


def test_no_rate_means_no_limit_and_the_embedded_broker_limits_each_process(
    env: pytest.MonkeyPatch,
) -> None:
    assert rate_limit(Settings()) is None
    assert isinstance(rate_limit(Settings(smtp_rate_per_second=2.5)), LocalRateLimit)
    slow = LocalRateLimit(0.5)
    assert (slow.seconds, slow.allowed) == (2.0, 1)


def test_two_pools_share_the_rate_through_redis(
    env: pytest.MonkeyPatch, relay: FaultyRelay, make_pool: list[SendPool]
) -> None:
    prefix = f"test:smtp-rate:{uuid.uuid4().hex}"
    settings = configured(
        env,
        relay.url,
        smtp_connections=4,
        smtp_rate_per_second=8,
        broker_url=REDIS_URL,
        secret_key="s" * 32,
    )
    first, second = (new_pool(make_pool, settings, rate_prefix=prefix) for _ in range(2))
    futures = [p.submit(wire(f"k{n}@kommune.no")) for n in range(10) for p in (first, second)]
    for future in futures:
        assert future.result(timeout=30) is None
    store = redis.Redis.from_url(REDIS_URL)
    try:
        counts = [int(store.get(key) or 0) for key in store.scan_iter(f"{prefix}:*")]
        assert sum(counts) == 20  # every mail took exactly one place in some window
        assert max(counts) <= 8 and len(counts) >= 3  # no window took more than the rate
    finally:
        keys = list(store.scan_iter(f"{prefix}:*"))
        if keys:
            store.delete(*keys)
    assert len(relay.accepted) == 20


# --- Forked workers ---------------------------------------------------------------------


def _send_in_child(settings: Settings, parent: SendPool) -> None:
    # What a Dramatiq worker process does: take the process's pool and send.
    parent.close()  # the parent's exit hook, inherited: must leave its connections alone
    pool = send_pool(settings)
    ok = pool is not parent and pool.pid == os.getpid() and parent.submit(wire()).exception()
    pool.submit(wire("barn@kommune.no")).result(timeout=10)
    os._exit(0 if ok else 1)


def test_a_forked_worker_makes_its_own_pool_and_leaves_the_parents(
    env: pytest.MonkeyPatch, relay: FaultyRelay
) -> None:
    settings = configured(env, relay.url, smtp_connections=1)
    parent = send_pool(settings)
    try:
        assert send_pool(settings) is parent
        parent.submit(wire("forelder@kommune.no")).result(timeout=10)
        child = multiprocessing.get_context("fork").Process(
            target=_send_in_child, args=(settings, parent)
        )
        child.start()
        child.join(30)
        assert child.exitcode == 0
        parent.submit(wire("igjen@kommune.no")).result(timeout=10)
    finally:
        pool_module.close_send_pool()
    by_recipient = {rcpts[0]: port for port, rcpts in relay.accepted}
    assert set(by_recipient) == {"forelder@kommune.no", "barn@kommune.no", "igjen@kommune.no"}
    # The parent's connection was neither closed nor used by the child.
    assert by_recipient["igjen@kommune.no"] == by_recipient["forelder@kommune.no"]
    assert by_recipient["barn@kommune.no"] != by_recipient["forelder@kommune.no"]


def _submit_in_child(parent: SendPool) -> None:
    refused = parent.submit(wire()).exception(timeout=10)
    os._exit(0 if isinstance(refused, SendError) and refused.relay else 1)


def test_a_child_forked_while_a_thread_submitted_is_refused_not_stuck(
    env: pytest.MonkeyPatch, relay: FaultyRelay, make_pool: list[SendPool]
) -> None:
    parent = new_pool(make_pool, configured(env, relay.url, smtp_connections=1))
    child = multiprocessing.get_context("fork").Process(target=_submit_in_child, args=(parent,))
    # As when a worker thread is inside submit at the fork: the child's copy of the lock
    # is held, by a thread the child does not have.
    with parent._lock:
        child.start()
    child.join(20)
    if child.exitcode is None:
        child.kill()
        child.join()
    assert child.exitcode == 0


def test_the_process_pool_is_made_again_when_the_settings_change(
    env: pytest.MonkeyPatch, relay: FaultyRelay
) -> None:
    try:
        first = send_pool(configured(env, relay.url))
        second = send_pool(configured(env, relay.url, smtp_connections=2))
        assert second is not first and first.closed and second.connections == 2
    finally:
        pool_module.close_send_pool()
