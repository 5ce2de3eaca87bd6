"""Start-up faults through the real `digest` command: one clear line and an exit status, never a
traceback; and the embedded default's secret key and database are kept private."""

from __future__ import annotations

import os
import re
import sqlite3
import stat
import subprocess
from pathlib import Path

import pytest

from digest.core.settings import Settings
from tests.conftest import REDIS_URL
from tests.support import command

KEY_PATTERN = re.compile(r"[A-Za-z0-9_-]{43,}")


def digest(*args: str) -> subprocess.CompletedProcess[str]:
    """The `digest` command in the test's working folder and DIGEST_* environment."""
    return command.digest(*args, timeout=60)


def assert_refused(result: subprocess.CompletedProcess[str], status: int, *words: str) -> None:
    assert result.returncode == status, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- item 4: the secret key file and the embedded database ----------------------------------


@pytest.mark.parametrize("content", ["", "\n", "short-key\n", "x" * 31 + "\n"])
def test_an_empty_or_short_key_file_stops_start_up(
    env: pytest.MonkeyPatch, tmp_path: Path, content: str
) -> None:
    key_file = tmp_path / "var" / "secret_key"
    key_file.parent.mkdir()
    key_file.write_text(content)
    result = digest("sources", "list")
    assert_refused(result, 2, str(key_file))
    assert key_file.read_text() == content  # left for the operator to look at


@pytest.mark.parametrize("kind", ["folder", "fifo", "device"])
def test_a_key_file_that_is_not_a_file_stops_start_up(
    env: pytest.MonkeyPatch, tmp_path: Path, kind: str
) -> None:
    key_file = tmp_path / "var" / "secret_key"
    key_file.parent.mkdir()
    if kind == "folder":
        key_file.mkdir()  # readable by nobody as a file, root included
    elif kind == "fifo":
        os.mkfifo(key_file)  # reading it would wait for a writer for ever
    else:
        key_file.symlink_to("/dev/zero")  # reading it would never end
    assert_refused(digest("sources", "list"), 2, str(key_file), "not a regular file")


