"""Digest periods (pure): half-open windows in local time that a run covers.

A daily run at 08:00 covers the day before it, 08:00 to 08:00 local time; a weekly run
covers the seven days before its weekday at the same hour; an immediate run covers the
last N minutes, aligned on the clock, or, when runs were missed, the whole gap since the
last one (one mail for the gap, not one per N minutes).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from digest.core.settings import Settings
from subscribers.models import Frequency

# How far back the scheduler catches up on runs it missed while it was down.
CATCH_UP = timedelta(days=8)


@dataclass(frozen=True, slots=True)
class Schedule:
    tz: ZoneInfo
    daily_at: time
    weekly_on: int  # Monday is 0
    every_minutes: int


def schedule_of(settings: Settings) -> Schedule:
    return Schedule(
        settings.tz, settings.daily_time, settings.weekly_weekday, settings.immediate_every_minutes
    )


@dataclass(frozen=True, slots=True)
class Period:
    frequency: Frequency
    start: datetime  # aware, UTC; included
    end: datetime  # aware, UTC; excluded

    def contains(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


def _local(day: date, at: time, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, at, tzinfo=tz).astimezone(UTC)


def latest_period(frequency: Frequency, at: datetime, schedule: Schedule) -> Period:
    """The latest period of `frequency` that ended at or before `at`."""
    if at.tzinfo is None:
        raise ValueError("`at` must be time-zone aware")
    if frequency is Frequency.IMMEDIATE:
        step = schedule.every_minutes * 60
        end_ts = int(at.timestamp()) // step * step
        end = datetime.fromtimestamp(end_ts, UTC)
        return Period(frequency, end - timedelta(seconds=step), end)
    local_day = at.astimezone(schedule.tz).date()
    if frequency is Frequency.DAILY:
        end_day = local_day
        if _local(end_day, schedule.daily_at, schedule.tz) > at:
            end_day -= timedelta(days=1)
        start_day = end_day - timedelta(days=1)
    else:
        end_day = local_day - timedelta(days=(local_day.weekday() - schedule.weekly_on) % 7)
        if _local(end_day, schedule.daily_at, schedule.tz) > at:
            end_day -= timedelta(days=7)
        start_day = end_day - timedelta(days=7)
    return Period(
        frequency,
        _local(start_day, schedule.daily_at, schedule.tz),
        _local(end_day, schedule.daily_at, schedule.tz),
    )


def period_before(period: Period, schedule: Schedule) -> Period:
    return latest_period(period.frequency, period.start, schedule)


def period_of(
    frequency: Frequency, end: datetime, schedule: Schedule, start: datetime | None = None
) -> Period:
    """The period of `frequency` that ends at `end` (the latest one ended by then); for an
    immediate run that catches up a gap, the one from `start` to `end`."""
    latest = latest_period(frequency, end, schedule)
    if start is None or frequency is not Frequency.IMMEDIATE:
        return latest
    if start.tzinfo is None or not start < latest.end:
        raise ValueError("a gap must start, time-zone aware, before it ends")
    return Period(frequency, start.astimezone(UTC), latest.end)


def missed_periods(
    frequency: Frequency, last_end: datetime | None, at: datetime, schedule: Schedule
) -> list[Period]:
    """Periods that ended after `last_end` and by `at`, oldest first, each once.

    With no run before, only the latest period is due; periods older than CATCH_UP are
    let go rather than flooding subscribers after a long outage. Immediate periods missed
    are one period from `last_end` (or the horizon) to the latest end: its subscribers
    get one digest for the gap.
    """
    latest = latest_period(frequency, at, schedule)
    if last_end is None:
        return [latest]
    if frequency is Frequency.IMMEDIATE:
        if latest.end <= last_end:
            return []
        # From the latest end, not from `at`: the same gap at every tick until it is run.
        start = max(last_end.astimezone(UTC), latest.end - CATCH_UP)
        return [Period(frequency, start, latest.end)]
    horizon = max(last_end, at - CATCH_UP)
    periods: list[Period] = []
    period = latest
    while period.end > horizon:
        periods.append(period)
        period = period_before(period, schedule)
    return periods[::-1]
