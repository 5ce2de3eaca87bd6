"""From the web to items: sources, fetching, readers, dates, ingest. Knows nothing of mail.

A pass over one source, in the order it runs: `selection` (which sources are due) ->
`collect` (the unit of work) -> `snapshot` (read the source) -> `gather` (`fetch`, a reader
from `readers`, `follow` for the pages a listing links to) -> `record` (`ingest` decides
new, updated or same; the source's health).

Beside the pass: `sources` loads and syncs the sources file, `overview` reports health,
`discover` suggests how to watch a new site; under `fetch` sit `pinned` (connections to
checked addresses only), `addresses` (which addresses are public), `polite` (robots.txt,
pacing), `codings` (decompression) and `xmlguard`; readers use `html`, `article`,
`entries`, `dates` (Norwegian dates) and `patterns`; `changes` summarises what changed;
`urls` makes canonical URLs. Every error raised on purpose derives from
`errors.WatchError` (the sources file's pydantic validators raise `ValueError`, as
pydantic expects, and are reported as a `SourcesFileError`).

May import `digest.core` and `subscribers`; not `mail`, `delivery`, `web` or `commands`.
"""
