"""`python -m digest` is the `digest` command."""

from digest.commands.main import main

main()
