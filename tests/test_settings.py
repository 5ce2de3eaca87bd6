"""Settings: defaults, URL forms operators write, and bad values that stop start-up."""

from __future__ import annotations

import pytest

from digest.core.settings import get_settings
from tests.support import command


def test_embedded_defaults_keep_a_generated_secret(env: pytest.MonkeyPatch, tmp_path) -> None:
    settings = get_settings()
    assert settings.is_embedded
    assert settings.database_url.startswith("sqlite:///")
    assert settings.broker_url == "memory://"
    assert len(settings.secret_key) >= 32
    get_settings.cache_clear()
    assert get_settings().secret_key == settings.secret_key  # kept under var/
    assert (tmp_path / "var" / "secret_key").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("url", ["postgres://u:p@db:5432/x", "postgresql://u:p@db/x"])
def test_postgres_urls_get_our_driver(env: pytest.MonkeyPatch, url: str) -> None:
    env.setenv("DIGEST_DATABASE_URL", url)
    env.setenv("DIGEST_SECRET_KEY", "x" * 32)
    assert get_settings().database_url.startswith("postgresql+psycopg://u:p@db")


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("DIGEST_DAILY_AT", "25:00", "DIGEST_DAILY_AT: must be a time of day"),
        ("DIGEST_WEEKLY_ON", "someday", "DIGEST_WEEKLY_ON: must be a weekday name"),
        ("DIGEST_TIMEZONE", "Europe/Atlantis", "DIGEST_TIMEZONE: unknown time zone"),
        ("DIGEST_BROKER_URL", "kafka://x", "DIGEST_BROKER_URL: must be memory://"),
        ("DIGEST_SMTP_URL", "http://mail", "DIGEST_SMTP_URL: must look like smtp://"),
        ("DIGEST_IMMEDIATE_EVERY_MINUTES", "0", "DIGEST_IMMEDIATE_EVERY_MINUTES"),
        ("DIGEST_DATABASE_URL", "mysql://x", "DIGEST_DATABASE_URL: must be a postgresql://"),
        ("DIGEST_FROM_ADDRESS", "not-an-address", "DIGEST_FROM_ADDRESS: is not a valid address"),
        ("DIGEST_FROM_ADDRESS", "x@localhost\r\nBcc: e@evil.example", "DIGEST_FROM_ADDRESS"),
        ("DIGEST_FROM_ADDRESS", "a@localhost>, e@evil.example", "DIGEST_FROM_ADDRESS"),
        ("DIGEST_FROM_ADDRESS", "a b@localhost", "DIGEST_FROM_ADDRESS"),
        ("DIGEST_SOURCES_FILE", "/nowhere.toml", "DIGEST_SOURCES_FILE: no such file"),
    ],
)
def test_bad_setting_stops_with_its_name(
    env: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    env.setenv(name, value)
    result = command.digest("sources", "list")
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_secret_key_required_outside_embedded_default(env: pytest.MonkeyPatch) -> None:
    env.setenv("DIGEST_BROKER_URL", "redis://127.0.0.1:6379/0")
    result = command.digest("db", "upgrade")
    assert result.returncode == 2
    assert "DIGEST_SECRET_KEY is required" in result.stderr
