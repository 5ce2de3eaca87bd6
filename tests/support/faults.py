"""The fault tests' harness (tests/test_faults.py): the service as the Procfile runs it, on
parts the test can break — a private Redis it kills and restarts empty, a TCP proxy in
front of PostgreSQL it cuts, worker and scheduler processes it kills — and the figures
each scenario reports (duplicates, time), printed and added to var/faults-report.txt.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from digest.core.db import session_scope
from digest.core.migrate import upgrade
from digest.core.models import Change, Delivery, DigestRun, Item, RunStatus, Source
from digest.core.periods import Period, Schedule, latest_period, missed_periods
from subscribers.choices import choices
from subscribers.models import Frequency, Subscriber
from subscribers.signups import add_subscriber
from tests.support.relay import Relay
from tests.support.smtp import free_port

REPORT = Path(__file__).resolve().parents[2] / "var" / "faults-report.txt"

# Short timings, so that recovery takes seconds (see Settings for what each means).
SHORT = {
    "DIGEST_STALE_CLAIM_SECONDS": "5",
    "DIGEST_SWEEP_EVERY_SECONDS": "2",
    "DIGEST_REQUEUE_AFTER_SECONDS": "5",
    "DIGEST_SMTP_TIMEOUT_SECONDS": "2",
    "DIGEST_RETRY_BACKOFF_SECONDS": "1",
    "DIGEST_RETRY_BACKOFF_MAX_SECONDS": "2",
    "DIGEST_RELAY_PAUSE_SECONDS": "1",
    "DIGEST_RELAY_PAUSE_MAX_SECONDS": "4",
    "DIGEST_CHUNK_SIZE": "20",
}


def wait_for(check: Callable[[], bool], seconds: float, what: str, evidence: Callable[[], str]):
    """Return once `check()` holds; fail naming `what` and the evidence past `seconds`."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds:g} s: {what}\n{evidence()}")
        time.sleep(0.05)


