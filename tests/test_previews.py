"""Previews: the period of the next run, what a sample reader would get, a test mail that
is marked as one and records nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from digest.core.db import session_scope
from digest.core.models import (
    Announcement,
    AnnouncementReceipt,
    AnnouncementStatus,
    Delivery,
    DigestRun,
)
from digest.core.settings import Settings
from digest.delivery.previews import SampleProfile, message_for_test, next_digest, next_period
from subscribers.models import Frequency


def test_the_next_period_is_the_run_that_comes_next(settings: Settings) -> None:
    now = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)  # 11:00 in Oslo
    daily = next_period(Frequency.DAILY, now, settings)
    assert (daily.start, daily.end) == (
        datetime(2026, 11, 27, 7, 0, tzinfo=UTC),
        datetime(2026, 11, 28, 7, 0, tzinfo=UTC),
    )
    immediate = next_period(Frequency.IMMEDIATE, now, settings)
    assert immediate.start <= now < immediate.end
    weekly = next_period(Frequency.WEEKLY, now, settings)
    assert weekly.start <= now < weekly.end and weekly.end - weekly.start == timedelta(days=7)


def test_the_next_period_across_a_change_of_clock(settings: Settings) -> None:
    # Oslo goes from summer to winter time in the night to 25 October 2026.
    now = datetime(2026, 10, 24, 12, 0, tzinfo=UTC)
    daily = next_period(Frequency.DAILY, now, settings)
    assert daily.start == datetime(2026, 10, 24, 6, 0, tzinfo=UTC)
    assert daily.end == datetime(2026, 10, 25, 7, 0, tzinfo=UTC)  # a 25-hour day


def test_a_sample_reader_sees_what_is_for_them_and_a_test_mail_records_nothing(
    settings: Settings,
) -> None:
    now = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    with session_scope(settings.database_url) as session:
        session.add_all(
            [
                Announcement(
                    title="Til lederne",
                    status=AnnouncementStatus.PUBLISHED,
                    publish_from=now - timedelta(hours=1),
                    roles=["kommunal-ledelse"],
                ),
                Announcement(
                    title="Utkast",
                    status=AnnouncementStatus.DRAFT,
                    publish_from=now - timedelta(hours=1),
                ),
            ]
        )
    with session_scope(settings.database_url) as session:
        leader = next_digest(session, settings, SampleProfile(role="kommunal-ledelse"), now)
        other = next_digest(session, settings, SampleProfile(role="helse-omsorg"), now)
    assert [a.title for a in leader.digest.announcements] == ["Til lederne"]
    assert other.mail is None  # nothing for them: no mail, not an empty one
    assert leader.mail is not None and "Til lederne" in leader.mail.text
    # The sample's links lead to the page that mails a person their own link, nobody's.
    assert "/lenke" in leader.mail.text
    message = message_for_test(settings, leader, "redaktor@bufdir.no", now)
    assert message["Subject"].startswith("[TEST] ")
    assert message["To"] == "redaktor@bufdir.no"
    with session_scope(settings.database_url) as session:
        for table in (DigestRun, Delivery, AnnouncementReceipt):
            assert session.scalar(select(func.count()).select_from(table)) == 0
