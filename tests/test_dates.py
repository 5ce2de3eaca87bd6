"""Norwegian dates as the sites write them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from digest.watch.dates import labelled_dates, parse_date


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
