"""Alembic, driven from code: `digest db upgrade` and the embedded default's start."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from digest.paths import migrations_dir


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    # '%' is ConfigParser interpolation syntax; URLs may hold percent-escapes.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)
