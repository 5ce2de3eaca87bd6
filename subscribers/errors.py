"""The root of every error the service raises on purpose, and the people's own errors.

`DigestError` lives here, in the lowest package, so that `subscribers` and `digest` share
one root without `subscribers` importing `digest` (as with the shared `Base`, ADR 0004).
Each subclass carries what its caller needs as attributes; nothing matches message text.
"""

from __future__ import annotations


class DigestError(Exception):
    """An error the service expects and explains: bad input, a refused fetch, a failed send.

    The CLI turns one into a line on stderr and an exit status, the web into a page; any
    other exception is a bug and keeps its traceback.
    """

    exit_code: int = 1
