"""What an operator does to one source from the editors' pages: check it now, pause and
resume it, and say whether its changes wait for review before they are sent.

Each is a change of the source's row in the caller's transaction; whoever asks records
it in the audit log and, for «check now», hands the collection to a worker after the
commit. A paused source is left out of the scheduler's due sources (`selection`) until
it is resumed; the sources file and `digest sources sync` leave the pause alone.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from digest.core.models import Source
from digest.watch.errors import WatchError

# What the audit log keeps of a source before and after an operator's action.
CONTROLLED = ("paused_at", "next_check_at", "review_in_file", "review_override")


class SourceNotFound(WatchError):
    """No source has the id asked for (a stale page, or an id typed by hand)."""

    def __init__(self, source_id: int) -> None:
        super().__init__(f"no source with id {source_id}")
        self.source_id = source_id


class SourceRemoved(WatchError):
    """The source is no longer in the sources file (disabled by a sync): nothing to collect."""

    def __init__(self, key: str) -> None:
        super().__init__(f"source {key!r} is no longer in the sources file")
        self.key = key


def find_source(session: Session, source_id: int) -> Source:
    source = session.get(Source, source_id)
    if source is None:
        raise SourceNotFound(source_id)
    return source


def check_now(source: Source, now: datetime) -> None:
    """Make the source due now, so that the scheduler's next round collects it even if the
    message the caller sends after its commit is lost. A paused source is collected once
    by that message only (the scheduler leaves it alone); a removed one not at all."""
    if not source.enabled:
        raise SourceRemoved(source.key)
    source.next_check_at = now


def pause(source: Source, now: datetime) -> bool:
    """Stop collecting the source until it is resumed; False if it was paused already."""
    if source.paused_at is not None:
        return False
    source.paused_at = now
    return True


def resume(source: Source) -> bool:
    """Collect the source again, from its next check on (which may be due already);
    False if it was not paused."""
    if source.paused_at is None:
        return False
    source.paused_at = None
    return True


def set_review(source: Source, override: bool | None) -> bool:
    """«Review before sending» set here (True or False), or as the sources file says
    (None). Changes detected from now on follow it. False if nothing changed."""
    if source.review_override is override:
        return False
    source.review_override = override
    return True
