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
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from subscribers.addresses import InvalidAddress, normalise_email
from subscribers.choices import Choices, apply_choices, choices, stored_choices
from subscribers.errors import DigestError, SubscriberError
from subscribers.models import (
    Channel,
    ConsentAction,
    Frequency,
    SignupRequest,
    Status,
    Subscriber,
    Suppression,
)
from subscribers.people import new_subscriber, record, record_joined
from subscribers.signups import request_row
from subscribers.suppression import address_hash
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


class RosterError(DigestError):
    """The file cannot be read as a roster; nothing was imported. `line` is the line at
    fault, when one is."""

    def __init__(self, reason: str, line: int | None = None) -> None:
        super().__init__(reason if line is None else f"line {line}: {reason}")
        self.reason = reason
        self.line = line


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


class RowOutcome(StrEnum):
    """What became of one row; the report counts them in this order."""

    IMPORTED = "imported"  # a new person
    UPDATED = "updated"  # a known person's choices changed
    DUPLICATE = "duplicate"  # an earlier line has the address, or nothing to change
    REFUSED = "refused"


class RowProblem(StrEnum):
    """Why a row was not imported as it stands, for a page to say in its own language."""

    INVALID_ADDRESS = "invalid_address"
    REPEATED = "repeated"  # `detail`: the line the address was first on
    EXTRA_FIELDS = "extra_fields"
    BAD_CHOICE = "bad_choice"  # `detail`: the field (municipality, role, topic, ...)
    SUPPRESSED = "suppressed"
    UNSUBSCRIBED = "unsubscribed"
    UNCHANGED = "unchanged"


@dataclass(frozen=True, slots=True)
class RowResult:
    line: int  # the line the record starts on
    email: str
    outcome: RowOutcome
    reason: str = ""  # in English, for the command line
    problem: RowProblem | None = None
    detail: str = ""

    def describe(self) -> str:
        reason = f": {escaped(self.reason)}" if self.reason else ""
        return f"line {self.line}: {self.outcome} {shown(self.email)}{reason}"


@dataclass(slots=True)
class ImportReport:
    rows: list[RowResult] = field(default_factory=list)
    to_confirm: list[Subscriber] = field(default_factory=list)  # need a confirmation mail
    # The sign-up request each of `to_confirm` is to confirm, by subscriber id.
    requests: dict[int, SignupRequest] = field(default_factory=dict)

    def count(self, outcome: RowOutcome) -> int:
        return sum(1 for r in self.rows if r.outcome == outcome)

    def totals(self) -> str:
        """ "2 imported, 1 updated, 0 duplicate, 3 refused"."""
        return ", ".join(f"{self.count(o)} {o}" for o in RowOutcome)


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
            raise RosterError(f"no email column (expected columns: {', '.join(COLUMNS)})", 1)
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
        raise RosterError(f"not valid CSV ({escaped(str(exc))})", start) from None
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
    known = _known(session, secret_key, rows)
    first_line: dict[str, int] = {}
    fresh: list[Subscriber] = []
    for line, row in rows:
        checked = _check(line, row, known, first_line, known_topics)
        if isinstance(checked, RowResult):
            report.rows.append(checked)
            continue
        email, chosen = checked
        subscriber = known.people.get(email)
        if subscriber is None:
            fresh.append(new_subscriber(email, chosen, confirmed=confirmed))
            report.rows.append(RowResult(line, email, RowOutcome.IMPORTED))
        else:
            report.rows.append(_update(session, line, subscriber, chosen, basis))
    _add_new(session, report, fresh, confirmed=confirmed, basis=basis)
    return report


@dataclass(frozen=True, slots=True)
class _Known:
    """What the database already holds of a roster's addresses, read up front in batches."""

    people: dict[str, Subscriber]
    suppressed: set[str]


def _known(session: Session, secret_key: str, rows: Iterable[tuple[int, dict[str, str]]]) -> _Known:
    emails = []
    for _line, row in rows:
        try:
            emails.append(normalise_email(row.get("email", "")))
        except InvalidAddress:
            continue
    return _Known(_existing(session, emails), _suppressed(session, secret_key, emails))


def _check(
    line: int,
    row: dict[str, str],
    known: _Known,
    first_line: dict[str, int],
    known_topics: set[str],
) -> RowResult | tuple[str, Choices]:
    """One row's address and choices, or the result that says why it goes no further.

    Notes the line each address is first seen on in `first_line`, for later duplicates.
    """
    raw = row.get("email", "")
    try:
        email = normalise_email(raw)
    except InvalidAddress as exc:
        return RowResult(
            line,
            raw,
            RowOutcome.REFUSED,
            f"invalid address: {exc.reason}",
            RowProblem.INVALID_ADDRESS,
        )
    if email in first_line:
        return RowResult(
            line,
            email,
            RowOutcome.DUPLICATE,
            f"also on line {first_line[email]}",
            RowProblem.REPEATED,
            str(first_line[email]),
        )
    first_line[email] = line
    if row.get("_extra"):
        return RowResult(
            line, email, RowOutcome.REFUSED, "more fields than columns", RowProblem.EXTRA_FIELDS
        )
    try:
        chosen = _choices(row, known_topics)
    except SubscriberError as exc:
        return RowResult(
            line, email, RowOutcome.REFUSED, str(exc), RowProblem.BAD_CHOICE, exc.field
        )
    refusal = _refusal(email, known)
    if refusal:
        return RowResult(line, email, RowOutcome.REFUSED, refusal[1], refusal[0])
    return email, chosen


def _refusal(email: str, known: _Known) -> tuple[RowProblem, str] | None:
    """Why a known address may not come back through a roster, or None when it may."""
    subscriber = known.people.get(email)
    status = subscriber.status if subscriber is not None else None
    if email in known.suppressed or status == Status.SUPPRESSED:
        return RowProblem.SUPPRESSED, "suppressed: only a new sign-up can bring it back"
    if status == Status.UNSUBSCRIBED:
        return RowProblem.UNSUBSCRIBED, "unsubscribed: only a new sign-up can bring it back"
    return None


def _update(
    session: Session, line: int, subscriber: Subscriber, chosen: Choices, basis: str
) -> RowResult:
    """A row for someone already subscribed: their choices as the roster gives them."""
    if not apply_choices(subscriber, chosen):
        return RowResult(
            line, subscriber.email, RowOutcome.DUPLICATE, "already imported", RowProblem.UNCHANGED
        )
    record(session, subscriber, ConsentAction.PREFERENCES, Channel.IMPORT, basis)
    return RowResult(line, subscriber.email, RowOutcome.UPDATED)


def _add_new(
    session: Session,
    report: ImportReport,
    fresh: list[Subscriber],
    *,
    confirmed: bool,
    basis: str,
) -> None:
    """Insert the new people in one round, with the consent they come in with and, unless
    `confirmed`, the sign-up request their confirmation mail names."""
    session.add_all(fresh)
    session.flush()  # one round of inserts gives the new rows their ids
    for subscriber in fresh:
        record_joined(session, subscriber, Channel.IMPORT, basis, confirmed=confirmed)
    if confirmed:
        return
    report.to_confirm = fresh
    requests = [request_row(s, stored_choices(s), Channel.IMPORT) for s in fresh]
    session.add_all(requests)
    session.flush()
    report.requests = {r.subscriber_id: r for r in requests}


def _choices(row: dict[str, str], known_topics: set[str]) -> Choices:
    return choices(
        name=row.get("name", ""),
        municipality=row.get("municipality", ""),
        role=row.get("role", ""),
        frequency=row.get("frequency", "") or Frequency.DAILY,
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
