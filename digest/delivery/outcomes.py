"""Mails the relay accepted, written to a journal on disk before their `sent` is recorded,
so that a mail is never sent again because recording it failed (the database was away,
or the worker died between the relay's «250» and the commit).

Each batch of mails has a journal file of its own under `<data_dir>/outbox-journal`,
locked (flock) while its batch lives. A batch appends each accepted mail, and syncs the
file before each recording; when all are recorded the file goes. A file left behind (the
database stayed away, the worker died) is replayed by the next batch in any process on
this machine, and by the sweep: its outcomes are recorded (idempotently: only where the
row is still pending or sending), then the file is deleted. The files of batches still
running are not replayed, but their mails are never claimed (`journaled`).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, TypeVar, cast

from sqlalchemy import ColumnElement, Table, bindparam, or_, update
from sqlalchemy.orm import Session, sessionmaker

from digest.core.models import Delivery, MailStatus, Notice
from digest.core.settings import Settings
from digest.delivery import carried
from subscribers.models import Subscriber

log = logging.getLogger(__name__)
T = TypeVar("T")

FOLDER = "outbox-journal"
DELIVERIES = "deliveries"
NOTICES = "notices"


@dataclass(frozen=True, slots=True)
class Sent:
    """A mail the relay accepted: what its row records."""

    table: str  # DELIVERIES or NOTICES
    mail_id: int
    subscriber_id: int
    sent_at: datetime
    message_id: str | None = None
    item_count: int = 0

    def line(self) -> bytes:
        fields = {
            "table": self.table,
            "mail_id": self.mail_id,
            "subscriber_id": self.subscriber_id,
            "sent_at": self.sent_at.isoformat(),
            "message_id": self.message_id,
            "item_count": self.item_count,
        }
        return json.dumps(fields).encode() + b"\n"

    @classmethod
    def parse(cls, line: bytes) -> Sent | None:
        try:
            fields = json.loads(line)
            return cls(**(fields | {"sent_at": datetime.fromisoformat(fields["sent_at"])}))
        except (ValueError, TypeError, KeyError):
            return None  # a line cut short when its writer died: never written in full


def folder_of(settings: Settings) -> Path:
    return settings.data_dir / FOLDER


class Journal:
    """One batch's journal file, made on the first accepted mail and locked until closed.

    A journal that cannot be written (a full disk, a read-only data folder) is given up
    with a warning: the outcomes are still kept in memory and recorded, as without one;
    only a worker's death before they are recorded would then send them again."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._file: IO[bytes] | None = None
        self.path: Path | None = None
        self._broken = False

    def append(self, sent: Sent) -> None:
        if self._broken:
            return
        try:
            if self._file is None:
                self._file, self.path = _create_locked(self.folder)
            # Unbuffered: in the OS's file at once, so a worker killed before the next
            # sync loses none of it; sync makes it durable against the machine failing too.
            self._file.write(sent.line())
        except OSError as exc:
            self._give_up(exc)

    def sync(self) -> None:
        """Make what was appended durable: called before its outcomes are recorded."""
        if self._file is None or self._broken:
            return
        try:
            os.fsync(self._file.fileno())
        except OSError as exc:
            self._give_up(exc)

    def _give_up(self, exc: OSError) -> None:
        log.warning("cannot keep the outbox journal in %s: %s", self.folder, exc)
        self._broken = True

    def close(self, recorded: bool) -> None:
        """End the batch's journal: deleted when every outcome in it is recorded, else
        left (unlocked) for the next batch or the sweep to replay."""
        if self._file is None:
            return
        if recorded and self.path is not None:
            with suppress(FileNotFoundError):
                self.path.unlink()
        else:
            self.sync()
        with suppress(OSError):  # what could not be written is lost either way
            self._file.close()
        self._file = None


def _create_locked(folder: Path) -> tuple[IO[bytes], Path]:
    # Made under a name replays do not look at, locked, then renamed: a replay never
    # sees it unlocked while its batch lives.
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    name = f"{uuid.uuid4().hex}.jsonl"
    making = folder / f".{name}"
    # Unbuffered: each line is written as the mail is accepted, so that a batch in
    # another process reading it (`read_journals`) never claims a mail it names, even
    # before the file is synced.
    file = open(making, "xb", buffering=0)  # noqa: SIM115 (open until the batch ends)
    fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    making.rename(folder / name)
    return file, folder / name


