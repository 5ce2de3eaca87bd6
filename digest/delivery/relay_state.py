"""The relay as the workers last found it, kept in the one `relay_status` row so that
/healthz and the metrics of any process can tell: failures in a row, the pause of
sending while it refuses everyone, the last error, and the pauses since the service
began. Each chunk writes its process's view of the relay (the pool's breaker) as it ends."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from digest.core.models import RelayStatus
from digest.delivery.claims import dialect_insert

ROW_ID = 1
# The pauses of each breaker (by id) already added to the row's count.
_counted: dict[int, int] = {}


def save(session: Session, breaker: Any, now: datetime) -> None:
    """Upsert the relay_status row from `breaker` (what the pool's breaker knows:
    paused_until, failures_in_row, last_error, pauses; missing ones as none)."""
    pauses = int(getattr(breaker, "pauses", 0) or 0)
    new_pauses = max(pauses - _counted.get(id(breaker), 0), 0)
    values = {
        "paused_until": getattr(breaker, "paused_until", None),
        "failures_in_row": int(getattr(breaker, "failures_in_row", 0) or 0),
        "last_error": getattr(breaker, "last_error", None),
        "updated_at": now,
    }
    insert = dialect_insert(session, RelayStatus).values(id=ROW_ID, pauses=new_pauses, **values)
    session.execute(
        insert.on_conflict_do_update(
            index_elements=[RelayStatus.id],
            set_={**values, "pauses": RelayStatus.pauses + new_pauses},
        )
    )
    _counted[id(breaker)] = pauses


def load(session: Session) -> RelayStatus | None:
    return session.get(RelayStatus, ROW_ID)
