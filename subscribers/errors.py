"""The root of every error the service raises on purpose, and the people's own errors.

`DigestError` lives here, in the lowest package, so that `subscribers` and `digest` share
one root without `subscribers` importing `digest` (as with the shared `Base`, ADR 0004).
Each subclass carries what its caller needs as attributes; nothing matches message text.
The errors of one module live beside it (`InvalidAddress` in `addresses`, `BadToken` in
`tokens`, `RosterError` in `roster`); those several modules raise live here.
"""

from __future__ import annotations


class DigestError(Exception):
    """An error the service expects and explains: bad input, a refused fetch, a failed send.

    The CLI turns one into a line on stderr and an exit status, the web into a page; any
    other exception is a bug and keeps its traceback.
    """

    exit_code: int = 1


class SubscriberError(DigestError):
    """A request about subscribers that cannot be carried out; the message says why.

    `field` names the choice at fault as the forms name it ("name", "municipality",
    "role", "frequency", "topic", "language", "email"), or is "" when no one field is.
    """

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


class UnknownSubscriber(SubscriberError):
    """No subscriber has this address."""

    def __init__(self, email: str) -> None:
        super().__init__(f"no subscriber {email}", field="email")
        self.email = email
