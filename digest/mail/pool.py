"""One pool of relay connections per worker process, kept open across chunks: mails go out
several at a time, under the shared rate limit, and a relay that keeps failing pauses
sending for a while (RelayBreaker) instead of being tried mail after mail."""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta

from digest.core.instruments import MAILS, RELAY_PAUSES, SEND_SECONDS
from digest.core.settings import Settings
from digest.mail.mailer import SendError, Transport, make_transport
from digest.mail.ratelimit import rate_limit
from digest.mail.wire import Wire

log = logging.getLogger(__name__)

# A connection unused this long is closed (QUIT); the next mail opens it again.
IDLE_SECONDS = 30.0
# Closing waits this long for the mails in flight and the QUITs.
CLOSE_SECONDS = 5.0


def _now() -> datetime:
    return datetime.now(UTC)


class RelayBreaker:
    """Counts the relay's failures in a row (SendError.relay, or the same 4xx for recipient
    after recipient: a relay deferring everyone); at `limit` sending pauses for `pause`
    seconds, doubling on each failure right after a pause up to `pause_max`. A success
    closes it. Thread-safe: mails are refused from the callers' threads."""

    def __init__(
        self, limit: int, pause: float, pause_max: float, clock: Callable[[], datetime] = _now
    ) -> None:
        self.limit, self.pause, self.pause_max, self.clock = limit, pause, pause_max, clock
        self.last_error: str | None = None
        self.pauses = 0  # pauses since the process started
        self._failures = 0
        self._deferral: tuple[int | None, int] = (None, 0)  # the same 4xx RCPT code, times
        self._pause = 0.0  # the last pause's length, until a success
        self._until: datetime | None = None
        self._lock = threading.Lock()

    @property
    def failures_in_row(self) -> int:
        return max(self._failures, self._deferral[1])

    @property
    def paused_until(self) -> datetime | None:
        """When sending may go on, while paused; None when it is not paused."""
        until = self._until
        return until if until is not None and self.clock() < until else None

    def refusal(self) -> SendError | None:
        """What a mail gets, without the relay being tried, while sending is paused."""
        until = self.paused_until
        if until is None:
            return None
        return SendError(
            f"sending to the relay is paused until {until.isoformat(timespec='seconds')} "
            f"after {self.failures_in_row} failures in a row; the last: {self.last_error}",
            permanent=False,
            relay=True,
        )

    def record(self, error: SendError | None) -> SendError | None:
        """Count one mail's outcome (None: accepted), and return it as it is to be taken: a
        deferral that completes a run of the same 4xx, or comes in one, is the relay's
        (never the recipient's soft bounce). Other failures are the mail's own and leave
        the count as it is: the relay answered."""
        with self._lock:
            if error is None:
                self._failures, self._deferral, self._pause, self._until = 0, (None, 0), 0.0, None
                return None
            if error.relay:
                self._failures += 1
            elif error.recipient and not error.permanent:
                code, times = self._deferral
                self._deferral = (error.code, times + 1 if code == error.code else 1)
                if self._deferral[1] < self.limit:
                    return error
                error = SendError(
                    f"the relay deferred {self._deferral[1]} recipients in a row with "
                    f"{error.code}: {error}",
                    permanent=False,
                    code=error.code,
                    relay=True,
                )
            else:
                return error
            self.last_error = str(error)
            now = self.clock()
            if self._until is not None and now < self._until:
                return error  # sent before the pause began
            if self._pause > 0 or self.failures_in_row >= self.limit:
                self._trip(now)
            return error

    def _trip(self, now: datetime) -> None:
        self._pause = min(self.pause_max, self.pause if self._pause == 0 else 2 * self._pause)
        self._until = now + timedelta(seconds=self._pause)
        self.pauses += 1
        RELAY_PAUSES.inc()
        log.warning(
            "relay paused for %g s, until %s, after %d failures in a row: %s",
            self._pause,
            self._until.isoformat(timespec="seconds"),
            self.failures_in_row,
            self.last_error,
        )


_Job = tuple[Wire, "Future[None]"]


