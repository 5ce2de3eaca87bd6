"""Helpers every `digest` subcommand uses: settings, errors, times, topics."""

from __future__ import annotations

import sys
from datetime import datetime
from zoneinfo import ZoneInfo

import click

from digest.settings import Settings, load_settings


def current_settings() -> Settings:
    return load_settings()


def parse_at(value: str | None, tz: ZoneInfo) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO time such as 2026-11-26T08:00") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=tz)


def fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def local(moment: datetime | None, tz: ZoneInfo) -> str:
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M") if moment else "-"


def known_topics(settings: Settings) -> set[str]:
    from digest.watch.sources import SourcesFileError, load_sources

    try:
        return set(load_sources(settings.sources_file).topics)
    except SourcesFileError as exc:
        fail(str(exc))
        raise  # unreachable; keeps type checkers content
