"""Rows written by earlier versions keep what they hold when today's code touches them."""

from __future__ import annotations

from sqlalchemy import delete

from digest.core.db import session_scope
from digest.core.settings import Settings
from subscribers.choices import choices
from subscribers.models import SignupRequest
from subscribers.signups import Confirmation, add_subscriber, confirm, request_confirmation


def test_confirming_keeps_a_free_text_role_of_the_first_version(settings: Settings) -> None:
    # The first version took any role as free text; such a person, still pending, asks for
    # a new confirm link, which carries the choices stored on them.
    with session_scope(settings.database_url) as session:
        person = add_subscriber(session, "rektor@skole.no", choices())
        person.role = "rektor"
        session.execute(delete(SignupRequest))
        nonce = request_confirmation(session, person).nonce
    with session_scope(settings.database_url) as session:
        outcome, confirmed = confirm(session, settings.secret_key, nonce)
        assert outcome is Confirmation.CONFIRMED and confirmed is not None
        assert confirmed.role == "rektor"
