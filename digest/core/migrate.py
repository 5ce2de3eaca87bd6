"""Alembic, driven from code: `digest db upgrade`, the embedded default's start, and the check
that tells an operator to run it."""

from __future__ import annotations

from typing import Literal

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from digest.core.db import get_engine
from digest.core.paths import migrations_dir

SchemaState = Literal["empty", "behind", "current", "ahead"]


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    # '%' is ConfigParser interpolation syntax; URLs may hold percent-escapes.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def schema_state(database_url: str) -> SchemaState:
    """Where the database stands against this code's migrations.

    `ahead` is a revision this code does not know: newer code migrated it, so leave it be.
    """
    script = ScriptDirectory.from_config(alembic_config(database_url))
    with get_engine(database_url).connect() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
    if not current:
        return "empty"
    if current == set(script.get_heads()):
        return "current"
    known = {revision.revision for revision in script.walk_revisions()}
    return "behind" if current <= known else "ahead"
