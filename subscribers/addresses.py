"""Cleaning and validating email addresses as people type them."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

from subscribers.errors import DigestError

MAX_LENGTH = 254


class InvalidAddress(DigestError):
    """An address that cannot be mailed: `reason` says why in plain words, `address` is
    what was given, and `field` the form field it belongs to."""

    field = "email"

    def __init__(self, reason: str, address: object = "") -> None:
        super().__init__(f"invalid address {address!r}: {reason}")
        self.reason = reason
        self.address = address


def normalise_email(raw: str) -> str:
    """Return the address in the form we store and compare, or raise InvalidAddress.

    The domain is lower-cased and IDNA-normalised by email-validator; the local part is
    lower-cased too, since no mail system our contacts use treats case as significant
    and duplicates by case are a common roster error.
    """
    if not isinstance(raw, str):
        raise InvalidAddress("the address must be text", raw)
    if any(c in raw for c in "\r\n\x00"):
        raise InvalidAddress("the address contains a line break or control character", raw)
    text = raw.strip()
    if not text:
        raise InvalidAddress("the address is empty", raw)
    if len(text) > MAX_LENGTH:
        raise InvalidAddress(f"the address is longer than {MAX_LENGTH} characters", raw)
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidAddress(str(exc), raw) from None
    return result.normalized.lower()
