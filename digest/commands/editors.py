"""`digest editors …`: accounts for the editors' pages, from the shell.

Passwords are read from a prompt (hidden, asked twice) or, piped, from the first line of
stdin; never from an argument, which would sit in the shell's history and `ps`.
"""

from __future__ import annotations

import sys

import click

from digest.commands.common import current_settings, local
from digest.core.models import EditorRole


def _password() -> str:
    if sys.stdin.isatty():
        return str(click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True))
    return sys.stdin.readline().rstrip("\r\n")


@click.group()
def editors() -> None:
    """Editors and admins of the web pages and the JSON API."""


@editors.command("add")
@click.argument("email")
@click.option(
    "--role",
    type=click.Choice([r.value for r in EditorRole]),
    default=EditorRole.EDITOR.value,
    show_default=True,
)
@click.option("--name", default="")
def editors_add(email: str, role: str, name: str) -> None:
    """Add an editor; the password comes from a prompt, or stdin when piped."""
    from digest.core.db import session_scope
    from digest.editors import accounts, audit

    settings = current_settings()
    password = _password()
    with session_scope(settings.database_url) as session:
        editor = accounts.add_editor(session, email, password, EditorRole(role), name)
        audit.record(
            session,
            None,
            "editor_add",
            "editor",
            editor.id,
            after={"email": editor.email, "role": editor.role, "name": editor.name},
        )
        click.echo(f"added {editor.email} ({editor.role})")


@editors.command("list")
def editors_list() -> None:
    """List editors: address, role, state, last sign-in."""
    from digest.core.db import session_scope
    from digest.editors import accounts

    settings = current_settings()
    with session_scope(settings.database_url) as session:
        rows = accounts.list_editors(session)
        for e in rows:
            state = "disabled" if e.disabled_at else "active"
            click.echo(
                f"{e.email:40} {e.role:7} {state:9} "
                f"last sign-in {local(e.last_sign_in_at, settings.tz)}  {e.name}"
            )
        click.echo(f"{len(rows)} editor(s)")


@editors.command("disable")
@click.argument("email")
def editors_disable(email: str) -> None:
    """Disable an editor: their sessions and API tokens stop working at once."""
    from digest.core.db import session_scope
    from digest.editors import accounts, audit

    settings = current_settings()
    with session_scope(settings.database_url) as session:
        editor = accounts.get(session, email)
        accounts.disable(session, editor)
        audit.record(session, None, "editor_disable", "editor", editor.id)
        click.echo(f"disabled {editor.email}")


@editors.command("reset-password")
@click.argument("email")
def editors_reset_password(email: str) -> None:
    """Set a new password (prompt or stdin); the editor's sessions end."""
    from digest.core.db import session_scope
    from digest.editors import accounts, audit

    settings = current_settings()
    password = _password()
    with session_scope(settings.database_url) as session:
        editor = accounts.get(session, email)
        accounts.set_password(session, editor, password)
        audit.record(session, None, "editor_reset_password", "editor", editor.id)
        click.echo(f"new password set for {editor.email}")


@editors.command("token")
@click.argument("email")
@click.option("--name", default="", help="What the token is for (a CMS, a script).")
def editors_token(email: str, name: str) -> None:
    """Make an API token for EMAIL and print it, once: it is stored only hashed."""
    from digest.core.db import session_scope
    from digest.editors import accounts, audit, tokens

    settings = current_settings()
    with session_scope(settings.database_url) as session:
        editor = accounts.get(session, email)
        if editor.disabled_at is not None:
            raise accounts.AccountError(f"{editor.email} is disabled", "email")
        made = tokens.make_token(session, editor, name)
        audit.record(
            session,
            None,
            "api_token_create",
            "api_token",
            made.token.id,
            after={"editor": editor.email, "name": made.token.name, "prefix": made.token.prefix},
        )
        click.echo(made.secret)
