"""What is due when, and the loop that enqueues it: collections, digest runs, recovery sweeps.

The decision is pure (`due_runs`); the loop owns each tick's unit of work: it reads the
last run of each frequency (`runs.last_run_ends`) in a short transaction and hands due
work to an `Enqueuer`, so a missed period is started once when the scheduler comes back
(immediate ones as one run for the whole gap), and the sweep every `sweep_every_seconds`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from digest.core.db import get_sessionmaker
from digest.core.periods import Period, Schedule, missed_periods, schedule_of
from digest.core.settings import Settings
from digest.delivery.runs import last_run_ends
from subscribers.base import utcnow
from subscribers.models import Frequency

log = logging.getLogger(__name__)

TICK_SECONDS = 30.0
# A start_run enqueued this recently is not enqueued again while its run row is missing.
REENQUEUE_AFTER = timedelta(minutes=10)


class Enqueuer(Protocol):
    def collect_due(self) -> None: ...
    def start_run(self, period: Period) -> None: ...
    def recover(self) -> None: ...


def due_runs(
    last_ends: Mapping[Frequency, datetime | None], at: datetime, schedule: Schedule
) -> list[Period]:
    periods: list[Period] = []
    for frequency in Frequency:
        periods.extend(missed_periods(frequency, last_ends.get(frequency), at, schedule))
    return sorted(periods, key=lambda p: p.end)


class Scheduler:
    def __init__(
        self,
        settings: Settings,
        enqueuer: Enqueuer,
        sessions: sessionmaker[Session] | None = None,
    ) -> None:
        self.sessions = sessions or get_sessionmaker(settings.database_url)
        self.schedule = schedule_of(settings)
        self.enqueuer = enqueuer
        self.stopping = threading.Event()
        self._enqueued: dict[Period, datetime] = {}
        self._last_recover: datetime | None = None
        self.sweep_every = timedelta(seconds=settings.sweep_every_seconds)

    def tick(self, now: datetime | None = None) -> list[Period]:
        now = now or utcnow()
        self.enqueuer.collect_due()
        started = []
        with self.sessions.begin() as session:
            last_ends = last_run_ends(session)
        for period in due_runs(last_ends, now, self.schedule):
            sent = self._enqueued.get(period)
            if sent is not None and now - sent < REENQUEUE_AFTER:
                continue
            self.enqueuer.start_run(period)
            self._enqueued[period] = now
            started.append(period)
        # Forget what is long done, so the memory stays small.
        self._enqueued = {p: t for p, t in self._enqueued.items() if now - t < timedelta(days=9)}
        if self._last_recover is None or now - self._last_recover >= self.sweep_every:
            self.enqueuer.recover()
            self._last_recover = now
        return started

    def run_forever(self) -> None:
        log.info("scheduler started")
        # Ticks often enough for the sweep's interval, and no more than the usual 30 s.
        interval = min(TICK_SECONDS, self.sweep_every.total_seconds())
        while not self.stopping.is_set():
            try:
                for period in self.tick():
                    log.info(
                        "enqueued the %s run for %s – %s",
                        period.frequency.value,
                        period.start.isoformat(),
                        period.end.isoformat(),
                    )
            except Exception:
                # A database or broker outage must not end the scheduler; try next tick.
                log.exception("scheduler tick failed")
            self.stopping.wait(interval)

    def stop(self) -> None:
        self.stopping.set()
