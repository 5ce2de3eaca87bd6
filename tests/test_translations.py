"""The catalogues: every message of every domain translated into nynorsk and English (as the
files hold them now, not as the .pot last said), each file in one domain, and the dates
and language choice of digest.core.i18n."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog

from digest.commands import messages
from digest.commands.messages import SOURCES, TRANSLATED, files_of, missing, project_dir
from digest.core import i18n

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("domain", i18n.DOMAINS)
@pytest.mark.parametrize("language", TRANSLATED)
def test_every_message_is_translated(language: str, domain: str) -> None:
    assert missing(language, domain) == []


@pytest.mark.parametrize("language", TRANSLATED)
def test_a_message_means_the_same_in_every_domain(language: str) -> None:
    # The domains are merged into one catalogue per language, where a later domain's
    # translation would win: a message (with its context) must read the same in all.
    seen: dict[tuple[str, str | None], tuple[str, object]] = {}
    clashes = []
    for domain in i18n.DOMAINS:
        path = messages.po_path(language, domain)
        for message in messages.read_catalog(path, language, domain):
            if not message.id:
                continue
            key = (message.id if isinstance(message.id, str) else message.id[0], message.context)
            first = seen.setdefault(key, (domain, message.string))
            if first[1] != message.string:
                clashes.append(f"{key}: {first} / {(domain, message.string)}")
    assert clashes == []


def test_every_page_template_and_web_module_is_in_one_domain() -> None:
    assert project_dir() == ROOT
    owners: dict[Path, list[str]] = {}
    for domain in SOURCES:
        for path in files_of(domain):
            owners.setdefault(path, []).append(domain)
    shown = [
        *(p for p in (ROOT / "templates").rglob("*") if p.suffix in (".html", ".txt")),
        *(ROOT / "digest" / "web").rglob("*.py"),
        *(ROOT / "digest" / "mail").rglob("*.py"),
    ]
    assert [p for p in shown if p not in owners] == []
    assert {p: d for p, d in owners.items() if len(d) > 1} == {}


def test_a_message_without_a_translation_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    # The check reads the files as they are: with empty catalogues, the base page's
    # messages are missing.
    monkeypatch.setattr(
        messages, "read_catalog", lambda path, language, domain: Catalog(locale=language)
    )
    assert any("Hopp til innholdet" in problem for problem in missing("nn", "public"))
    assert i18n.translator("nn").gettext("en melding ingen har skrevet") == (
        "en melding ingen har skrevet"
    )


MONDAY = datetime(2024, 12, 2, 8, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("language", "long", "week"),
    [
        ("nb", "mandag 2. desember 2024", "uke 49"),
        ("nn", "måndag 2. desember 2024", "veke 49"),
        ("en", "Monday 2 December 2024", "week 49"),
    ],
)
def test_dates_and_weeks_by_babel_in_oslo_time(language: str, long: str, week: str) -> None:
    assert i18n.long_date(MONDAY, i18n.OSLO, language) == long
    assert i18n.week_label(MONDAY, i18n.OSLO, language) == week


def test_dates_are_oslo_dates_not_utc_dates() -> None:
    late_sunday_utc = datetime(2024, 12, 1, 23, 30, tzinfo=UTC)  # Monday 00:30 in Oslo
    assert i18n.long_date(late_sunday_utc, i18n.OSLO, "nb") == "mandag 2. desember 2024"
    assert i18n.week_label(late_sunday_utc, i18n.OSLO, "nn") == "veke 49"


def test_an_unknown_language_is_bokmal() -> None:
    assert i18n.language_or_default("de") == "nb"
    assert i18n.language_or_default(None) == "nb"
    assert i18n.long_date(MONDAY, i18n.OSLO, "xx") == "mandag 2. desember 2024"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("en-US,en;q=0.9,nb;q=0.8", "en"),
        ("nb-NO,nn;q=0.5", "nb"),
        ("no", "nb"),
        ("nn-NO", "nn"),
        ("nn;q=0, en;q=0.1", "en"),
        ("de-DE,fr;q=0.9", None),
        ("", None),
        ("nn;q=abc", None),
        ("en;q=0.2,nn;q=0.8", "nn"),
        ("x" * 5000 + ",nn", None),
        ("*", None),
    ],
)
def test_accept_language(header: str, expected: str | None) -> None:
    assert i18n.negotiate(header) == expected


def test_an_archive_key_has_one_spelling() -> None:
    from digest.core.archive_links import parse_period_key, period_key

    start = datetime(2024, 12, 2, 7, 0, tzinfo=UTC)
    assert parse_period_key(period_key(start)) == start
    for alias in ("٢026-11-09T0700Z", "２026-11-09T0700Z", "2024-12-2T0700Z", "2024-12-02T0700z"):
        assert parse_period_key(alias) is None, alias
