"""What every mail of the service carries besides its content: our sender, the list
headers with the one-click unsubscribe link, and a Message-ID derived from what the mail is."""

from __future__ import annotations

from datetime import datetime

from digest import SERVICE_NAME
from digest.core.settings import Settings
from digest.mail.mailer import Envelope


def envelope(
    settings: Settings,
    *,
    to_address: str,
    to_name: str,
    message_id: str,
    unsubscribe_url: str,
    date: datetime,
) -> Envelope:
    """The envelope of one of our mails to one person (digests and notices alike)."""
    return Envelope(
        from_address=settings.from_address,
        from_name=settings.from_name,
        to_address=to_address,
        to_name=to_name,
        message_id=message_id,
        list_id=f"{SERVICE_NAME} <digest.{settings.mail_domain}>",
        unsubscribe_url=unsubscribe_url,
        date=date,
    )


def digest_message_id(settings: Settings, run_id: int, subscriber_id: int) -> str:
    # Derived, not random: a resend after a crash carries the same Message-ID.
    return f"digest-run{run_id}-sub{subscriber_id}@{settings.mail_domain}"


def notice_message_id(settings: Settings, notice_id: int) -> str:
    return f"notice{notice_id}@{settings.mail_domain}"
