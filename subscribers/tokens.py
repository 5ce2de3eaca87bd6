"""Signed, purpose-bound tokens for the links in mails (confirm, manage, unsubscribe).

A token names one subscriber (id and address) and one purpose; it is signed with the
service's secret key, so a forged or altered token is refused and one purpose's token
cannot be used for another. Confirm tokens also carry a nonce that changes once the link
has been used, and they expire after seven days.
"""

from __future__ import annotations

from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

PURPOSES = frozenset({"unsubscribe", "manage", "confirm"})
CONFIRM_MAX_AGE = 7 * 24 * 3600


class BadToken(ValueError):
    """The token is forged, altered or meant for something else."""


class ExpiredToken(BadToken):
    """The token was genuine but is too old."""


@dataclass(frozen=True, slots=True)
class TokenData:
    subscriber_id: int
    email: str
    nonce: str = ""


def _serializer(secret_key: str, purpose: str) -> URLSafeTimedSerializer:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown token purpose {purpose!r}")
    return URLSafeTimedSerializer(secret_key, salt=f"digest.{purpose}")


def make_token(
    secret_key: str, purpose: str, subscriber_id: int, email: str, nonce: str = ""
) -> str:
    # The address is bound in too, so a token outlives neither an erased nor a
    # re-used row id.
    payload: dict[str, object] = {"s": subscriber_id, "e": email}
    if nonce:
        payload["n"] = nonce
    return _serializer(secret_key, purpose).dumps(payload)


def read_token(secret_key: str, purpose: str, token: str) -> TokenData:
    """The token's content, or BadToken (ExpiredToken for an old confirm link)."""
    if not token or len(token) > 1024:
        raise BadToken("malformed token")
    max_age = CONFIRM_MAX_AGE if purpose == "confirm" else None
    try:
        data = _serializer(secret_key, purpose).loads(token, max_age=max_age)
    except SignatureExpired:
        raise ExpiredToken("the link has expired") from None
    except BadSignature:
        raise BadToken("invalid token") from None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("s"), int)
        or not isinstance(data.get("e"), str)
        or not isinstance(data.get("n", ""), str)
    ):
        raise BadToken("malformed token")
    return TokenData(data["s"], data["e"], data.get("n", ""))
