"""The signed links a mail carries for its subscriber: unsubscribe, manage, confirm."""

from __future__ import annotations

from digest.render import MailLinks
from digest.settings import Settings
from subscribers.models import Subscriber
from subscribers.tokens import make_token


def links_for(settings: Settings, subscriber: Subscriber) -> MailLinks:
    unsubscribe = make_token(settings.secret_key, "unsubscribe", subscriber.id, subscriber.email)
    manage = make_token(settings.secret_key, "manage", subscriber.id, subscriber.email)
    return MailLinks(
        unsubscribe=f"{settings.base_url}/avmelding/{unsubscribe}",
        manage=f"{settings.base_url}/innstillinger/{manage}",
    )


def confirm_url(settings: Settings, subscriber: Subscriber) -> str:
    token = make_token(
        settings.secret_key, "confirm", subscriber.id, subscriber.email, subscriber.confirm_nonce
    )
    return f"{settings.base_url}/bekreft/{token}"
