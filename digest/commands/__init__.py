"""The `digest` command line, one module per group of subcommands (`main` gathers them).

An entry point: opens the settings and the unit of work, calls services of `watch`,
`delivery` and `subscribers`, and turns their errors into messages and exit statuses.
"""
