"""From the web to items: sources, fetching, readers, dates, ingest. Knows nothing of mail.

A pass over one source, in the order it runs: `selection` (which sources are due) ->
`collect` (the unit of work) -> `snapshot` (read the source) -> `gather` (`fetch`, a reader
from `readers`, `follow` for the pages a listing links to) -> `record` (`ingest` decides
new, updated or same; the source's health). `sources` loads the sources file; `urls`
makes canonical URLs; every error raised on purpose derives from `errors.WatchError`.

May import `digest.core` and `subscribers`; not `mail`, `delivery`, `web` or `commands`.
"""