class SendPool:
    """`settings.smtp_connections` connections (one for the outbox), each driven by its own
    task on an event loop in a daemon thread, taking mails from one queue. `submit` may be
    called from any thread; a pool belongs to the process that made it."""

    def __init__(
        self,
        settings: Settings,
        *,
        rate_prefix: str = "digest:smtp-rate",
        idle_seconds: float = IDLE_SECONDS,
    ) -> None:
        self.settings = settings
        self.pid = os.getpid()
        self.connections = settings.smtp_connections if settings.smtp_url else 1
        self.idle_seconds = idle_seconds
        self.breaker = RelayBreaker(
            settings.relay_failure_limit,
            settings.relay_pause_seconds,
            settings.relay_pause_max_seconds,
        )
        self._limit = rate_limit(settings, rate_prefix)
        self._jobs: asyncio.Queue[_Job | None] = asyncio.Queue()
        self._closed = False
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="send-pool", daemon=True)
        self._thread.start()

    @property
    def closed(self) -> bool:
        return self._closed or not self._thread.is_alive()

    def submit(self, wire: Wire) -> Future[None]:
        """Queue one mail; the future ends with None (accepted) or a SendError."""
        future: Future[None] = Future()
        if os.getpid() != self.pid:
            # A forked child's copy: its lock may have been held by a parent's thread at
            # the fork, and its loop thread is not here. Checked before taking the lock.
            future.set_exception(SendError("the send pool is closed", False, relay=True))
            return future
        with self._lock:
            refusal = self.breaker.refusal()
            if refusal is None and self.closed:
                refusal = SendError("the send pool is closed", permanent=False, relay=True)
            if refusal is not None:
                future.set_exception(refusal)
            else:
                self._loop.call_soon_threadsafe(self._jobs.put_nowait, (wire, future))
        return future

    def close(self, wait: float = CLOSE_SECONDS) -> None:
        """Fail the mails still queued, let those in flight finish, say QUIT; waits up to
        `wait` seconds. In a child process it does nothing: the connections are the parent's."""
        if os.getpid() != self.pid:
            return
        with self._lock:
            if self.closed:
                return
            self._closed = True
            self._loop.call_soon_threadsafe(self._shut)
        if wait > 0:
            self._thread.join(wait)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        finally:
            # However the loop ended, no caller is left waiting on a mail it took.
            with self._lock:
                self._closed = True
            self._loop.run_until_complete(asyncio.sleep(0))  # puts already scheduled
            self._fail_queued()
            self._loop.close()

    async def _serve(self) -> None:
        try:
            await asyncio.gather(*(self._connection() for _ in range(self.connections)))
        finally:
            if self._limit is not None:
                await self._limit.close()

    def _shut(self) -> None:
        self._fail_queued()
        for _ in range(self.connections):
            self._jobs.put_nowait(None)

    def _fail_queued(self) -> None:
        while not self._jobs.empty():
            job = self._jobs.get_nowait()
            if job is not None and job[1].set_running_or_notify_cancel():
                _settle(job[1], SendError("the send pool closed", permanent=False, relay=True))

    async def _connection(self) -> None:
        settings = self.settings
        transport = make_transport(
            settings.smtp_url, settings.outbox_dir, settings.smtp_timeout_seconds
        )
        try:
            while True:
                try:
                    job = await asyncio.wait_for(self._jobs.get(), self.idle_seconds)
                except TimeoutError:
                    await transport.close()  # idle: let the relay go until the next mail
                    continue
                if job is None:
                    return
                wire, future = job
                if future.set_running_or_notify_cancel():
                    _settle(future, await self._handed_over(transport, wire))
        finally:
            await transport.close()

    async def _handed_over(self, transport: Transport, wire: Wire) -> SendError | None:
        """The outcome of one mail, whatever goes wrong on the way: a caller waiting on its
        future is never left waiting because a bug here ended this connection's task."""
        try:
            return await self._send(transport, wire)
        except Exception as exc:
            log.exception("send pool: a mail could not be handed to the relay")
            transport.reset()
            return SendError(
                f"could not hand the mail to the relay: {type(exc).__name__}: {exc}",
                permanent=False,
                relay=True,
            )

    async def _send(self, transport: Transport, wire: Wire) -> SendError | None:
        refusal = self.breaker.refusal()
        if refusal is None and self._limit is not None:
            await self._limit.acquire()
            refusal = self.breaker.refusal()  # paused while this mail waited for its place
        if refusal is not None:
            return refusal
        started = time.perf_counter()
        try:
            await transport.send_wire(wire)
            error = None
        except SendError as exc:
            error = exc
        except Exception as exc:
            log.exception("sending failed")
            transport.reset()
            error = SendError(f"sending failed: {type(exc).__name__}: {exc}", permanent=False)
        SEND_SECONDS.observe(time.perf_counter() - started)
        error = self.breaker.record(error)
        MAILS.labels(_outcome(error)).inc()
        return error


def _outcome(error: SendError | None) -> str:
    """A mail's outcome at the relay, as MAILS counts it."""
    if error is None:
        return "sent"
    if error.relay:
        return "relay"
    if error.recipient:
        return "bounced" if error.permanent else "deferred"
    return "failed"


def _settle(future: Future[None], error: SendError | None) -> None:
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


_pool: SendPool | None = None
_pool_lock = threading.Lock()


def send_pool(settings: Settings) -> SendPool:
    """This process's pool for `settings`, made on first use (and again in a forked child,
    or when the settings change)."""
    global _pool
    with _pool_lock:
        old = _pool
        if old is not None and not old.closed and old.settings == settings:
            return old
        _pool = SendPool(settings)
        pool = _pool
    if old is not None:
        old.close(wait=0)
    return pool


def close_send_pool() -> None:
    """Close this process's pool, if it made one (at exit, or when a worker stops)."""
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.close()


def _forget_in_child() -> None:
    # The parent's pool has no thread here and its connections are the parent's: the
    # child makes its own. The lock may have been held by a parent's thread at the fork.
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_in_child)
atexit.register(close_send_pool)
