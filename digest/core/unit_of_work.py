"""The unit of work of a Dramatiq message: one session, opened by a middleware before the
actor runs and committed after it (rolled back when it raises), and the messages the
actor asked to send once that commit is done (enqueue after commit).

Dramatiq's own idiom for what every message shares: the actors stay thin and reach
their session through `UnitOfWork.current()`.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, ParamSpec, cast

import dramatiq
from sqlalchemy.orm import Session

P = ParamSpec("P")


@dataclass(slots=True)
class Unit:
    """The unit of work of one message: its session, and what to do once it is committed."""

    session: Session
    after_commit: list[Callable[[], object]] = field(default_factory=list)

    def send_after_commit(
        self, actor: dramatiq.Actor[P, Any], *args: P.args, **kwargs: P.kwargs
    ) -> None:
        """Enqueue a message once this unit's rows are committed (never if it fails)."""
        self.after_commit.append(partial(actor.send, *args, **kwargs))


class UnitOfWork(dramatiq.Middleware):
    """One session per message, committed when the actor returns and rolled back when it
    raises; then the messages the actor queued with `send_after_commit` are sent.

    The commit is made inside the message (each actor's function is wrapped when it is
    declared), so that a commit that fails fails the message like any other exception:
    nothing it asked for is sent, and Dramatiq retries it as the actor's options say.
    """

    def __init__(self, sessions: Callable[[], Session]) -> None:
        self.sessions = sessions
        self._local = threading.local()  # a worker thread handles one message at a time

    def current(self) -> Unit:
        unit = getattr(self._local, "unit", None)
        if unit is None:
            raise RuntimeError("no unit of work: actors run in a Dramatiq worker")
        return cast(Unit, unit)

    def after_declare_actor(self, broker: dramatiq.Broker, actor: dramatiq.Actor[Any, Any]) -> None:
        actor.fn = self._committing(actor.fn)

    def _committing(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def in_unit(*args: Any, **kwargs: Any) -> Any:
            result = fn(*args, **kwargs)
            unit = getattr(self._local, "unit", None)
            if unit is not None:  # None when the actor is called directly, outside a worker
                cast(Unit, unit).session.commit()
            return result

        return in_unit

    def before_process_message(
        self, broker: dramatiq.Broker, message: dramatiq.MessageProxy
    ) -> None:
        self._local.unit = Unit(self.sessions())

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: dramatiq.MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        unit = self._end()
        if unit is None:
            return
        try:
            if exception is not None:
                unit.session.rollback()  # committed by the actor's wrapper otherwise
        finally:
            unit.session.close()
        if exception is None:
            for then in unit.after_commit:
                then()

    def after_skip_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        unit = self._end()
        if unit is not None:
            unit.session.close()  # rolls back whatever was begun

    def _end(self) -> Unit | None:
        unit = getattr(self._local, "unit", None)
        self._local.unit = None
        return cast(Unit | None, unit)
