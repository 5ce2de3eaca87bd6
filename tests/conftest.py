"""Shared fixtures: a clean environment per test, a fixture site, an SMTP server, databases."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from digest.core.db import get_engine, session_scope
from digest.core.migrate import upgrade
from digest.core.models import EditorRole
from digest.core.settings import Settings, get_settings, sqlite_path
from digest.watch.sources import load_sources, sync_topics
from tests.support.server import LiveServer
from tests.support.site import FixtureSite
from tests.support.smtp import SMTPServer

POSTGRES_ADMIN_URL = os.environ.get(
    "DIGEST_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("DIGEST_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
AMQP_URL = os.environ.get("DIGEST_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")

SOURCES_TOML = """
[topics]
vold = "Vold i nære relasjoner"
barn = "Barn og unge"
krisesenter = "Krisesentertilbudet"

[[source]]
key = "rvts-test"
name = "RVTS Test"
kind = "feed"
url = "{feed_url}"
topics = ["vold"]

[[source]]
key = "barn-test"
name = "Barnesiden"
kind = "feed"
url = "{other_url}"
topics = ["barn"]
"""


@pytest.fixture(autouse=True, scope="session")
def quick_password_hashing() -> Iterator[None]:
    """Editors' passwords are hashed with argon2id at its lowest cost in tests: at the real
    cost (64 MiB, three passes) each sign-in of a hundred page tests takes a quarter of a
    second. tests/test_admin_sign_in.py checks the real parameters."""
    from argon2 import PasswordHasher

    from digest.editors import accounts

    saved = accounts._hasher
    accounts._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    yield
    accounts._hasher = saved


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """A clean DIGEST_* environment in a fresh working folder."""
    for name in list(os.environ):
        if name.startswith("DIGEST_") and not name.startswith("DIGEST_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DIGEST_DATA_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


@pytest.fixture
def site() -> Iterator[FixtureSite]:
    server = FixtureSite().start()
    yield server
    server.stop()


@pytest.fixture
def smtp() -> Iterator[SMTPServer]:
    server = SMTPServer().start()
    yield server
    server.stop()


@pytest.fixture
def sources_file(tmp_path: Path, site: FixtureSite) -> Path:
    path = tmp_path / "sources.toml"
    path.write_text(
        SOURCES_TOML.format(feed_url=site.url("/feed/"), other_url=site.url("/barn/feed/")),
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A SQLite database at the head revision, built once: copying it is what a per-test
    `upgrade` produced, at a fraction of the cost."""
    path = tmp_path_factory.mktemp("template") / "digest.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    get_engine(url).dispose()  # the last connection closing folds the WAL into the file
    assert not path.with_name("digest.db-wal").exists()
    return path.read_bytes()


def fresh_database(settings: Settings, migrated: bytes) -> None:
    """Give `settings` its own migrated database: a copy of the template where it is SQLite."""
    path = sqlite_path(settings.database_url)
    if path is None or path.exists():
        upgrade(settings.database_url)
        return
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Private, as the service creates it.
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as file:
        file.write(migrated)


@pytest.fixture
def settings(
    env: pytest.MonkeyPatch, sources_file: Path, smtp: SMTPServer, migrated_sqlite: bytes
) -> Settings:
    """Embedded-default settings on a migrated SQLite database holding the sources file's
    topics (as `digest sources sync` stores them), mailing the test SMTP server."""
    env.setenv("DIGEST_SOURCES_FILE", str(sources_file))
    env.setenv("DIGEST_SMTP_URL", smtp.url)
    env.setenv("DIGEST_FROM_ADDRESS", "varsel@veiledervarsel.no")
    # The fixture site is on 127.0.0.1, and tests need not wait between requests.
    env.setenv("DIGEST_ALLOW_PRIVATE_HOSTS", "true")
    env.setenv("DIGEST_FETCH_HOST_DELAY_SECONDS", "0")
    settings = get_settings()
    fresh_database(settings, migrated_sqlite)
    with session_scope(settings.database_url) as session:
        sync_topics(session, load_sources(sources_file).topics)
    return settings


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    name = f"digest_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    get_engine.cache_clear()
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def live_app(settings: Settings) -> Iterator[LiveServer]:
    """The web app, served for real by uvicorn on the test's settings."""
    from digest.web.app import create_app

    server = LiveServer(create_app(settings)).start()
    yield server
    server.stop()


@pytest.fixture
def client(live_app: LiveServer) -> Iterator[httpx.Client]:
    """A client of the web app (a browser with no one signed in)."""
    with live_app.client() as web:
        yield web


@pytest.fixture
def editor_client(settings: Settings, live_app: LiveServer) -> Iterator[httpx.Client]:
    """A browser signed in as an editor (redaktor@bufdir.no)."""
    from tests.support.editors import make_editor, sign_in

    make_editor(settings, "redaktor@bufdir.no", EditorRole.EDITOR)
    with live_app.client() as web:
        assert sign_in(web, "redaktor@bufdir.no").status_code == 303
        yield web


@pytest.fixture
def admin_client(settings: Settings, live_app: LiveServer) -> Iterator[httpx.Client]:
    """A browser signed in as an admin (admin@bufdir.no)."""
    from tests.support.editors import make_editor, sign_in

    make_editor(settings, "admin@bufdir.no", EditorRole.ADMIN)
    with live_app.client() as web:
        assert sign_in(web, "admin@bufdir.no").status_code == 303
        yield web
