"""Signed, purpose-bound tokens for the links in mails (unsubscribe, manage preferences).

A token names one subscriber and one purpose; it is signed with the service's secret
key, so a forged or altered token is refused and one purpose's token cannot be used
for another.
"""

from __future__ import annotations

from itsdangerous import BadSignature, URLSafeTimedSerializer

PURPOSES = frozenset({"unsubscribe", "manage"})


class BadToken(ValueError):
    """The token is forged, altered, expired or meant for something else."""


def _serializer(secret_key: str, purpose: str) -> URLSafeTimedSerializer:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown token purpose {purpose!r}")
    return URLSafeTimedSerializer(secret_key, salt=f"digest.{purpose}")


def make_token(secret_key: str, purpose: str, subscriber_id: int, email: str) -> str:
    # The address is bound in too, so a token outlives neither an erased nor a
    # re-used row id.
    return _serializer(secret_key, purpose).dumps({"s": subscriber_id, "e": email})


def read_token(
    secret_key: str, purpose: str, token: str, max_age: int | None = None
) -> tuple[int, str]:
    """Return (subscriber id, email) from a token, or raise BadToken."""
    if not token or len(token) > 1024:
        raise BadToken("malformed token")
    try:
        data = _serializer(secret_key, purpose).loads(token, max_age=max_age)
    except BadSignature:
        raise BadToken("invalid token") from None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("s"), int)
        or not isinstance(data.get("e"), str)
    ):
        raise BadToken("malformed token")
    return data["s"], data["e"]
