"""`digest db …`: the database schema."""

from __future__ import annotations

import click

from digest.commands.common import current_settings, migrating


@click.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration."""
    from digest.core.migrate import upgrade

    settings = current_settings()
    with migrating():
        upgrade(settings.database_url)
    click.echo("database is up to date")
