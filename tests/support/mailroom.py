"""Delivery services called as the entry points call them: with the session factory and
the transport the settings name."""

from __future__ import annotations

from collections.abc import Sequence

from digest.core.db import get_sessionmaker
from digest.core.settings import Settings
from digest.delivery import digests, notices
from digest.mail.mailer import make_transport


def deliver_chunk(
    settings: Settings, run_id: int, subscriber_ids: Sequence[int]
) -> digests.ChunkReport:
    return digests.deliver_chunk(
        get_sessionmaker(settings.database_url),
        make_transport(settings.smtp_url, settings.outbox_dir),
        settings,
        run_id,
        subscriber_ids,
    )


def send_notices(settings: Settings, notice_ids: Sequence[int]) -> notices.NoticeReport:
    return notices.send_notices(
        get_sessionmaker(settings.database_url),
        make_transport(settings.smtp_url, settings.outbox_dir),
        settings,
        notice_ids,
    )