@dataclass(slots=True)
class Replay:
    """The journals found: the outcomes of those left behind (to record, then delete the
    files with `done`), and the mails named in those still being written (never claim)."""

    left: list[Sent]
    live: list[Sent]
    _files: list[IO[bytes]]

    def journaled(self, table: str) -> set[int]:
        return {s.mail_id for s in (*self.left, *self.live) if s.table == table}

    def done(self, recorded: bool) -> None:
        """After the transaction that recorded `left`: delete their files if it committed."""
        for file in self._files:
            if recorded:
                with suppress(FileNotFoundError):
                    os.unlink(file.name)
            file.close()
        self._files = []


def read_journals(folder: Path) -> Replay:
    """Every journal under `folder`: those whose batch is gone are locked for this replay."""
    replay = Replay([], [], [])
    if not folder.is_dir():
        return replay
    for path in sorted(folder.glob("[!.]*.jsonl")):
        try:
            file = open(path, "rb")  # noqa: SIM115 (held, locked, until `done`)
        except FileNotFoundError:
            continue  # replayed and deleted meanwhile
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            replay.live.extend(_outcomes(file.read()))
            file.close()
            continue
        replay.left.extend(_outcomes(file.read()))
        replay._files.append(file)
    return replay


@contextmanager
def replaying(folder: Path) -> Iterator[Replay]:
    """The journals under `folder` (`read_journals`), for a transaction inside this block
    to record `left`: their files are deleted if the block ends without an exception."""
    replay = read_journals(folder)
    try:
        yield replay
    except BaseException:
        replay.done(recorded=False)
        raise
    replay.done(recorded=True)


def claim_after_replay(
    sessions: sessionmaker[Session],
    settings: Settings,
    table: str,
    claim: Callable[[Session, set[int]], T],
) -> T:
    """In one transaction, record what journals left behind, then `claim` (given the
    mails of `table` named in journals, never to be claimed)."""
    with replaying(folder_of(settings)) as replay, sessions.begin() as session:
        record_sent(session, replay.left)
        carried.record_replayed(session, [s.mail_id for s in replay.left if s.table == DELIVERIES])
        return claim(session, replay.journaled(table))


def replay_journals(sessions: sessionmaker[Session], settings: Settings) -> int:
    """Record the outcomes that journals left behind (the sweep does, before it looks
    for unfinished deliveries); how many."""
    with replaying(folder_of(settings)) as replay, sessions.begin() as session:
        record_sent(session, replay.left)
        carried.record_replayed(session, [s.mail_id for s in replay.left if s.table == DELIVERIES])
    return len(replay.left)


def _outcomes(data: bytes) -> list[Sent]:
    return [s for line in data.splitlines() if (s := Sent.parse(line)) is not None]


def record_sent(session: Session, outcomes: Iterable[Sent]) -> None:
    """Record mails as sent, in one statement per table (and one for their people, whom
    a mail reached: their soft bounces in a row start from zero). Only rows still pending
    or sending change: recording twice (a replay) changes nothing."""
    by_table: dict[str, list[Sent]] = {}
    for sent in outcomes:
        by_table.setdefault(sent.table, []).append(sent)
    deliveries, notices = by_table.get(DELIVERIES, []), by_table.get(NOTICES, [])
    if deliveries:
        table = cast(Table, Delivery.__table__)
        session.execute(
            update(table)
            .where(table.c.id == bindparam("b_id"), _still_open(table))
            .values(
                status=MailStatus.SENT,
                sent_at=bindparam("b_sent_at"),
                message_id=bindparam("b_message_id"),
                item_count=bindparam("b_item_count"),
                error=None,
                retry_at=None,
            ),
            [_params(s) for s in deliveries],
        )
        _reached(session, {s.subscriber_id for s in deliveries})
    if notices:
        table = cast(Table, Notice.__table__)
        session.execute(
            update(table)
            .where(table.c.id == bindparam("b_id"), _still_open(table))
            .values(status=MailStatus.SENT, sent_at=bindparam("b_sent_at"), error=None),
            [_params(s) for s in notices],
        )


def _still_open(table: Table) -> ColumnElement[bool]:
    # Not IN (...): an executemany takes no expanding parameters.
    return or_(table.c.status == MailStatus.PENDING, table.c.status == MailStatus.SENDING)


def _params(sent: Sent) -> dict[str, object]:
    # Bound names apart from the columns' own, which the SET clause reserves.
    return {
        "b_id": sent.mail_id,
        "b_sent_at": sent.sent_at,
        "b_message_id": sent.message_id,
        "b_item_count": sent.item_count,
    }


def _reached(session: Session, subscriber_ids: Sequence[int] | set[int]) -> None:
    # subscribers.suppression.delivered, for many at once.
    session.execute(
        update(Subscriber)
        .where(Subscriber.id.in_(sorted(subscriber_ids)), Subscriber.soft_failures != 0)
        .values(soft_failures=0)
        .execution_options(synchronize_session=False)
    )
