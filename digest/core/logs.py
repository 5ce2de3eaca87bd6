"""Log lines as text or as one JSON object a line (`log_format`), carrying the ids of the
run, chunk and subscriber they are about when those are known."""

from __future__ import annotations

import inspect
import json
import logging
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import dramatiq

from digest.core.settings import Settings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# The ids bound on this thread (or task) by `log_context`; a fresh thread starts with none.
_ids: ContextVar[Mapping[str, object]] = ContextVar("log_ids", default=MappingProxyType({}))

# What every LogRecord has; anything else on a record came from `extra=` and is logged too.
_RECORD_FIELDS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def current_ids() -> Mapping[str, object]:
    return _ids.get()


@contextmanager
def log_context(**ids: object) -> Iterator[None]:
    """Every line logged inside carries these ids (next to those bound outside)."""
    token = _ids.set({**_ids.get(), **ids})
    try:
        yield
    finally:
        _ids.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the bound ids, extras."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **current_ids(),
        }
        line.update((k, v) for k, v in vars(record).items() if k not in _RECORD_FIELDS)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure_logging(settings: Settings, level: int = logging.INFO) -> None:
    """Log `level` and up to stderr, unless the root logger has handlers already (the
    dramatiq command's, writing to its log pipe at its own level); as JSON when the
    settings say so, on every root handler."""
    root = logging.getLogger()
    if not root.handlers:
        stderr = logging.StreamHandler(sys.stderr)
        stderr.setFormatter(logging.Formatter(TEXT_FORMAT))
        root.addHandler(stderr)
        root.setLevel(level)
    if settings.log_format == "json":
        for handler in root.handlers:
            handler.setFormatter(JsonFormatter())


# Parameters of an actor that name what its message is about, and the id each is logged as.
_ID_PARAMETERS = {"run_id": "run_id", "source_id": "source_id", "subscriber_ids": "chunk"}


class LogContext(dramatiq.Middleware):
    """Binds, while a message is processed, the actor's name and the ids its arguments
    name: `run_id`, `source_id`, and a chunk of `subscriber_ids` as its first id."""

    def __init__(self) -> None:
        self._tokens = threading.local()
        self._parameters: dict[str, list[str]] = {}

    def _ids_of(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> dict[str, object]:
        ids: dict[str, object] = {"actor": message.actor_name}
        names = self._parameters.get(message.actor_name)
        if names is None:
            names = list(inspect.signature(broker.get_actor(message.actor_name).fn).parameters)
            self._parameters[message.actor_name] = names
        arguments = {**dict(zip(names, message.args, strict=False)), **message.kwargs}
        for parameter, key in _ID_PARAMETERS.items():
            value = arguments.get(parameter)
            if isinstance(value, list):
                value = value[0] if value else None
            if value is not None:
                ids[key] = value
        return ids

    def before_process_message(
        self, broker: dramatiq.Broker, message: dramatiq.MessageProxy
    ) -> None:
        try:
            ids = self._ids_of(broker, message)
        except Exception:  # an unknown actor or odd arguments: the actor's name will do
            ids = {"actor": message.actor_name}
        self._tokens.token = _ids.set(ids)

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: dramatiq.MessageProxy,
        *,
        result: object = None,
        exception: BaseException | None = None,
    ) -> None:
        token = getattr(self._tokens, "token", None)
        if token is not None:
            _ids.reset(token)
            self._tokens.token = None

    after_skip_message = after_process_message
