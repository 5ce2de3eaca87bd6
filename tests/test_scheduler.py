"""The scheduler: what it enqueues, and that a missed period is started once after downtime."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from digest.core.db import session_scope
from digest.core.periods import Period
from digest.core.settings import Settings
from digest.delivery.runs import start_run
from digest.scheduler import Scheduler
from subscribers.models import Frequency

OSLO = ZoneInfo("Europe/Oslo")


class RecordingEnqueuer:
    """Stands in for the broker: keeps what the scheduler hands over."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings
        self.runs: list[Period] = []
        self.collections = 0
        self.recoveries = 0

    def collect_due(self) -> None:
        self.collections += 1

    def start_run(self, period: Period) -> None:
        self.runs.append(period)
        if self.settings is not None:  # behave like the worker: create the run
            with session_scope(self.settings.database_url) as session:
                start_run(session, period)

    def recover(self) -> None:
        self.recoveries += 1


def daily(enqueuer: RecordingEnqueuer) -> list[datetime]:
    return [p.end.astimezone(OSLO) for p in enqueuer.runs if p.frequency is Frequency.DAILY]


def test_missed_daily_periods_start_once_each(settings: Settings) -> None:
    enqueuer = RecordingEnqueuer(settings)
    scheduler = Scheduler(settings, enqueuer)
    scheduler.tick(datetime(2026, 11, 23, 9, 0, tzinfo=OSLO))
    assert daily(enqueuer) == [datetime(2026, 11, 23, 8, 0, tzinfo=OSLO)]
    # Down for two days; a new process comes back.
    back = Scheduler(settings, enqueuer)
    back.tick(datetime(2026, 11, 25, 10, 0, tzinfo=OSLO))
    back.tick(datetime(2026, 11, 25, 10, 1, tzinfo=OSLO))
    assert daily(enqueuer) == [datetime(2026, 11, d, 8, 0, tzinfo=OSLO) for d in (23, 24, 25)]
    # The sweep: at the first tick of each process, and 60 s (sweep_every_seconds) later.
    assert enqueuer.collections == 3 and enqueuer.recoveries == 3


def test_a_lost_start_message_is_enqueued_again_later(settings: Settings) -> None:
    enqueuer = RecordingEnqueuer()  # the runs are never created: the messages were lost
    scheduler = Scheduler(settings, enqueuer)
    scheduler.tick(datetime(2026, 11, 25, 9, 0, tzinfo=OSLO))
    scheduler.tick(datetime(2026, 11, 25, 9, 5, tzinfo=OSLO))
    assert len(daily(enqueuer)) == 1
    scheduler.tick(datetime(2026, 11, 25, 9, 20, tzinfo=OSLO))
    assert len(daily(enqueuer)) == 2


def immediate(enqueuer: RecordingEnqueuer) -> list[tuple[datetime, datetime]]:
    return [(p.start, p.end) for p in enqueuer.runs if p.frequency is Frequency.IMMEDIATE]


def test_missed_immediate_periods_start_as_one_run_for_the_gap(settings: Settings) -> None:
    enqueuer = RecordingEnqueuer(settings)
    Scheduler(settings, enqueuer).tick(datetime(2026, 11, 23, 9, 7, tzinfo=UTC))
    # Down for two days: one run from the last one's end to the latest quarter.
    back = Scheduler(settings, enqueuer)
    back.tick(datetime(2026, 11, 25, 9, 7, tzinfo=UTC))
    back.tick(datetime(2026, 11, 25, 9, 8, tzinfo=UTC))
    assert immediate(enqueuer) == [
        (datetime(2026, 11, 23, 8, 45, tzinfo=UTC), datetime(2026, 11, 23, 9, 0, tzinfo=UTC)),
        (datetime(2026, 11, 23, 9, 0, tzinfo=UTC), datetime(2026, 11, 25, 9, 0, tzinfo=UTC)),
    ]
    back.tick(datetime(2026, 11, 25, 9, 16, tzinfo=UTC))  # and on as usual
    assert immediate(enqueuer)[-1] == (
        datetime(2026, 11, 25, 9, 0, tzinfo=UTC),
        datetime(2026, 11, 25, 9, 15, tzinfo=UTC),
    )
