"""The roster of municipal contacts as CSV: importing it with a report per line, exporting it.

A roster is read whole first; a file that is not CSV at all (a broken quote, no email
column) is refused with its line number and nothing is written. Then each row is checked
on its own: good rows are imported even when others are refused, and a refused row
writes nothing. The report names the line a record starts on and shows values escaped.

The file is made for spreadsheets, so a cell that a spreadsheet would run as a formula
(one that begins with =, +, -, @, tab or CR) is written with a leading single quote (the
OWASP rule), and reading a roster takes that quote off again.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from subscribers.addresses import InvalidAddress, normalise_email
from subscribers.models import (
    Channel,
    ConsentEvent,
    SignupRequest,
    Status,
    Subscriber,
    Suppression,
)
from subscribers.service import (
    Choices,
    SubscriberError,
    address_hash,
    apply_choices,
    choices,
    new_subscriber,
    request_row,
    stored_choices,
)
from subscribers.text import clean_line

COLUMNS = ("email", "name", "municipality", "role", "frequency", "topics", "language")
ALIASES = {
    "e-post": "email",
    "epost": "email",
    "e-postadresse": "email",
    "mail": "email",
    "navn": "name",
    "kommune": "municipality",
    "kommunenummer": "municipality",
    "rolle": "role",
    "frekvens": "frequency",
    "hyppighet": "frequency",
    "temaer": "topics",
    "tema": "topics",
    "språk": "language",
    "sprak": "language",
}
MAX_ROWS = 100_000
_TOPIC_SEPARATORS = re.compile(r"[\s|,;/]+")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class RosterError(ValueError):
    """The file cannot be read as a roster; nothing was imported."""


def spreadsheet_safe(value: str) -> str:
    """`value` as a cell no spreadsheet runs as a formula: quoted when it would be one."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def _unquote(value: str) -> str:
    """A cell as `spreadsheet_safe` wrote it, back to its value."""
    return value[1:] if value.startswith("'") and value[1:].startswith(FORMULA_STARTS) else value


def escaped(text: str) -> str:
    """`text` with control, line-break and invisible characters written as escapes
    (as Python's repr writes them), so that it prints as what it is, on one line."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def shown(value: str) -> str:
    """A value from a roster as the report prints it."""
    return spreadsheet_safe(escaped(value))


@dataclass(frozen=True, slots=True)
class RowResult:
    line: int  # the line the record starts on
    email: str
    outcome: str  # imported, updated, duplicate, refused
    reason: str = ""

    def describe(self) -> str:
        reason = f": {escaped(self.reason)}" if self.reason else ""
        return f"line {self.line}: {self.outcome} {shown(self.email)}{reason}"


@dataclass(slots=True)
class ImportReport:
    rows: list[RowResult] = field(default_factory=list)
    to_confirm: list[Subscriber] = field(default_factory=list)  # need a confirmation mail
    # The sign-up request each of `to_confirm` is to confirm, by subscriber id.
    requests: dict[int, SignupRequest] = field(default_factory=dict)

    def count(self, outcome: str) -> int:
        return sum(1 for r in self.rows if r.outcome == outcome)


def decode(data: bytes) -> str:
    """UTF-8 with or without a BOM, as Excel writes it; Windows-1252 from older Excel."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("windows-1252", errors="replace")


