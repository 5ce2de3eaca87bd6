"""Signed, purpose-bound, opaque tokens for the links in mails (confirm, manage, unsubscribe).

A token names one random value and nothing else: a subscriber's public reference (`ref`)
for manage and unsubscribe links, a sign-up request's nonce for confirm links. No address
or row id can be read from it, so links in access logs and proxies say nothing about
anyone. It is signed with the service's secret key under a salt per purpose, so a forged
or altered token is refused and one purpose's token cannot be used for another. Confirm
tokens expire after seven days.
"""

from __future__ import annotations

import re
from functools import lru_cache

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from subscribers.errors import DigestError

PURPOSES = frozenset({"unsubscribe", "manage", "confirm"})
CONFIRM_MAX_AGE = 7 * 24 * 3600
# What `secrets.token_urlsafe` makes: the only values a token may name.
_RANDOM_VALUE = re.compile(r"[A-Za-z0-9_-]{16,32}")


class BadToken(DigestError):
    """The token is forged, altered or meant for something else, or names nobody."""


class ExpiredToken(BadToken):
    """The token was genuine but is too old."""


# A digest run signs two links per mail: a serializer (key derivation and all) is made
# once per key and purpose, not per link.
@lru_cache(maxsize=16)
def _serializer(secret_key: str, purpose: str) -> URLSafeTimedSerializer:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown token purpose {purpose!r}")
    return URLSafeTimedSerializer(secret_key, salt=f"digest.{purpose}")


def make_token(secret_key: str, purpose: str, value: str) -> str:
    """A token for `value`: a subscriber's `ref`, or a sign-up request's nonce for "confirm"."""
    if not _RANDOM_VALUE.fullmatch(value):
        # Refusing anything else keeps an address or an id from ever landing in a link.
        raise ValueError("a token names a random reference, nothing else")
    return _serializer(secret_key, purpose).dumps(value)


def read_token(secret_key: str, purpose: str, token: str) -> str:
    """The value the token names, or BadToken (ExpiredToken for an old confirm link)."""
    if not token or len(token) > 512:
        raise BadToken("malformed token")
    max_age = CONFIRM_MAX_AGE if purpose == "confirm" else None
    try:
        value = _serializer(secret_key, purpose).loads(token, max_age=max_age)
    except SignatureExpired:
        raise ExpiredToken("the link has expired") from None
    except BadSignature:
        raise BadToken("invalid token") from None
    if not isinstance(value, str) or not _RANDOM_VALUE.fullmatch(value):
        raise BadToken("malformed token")
    return value


def read_legacy_token(secret_key: str, purpose: str, token: str) -> tuple[int, str]:
    """(subscriber id, address) from a manage or unsubscribe link made before links became
    opaque, or BadToken. Mails already in inboxes carry such links; honouring them keeps
    leaving one click away. They name an id and an address, which the caller must check
    against the row; new links are never made in this form.
    """
    if purpose not in ("manage", "unsubscribe") or not token or len(token) > 1024:
        raise BadToken("not a link of the earlier kind")
    try:
        data = _serializer(secret_key, purpose).loads(token)
    except BadSignature:
        raise BadToken("invalid token") from None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("s"), int)
        or not isinstance(data.get("e"), str)
    ):
        raise BadToken("malformed token")
    return data["s"], data["e"]
