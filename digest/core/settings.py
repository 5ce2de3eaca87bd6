"""The one Settings object, read from DIGEST_* environment variables and an optional .env.

A bad value stops start-up with a message naming the variable (see `load_settings`).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import sys
import tempfile
from datetime import time
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from subscribers.addresses import InvalidAddress, normalise_email
from subscribers.text import clean_line

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # digest/, above core/

# 32 random bytes in urlsafe base64 are 43 characters; anything shorter was not made by us
# in one piece (a crash between creating the file and writing it leaves it empty).
KEY_FILE_MIN_CHARS = 32
KEY_FILE_MAX_BYTES = 4096
SQLITE_HEADER = b"SQLite format 3\x00"

WEEKDAYS = {
    "monday": 0,
    "mandag": 0,
    "tuesday": 1,
    "tirsdag": 1,
    "wednesday": 2,
    "onsdag": 2,
    "thursday": 3,
    "torsdag": 3,
    "friday": 4,
    "fredag": 4,
    "saturday": 5,
    "lørdag": 5,
    "sunday": 6,
    "søndag": 6,
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DIGEST_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    data_dir: Path = Path("var")
    database_url: str = ""
    broker_url: str = "memory://"
    smtp_url: str = ""
    from_address: str = "veiledervarsel@localhost"
    from_name: str = "Veiledervarsel"
    base_url: str = "http://127.0.0.1:8000"
    secret_key: str = ""
    timezone: str = "Europe/Oslo"
    daily_at: str = "08:00"
    weekly_on: str = "monday"
    immediate_every_minutes: int = Field(15, ge=1, le=1440)
    sources_file: Path = PACKAGE_DIR / "watch" / "sources.toml"
    backfill_days: int = Field(7, ge=0, le=3650)
    fetch_max_bytes: int = Field(5_000_000, ge=1_000, le=100_000_000)
    fetch_timeout_seconds: float = Field(20.0, gt=0, le=300)
    fetch_host_delay_seconds: float = Field(1.0, ge=0, le=60)
    # One source's pass (listing, child sitemaps, article pages) starts no fetch after
    # this; with one fetch deadline on top it stays inside the collect actor's 5 minutes.
    fetch_source_budget_seconds: float = Field(180.0, gt=0, le=3600)
    allow_private_hosts: bool = False
    user_agent_contact: str = ""
    soft_bounce_limit: int = Field(5, ge=1, le=100)
    retention_days: int = Field(365, ge=1, le=3650)
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    # Editors' sign-in: a session ends after this long unused, and in any case after
    # `editor_session_hours`; this many failed sign-ins in the window (per account, and
    # per client) refuse further tries until the window has passed.
    editor_idle_minutes: int = Field(30, ge=1, le=24 * 60)
    editor_session_hours: int = Field(12, ge=1, le=24 * 30)
    sign_in_attempts: int = Field(5, ge=1, le=1000)
    sign_in_window_minutes: int = Field(15, ge=1, le=24 * 60)
    # Delivery (issue 10). A chunk is one message to the workers.
    chunk_size: int = Field(200, ge=1, le=5000)
    # SMTP connections each worker process keeps open, so this many mails in flight at once.
    smtp_connections: int = Field(4, ge=1, le=64)
    smtp_timeout_seconds: float = Field(30.0, gt=0, le=600)
    # Messages per second for all workers together (0: no limit); shared through Redis
    # when Redis is the broker, else per process.
    smtp_rate_per_second: float = Field(0.0, ge=0, le=100_000)
    # A delivery's own temporary failures (a 4xx for its recipient) are tried this many
    # times in all, with exponential backoff and jitter from `retry_backoff_seconds`.
    send_attempts: int = Field(8, ge=1, le=100)
    retry_backoff_seconds: float = Field(30.0, gt=0, le=3600)
    retry_backoff_max_seconds: float = Field(3600.0, gt=0, le=86_400)
    # This many failures in a row against the relay (connections, timeouts, refusals of
    # the whole transaction, the same 4xx for recipient after recipient) pause sending for
    # `relay_pause_seconds`, doubling while it goes on up to `relay_pause_max_seconds`.
    relay_failure_limit: int = Field(5, ge=1, le=1000)
    relay_pause_seconds: float = Field(30.0, gt=0, le=3600)
    relay_pause_max_seconds: float = Field(600.0, gt=0, le=86_400)
    # A `sending` claim older than this was lost with its worker and is taken again.
    stale_claim_seconds: float = Field(120.0, ge=1, le=86_400)
    # How often the scheduler enqueues the recovery sweep.
    sweep_every_seconds: float = Field(60.0, ge=1, le=86_400)
    # A pending delivery handed to the broker this long ago and not taken since is handed
    # over again (its message was lost, say with a broker restarted empty).
    requeue_after_seconds: float = Field(180.0, ge=1, le=86_400)
    # Delivery rows are kept this long (support: «did she get it?»), then deleted.
    delivery_retention_days: int = Field(90, ge=1, le=3650)
    log_format: Literal["text", "json"] = "text"
    # The mails (issue 11): who sends them and where they can be written to, as every
    # mail's footer says (the postal address line is left out while it is empty), and how
    # many changes a digest shows before it links to the whole of it in the archive.
    sender_name: str = Field("Veiledervarsel", min_length=1)
    postal_address: str = ""
    digest_max_items: int = Field(30, ge=1, le=1000)

    @field_validator("data_dir")
    @classmethod
    def _data_dir(cls, value: Path) -> Path:
        if value.exists() and not value.is_dir():
            raise ValueError(f"{value} is not a folder")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        value = value.strip()
        if not value:
            return value
        scheme = value.split("://", 1)[0].lower() if "://" in value else ""
        # Operators write the URLs their hosting gives them; we pick the driver.
        if scheme in ("postgres", "postgresql"):
            value = "postgresql+psycopg://" + value.split("://", 1)[1]
        elif not (scheme.startswith("postgresql+") or scheme == "sqlite"):
            raise ValueError("must be a postgresql://, postgres:// or sqlite:/// URL")
        _check_driver(value)
        return value

    @field_validator("broker_url")
    @classmethod
    def _broker_url(cls, value: str) -> str:
        scheme = urlsplit(value.strip()).scheme.lower()
        if scheme not in ("memory", "redis", "rediss", "amqp", "amqps"):
            raise ValueError("must be memory://, redis://, rediss://, amqp:// or amqps://")
        return value.strip()

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url(cls, value: str) -> str:
        value = value.strip()
        if value:
            parts = urlsplit(value)
            if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
                raise ValueError("must look like smtp://user:pass@host:port or smtps://host")
            try:
                parts.port  # noqa: B018 - raises on a non-numeric port
            except ValueError:
                raise ValueError("has an invalid port") from None
        return value

    @field_validator("from_address")
    @classmethod
    def _from_address(cls, value: str) -> str:
        value = value.strip()
        if value.endswith("@localhost"):
            # email-validator refuses a domain without a dot; the embedded default uses one.
            if not re.fullmatch(r"[A-Za-z0-9._+-]{1,64}@localhost", value):
                raise ValueError("is not a valid address: use letters, digits and . _ + -")
            return value
        try:
            return normalise_email(value)
        except InvalidAddress as exc:
            raise ValueError(f"is not a valid address: {exc.reason}") from None

    @field_validator("from_name", "sender_name", "postal_address")
    @classmethod
    def _one_line(cls, value: str) -> str:
        # The From header and every mail's footer: refuse what our cleaning would change.
        if value != clean_line(value, 200):
            raise ValueError(
                "must be one line of plain text (no line breaks, control or bidi "
                "characters, or encoded words), at most 200 characters"
            )
        return value

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL")
        return value.strip().rstrip("/")

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("daily_at")
    @classmethod
    def _daily_at(cls, value: str) -> str:
        match = re.fullmatch(r"\s*(\d{1,2})[:.](\d{2})\s*", value)
        if not match or int(match[1]) > 23 or int(match[2]) > 59:
            raise ValueError("must be a time of day as HH:MM, e.g. 08:00")
        return f"{int(match[1]):02d}:{match[2]}"

    @field_validator("weekly_on")
    @classmethod
    def _weekly_on(cls, value: str) -> str:
        if value.strip().lower() not in WEEKDAYS:
            raise ValueError("must be a weekday name, e.g. monday")
        return value.strip().lower()

    @field_validator("sources_file")
    @classmethod
    def _sources_file(cls, value: Path) -> Path:
        if not value.is_file():
            raise ValueError(f"no such file: {value}")
        return value

    @model_validator(mode="after")
    def _embedded_defaults(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'digest.db'}"
        _check_sqlite_file(self.database_url)
        if not self.secret_key:
            if not self.is_embedded:
                raise ValueError(
                    "DIGEST_SECRET_KEY is required when the database or broker is not the "
                    "embedded default"
                )
            self.secret_key = _kept_secret(self.data_dir)
        elif len(self.secret_key.strip()) < 16:
            raise ValueError("DIGEST_SECRET_KEY must be at least 16 characters")
        return self

    @property
    def is_embedded(self) -> bool:
        return self.database_url.startswith("sqlite") and self.broker_url.startswith("memory")

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def daily_time(self) -> time:
        hour, minute = self.daily_at.split(":")
        return time(int(hour), int(minute))

    @property
    def weekly_weekday(self) -> int:
        return WEEKDAYS[self.weekly_on]

    @property
    def outbox_dir(self) -> Path:
        return self.data_dir / "outbox"

    @property
    def mail_domain(self) -> str:
        return self.from_address.rsplit("@", 1)[1]


def _check_driver(url: str) -> None:
    """Refuse a URL whose SQLAlchemy dialect or driver is unknown, missing or async."""
    try:
        dialect = make_url(url).get_dialect()
        dialect.import_dbapi()
    except NoSuchModuleError:  # before its base class ArgumentError
        raise ValueError(f"unknown database driver {url.split('://', 1)[0]!r}") from None
    except (ArgumentError, ValueError):
        raise ValueError("is not a valid database URL") from None
    except ImportError as exc:
        raise ValueError(f"the database driver is not installed ({exc})") from None
    if dialect.is_async:
        raise ValueError(f"{dialect.driver!r} is an async driver; use postgresql://")


def _check_sqlite_file(url: str) -> None:
    """An existing file named by a sqlite URL must be an SQLite database (or still empty)."""
    path = sqlite_path(url)
    if path is None or not path.exists():
        return
    if not path.is_file():
        raise ValueError(f"DIGEST_DATABASE_URL: {path} is not a regular file")
    try:
        with path.open("rb") as file:
            header = file.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise ValueError(
            f"DIGEST_DATABASE_URL: cannot read {path}: {exc.strerror or exc}"
        ) from None
    if header and header != SQLITE_HEADER:
        raise ValueError(f"DIGEST_DATABASE_URL: {path} is not an SQLite database")


def sqlite_path(url: str) -> Path | None:
    """The file a sqlite URL names; None for other databases, memory and URI filenames."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return None
    name = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or name in ("", ":memory:"):
        return None
    if name.startswith("file:") or parsed.query.get("uri"):
        return None
    return Path(name)


