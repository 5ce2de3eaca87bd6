"""CSRF tokens bound to a per-client secret: the cookie holds a random secret, the form
field an HMAC of it under the service key, so a cookie and field made up together fail."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

_SECRET_SHAPE = re.compile(r"[A-Za-z0-9_-]{32}")


def cookie_name(base_url: str) -> str:
    # `__Host-` makes browsers refuse the cookie unless Secure, Path=/ and host-only, so a
    # sibling subdomain cannot plant its own secret. It needs HTTPS, so only then.
    return "__Host-csrf" if base_url.startswith("https://") else "csrf"


def new_secret() -> str:
    return secrets.token_urlsafe(24)  # 32 characters


def is_secret(value: str) -> bool:
    return _SECRET_SHAPE.fullmatch(value) is not None


def field_for(key: str, secret: str) -> str:
    """The form field that goes with the cookie `secret`."""
    mac = hmac.new(key.encode(), b"csrf\x00" + secret.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def is_valid(key: str, secret: str, sent: str) -> bool:
    """Does the posted field belong to this client's cookie? (Constant-time compare.)"""
    if not is_secret(secret):
        return False
    return hmac.compare_digest(field_for(key, secret).encode(), sent.encode("utf-8", "replace"))
