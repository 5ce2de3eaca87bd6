"""Alembic, driven from code: `digest db upgrade`, the embedded default's start, and the check
that tells an operator to run it.

Alembic is imported inside the functions: it takes a tenth of a second to import, and every
command imports `SchemaState` (through `digest.commands.common`) while few need Alembic.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from digest.core.db import get_engine
from digest.core.paths import migrations_dir

if TYPE_CHECKING:
    from alembic.config import Config


class SchemaState(StrEnum):
    """Where a database stands against this code's migrations."""

    EMPTY = "empty"  # no tables yet
    BEHIND = "behind"  # older than this code: `digest db upgrade` brings it up
    CURRENT = "current"
    AHEAD = "ahead"  # a revision this code does not know: newer code migrated it


def alembic_config(database_url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    # '%' is ConfigParser interpolation syntax; URLs may hold percent-escapes.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(database_url), revision)


def schema_state(database_url: str) -> SchemaState:
    """Where the database stands against this code's migrations.

    `ahead` is a revision this code does not know: newer code migrated it, so leave it be.
    """
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config(database_url))
    with get_engine(database_url).connect() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
    if not current:
        return SchemaState.EMPTY
    if current == set(script.get_heads()):
        return SchemaState.CURRENT
    known = {revision.revision for revision in script.walk_revisions()}
    return SchemaState.BEHIND if current <= known else SchemaState.AHEAD
