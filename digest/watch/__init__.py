"""From the web to items: sources, fetching, readers, cleaning and ingest. Knows nothing of mail."""