def test_a_key_file_that_is_not_text_stops_start_up(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    key_file = tmp_path / "var" / "secret_key"
    key_file.parent.mkdir()
    key_file.write_bytes(b"\xff\xfe" * 40)
    assert_refused(digest("sources", "list"), 2, str(key_file), "cannot be read")


def test_a_fresh_start_keeps_key_and_database_private(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    result = digest("db", "upgrade")
    assert result.returncode == 0, result.stderr
    var = tmp_path / "var"
    key = (var / "secret_key").read_text()
    assert KEY_PATTERN.fullmatch(key.strip()), key  # 32 random bytes, urlsafe base64
    assert mode_of(var / "secret_key") == 0o600
    assert mode_of(var / "digest.db") == 0o600
    assert mode_of(var) & 0o077 == 0
    assert not [p.name for p in var.iterdir() if p.name.startswith(".")]  # no temp file left
    # The key is kept: a second start uses the same one.
    assert digest("sources", "list").returncode == 0
    assert (var / "secret_key").read_text() == key


def test_an_explicit_sqlite_file_is_created_private(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    database = tmp_path / "elsewhere" / "digest.sqlite"
    env.setenv("DIGEST_DATABASE_URL", f"sqlite:///{database}")
    assert digest("db", "upgrade").returncode == 0
    assert mode_of(database) == 0o600


# --- item 19: settings that cannot work stop with their variable's name (status 2) ---------


def test_an_unknown_database_driver_is_a_setting_error(env: pytest.MonkeyPatch) -> None:
    env.setenv("DIGEST_DATABASE_URL", "postgresql+nosuch://postgres@127.0.0.1/x")
    env.setenv("DIGEST_SECRET_KEY", "k" * 32)
    result = digest("sources", "list")
    assert_refused(result, 2, "DIGEST_DATABASE_URL", "nosuch")


def test_a_file_that_is_not_a_database_is_a_setting_error(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("these are not the tables you are looking for\n" * 20)
    env.setenv("DIGEST_DATABASE_URL", f"sqlite:///{text}")
    result = digest("sources", "list")
    assert_refused(result, 2, "DIGEST_DATABASE_URL", str(text), "not an SQLite database")
    assert text.read_text().startswith("these are not")


def test_a_data_dir_that_is_a_file_is_a_setting_error(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    a_file = tmp_path / "var.txt"
    a_file.write_text("x")
    env.setenv("DIGEST_DATA_DIR", str(a_file))
    assert_refused(digest("sources", "list"), 2, "DIGEST_DATA_DIR", "not a folder")
    env.setenv("DIGEST_DATA_DIR", str(a_file / "var"))  # a file on the way to it
    assert_refused(digest("db", "upgrade"), 2, "DIGEST_DATA_DIR")


# --- item 19: faults found on the way in are one line with status 1 --------------------------


def test_an_unreachable_database_is_one_line(env: pytest.MonkeyPatch) -> None:
    env.setenv("DIGEST_DATABASE_URL", "postgresql://postgres:hunter2@127.0.0.1:1/x")
    env.setenv("DIGEST_SECRET_KEY", "k" * 32)
    for args in (("sources", "list"), ("db", "upgrade"), ("subscribers", "list")):
        result = digest(*args)
        assert_refused(result, 1, "cannot connect to the database", "127.0.0.1:1")
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "hunter2" not in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("sources", "list"),
        ("sources", "sync"),
        ("subscribers", "list"),
        ("announce", "list"),
        ("send", "daily", "--dry-run"),
        ("collect",),
    ],
)
def test_a_command_before_db_upgrade_says_to_run_it(
    env: pytest.MonkeyPatch, sources_file: Path, args: tuple[str, ...]
) -> None:
    env.setenv("DIGEST_SOURCES_FILE", str(sources_file))
    result = digest(*args)
    assert_refused(result, 1, "run `digest db upgrade`")
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_postgresql_before_db_upgrade_says_to_run_it(env: pytest.MonkeyPatch, pg_url: str) -> None:
    env.setenv("DIGEST_DATABASE_URL", pg_url)
    env.setenv("DIGEST_SECRET_KEY", "k" * 32)
    assert_refused(digest("subscribers", "list"), 1, "run `digest db upgrade`")
    assert digest("db", "upgrade").returncode == 0
    assert digest("subscribers", "list").returncode == 0


def test_a_migration_that_cannot_run_is_one_line_not_advice_to_run_it(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    database = tmp_path / "other.db"
    with sqlite3.connect(database) as connection:  # someone else's table in the way
        connection.execute("CREATE TABLE sources (id INTEGER PRIMARY KEY)")
    env.setenv("DIGEST_DATABASE_URL", f"sqlite:///{database}")
    result = digest("db", "upgrade")
    assert_refused(result, 1, "cannot bring the database", "sources")
    assert "run `digest db upgrade`" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_a_revision_this_code_does_not_know_is_one_line(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert digest("db", "upgrade").returncode == 0
    with sqlite3.connect(tmp_path / "var" / "digest.db") as connection:
        connection.execute("UPDATE alembic_version SET version_num = 'ffffffff'")
    result = digest("db", "upgrade")
    assert_refused(result, 1, "cannot bring the database up to date", "ffffffff")


def test_a_read_only_or_damaged_database_is_one_line(
    env: pytest.MonkeyPatch, tmp_path: Path, sources_file: Path
) -> None:
    env.setenv("DIGEST_SOURCES_FILE", str(sources_file))
    assert digest("db", "upgrade").returncode == 0
    database = tmp_path / "var" / "digest.db"
    env.setenv("DIGEST_DATABASE_URL", f"sqlite:///file:{database}?mode=ro&uri=true")
    result = digest("sources", "sync")
    assert_refused(result, 1, "refused", "readonly")
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    env.delenv("DIGEST_DATABASE_URL")
    with sqlite3.connect(database) as connection:
        connection.execute("DROP TABLE sources")
    result = digest("sources", "list")
    assert_refused(result, 1, "refused", "no such table")


def test_long_running_processes_will_not_start_before_db_upgrade(
    env: pytest.MonkeyPatch,
) -> None:
    assert_refused(digest("web", "--port", "1"), 1, "run `digest db upgrade`")
    env.setenv("DIGEST_BROKER_URL", REDIS_URL)
    env.setenv("DIGEST_SECRET_KEY", "k" * 32)
    assert_refused(digest("scheduler"), 1, "run `digest db upgrade`")


# --- item 19: a sources file without sources --------------------------------------------------


def test_a_sources_file_without_sources_is_refused_unless_allowed(
    settings: Settings, tmp_path: Path
) -> None:
    from sqlalchemy import select

    from digest.core.db import session_scope
    from digest.core.models import Source

    assert digest("sources", "sync").returncode == 0
    empty = tmp_path / "sources.toml"
    empty.write_text('[topics]\nvold = "Vold i nære relasjoner"\n', encoding="utf-8")
    result = digest("sources", "sync")
    assert_refused(result, 1, str(empty), "no [[source]]", "--allow-empty")
    with session_scope(settings.database_url) as session:
        assert session.scalars(select(Source.enabled)).all() == [True, True]
    allowed = digest("sources", "sync", "--allow-empty")
    assert allowed.returncode == 0, allowed.stderr
    assert "2 disabled" in allowed.stdout
    with session_scope(settings.database_url) as session:
        assert session.scalars(select(Source.enabled)).all() == [False, False]


def test_a_mis_stamped_version_table_is_one_line(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert digest("db", "upgrade").returncode == 0
    with sqlite3.connect(tmp_path / "var" / "digest.db") as connection:
        connection.execute("UPDATE alembic_version SET version_num = '0001'")
    result = digest("db", "upgrade")
    assert_refused(result, 1, "cannot bring the database up to date")
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize("option", ["--until", "--from"])
def test_a_time_at_the_ends_of_the_calendar_is_refused(
    env: pytest.MonkeyPatch, sources_file: Path, option: str
) -> None:
    env.setenv("DIGEST_SOURCES_FILE", str(sources_file))
    assert digest("db", "upgrade").returncode == 0
    value = "9999-12-31T23:59:00+00:00" if option == "--until" else "0001-01-01T00:00"
    result = digest("announce", "add", "--title", "T", option, value)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "between the years 1900 and 2200" in result.stderr
    assert digest("announce", "list").returncode == 0
