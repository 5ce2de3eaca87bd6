"""Reading the topics that `digest sources sync` stored: their labels, and which sources
write about each. Delivery, the web pages and the commands read topics here, not from the
sources file."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.core.models import Source, Topic


def topic_labels(session: Session) -> dict[str, str]:
    """Every stored topic's key and label, in the sources file's order."""
    rows = session.execute(select(Topic.key, Topic.label).order_by(Topic.position, Topic.key))
    return {key: label for key, label in rows}


def topic_sources(session: Session) -> dict[str, list[str]]:
    """The names of the enabled sources that write about each topic, in the order they were
    added; a topic no enabled source covers is absent."""
    names: dict[str, list[str]] = {}
    rows = session.execute(
        select(Source.name, Source.topics).where(Source.enabled.is_(True)).order_by(Source.id)
    )
    for name, topics in rows:
        for key in topics or ():
            names.setdefault(key, []).append(name)
    return names