def read_roster(data: bytes) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) pairs; raises RosterError for a file that is not a roster."""
    text = decode(data)
    first = next((line for line in text.splitlines() if line.strip()), "")
    if not first:
        raise RosterError("the file is empty")
    delimiter = max((";", ",", "\t"), key=first.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    rows: list[tuple[int, dict[str, str]]] = []
    start = 1
    try:
        header = [_column(h) for h in next(reader)]
        if "email" not in header:
            raise RosterError(
                "line 1: no email column (expected columns: " + ", ".join(COLUMNS) + ")"
            )
        while True:
            # A quoted value may span lines; a record is named by the line it starts on.
            start = reader.line_num + 1
            values = next(reader, None)
            if values is None:
                break
            if not any(v.strip() for v in values):
                continue
            if len(rows) >= MAX_ROWS:
                raise RosterError(f"more than {MAX_ROWS} rows")
            row = {
                name: _unquote(value.strip())
                for name, value in zip(header, values, strict=False)
                if name in COLUMNS
            }
            if len(values) > len(header):
                row["_extra"] = "1"
            rows.append((start, row))
    except csv.Error as exc:
        raise RosterError(f"line {start}: not valid CSV ({escaped(str(exc))})") from None
    return rows


def _column(name: str) -> str:
    key = name.strip().strip('"').lower()
    return ALIASES.get(key, key)


def import_roster(
    session: Session,
    secret_key: str,
    rows: Sequence[tuple[int, dict[str, str]]],
    *,
    known_topics: set[str],
    confirmed: bool,
    basis: str = "",
) -> ImportReport:
    """Import checked rows; refused rows write nothing. The caller commits (or not).

    New people are pending, unless `confirmed`, each with a sign-up request for the
    confirmation mail to name (`report.requests`).
    """
    report = ImportReport()
    basis = clean_line(basis, 2000)  # typed at the CLI; kept as consent
    emails = []
    for _line, row in rows:
        try:
            emails.append(normalise_email(row.get("email", "")))
        except InvalidAddress:
            continue
    existing = _existing(session, emails)
    suppressed = _suppressed(session, secret_key, emails)
    first_line: dict[str, int] = {}
    fresh: list[tuple[Subscriber, int]] = []
    for line, row in rows:
        raw = row.get("email", "")
        try:
            email = normalise_email(raw)
        except InvalidAddress as exc:
            report.rows.append(RowResult(line, raw, "refused", f"invalid address: {exc}"))
            continue
        if email in first_line:
            report.rows.append(
                RowResult(line, email, "duplicate", f"also on line {first_line[email]}")
            )
            continue
        first_line[email] = line
        if row.get("_extra"):
            report.rows.append(RowResult(line, email, "refused", "more fields than columns"))
            continue
        try:
            chosen = _choices(row, known_topics)
        except SubscriberError as exc:
            report.rows.append(RowResult(line, email, "refused", str(exc)))
            continue
        subscriber = existing.get(email)
        if email in suppressed or (
            subscriber is not None and subscriber.status == Status.SUPPRESSED
        ):
            report.rows.append(
                RowResult(
                    line, email, "refused", "suppressed: only a new sign-up can bring it back"
                )
            )
            continue
        if subscriber is not None and subscriber.status == Status.UNSUBSCRIBED:
            report.rows.append(
                RowResult(
                    line, email, "refused", "unsubscribed: only a new sign-up can bring it back"
                )
            )
            continue
        if subscriber is not None:
            outcome = "updated" if apply_choices(subscriber, chosen) else "duplicate"
            if outcome == "updated":
                session.add(
                    ConsentEvent(
                        subscriber_id=subscriber.id,
                        action="preferences",
                        channel=Channel.IMPORT.value,
                        detail=basis,
                    )
                )
            report.rows.append(
                RowResult(line, email, outcome, "" if outcome == "updated" else "already imported")
            )
            continue
        fresh.append((new_subscriber(email, chosen, confirmed=confirmed), line))
        report.rows.append(RowResult(line, email, "imported"))
    session.add_all(s for s, _ in fresh)
    session.flush()  # one round of inserts gives the new rows their ids
    for subscriber, _line in fresh:
        session.add(
            ConsentEvent(
                subscriber_id=subscriber.id,
                action="subscribed",
                channel=Channel.IMPORT.value,
                detail=basis,
            )
        )
        if confirmed:
            session.add(
                ConsentEvent(
                    subscriber_id=subscriber.id,
                    action="confirmed",
                    channel=Channel.IMPORT.value,
                    detail=basis,
                )
            )
        else:
            report.to_confirm.append(subscriber)
    requests = [request_row(s, stored_choices(s), Channel.IMPORT) for s in report.to_confirm]
    session.add_all(requests)
    session.flush()
    report.requests = {r.subscriber_id: r for r in requests}
    return report


def _choices(row: dict[str, str], known_topics: set[str]) -> Choices:
    return choices(
        name=row.get("name", ""),
        municipality=row.get("municipality", ""),
        role=row.get("role", ""),
        frequency=row.get("frequency", "") or "daily",
        topics=[t for t in _TOPIC_SEPARATORS.split(row.get("topics", "")) if t],
        language=row.get("language", ""),
        known_topics=known_topics,
    )


def _existing(session: Session, emails: Iterable[str]) -> dict[str, Subscriber]:
    found: dict[str, Subscriber] = {}
    unique = sorted(set(emails))
    for start in range(0, len(unique), 500):
        batch = unique[start : start + 500]
        found.update(
            {
                s.email: s
                for s in session.scalars(select(Subscriber).where(Subscriber.email.in_(batch)))
            }
        )
    return found


def _suppressed(session: Session, secret_key: str, emails: Iterable[str]) -> set[str]:
    by_hash = {address_hash(secret_key, e): e for e in set(emails)}
    hashes = list(by_hash)
    found: set[str] = set()
    for start in range(0, len(hashes), 500):
        batch = hashes[start : start + 500]
        found.update(
            by_hash[h]
            for h in session.scalars(
                select(Suppression.address_hash).where(Suppression.address_hash.in_(batch))
            )
        )
    return found


def export_roster(subscribers: Iterable[Subscriber]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow([*COLUMNS, "status"])
    for s in subscribers:
        cells = [
            s.email,
            s.name,
            s.municipality,
            s.role,
            s.frequency,
            " ".join(s.topics or []),
            s.language,
            s.status,
        ]
        writer.writerow([spreadsheet_safe(cell) for cell in cells])
    return out.getvalue()
