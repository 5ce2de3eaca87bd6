"""The `digest` command group; each subcommand group lives in its own module beside this one."""

from __future__ import annotations

import click

from digest.commands import announce, database, editors, messages, send, serve, sources
from digest.commands.common import explained_errors
from digest.commands.subscribers import subscribers


class DigestGroup(click.Group):
    """The `digest` command group: an expected error is one line and a status, not a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        with explained_errors(ctx):
            return super().invoke(ctx)


@click.group(cls=DigestGroup, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Veiledervarsel: watches guidance sites and mails digests of what changed."""


main.add_command(serve.run)
main.add_command(serve.web)
main.add_command(serve.scheduler)
main.add_command(database.db)
main.add_command(sources.sources)
main.add_command(sources.collect)
main.add_command(send.send)
main.add_command(announce.announce)
main.add_command(subscribers)
main.add_command(editors.editors)
main.add_command(messages.messages)

if __name__ == "__main__":
    main()
