"""Helpers every `digest` subcommand uses: settings, errors, times, topics, database faults."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import NoReturn
from zoneinfo import ZoneInfo

import click
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, NoSuchModuleError

from digest.core.errors import DigestError
from digest.core.migrate import SchemaState
from digest.core.settings import Settings, get_settings, load_settings

# Set in click's shared context metadata while migrations run: advice to run them is wrong then.
MIGRATING = "digest.migrating"
UPGRADE_ADVICE = {
    SchemaState.EMPTY: "the database has no tables yet: run `digest db upgrade`",
    SchemaState.BEHIND: (
        "the database is older than this version of digest: run `digest db upgrade`"
    ),
}


def current_settings() -> Settings:
    return load_settings()


def parse_at(value: str | None, tz: ZoneInfo) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO time such as 2026-11-26T08:00") from None
    if not 1900 <= moment.year <= 2200:
        # Stored, a time at the ends of the calendar cannot be shown in every zone.
        raise click.BadParameter(f"{value!r} is not a time between the years 1900 and 2200")
    return moment if moment.tzinfo else moment.replace(tzinfo=tz)


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def local(moment: datetime | None, tz: ZoneInfo) -> str:
    if moment is None:
        return "-"
    try:
        return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M")
    except (OverflowError, ValueError):  # a row stored before times were checked
        return moment.isoformat()


def known_topics(settings: Settings, *, asked: bool = True) -> set[str]:
    """The topic keys `digest sources sync` stored, which commands accept. `asked`: the
    command was given topics, so an empty store is worth a warning."""
    from digest.core.db import session_scope
    from digest.core.topics import topic_labels

    with session_scope(settings.database_url) as session:
        keys = set(topic_labels(session))
    if asked and not keys:
        click.echo("warning: no topics are stored yet; `digest sources sync` stores them", err=True)
    return keys


# --- the database ---------------------------------------------------------------------------


@contextmanager
def migrating() -> Iterator[None]:
    """Mark the migrations' run, so that their own failures are not explained as missing ones."""
    meta = click.get_current_context().meta
    meta[MIGRATING] = True
    yield
    # Not reset when the migrations fail: `explained_errors` reads it as they propagate.
    meta[MIGRATING] = False


def require_current_schema(settings: Settings) -> None:
    """For long-running processes: refuse to start on a database that is not migrated."""
    from digest.core.migrate import schema_state

    state = schema_state(settings.database_url)
    if state in UPGRADE_ADVICE:
        fail(UPGRADE_ADVICE[state])


@contextmanager
def explained_errors(ctx: click.Context) -> Iterator[None]:
    """Turn an expected error into one line on stderr and its exit status.

    The one place where the CLI explains errors: any `DigestError` (a database that cannot
    be used, a bad sources file, a refused address ...) and the database driver's own
    faults. Anything else is a bug and keeps its traceback.
    """
    try:
        yield
    except DigestError as exc:
        fail(str(exc), exc.exit_code)
    except NoSuchModuleError as exc:
        fail(f"DIGEST_DATABASE_URL: {exc}")
    except DBAPIError as exc:
        message = _explain(exc, migrating=bool(ctx.meta.get(MIGRATING)))
        if message is None:
            raise
        fail(message)
    except Exception as exc:
        # Imported here: Alembic takes a tenth of a second to import, and most commands
        # never need it.
        from alembic.util.exc import CommandError

        if isinstance(exc, CommandError):  # e.g. a revision this code does not know
            fail(f"cannot bring the database up to date: {exc}")
        if not ctx.meta.get(MIGRATING):
            raise
        # Whatever stops the migrations (a mis-stamped version table, say) is the
        # operator's to look at: one line, with what Alembic or SQLAlchemy said.
        fail(f"cannot bring the database up to date: {type(exc).__name__}: {_first_line(exc)}")


def _explain(error: DBAPIError, migrating: bool) -> str | None:
    """What an operator should hear about a database error, or None when it is a bug of ours
    (a broken constraint or bad data), which keeps its traceback."""
    from digest.core.db import get_engine
    from digest.core.migrate import schema_state

    url = get_settings().database_url
    shown = make_url(url).render_as_string(hide_password=True)
    # Ask the database again: a second failure to connect is the cause, whatever the first was.
    try:
        get_engine(url).connect().close()
    except DBAPIError as again:
        return f"cannot connect to the database {shown}: {_reason(again)}"
    if migrating:
        return f"cannot bring the database {shown} up to date: {_reason(error)}"
    try:
        advice = UPGRADE_ADVICE.get(schema_state(url))
    except Exception:  # the question failed too: the first error speaks
        advice = None
    if advice is not None:
        return advice
    if isinstance(error, IntegrityError | DataError):
        return None
    # Read-only files, missing tables, permissions: the operator's to fix, in one line.
    return f"the database {shown} refused: {_reason(error)}"


def _reason(error: DBAPIError) -> str:
    lines = str(error.orig).strip().splitlines()
    return lines[0] if lines else type(error.orig).__name__


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else ""
