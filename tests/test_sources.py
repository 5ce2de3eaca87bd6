"""The sources file: checking it, and syncing it to the database without losing state."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from digest.db import session_scope
from digest.models import Source
from digest.settings import PACKAGE_DIR, Settings
from digest.watch.sources import SourcesFileError, load_sources, sync_sources


def test_the_shipped_sources_file_covers_every_site() -> None:
    catalogue = load_sources(PACKAGE_DIR / "watch" / "sources.toml")
    hosts = {s.url.split("/")[2].removeprefix("www.") for s in catalogue.sources}
    assert hosts == {
        "bufdir.no",
        "voldsveileder.nkvts.no",
        "komplan.nkvts.no",
        "jegvet.no",
        "snakkemedbarn.no",
        "rvtsost.no",
        "rvtssor.no",
        "rvtsvest.no",
        "rvtsmidt.no",
        "rvtsnord.no",
        "helsedirektoratet.no",
    }
    bufdir = {s.kind for s in catalogue.sources if "bufdir" in s.url}
    assert bufdir == {"sections", "sitemap"}
    assert all(s.topics and s.audiences for s in catalogue.sources)
    assert {a for s in catalogue.sources for a in s.audiences} == {
        "kommunal-ledelse",
        "krisesenter-ansatte",
        "helse-omsorg",
        "barnehage-skole",
        "alle-barn",
    }


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[[source]]\nkey='x'\nname='X'\nkind='rss'\nurl='https://x.no'", "unknown kind 'rss'"),
        ("[[source]]\nkey='x'\nname='X'\nkind='feed'\nurl='file:///etc/passwd'", "url"),
        (
            "[[source]]\nkey='x'\nname='X'\nkind='feed'\nurl='https://x.no'\ntopics=['ukjent']",
            "not declared",
        ),
        ("[[source]]\nkey='Bad Key'\nname='X'\nkind='feed'\nurl='https://x.no'", "key"),
        ("[[source]\nkey=", "not valid TOML"),
    ],
)
def test_bad_sources_files_name_the_problem(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "s.toml"
    path.write_text(text)
    with pytest.raises(SourcesFileError, match=problem):
        load_sources(path)


def test_sync_adds_updates_and_disables_keeping_state(settings: Settings) -> None:
    catalogue = load_sources(settings.sources_file)
    with session_scope(settings.database_url) as session:
        first = sync_sources(session, catalogue.sources)
        assert sorted(first.added) == ["barn-test", "rvts-test"]
        row = session.scalar(select(Source).where(Source.key == "rvts-test"))
        row.etag = '"abc"'
        row.consecutive_failures = 2
    renamed = [
        s.model_copy(update={"name": "RVTS Ny"}) for s in catalogue.sources if s.key == "rvts-test"
    ]
    with session_scope(settings.database_url) as session:
        second = sync_sources(session, renamed)
        assert second.updated == ["rvts-test"] and second.disabled == ["barn-test"]
        row = session.scalar(select(Source).where(Source.key == "rvts-test"))
        assert row.name == "RVTS Ny" and row.etag == '"abc"' and row.consecutive_failures == 2
        gone = session.scalar(select(Source).where(Source.key == "barn-test"))
        assert gone.enabled is False
