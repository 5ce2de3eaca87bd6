"""The database engine and sessions: one engine per URL per process, sessions per unit of work."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

from digest.core.errors import DigestError
from digest.core.settings import sqlite_path


class DatabaseUnavailable(DigestError):
    """The database cannot be opened at all; the message says why, for an operator."""


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    # WAL lets the web app read while a worker writes; foreign keys are off by default.
    cursor.execute("PRAGMA journal_mode=WAL")
    # In WAL mode NORMAL is crash-safe for the database; it only skips an fsync per commit.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _create_private_file(url: str) -> None:
    """Create a new SQLite file readable by its owner only (SQLite would make it 0644).

    SQLite gives the -wal and -shm files it adds later the database file's permissions.
    """
    path = sqlite_path(url)
    if path is None:
        return
    if path.exists():
        return
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as exc:
        if path.is_file():  # another process made it first, which is fine
            return
        reason = exc.strerror or str(exc)
        if isinstance(exc, FileExistsError | NotADirectoryError):
            reason = f"{exc.filename} is not a folder"
        raise DatabaseUnavailable(f"cannot create the database file {path}: {reason}") from None


@lru_cache(maxsize=4)
def get_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        _create_private_file(url)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # A database that does not answer fails a connect in seconds, not the OS's minutes:
    # a worker then retries the message, and a health check answers in time.
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=5,
        connect_args={"connect_timeout": 5} if url.startswith("postgresql") else {},
    )


def get_sessionmaker(url: str) -> sessionmaker[Session]:
    """The session factory of `url`. An entry point opens its unit of work with it
    (`with sessions.begin() as session:` commits, or rolls back on an error), and hands
    it to the one service that needs several short transactions (`delivery.sending`)."""
    return sessionmaker(get_engine(url), expire_on_commit=False)


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    session = get_sessionmaker(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def check_database(url: str) -> str | None:
    """None when the database answers a query, else the reason it does not (for health)."""
    try:
        with get_engine(url).connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:  # any failure is the answer to "does it answer?"
        return f"{type(exc).__name__}: {exc}"
    return None
