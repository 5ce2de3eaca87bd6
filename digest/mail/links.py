"""The signed links a mail carries: unsubscribe and manage for a subscriber, confirm for a
sign-up request. Each names only a random reference (see `subscribers.tokens`)."""

from __future__ import annotations

from digest.core.settings import Settings
from digest.mail.render import MailLinks
from subscribers.models import SignupRequest, Subscriber
from subscribers.tokens import make_token


def links_for(settings: Settings, subscriber: Subscriber) -> MailLinks:
    unsubscribe = make_token(settings.secret_key, "unsubscribe", subscriber.ref)
    manage = make_token(settings.secret_key, "manage", subscriber.ref)
    return MailLinks(
        unsubscribe=f"{settings.base_url}/avmelding/{unsubscribe}",
        manage=f"{settings.base_url}/innstillinger/{manage}",
    )


def confirm_url(settings: Settings, request: SignupRequest) -> str:
    token = make_token(settings.secret_key, "confirm", request.nonce)
    return f"{settings.base_url}/bekreft/{token}"
