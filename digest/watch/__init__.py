"""From the web to items: sources, fetching, readers, dates, ingest. Knows nothing of mail.

May import `digest.core` and `subscribers`; not `mail`, `delivery`, `web` or `commands`.
"""
