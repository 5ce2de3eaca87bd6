"""Signed tokens and email addresses: what is accepted and what is refused."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from itsdangerous import URLSafeTimedSerializer

from subscribers.addresses import InvalidAddress, normalise_email
from subscribers.choices import choices
from subscribers.errors import DigestError, SubscriberError
from subscribers.models import new_ref
from subscribers.tokens import BadToken, make_token, read_token

KEY = "a-secret-key-of-sufficient-length"
REF = new_ref()


def test_a_token_reads_back_for_its_purpose_only() -> None:
    token = make_token(KEY, "unsubscribe", REF)
    assert read_token(KEY, "unsubscribe", token) == REF
    with pytest.raises(BadToken):
        read_token(KEY, "manage", token)
    with pytest.raises(BadToken):
        read_token("another-secret-key-entirely", "unsubscribe", token)


def test_a_token_names_a_random_reference_and_nothing_else() -> None:
    token = make_token(KEY, "manage", REF)
    part = token.split(".")[0]
    assert json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))) == REF
    for personal in ("kari@kommune.no", "42", "", "x" * 40):
        with pytest.raises(ValueError):
            make_token(KEY, "manage", personal)
    # A genuine signature over anything but a reference (an old token's id and address).
    old = URLSafeTimedSerializer(KEY, salt="digest.manage").dumps({"s": 1, "e": "kari@kommune.no"})
    with pytest.raises(BadToken):
        read_token(KEY, "manage", old)


@pytest.mark.parametrize(
    "mangle",
    [lambda t: t[:-2] + "xx", lambda t: "x" + t, lambda t: "", lambda t: t * 20, lambda t: "....."],
)
def test_altered_tokens_are_refused(mangle) -> None:
    token = make_token(KEY, "unsubscribe", REF)
    with pytest.raises(BadToken):
        read_token(KEY, "unsubscribe", mangle(token))


def test_addresses_are_normalised() -> None:
    assert normalise_email("  Kari.Nordmann@Kommune.NO ") == "kari.nordmann@kommune.no"
    assert normalise_email("ola@tønsberg.kommune.no") == "ola@tønsberg.kommune.no"


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "kari",
        "kari@",
        "@kommune.no",
        "a@b@c.no",
        "kari@kommune.no\r\nBcc: x@y.no",
        "x" * 250 + "@kommune.no",
        "Kari <kari@kommune.no>",
    ],
)
def test_bad_addresses_are_refused_with_a_reason(raw: str) -> None:
    with pytest.raises(InvalidAddress) as info:
        normalise_email(raw)
    assert str(info.value)
    error = info.value
    # What callers read: the form field, the reason, what was given; and the error's root.
    assert (error.field, error.address) == ("email", raw) and error.reason in str(error)
    assert isinstance(error, DigestError)


@pytest.mark.parametrize(
    ("given", "field"),
    [
        ({"name": "x" * 201}, "name"),
        ({"municipality": "Atlantis"}, "municipality"),
        ({"role": "sjef"}, "role"),
        ({"frequency": "hourly"}, "frequency"),
        ({"topics": ["fotball"]}, "topic"),
        ({"language": "de"}, "language"),
    ],
)
def test_a_bad_choice_names_its_form_field(given: dict[str, Any], field: str) -> None:
    with pytest.raises(SubscriberError) as info:
        choices(**given, known_topics={"vold"})
    assert info.value.field == field and isinstance(info.value, DigestError)


def test_a_bad_token_is_a_digest_error() -> None:
    with pytest.raises(DigestError):
        read_token(KEY, "manage", "forged")
