"""The relay as the workers last found it, kept in the one `relay_status` row so that
/healthz and the metrics of any process can tell: failures in a row, the pause of
sending while it refuses everyone, the last error, and the pauses since the service
began. Each chunk writes its process's view of the relay (the pool's breaker) as it ends."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from digest.core.models import RelayStatus
from digest.delivery.claims import dialect_insert
from digest.delivery.sending import Breaker

ROW_ID = 1
# The pauses of each breaker (by id) already added to the row's count.
_counted: dict[int, int] = {}


def save(session: Session, breaker: Breaker, now: datetime) -> None:
    """Upsert the relay_status row from what `breaker` (the pool's) knows; the pauses it
    counted since it last saved are added to the row's."""
    new_pauses = max(breaker.pauses - _counted.get(id(breaker), 0), 0)
    values = {
        "paused_until": breaker.paused_until,
        "failures_in_row": breaker.failures_in_row,
        "last_error": breaker.last_error,
        "updated_at": now,
    }
    insert = dialect_insert(session, RelayStatus).values(id=ROW_ID, pauses=new_pauses, **values)
    session.execute(
        insert.on_conflict_do_update(
            index_elements=[RelayStatus.id],
            set_={**values, "pauses": RelayStatus.pauses + new_pauses},
        )
    )
    _counted[id(breaker)] = breaker.pauses


def load(session: Session) -> RelayStatus | None:
    return session.get(RelayStatus, ROW_ID)
