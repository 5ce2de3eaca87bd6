"""Signed tokens and email addresses: what is accepted and what is refused."""

from __future__ import annotations

import pytest

from subscribers.addresses import InvalidAddress, normalise_email
from subscribers.tokens import BadToken, TokenData, make_token, read_token

KEY = "a-secret-key-of-sufficient-length"


def test_a_token_reads_back_for_its_purpose_only() -> None:
    token = make_token(KEY, "unsubscribe", 42, "kari@kommune.no")
    assert read_token(KEY, "unsubscribe", token) == TokenData(42, "kari@kommune.no")
    with pytest.raises(BadToken):
        read_token(KEY, "manage", token)
    with pytest.raises(BadToken):
        read_token("another-secret-key-entirely", "unsubscribe", token)


@pytest.mark.parametrize(
    "mangle",
    [lambda t: t[:-2] + "xx", lambda t: "x" + t, lambda t: "", lambda t: t * 20, lambda t: "....."],
)
def test_altered_tokens_are_refused(mangle) -> None:
    token = make_token(KEY, "unsubscribe", 42, "kari@kommune.no")
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