class PrivateRedis:
    """A redis-server of the test's own on a free port, without persistence: killed and
    started again, it is empty, as a broker that lost its state."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.folder = folder
        self.process: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        self.process = subprocess.Popen(
            [
                *("redis-server", "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", str(self.folder)),
                *("--logfile", str(self.folder / "redis.log")),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        wait_for(self._answers, 10, "redis-server to answer", lambda: "")
        return self

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def restart_empty(self) -> None:
        self.stop(signal.SIGKILL)
        self.start()

    def stop(self, how: int = signal.SIGTERM) -> None:
        if self.process is not None:
            self.process.send_signal(how)
            self.process.wait(10)
            self.process = None


class TcpProxy:
    """127.0.0.1:`port` forwarding to `target`; `cut` drops every connection and refuses
    new ones (as a stopped database does) until `restore`."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listening: threading.Event | None = None

    def start(self) -> TcpProxy:
        listener = socket.create_server(("127.0.0.1", self.port))
        listener.settimeout(0.1)
        self._listening = threading.Event()
        self._listening.set()
        threading.Thread(target=self._accept, args=(listener, self._listening), daemon=True).start()
        return self

    def _accept(self, listener: socket.socket, listening: threading.Event) -> None:
        with listener:
            while listening.is_set():
                try:
                    client, _ = listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    return
                try:
                    upstream = socket.create_connection(self.target, timeout=5)
                except OSError:
                    client.close()
                    continue
                if not listening.is_set():  # cut while it connected
                    self._drop(client, upstream)
                    return
                client.settimeout(None)
                upstream.settimeout(None)
                with self._lock:
                    self._open |= {client, upstream}
                for source, sink in ((client, upstream), (upstream, client)):
                    threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            self._drop(source, sink)

    def _drop(self, *sockets: socket.socket) -> None:
        for sock in sockets:
            with self._lock:
                self._open.discard(sock)
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def cut(self) -> None:
        if self._listening is not None:
            self._listening.clear()
            self._listening = None
        # The listener closes within its accept timeout; then the port refuses.
        wait_for(lambda: not self._answers(), 5, "the proxy to refuse connections", lambda: "")
        with self._lock:
            open_now = list(self._open)
        self._drop(*open_now)

    def restore(self) -> None:
        self.start()

    def _answers(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False


class Processes:
    """The service's processes, each in a session of its own so that a kill takes its
    children too (a Dramatiq worker forks its worker processes); logs under `folder`."""

    def __init__(self, env: dict[str, str], folder: Path) -> None:
        self.env = env
        self.folder = folder
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *argv: str, env: dict[str, str] | None = None) -> None:
        with open(self.folder / f"{name}.log", "ab") as log:  # a restart goes on in it
            self.running[name] = subprocess.Popen(
                argv,
                env={**self.env, **(env or {})},
                cwd=self.folder,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def worker(self, name: str) -> None:
        """A worker as the Procfile's, smaller; without --queues it takes every queue."""
        self.start(
            name,
            *(sys.executable, "-m", "dramatiq", "digest.actors"),
            *("--processes", "1", "--threads", "2"),
            env={"dramatiq_prom_port": str(free_port())},  # its metrics
        )

    def scheduler(self) -> None:
        self.start("scheduler", sys.executable, "-m", "digest", "scheduler")

    def kill(self, name: str) -> None:
        """SIGKILL the process and its children: nothing is finished, nothing handed back."""
        self._signal(name, signal.SIGKILL)
        self.running.pop(name).wait(10)

    def stop(self, name: str) -> None:
        process = self.running.pop(name)
        self._signal(name, signal.SIGTERM, process)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            self._signal(name, signal.SIGKILL, process)
            process.wait(10)

    def stop_all(self) -> None:
        for name in list(self.running):
            self.stop(name)

    def _signal(self, name: str, how: int, process: subprocess.Popen[bytes] | None = None) -> None:
        process = process or self.running[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, how)

    def tail(self, lines: int = 12) -> str:
        parts = []
        for log in sorted(self.folder.glob("*.log")):
            text = log.read_text(encoding="utf-8", errors="replace").splitlines()
            # Alembic's start-up chatter (the schema check) says nothing about the fault.
            text = [line for line in text if " alembic." not in line][-lines:]
            parts.append(f"--- {log.name} (last {len(text)} lines)\n" + "\n".join(text))
        return "\n".join(parts)


@dataclass
class Tally:
    """What the relay accepted against who was owed a mail."""

    expected: set[str]
    copies: dict[str, list[str]] = field(default_factory=dict)  # recipient -> Message-IDs

    @property
    def lost(self) -> list[str]:
        return sorted(self.expected - self.copies.keys())

    @property
    def strangers(self) -> list[str]:
        return sorted(self.copies.keys() - self.expected)

    @property
    def duplicates(self) -> int:
        return sum(len(ids) - 1 for ids in self.copies.values())

    def twice(self) -> dict[str, list[str]]:
        return {r: ids for r, ids in self.copies.items() if len(ids) > 1}

    def mixed(self) -> dict[str, list[str]]:
        """Recipients who got different messages: a second digest, not one resent."""
        return {r: ids for r, ids in self.copies.items() if len(set(ids)) > 1}


class Rig:
    """A private Redis, the relay, a proxy to PostgreSQL, and the processes' environment;
    the test starts the processes it needs and breaks what its scenario breaks."""

    def __init__(self, folder: Path, database_url: str, relay_delay: float = 0.02) -> None:
        self.database_url = database_url  # direct: the test's own view, never cut
        self.relay = Relay(delay=relay_delay).start()
        self.redis = PrivateRedis(folder / "redis").start()
        host, port = "127.0.0.1", 5432
        self.proxy = TcpProxy((host, port)).start()
        proxied = database_url.replace(f"{host}:{port}", f"{host}:{self.proxy.port}")
        assert proxied != database_url, database_url
        env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
        env.update(SHORT)
        env.update(
            {
                "DIGEST_DATABASE_URL": proxied,
                "DIGEST_BROKER_URL": self.redis.url,
                "DIGEST_SMTP_URL": self.relay.url,
                "DIGEST_SECRET_KEY": "fault-test-secret-key-long-enough",
                "DIGEST_FROM_ADDRESS": "varsel@veiledervarsel.no",
                "DIGEST_DATA_DIR": str(folder / "var"),
                "PYTHONUNBUFFERED": "1",
                # An idle worker looks for messages every 0.1 s instead of every second.
                "dramatiq_worker_timeout": "100",
                # Worker metrics of this test's own, not those of whatever else runs here.
                "dramatiq_prom_db": str(folder / "prometheus"),
            }
        )
        self.processes = Processes(env, folder)
        self.scenario = ""  # what the test breaks, as the report names it
        upgrade(database_url)

    @property
    def env(self) -> dict[str, str]:
        return self.processes.env

    def start(self, workers: int = 2) -> None:
        for n in range(1, workers + 1):
            self.processes.worker(f"worker-{n}")
        self.processes.scheduler()

    def close(self) -> None:
        try:
            self.processes.stop_all()
        finally:
            self.proxy.cut()
            self.redis.stop()
            self.relay.stop()

    def tally(self, expected: Iterable[str]) -> Tally:
        tally = Tally(set(expected))
        for accepted in self.relay.log():
            tally.copies.setdefault(accepted.recipient, []).append(accepted.message_id)
        return tally

    def run_of(self, period: Period) -> DigestRun | None:
        with session_scope(self.database_url) as session:
            run = session.scalar(
                select(DigestRun).where(
                    DigestRun.frequency == period.frequency,
                    DigestRun.period_start == period.start,
                )
            )
            if run is not None:
                session.expunge(run)
            return run

    def complete(self, period: Period) -> bool:
        run = self.run_of(period)
        return run is not None and run.status == RunStatus.COMPLETE

    def wait_complete(self, period: Period, seconds: float, what: str) -> float:
        """Wait for the run of `period` to complete; the seconds it took."""
        began = time.monotonic()
        try:
            wait_for(lambda: self.complete(period), seconds, what, self.evidence)
        except AssertionError:
            self.report(
                complete=False,
                waited_seconds=seconds,
                relay_accepted=self.relay.count(),
                duplicates_so_far=self.tally(()).duplicates,
                deliveries=dict(self.deliveries()),
            )
            raise
        return time.monotonic() - began

    def settle(self) -> None:
        """Give the sweep a few rounds after a run completed: anything it would still
        send (twice) reaches the relay before the test counts."""
        time.sleep(3 * float(self.env["DIGEST_SWEEP_EVERY_SECONDS"]))

    def deliveries(self) -> Counter[str]:
        with session_scope(self.database_url) as session:
            rows = session.execute(
                select(DigestRun.frequency, Delivery.status, func.count())
                .join(DigestRun, DigestRun.id == Delivery.run_id)
                .group_by(DigestRun.frequency, Delivery.status)
            ).all()
        return Counter({f"{frequency}:{status}": n for frequency, status, n in rows})

    def evidence(self) -> str:
        """What a reader of a failure needs: deliveries by status and their errors, the
        runs, what the relay saw, and the end of each process's log."""
        with session_scope(self.database_url) as session:
            errors = session.execute(
                select(Delivery.status, Delivery.error, func.count())
                .where(Delivery.error.is_not(None))
                .group_by(Delivery.status, Delivery.error)
                .order_by(func.count().desc())
                .limit(8)
            ).all()
            runs = session.execute(
                select(DigestRun.id, DigestRun.frequency, DigestRun.period_end, DigestRun.status)
                .order_by(DigestRun.id.desc())
                .limit(12)
            ).all()
        relay = self.relay
        return "\n".join(
            [
                f"deliveries: {dict(self.deliveries())}",
                *(f"  {n} x {status}: {error[:200]}" for status, error, n in errors),
                "runs (latest first): "
                + "; ".join(f"{i} {f} {end:%d %H:%M} {s}" for i, f, end, s in runs),
                f"relay: {relay.count()} accepted, {len(relay.hung)} hung after DATA, "
                f"fault replies {dict(relay.replies)}",
                self.processes.tail(),
            ]
        )

    def report(self, **figures: object) -> None:
        """Print the scenario's figures (seen with -s) and add them to the report file."""
        line = f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S}Z {self.scenario}: " + ", ".join(
            f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items()
        )
        print(line)
        REPORT.parent.mkdir(exist_ok=True)
        with REPORT.open("a", encoding="utf-8") as file:
            file.write(line + "\n")


