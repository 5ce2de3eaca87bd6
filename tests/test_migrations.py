"""The migrations against the models, on SQLite and PostgreSQL: they build the same schema,
and a database made by an older release upgrades with its rows and statuses intact."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, select, text

from digest.core.db import get_engine, session_scope
from digest.core.migrate import SchemaState, schema_state, upgrade
from digest.core.models import (
    AnnouncementReceipt,
    Delivery,
    DigestRun,
    MailStatus,
    RunAnnouncement,
    RunStatus,
    Source,
    SourceStatus,
)
from digest.core.topics import topic_labels
from digest.watch.sources import load_sources, sync_sources
from subscribers.base import Base
from subscribers.models import (
    Channel,
    ConsentAction,
    ConsentEvent,
    Frequency,
    Language,
    SignupRequest,
    Status,
    Subscriber,
)

T = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'digest.db'}"
    return str(request.getfixturevalue("pg_url"))


def test_the_migrations_build_the_schema_the_models_declare(database_url: str) -> None:
    upgrade(database_url)
    with get_engine(database_url).connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def _rows_of_release_0004(database_url: str) -> None:
    """Rows as the release at revision 0004 wrote them, statuses as plain strings."""
    with get_engine(database_url).begin() as connection:
        connection.execute(
            text(
                "INSERT INTO sources (key, name, kind, url, topics, audiences, language, options,"
                " interval_minutes, enabled, status, consecutive_failures)"
                " VALUES ('rvts', 'RVTS', 'feed', 'https://rvts.no/feed', '[\"vold\"]', '[]',"
                " 'nb', '{}', 60, true, 'failing', 2)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO subscribers (email, name, municipality, role, language, frequency,"
                " topics, status, created_at, soft_failures, ref)"
                " VALUES ('kari@kommune.no', '', '', '', 'nb', 'daily', '[]', 'unsubscribed',"
                " :at, 0, 'ref-kari')"
            ),
            {"at": T},
        )
        connection.execute(
            text(
                "INSERT INTO consent_events (subscriber_id, at, action, channel, detail)"
                " SELECT id, :at, 'unsubscribed', 'web', '' FROM subscribers"
            ),
            {"at": T},
        )
        connection.execute(
            text(
                "INSERT INTO signup_requests (subscriber_id, nonce, choices, channel, created_at)"
                " SELECT id, 'nonce-kari', '{}', 'import', :at FROM subscribers"
            ),
            {"at": T},
        )
        connection.execute(
            text(
                "INSERT INTO digest_runs (frequency, period_start, period_end, status, created_at)"
                " VALUES ('daily', :at, :at, 'complete', :at)"
            ),
            {"at": T},
        )
        connection.execute(
            text(
                "INSERT INTO deliveries (run_id, subscriber_id, status, attempts, item_count,"
                " bounce_counted) SELECT r.id, s.id, 'skipped_empty', 1, 0, false"
                " FROM digest_runs r, subscribers s"
            )
        )


def test_a_database_of_revision_0004_upgrades_keeping_its_statuses(
    database_url: str, sources_file: Path
) -> None:
    upgrade(database_url, "0004")
    _rows_of_release_0004(database_url)
    assert schema_state(database_url) == SchemaState.BEHIND
    upgrade(database_url)
    assert schema_state(database_url) == SchemaState.CURRENT
    with session_scope(database_url) as session:
        source = session.scalars(select(Source)).one()
        subscriber = session.scalars(select(Subscriber)).one()
        run = session.scalars(select(DigestRun)).one()
        delivery = session.scalars(select(Delivery)).one()
        # Loaded as members of the enums, from the strings the older release stored.
        assert source.status is SourceStatus.FAILING
        assert subscriber.status is Status.UNSUBSCRIBED
        assert run.status is RunStatus.COMPLETE
        assert delivery.status is MailStatus.SKIPPED_EMPTY
        assert subscriber.frequency is Frequency.DAILY and run.frequency is Frequency.DAILY
        assert subscriber.language is Language.BOKMAL
        event = session.scalars(select(ConsentEvent)).one()
        assert event.action is ConsentAction.UNSUBSCRIBED and event.channel is Channel.WEB
        assert session.scalars(select(SignupRequest)).one().channel is Channel.IMPORT
        assert topic_labels(session) == {}  # filled by the next `digest sources sync`
        sync_sources(session, load_sources(sources_file))
    with session_scope(database_url) as session:
        assert topic_labels(session)["vold"] == "Vold i nære relasjoner"
    # What a member writes is its value, as before.
    with get_engine(database_url).connect() as connection:
        stored = connection.execute(text("SELECT status FROM sources WHERE key = 'rvts-test'"))
        assert stored.scalar_one() == "new"


def test_digest_db_upgrade_brings_a_0004_database_up_and_back_down(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    database_url = f"sqlite:///{tmp_path / 'digest.db'}"
    env.setenv("DIGEST_DATABASE_URL", database_url)
    upgrade(database_url, "0004")
    _rows_of_release_0004(database_url)
    result = subprocess.run(
        [sys.executable, "-m", "digest", "db", "upgrade"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert schema_state(database_url) == SchemaState.CURRENT
    from alembic import command

    from digest.core.migrate import alembic_config

    command.downgrade(alembic_config(database_url), "0004")
    with get_engine(database_url).connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM subscribers")).scalar_one() == 1
    upgrade(database_url)
    assert schema_state(database_url) == SchemaState.CURRENT


def test_0009_keeps_what_the_archive_read_from_the_deliveries(database_url: str) -> None:
    """A run that sent (its first sending the earliest sent delivery, or when it completed
    if an old row kept no time), and the announcements its sent deliveries carried; not
    those of a failed delivery, nor a run that only skipped."""
    upgrade(database_url, "0008")
    later = T.replace(hour=9)
    with get_engine(database_url).begin() as connection:
        for n, email in enumerate(("a@kommune.no", "b@kommune.no", "c@kommune.no")):
            connection.execute(
                text(
                    "INSERT INTO subscribers (email, name, municipality, role, language,"
                    " frequency, topics, status, created_at, soft_failures, ref, role_only)"
                    " VALUES (:email, '', '', '', 'nb', 'daily', '[]', 'active', :at, 0,"
                    " :ref, false)"
                ),
                {"email": email, "at": T, "ref": f"ref-{n}"},
            )
        for title in ("Fagdag", "Bare til den som ikke fikk den"):
            connection.execute(
                text(
                    "INSERT INTO announcements (title, body, topics, roles, municipalities,"
                    " publish_from, status, pinned, send_immediately, created_at, version)"
                    " VALUES (:title, '', '[]', '[]', '[]', :at, 'published', false, false,"
                    " :at, 1)"
                ),
                {"title": title, "at": T},
            )
        for start, status in ((T, "complete"), (T.replace(day=21), "complete")):
            connection.execute(
                text(
                    "INSERT INTO digest_runs (frequency, period_start, period_end, status,"
                    " created_at, completed_at) VALUES ('daily', :start, :start, :status,"
                    " :start, :done)"
                ),
                {"start": start, "status": status, "done": start.replace(hour=10)},
            )
        ids = dict(connection.execute(text("SELECT email, id FROM subscribers")).all())
        runs = [r for (r,) in connection.execute(text("SELECT id FROM digest_runs ORDER BY id"))]
        announcements = [
            a for (a,) in connection.execute(text("SELECT id FROM announcements ORDER BY id"))
        ]
        # The first run: sent to a (at 9) and b (at 8), failed for c; the second: skipped.
        for email, status, at in (
            ("a@kommune.no", "sent", later),
            ("b@kommune.no", "sent", T),
            ("c@kommune.no", "failed", None),
        ):
            connection.execute(
                text(
                    "INSERT INTO deliveries (run_id, subscriber_id, status, attempts, sent_at,"
                    " item_count, bounce_counted) VALUES (:run, :who, :status, 1, :at, 1, false)"
                ),
                {"run": runs[0], "who": ids[email], "status": status, "at": at},
            )
            connection.execute(
                text(
                    "INSERT INTO deliveries (run_id, subscriber_id, status, attempts,"
                    " item_count, bounce_counted) VALUES (:run, :who, 'skipped_empty', 1, 0,"
                    " false)"
                ),
                {"run": runs[1], "who": ids[email]},
            )
        delivery = dict(
            connection.execute(
                text("SELECT subscriber_id, id FROM deliveries WHERE run_id = :run"),
                {"run": runs[0]},
            ).all()
        )
        for email, announcement in (
            ("a@kommune.no", announcements[0]),
            ("b@kommune.no", announcements[0]),
            ("c@kommune.no", announcements[1]),  # its delivery failed: not carried
        ):
            connection.execute(
                text(
                    "INSERT INTO announcement_receipts (announcement_id, subscriber_id,"
                    " delivery_id) VALUES (:a, :who, :d)"
                ),
                {"a": announcement, "who": ids[email], "d": delivery[ids[email]]},
            )
        # A sent row an old release wrote without its time, in a run of its own.
        connection.execute(
            text(
                "INSERT INTO digest_runs (frequency, period_start, period_end, status,"
                " created_at, completed_at) VALUES ('weekly', :at, :at, 'complete', :at, :done)"
            ),
            {"at": T, "done": later},
        )
        connection.execute(
            text(
                "INSERT INTO deliveries (run_id, subscriber_id, status, attempts, item_count,"
                " bounce_counted) SELECT r.id, :who, 'sent', 1, 1, false FROM digest_runs r"
                " WHERE r.frequency = 'weekly'"
            ),
            {"who": ids["a@kommune.no"]},
        )
    upgrade(database_url)
    with session_scope(database_url) as session:
        first = {
            r.id: r.first_sent_at for r in session.scalars(select(DigestRun).order_by(DigestRun.id))
        }
        assert list(first.values()) == [T, None, later]
        carried = session.execute(
            select(RunAnnouncement.run_id, RunAnnouncement.announcement_id)
        ).all()
        assert [tuple(row) for row in carried] == [(runs[0], announcements[0])]
        # The deliveries and receipts are as they were.
        assert session.scalar(select(func.count()).select_from(Delivery)) == 7
        assert session.scalar(select(func.count()).select_from(AnnouncementReceipt)) == 3
