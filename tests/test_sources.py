"""The sources file: checking it, and syncing it to the database without losing state."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from digest.core.db import session_scope
from digest.core.errors import DigestError
from digest.core.models import Source
from digest.core.settings import PACKAGE_DIR, Settings
from digest.core.topics import topic_labels, topic_sources
from digest.watch.overview import source_health
from digest.watch.selection import UnknownSource, sources_to_collect
from digest.watch.sources import BadSourceTables, SourcesFileError, load_sources, sync_sources


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
        first = sync_sources(session, catalogue)
        assert sorted(first.added) == ["barn-test", "rvts-test"]
        row = session.scalar(select(Source).where(Source.key == "rvts-test"))
        row.etag = '"abc"'
        row.consecutive_failures = 2
    renamed = [
        s.model_copy(update={"name": "RVTS Ny"}) for s in catalogue.sources if s.key == "rvts-test"
    ]
    with session_scope(settings.database_url) as session:
        second = sync_sources(session, replace(catalogue, sources=renamed))
        assert second.updated == ["rvts-test"] and second.disabled == ["barn-test"]
        row = session.scalar(select(Source).where(Source.key == "rvts-test"))
        assert row.name == "RVTS Ny" and row.etag == '"abc"' and row.consecutive_failures == 2
        gone = session.scalar(select(Source).where(Source.key == "barn-test"))
        assert gone.enabled is False


def test_sync_stores_the_topics_in_the_files_order_and_follows_their_changes(
    settings: Settings,
) -> None:
    catalogue = load_sources(settings.sources_file)
    with session_scope(settings.database_url) as session:
        sync_sources(session, catalogue)
        assert topic_labels(session) == {
            "vold": "Vold i nære relasjoner",
            "barn": "Barn og unge",
            "krisesenter": "Krisesentertilbudet",
        }
        assert topic_sources(session) == {"vold": ["RVTS Test"], "barn": ["Barnesiden"]}
    changed = {"krisesenter": "Krisesentre", "vold": "Vold i nære relasjoner"}
    rvts = [s for s in catalogue.sources if s.key == "rvts-test"]
    with session_scope(settings.database_url) as session:
        sync_sources(session, replace(catalogue, topics=changed, sources=rvts))
    with session_scope(settings.database_url) as session:
        # Relabelled, reordered, one gone; a disabled source no longer covers its topic.
        assert list(topic_labels(session).items()) == list(changed.items())
        assert topic_sources(session) == {"vold": ["RVTS Test"]}


@pytest.mark.parametrize(
    ("topics", "problem"),
    [
        ("Vold = 'Vold'", "'Vold' is not a topic key"),
        ("' vold' = 'Vold'", "' vold' is not a topic key"),
        (f"{'v' * 101} = 'Vold'", "is not a topic key"),
        ("vold = ' '", "'vold' needs a label"),
        (f"vold = '{'V' * 201}'", "'vold' needs a label"),
    ],
)
def test_topics_that_could_not_be_stored_or_chosen_are_refused(
    tmp_path: Path, topics: str, problem: str
) -> None:
    path = tmp_path / "s.toml"
    path.write_text(f"[topics]\n{topics}\n")
    with pytest.raises(SourcesFileError, match=problem):
        load_sources(path)


TABLE = "[topics]\nt = 'T'\n\n[[source]]\nkey = 'rvts-x'\nname = 'X'\n"


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ("kind = 'feed'\nurl = 'http://example.org:abc/x'", "url: .*cannot be parsed as a URL"),
        ("kind = 'feed'\nurl = 'http://[::1/x'", "url: .*cannot be parsed as a URL"),
        ("kind = 'feed'\nurl = 'http://example.org:99999/x'", "url: .*Port out of range"),
        ("kind = 'feed'\nurl = 'http:///x'", "url: .*has no host"),
        ("kind = 'feed'\nurl = 'http://example.org:0/x'", "url: .*port 0"),
        (
            "kind = 'index'\nurl = 'https://x.no/'\noptions = { link_pattern = '/(a)\\1/' }",
            "link_pattern: .*cannot be used as a URL pattern",
        ),
        (
            "kind = 'index'\nurl = 'https://x.no/'\noptions = { link_pattern = '/a/(?!b)' }",
            "link_pattern: .*lookaround",
        ),
        (
            "kind = 'sitemap'\nurl = 'https://x.no/s.xml'\noptions = { include = ['^(?<=x)'] }",
            "include: .*cannot be used as a URL pattern",
        ),
        (
            "kind = 'sitemap'\nurl = 'https://x.no/s.xml'\noptions = { exclude = ['[a-'] }",
            "exclude: .*cannot be used as a URL pattern",
        ),
        (
            "kind = 'index'\nurl = 'https://x.no/'\n"
            "options = { link_pattern = '/a/', link_selector = 'div >' }",
            "link_selector: .*not a usable CSS selector",
        ),
        (
            "kind = 'sections'\nurl = 'https://x.no/'\noptions = { heading = 'h2:contains(x)' }",
            "heading: .*not a usable CSS selector",
        ),
    ],
)
def test_unusable_values_are_refused_with_the_source_key(
    tmp_path: Path, table: str, problem: str
) -> None:
    path = tmp_path / "s.toml"
    path.write_text(TABLE + table)
    with pytest.raises(SourcesFileError, match=r"source #1 \(rvts-x\): " + problem):
        load_sources(path)


def test_usable_patterns_and_selectors_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(
        TABLE + "kind = 'index'\nurl = 'https://x.no:8443/aktuelt'\n"
        "options = { link_pattern = '^https://x\\.no/(?P<y>\\d+)/[^?#]+$', "
        "link_selector = 'main article h2 > a' }"
    )
    assert load_sources(path).sources[0].options["link_selector"] == "main article h2 > a"


# Short enough to be kept as a link (canonical_url refuses URLs past 2,000 characters), so
# the pattern really runs on it.
LONG = "https://x.no/" + "a" * 1_900 + "b"


# Python's re would need about 2**1900 steps for this; RE2 needs one pass. The timeout
# is only the harness's safety net: the point is that the call returns at all.
@pytest.mark.timeout(60)
def test_a_pathological_link_pattern_cannot_hang_the_index_reader() -> None:
    from digest.watch.readers import index

    page = f'<html><body><a href="{LONG}">x</a><a href="/aaa">y</a></body></html>'
    result = index.read(page.encode(), {}, "https://x.no/", {"link_pattern": "(a+)+$"})
    assert [link.url for link in result.links] == ["https://x.no/aaa"]


@pytest.mark.timeout(60)
def test_a_pathological_sitemap_pattern_cannot_hang_the_sitemap_reader() -> None:
    from digest.watch.readers import sitemap

    body = (
        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        f"<url><loc>{LONG}</loc></url><url><loc>https://x.no/aaa</loc></url></urlset>"
    ).encode()
    options = {"include": ["(a+)+$"], "exclude": ["(x+x+)+y"]}
    result = sitemap.read(body, {}, "https://x.no/sitemap.xml", options)
    assert [link.url for link in result.links] == ["https://x.no/aaa"]


def test_a_bad_file_is_a_digest_error_with_its_path_and_problems(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(TABLE + "kind = 'rss'\nurl = 'https://x.no/'")
    with pytest.raises(BadSourceTables) as info:
        load_sources(path)
    assert isinstance(info.value, DigestError) and info.value.path == path
    assert len(info.value.problems) == 1 and "unknown kind 'rss'" in info.value.problems[0]


def test_sources_to_collect_by_key_and_with_their_health(settings: Settings) -> None:
    with session_scope(settings.database_url) as session:
        sync_sources(session, load_sources(settings.sources_file))
    with session_scope(settings.database_url) as session:
        every = sources_to_collect(session)
        one = sources_to_collect(session, "rvts-test")
        with pytest.raises(UnknownSource) as info:
            sources_to_collect(session, "ukjent")
        health = source_health(session)
        urls = {source_id: url for source_id, url in session.execute(select(Source.id, Source.url))}
    assert [ref.host for ref in every] == [urlsplit(urls[ref.id]).hostname for ref in every]
    assert len(every) == 2 and one[0] in every and len(one) == 1
    assert info.value.key == "ukjent" and "no source with key 'ukjent'" in str(info.value)
    assert [(h.key, h.status, h.items) for h in health] == [
        ("barn-test", "new", 0),
        ("rvts-test", "new", 0),
    ]