def _kept_secret(data_dir: Path) -> str:
    """The embedded default's secret: made once, kept under the data folder, never half-written."""
    path = (data_dir / "secret_key").absolute()
    if not path.exists() and not path.is_symlink():
        try:
            data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            _write_new_key(path)
        except OSError as exc:
            raise ValueError(
                f"DIGEST_DATA_DIR: cannot keep a secret key in {data_dir}: {exc.strerror or exc}"
            ) from None
    return _read_key(path)


def _write_new_key(path: Path) -> None:
    # A private temporary file, written and synced, then linked under the final name: the key
    # file either does not exist or holds a whole key. Linking (not renaming) keeps the key of
    # a process that got there first, so two processes starting together agree on one key.
    descriptor, temporary = tempfile.mkstemp(prefix=".secret_key.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_urlsafe(32) + "\n")
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
        except OSError:  # a filesystem without hard links
            os.replace(temporary, path)
        _sync_folder(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def _sync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _read_key(path: Path) -> str:
    if not path.is_file():
        # A FIFO or a device (a link to /dev/zero) would hang or flood the read.
        raise ValueError(
            f"DIGEST_SECRET_KEY is not set, and the key file {path} is not a regular file"
        )
    try:
        with path.open("rb") as file:
            key = file.read(KEY_FILE_MAX_BYTES).decode("utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = (exc.strerror or str(exc)) if isinstance(exc, OSError) else "not text"
        raise ValueError(
            f"DIGEST_SECRET_KEY is not set, and the key file {path} cannot be read: {reason}"
        ) from None
    if len(key) < KEY_FILE_MIN_CHARS:
        raise ValueError(
            f"DIGEST_SECRET_KEY is not set and {path} holds no usable key (empty or shorter "
            f"than {KEY_FILE_MIN_CHARS} characters, perhaps from a crash while it was "
            "written): delete it to have a new key made (links in mails already sent stop "
            "working), or set DIGEST_SECRET_KEY"
        )
    return key


def describe_error(error: ValidationError) -> str:
    lines = ["Invalid settings:"]
    for item in error.errors():
        field = ".".join(str(p) for p in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        # Checks of the whole object name their variables in the message.
        lines.append(f"  DIGEST_{field.upper()}: {message}" if field else f"  {message}")
    return "\n".join(lines)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def load_settings() -> Settings:
    """Settings for a program's start: a bad value prints its variable and exits with 2."""
    try:
        return get_settings()
    except ValidationError as exc:
        print(describe_error(exc), file=sys.stderr)
        raise SystemExit(2) from None
