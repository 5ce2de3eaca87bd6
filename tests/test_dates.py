"""Norwegian dates as the sites write them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from digest.watch.dates import labelled_dates, parse_date, plausible
from digest.watch.entries import Entry, Link


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("14. november 2023", utc(2023, 11, 13, 23, 0)),
        ("04. februar 2008", utc(2008, 2, 3, 23, 0)),
        ("fredag 8. januar 2021", utc(2021, 1, 7, 23, 0)),
        ("laurdag 3. mars 2024", utc(2024, 3, 2, 23, 0)),
        ("8. jan. 2021", utc(2021, 1, 7, 23, 0)),
        ("12. sept. 2022", utc(2022, 9, 11, 22, 0)),
        ("10.04.2018, kl. 11:15", utc(2018, 4, 10, 9, 15)),
        ("10.04.2018 kl.10.30", utc(2018, 4, 10, 8, 30)),
        ("2023-06-23T10:00:00+02:00", utc(2023, 6, 23, 8, 0)),
        ("2023-06-23T10:00:00Z", utc(2023, 6, 23, 10, 0)),
        ("2023-06-23", utc(2023, 6, 22, 22, 0)),
        ("ingen dato her", None),
        ("31. februar 2023", None),
        ("99.99.2023", None),
    ],
)
def test_parse_date(text: str, expected: datetime | None) -> None:
    assert parse_date(text) == expected


def test_labels_pick_published_and_latest_updated() -> None:
    text = (
        "Først publisert: 23. juni 2023 Siste faglige endring: 04. februar 2024 "
        "Referanser: Bufdir (2018). Lest 21.11.2018."
    )
    dates = labelled_dates(text)
    assert dates.published == utc(2023, 6, 22, 22, 0)
    assert dates.updated == utc(2024, 2, 3, 23, 0)
    assert dates.updated_text == "Siste faglige endring: 04. februar 2024"


def test_access_dates_in_references_are_ignored() -> None:
    assert labelled_dates("Hentet 3. mai 2019. Lest 21.11.2018.") == labelled_dates("")


def test_nynorsk_and_guide_labels() -> None:
    assert labelled_dates("Sist endra 3. mars 2024").updated == utc(2024, 3, 2, 23, 0)
    guide = labelled_dates("… slutt på kapitlet. Sist faglig oppdatert 14. november 2023")
    assert guide.updated_text == "Sist faglig oppdatert 14. november 2023"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Off the end of the calendar once shown in Oslo, or a placeholder: no date.
        ("9999-12-31T23:30:00Z", None),
        ("9999-12-31", None),
        ("0001-01-01T00:00:00Z", None),
        ("1899-12-31T12:00:00Z", None),
        ("2200-01-01T00:00:01Z", None),
        ("9999-12-31T23:59-23:59", None),
        # A zone no place has: the time is unknown, not shifted by four days.
        ("2026-11-25T10:00:00+99:00", None),
        ("2026-11-25T10:00:00-15:00", None),
        ("2026-11-25T10:00:00+05:99", None),
        # The widest real zones, and the ends of what is plausible.
        ("2026-11-25T10:00:00+14:00", utc(2026, 11, 24, 20, 0)),
        ("2026-11-25T10:00:00-1200", utc(2026, 11, 25, 22, 0)),
        ("1900-01-01T00:00:00Z", utc(1900, 1, 1)),
        ("2199-12-31T23:00:00Z", utc(2199, 12, 31, 23, 0)),
    ],
)
def test_implausible_dates_are_no_dates(text: str, expected: datetime | None) -> None:
    assert parse_date(text) == expected


@given(st.text(alphabet="0123456789-+:TZ .", max_size=40))
def test_every_parsed_date_can_be_shown_in_any_zone(text: str) -> None:
    moment = parse_date(text)
    if moment is not None:
        for zone in ("Europe/Oslo", "Pacific/Kiritimati", "Etc/GMT+12"):
            moment.astimezone(ZoneInfo(zone))


def test_readers_entries_and_links_keep_no_implausible_date() -> None:
    """Whatever a reader parsed a date with, an entry or a link does not keep an absurd one."""
    absurd = datetime(9999, 12, 31, 23, 30, tzinfo=UTC)
    fine = utc(2026, 11, 25, 10, 0)
    entry = Entry("k", "https://x.no/a", "T", published_at=absurd, updated_at=fine)
    assert (entry.published_at, entry.updated_at) == (None, fine)
    naive = Entry("k", "https://x.no/a", "T", published_at=datetime(2026, 1, 1))
    assert naive.published_at is None
    assert Link("https://x.no/a", datetime(1, 1, 1, tzinfo=UTC)).lastmod is None
    assert Link("https://x.no/a", fine).lastmod == fine
    far_zone = datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=23)))
    assert plausible(far_zone) == far_zone  # a real instant; it converts to UTC
    assert plausible(None) is None