def add_subscribers(database_url: str, frequency: Frequency, count: int) -> list[str]:
    emails = [f"{frequency.value}{n:04d}@kommune.no" for n in range(count)]
    with session_scope(database_url) as session:
        for email in emails:
            add_subscriber(session, email, choices(frequency=frequency), confirmed=True)
    return emails


def add_changes(database_url: str, moments: Iterable[datetime]) -> None:
    """A change detected at each moment, of a source that is not collected (disabled: the
    scheduler's collections leave it alone)."""
    with session_scope(database_url) as session:
        source = Source(key="s", name="Bufdir", kind="feed", url="https://x.no/f", topics=["vold"])
        source.enabled = False
        session.add(source)
        session.flush()
        for n, at in enumerate(moments):
            item = Item(
                source_id=source.id,
                key=f"a{n}",
                url=f"https://x.no/a{n}",
                title=f"Ny veileder {n}",
                content_hash=f"h{n}",
                first_seen_at=at,
                last_seen_at=at,
            )
            session.add(item)
            session.flush()
            session.add(
                Change(
                    item_id=item.id,
                    kind="new",
                    detected_at=at,
                    title=f"Ny veileder {n}",
                    url=item.url,
                )
            )


def add_history(database_url: str, schedule: Schedule, ran_until: dict[Frequency, datetime]):
    """Complete runs of each frequency for the week before `ran_until[frequency]`: the
    service ran until then, so the scheduler (and a sweep that creates missing runs) owes
    only what came after."""
    with session_scope(database_url) as session:
        for frequency, until in ran_until.items():
            for period in missed_periods(frequency, until - timedelta(days=8), until, schedule):
                session.add(
                    DigestRun(
                        frequency=frequency,
                        period_start=period.start,
                        period_end=period.end,
                        status=RunStatus.COMPLETE,
                        created_at=period.end,
                        completed_at=period.end,
                    )
                )


def latest(frequency: Frequency, schedule: Schedule) -> Period:
    return latest_period(frequency, datetime.now(UTC), schedule)


def subscriber_states(database_url: str) -> Counter[str]:
    """Subscribers by status, and how many have soft bounces counted."""
    with session_scope(database_url) as session:
        rows = session.execute(select(Subscriber.status, Subscriber.soft_failures)).all()
    return Counter(f"{status}{' with soft bounces' if soft else ''}" for status, soft in rows)
