"""The root of the watch room's errors: what goes wrong between a site and its items.

Each typed subclass lives beside the code that raises it (`FetchError` in `fetch`,
`ReadError` in `entries`, `BadLink` in `urls` ...) and carries what its caller needs as
attributes; nothing matches on message text.
"""

from __future__ import annotations

from digest.core.errors import DigestError


class WatchError(DigestError):
    """Something expected went wrong while watching a source; the message says what."""
