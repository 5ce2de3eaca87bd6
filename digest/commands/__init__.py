"""The `digest` command's subcommand groups that outgrew cli.py."""
