"""Periods: half-open local-time windows, including across daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from digest.core.periods import (
    CATCH_UP,
    Period,
    Schedule,
    latest_period,
    missed_periods,
    period_of,
)
from subscribers.models import Frequency

OSLO = ZoneInfo("Europe/Oslo")
SCHEDULE = Schedule(OSLO, time(8, 0), 0, 15)


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=OSLO)


def test_daily_period_is_the_day_before_the_run() -> None:
    period = latest_period(Frequency.DAILY, local(2026, 11, 26, 9, 30), SCHEDULE)
    assert period.start == local(2026, 11, 25, 8, 0)
    assert period.end == local(2026, 11, 26, 8, 0)
    assert period.contains(local(2026, 11, 25, 8, 0))
    assert not period.contains(local(2026, 11, 26, 8, 0))  # half-open


def test_daily_before_the_hour_is_the_previous_period() -> None:
    period = latest_period(Frequency.DAILY, local(2026, 11, 26, 7, 59), SCHEDULE)
    assert period.end == local(2026, 11, 25, 8, 0)
    exactly = latest_period(Frequency.DAILY, local(2026, 11, 26, 8, 0), SCHEDULE)
    assert exactly.end == local(2026, 11, 26, 8, 0)


def test_daily_across_spring_forward_is_23_hours() -> None:
    period = latest_period(Frequency.DAILY, local(2026, 3, 29, 8, 0), SCHEDULE)
    assert period.end - period.start == timedelta(hours=23)
    assert period.end.astimezone(OSLO).hour == 8


def test_weekly_period_ends_on_the_weekday() -> None:
    # 26 November 2026 is a Thursday; the last Monday 08:00 is the 23rd.
    period = latest_period(Frequency.WEEKLY, local(2026, 11, 26, 12, 0), SCHEDULE)
    assert period.end == local(2026, 11, 23, 8, 0)
    assert period.start == local(2026, 11, 16, 8, 0)
    monday_early = latest_period(Frequency.WEEKLY, local(2026, 11, 23, 7, 0), SCHEDULE)
    assert monday_early.end == local(2026, 11, 16, 8, 0)


def test_immediate_periods_are_aligned_on_the_clock() -> None:
    period = latest_period(Frequency.IMMEDIATE, datetime(2026, 11, 26, 9, 7, tzinfo=UTC), SCHEDULE)
    assert period.start == datetime(2026, 11, 26, 8, 45, tzinfo=UTC)
    assert period.end == datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def test_missed_periods_each_once_oldest_first() -> None:
    last = local(2026, 11, 23, 8, 0)
    periods = missed_periods(Frequency.DAILY, last, local(2026, 11, 26, 9, 0), SCHEDULE)
    assert [p.end for p in periods] == [
        local(2026, 11, 24, 8, 0),
        local(2026, 11, 25, 8, 0),
        local(2026, 11, 26, 8, 0),
    ]
    assert (
        missed_periods(Frequency.DAILY, periods[-1].end, local(2026, 11, 26, 9, 0), SCHEDULE) == []
    )


def test_first_start_begins_with_the_latest_period_only() -> None:
    periods = missed_periods(Frequency.DAILY, None, local(2026, 11, 26, 9, 0), SCHEDULE)
    assert [p.end for p in periods] == [local(2026, 11, 26, 8, 0)]


def test_long_outage_catches_up_a_bounded_window() -> None:
    last = local(2026, 1, 1, 8, 0)
    periods = missed_periods(Frequency.DAILY, last, local(2026, 11, 26, 9, 0), SCHEDULE)
    assert len(periods) == 8


def test_missed_immediate_periods_are_one_period_for_the_gap() -> None:
    last = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    at = datetime(2026, 11, 26, 9, 7, tzinfo=UTC)
    assert missed_periods(Frequency.IMMEDIATE, last, at, SCHEDULE) == [
        Period(Frequency.IMMEDIATE, last, datetime(2026, 11, 26, 9, 0, tzinfo=UTC))
    ]
    # The same gap at every tick until its run exists; nothing once it does.
    later = missed_periods(Frequency.IMMEDIATE, last, at + timedelta(minutes=5), SCHEDULE)
    assert later[0].start == last
    assert missed_periods(Frequency.IMMEDIATE, later[0].end, at, SCHEDULE) == []
    # No gap: the latest quarter of an hour, as always.
    on_time = missed_periods(
        Frequency.IMMEDIATE, later[0].end, at + timedelta(minutes=15), SCHEDULE
    )
    assert on_time == [latest_period(Frequency.IMMEDIATE, at + timedelta(minutes=15), SCHEDULE)]


def test_an_immediate_gap_longer_than_the_horizon_starts_at_the_horizon() -> None:
    at = datetime(2026, 11, 26, 9, 7, tzinfo=UTC)
    (gap,) = missed_periods(Frequency.IMMEDIATE, at - timedelta(days=30), at, SCHEDULE)
    assert gap.end - gap.start == CATCH_UP


def test_a_gap_period_is_rebuilt_from_its_ends_as_a_message_carries_it() -> None:
    start = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    end = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
    assert period_of(Frequency.IMMEDIATE, end, SCHEDULE, start) == Period(
        Frequency.IMMEDIATE, start, end
    )
    daily = period_of(Frequency.DAILY, local(2026, 11, 26, 8, 0), SCHEDULE, start)
    assert daily == latest_period(Frequency.DAILY, local(2026, 11, 26, 8, 0), SCHEDULE)
