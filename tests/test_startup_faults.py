"""Start-up faults through the real `digest` command: one clear line and an exit status, never a
traceback; and the embedded default's secret key and database are kept private."""

from __future__ import annotations

import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

KEY_PATTERN = re.compile(r"[A-Za-z0-9_-]{43,}")


def digest(*args: str) -> subprocess.CompletedProcess[str]:
    """The `digest` command in the test's working folder and DIGEST_* environment."""
    return subprocess.run(
        [sys.executable, "-m", "digest", *args], capture_output=True, text=True, timeout=60
    )


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


def test_an_unreadable_key_file_stops_start_up(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    key_file = tmp_path / "var" / "secret_key"
    key_file.mkdir(parents=True)  # readable by nobody as a file, root included
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
