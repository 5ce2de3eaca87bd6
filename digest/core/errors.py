"""The error tree of `digest`: every error raised on purpose derives from `DigestError`.

The root is shared with `subscribers` (see `subscribers.errors`); the typed subclasses of
each room live beside the code that raises them and carry what callers need (a form
field, an HTTP status, a roster line) as attributes.
"""

from __future__ import annotations

from subscribers.errors import DigestError

__all__ = ["DigestError", "SettingError"]


class SettingError(DigestError):
    """A setting that cannot be used; start-up stops with status 2 and names the variable."""

    exit_code = 2

    def __init__(self, variable: str, reason: str) -> None:
        super().__init__(f"{variable}: {reason}")
        self.variable = variable
        self.reason = reason
