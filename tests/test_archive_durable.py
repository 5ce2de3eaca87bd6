"""The archive outlives the delivery rows: a run's page, its place in the listing and the
feed, and the announcements it carried stay after the retention sweep deleted every
delivery of it (the mails link to that page for ever)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import feedparser
import httpx
import pytest
from sqlalchemy import event, func, select

from digest.core.db import get_engine, get_sessionmaker, session_scope
from digest.core.migrate import upgrade
from digest.core.models import (
    AnnouncementReceipt,
    Delivery,
    DigestRun,
    MailStatus,
    RunAnnouncement,
)
from digest.core.settings import Settings, get_settings
from digest.delivery import digests, outcomes, retention, sending
from digest.delivery.announcements import add_announcement
from digest.delivery.outcomes import Journal
from digest.watch.sources import load_sources, sync_topics
from digest.web.app import create_app
from tests.support.mailroom import deliver_chunk
from tests.support.server import LiveServer
from tests.support.smtp import SMTPServer
from tests.test_archive import World, build_world, run_links, text_of
from tests.test_runs import RUN_AT, seed, start


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, env: pytest.MonkeyPatch, settings: Settings) -> Settings:
    """The settings, on SQLite or on a PostgreSQL database of their own."""
    if request.param == "sqlite":
        return settings
    env.setenv("DIGEST_DATABASE_URL", str(request.getfixturevalue("pg_url")))
    env.setenv("DIGEST_SECRET_KEY", "a-test-secret-key-long-enough")
    get_settings.cache_clear()
    pg = get_settings()
    upgrade(pg.database_url)
    with session_scope(pg.database_url) as session:
        sync_topics(session, load_sources(pg.sources_file).topics)
    return pg


@pytest.fixture
def web(db: Settings) -> Iterator[httpx.Client]:
    server = LiveServer(create_app(db)).start()
    with server.client() as client:
        yield client
    server.stop()


def sweep_past_retention(settings: Settings, world: World) -> None:
    """Run the sweep's deletion, as the sweep runs it, a day past the daily run's retention."""
    now = world.daily.end + timedelta(days=settings.delivery_retention_days + 1)
    while True:
        with session_scope(settings.database_url) as session:
            if not retention.delete_old_deliveries(
                session, now, settings.delivery_retention_days, limit=2
            ):
                break
    with session_scope(settings.database_url) as session:
        assert session.scalar(select(func.count()).select_from(Delivery)) == 0
        receipts = session.scalars(select(AnnouncementReceipt)).all()
        assert receipts and all(r.delivery_id is None for r in receipts)


def test_a_run_stays_in_the_archive_after_its_deliveries_are_deleted(
    web: httpx.Client, db: Settings
) -> None:
    client, settings, world = web, db, build_world(db)
    before = {
        path: text_of(client.get(path).text)
        for path in ("/arkiv", world.daily_path, world.daily_path + "?rolle=krisesenter")
    }
    feed_before = feedparser.parse(client.get("/arkiv/feed.atom").content)
    sweep_past_retention(settings, world)
    listing = client.get("/arkiv")
    assert run_links(listing.text) == [world.daily_path, world.weekly_path]
    assert "3 nye artikler, 1 oppdatert artikkel, 1 kunngjøring" in text_of(listing.text)
    page = client.get(world.daily_path)
    assert page.status_code == 200
    assert "Fagdag om vold" in text_of(page.text)
    role = client.get(world.daily_path, params={"rolle": "krisesenter"})
    assert "Kun for krisesentre" in text_of(role.text)
    assert client.get(world.weekly_path).status_code == 200
    # Nothing the pages show changed, and an announcement is still found by its title.
    for path, text in before.items():
        assert text_of(client.get(path).text) == text, path
    assert run_links(client.get("/arkiv", params={"q": "fagdag"}).text) == [world.daily_path]
    # The feed keeps its entries and their dates.
    feed = feedparser.parse(client.get("/arkiv/feed.atom").content)
    assert not feed.bozo
    assert [(e.id, e.published) for e in feed.entries] == [
        (e.id, e.published) for e in feed_before.entries
    ]
    assert len(feed.entries) == 2
    # The run that sent nothing is still not there.
    assert client.get(world.empty_path).status_code == 404


@contextmanager
def archive_writes(settings: Settings) -> Iterator[Counter[str]]:
    """The statements that write the archive's record of a run, counted while the block runs."""
    seen: Counter[str] = Counter()

    def executed(conn, cursor, statement: str, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        words = " ".join(statement.split()[:4])
        if words.startswith("UPDATE digest_runs SET first_sent_at"):
            seen["first_sent"] += 1
        elif words.startswith("INSERT INTO run_announcements"):
            seen["carried"] += 1
        seen["all"] += 1

    engine = get_engine(settings.database_url)
    event.listen(engine, "before_cursor_execute", executed)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", executed)


def announce(settings: Settings, *titles: str) -> list[int]:
    with session_scope(settings.database_url) as session:
        return [
            add_announcement(session, title=title, publish_from=RUN_AT - timedelta(days=3)).id
            for title in titles
        ]


def recorded(settings: Settings, run_id: int) -> tuple[datetime | None, set[int], datetime | None]:
    """The run's first sending, its carried announcements, and its deliveries' first `sent_at`."""
    with session_scope(settings.database_url) as session:
        run = session.get_one(DigestRun, run_id)
        carried = set(
            session.scalars(
                select(RunAnnouncement.announcement_id).where(RunAnnouncement.run_id == run_id)
            )
        )
        first = session.scalar(
            select(func.min(Delivery.sent_at)).where(
                Delivery.run_id == run_id, Delivery.status == MailStatus.SENT
            )
        )
        return run.first_sent_at, carried, first


@pytest.mark.parametrize("count", [10, 40])
def test_recording_the_archive_costs_statements_a_chunk_not_a_mail(
    settings: Settings, smtp: SMTPServer, count: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sending, "RECORD_EVERY", 10)
    monkeypatch.setattr(sending, "RECORD_INTERVAL", 3600.0)
    seed(settings, [f"k{n}@kommune.no" for n in range(count)])
    ids = announce(settings, "Fagdag", "Ny kontaktperson")
    started = start(settings)
    with archive_writes(settings) as seen:
        report = deliver_chunk(settings, started.run_id, started.chunks[0])
    assert report.sent == count == len(smtp.inbox.messages)
    # Ten mails a batch, one to four batches: the run's first sending once, the
    # announcements once (the first batch carried both; later ones nothing new).
    assert (seen["first_sent"], seen["carried"]) == (1, 1)
    first, carried, earliest = recorded(settings, started.run_id)
    assert carried == set(ids)
    assert first is not None and first == earliest


def test_a_later_chunk_of_a_sent_run_does_not_write_its_first_sending(
    settings: Settings, smtp: SMTPServer
) -> None:
    seed(settings, [f"k{n}@kommune.no" for n in range(6)])
    announce(settings, "Fagdag")
    started = start(settings)
    chunk = started.chunks[0]
    deliver_chunk(settings, started.run_id, chunk[:3])
    first, _, _ = recorded(settings, started.run_id)
    with archive_writes(settings) as seen:
        deliver_chunk(settings, started.run_id, chunk[3:])
    assert seen["first_sent"] == 0 and seen["carried"] <= 1
    assert recorded(settings, started.run_id)[0] == first


def test_a_run_that_sent_nothing_records_nothing(settings: Settings, smtp: SMTPServer) -> None:
    seed(settings, ["a@kommune.no"])
    announce(settings, "Fagdag")
    smtp.inbox.refuse["a@kommune.no"] = "550 5.1.1 No such user"
    started = start(settings)
    report = deliver_chunk(settings, started.run_id, started.chunks[0])
    assert report.sent == 0 and report.failed == 1
    assert recorded(settings, started.run_id) == (None, set(), None)


def test_a_replayed_journal_records_the_runs_first_sending_and_announcements(
    db: Settings,
) -> None:
    """A worker sent the mails and died before recording them: the sweep's replay of its
    journal records them, and what the archive keeps of their run."""
    seed(db, ["a@kommune.no", "b@kommune.no"])
    ids = announce(db, "Fagdag")
    started = start(db)
    chunk = digests.Chunk(db, started.run_id, started.chunks[0])
    mails = chunk.begin(get_sessionmaker(db.database_url), datetime.now(UTC))
    assert len(mails) == 2 and all(m.digest.announcements for m in mails)
    journal = Journal(outcomes.folder_of(db))
    at = datetime.now(UTC)
    for mail in mails:
        journal.append(chunk.sent(mail, at))
    journal.close(recorded=False)
    assert recorded(db, started.run_id) == (None, set(), None)
    assert outcomes.replay_journals(get_sessionmaker(db.database_url), db) == 2
    assert recorded(db, started.run_id) == (at, set(ids), at)


def test_chunks_of_one_run_recording_at_once_record_it_once(db: Settings, smtp: SMTPServer) -> None:
    """Several workers record the same announcements and the run's first sending at the
    same time: each is recorded once, and no worker fails on another's."""
    seed(db, [f"k{n}@kommune.no" for n in range(24)])
    ids = announce(db, "Fagdag", "Ny kontaktperson", "Nytt kurs")
    started = start(db)
    chunk = started.chunks[0]
    with ThreadPoolExecutor(4) as pool:
        reports = list(
            pool.map(
                lambda part: deliver_chunk(db, started.run_id, part),
                [chunk[n::4] for n in range(4)],
            )
        )
    assert sum(r.sent for r in reports) == 24 and not any(r.errors for r in reports)
    first, carried, earliest = recorded(db, started.run_id)
    assert carried == set(ids) and earliest is not None
    # The first batch committed says when: a mail of another, sent a moment before it but
    # recorded after, does not move it.
    assert first is not None and earliest <= first
