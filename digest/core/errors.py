"""The error tree of `digest`: every error raised on purpose derives from `DigestError`.

The root is shared with `subscribers` (see `subscribers.errors`); the typed subclasses of
each room live beside the code that raises them and carry what callers need (a form
field, an HTTP status, a roster line) as attributes.
"""

from __future__ import annotations

from subscribers.errors import DigestError

__all__ = ["DigestError"]
