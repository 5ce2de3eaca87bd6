"""Hostile rosters and CLI input: formula cells, control characters, multi-line records.

Through the real `digest` command in a subprocess, a real SQLite database, a real SMTP
server, and the real web app for following the links that arrive.
"""

from __future__ import annotations

import csv
import re
import subprocess
import time
from pathlib import Path

from sqlalchemy import select

from digest.core.db import session_scope
from digest.web.app import create_app
from subscribers.models import ConsentEvent, Subscriber
from subscribers.text import is_safe_line
from tests.support import command
from tests.support.server import LiveServer

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def digest(*args: str) -> subprocess.CompletedProcess[str]:
    return command.digest(*args, timeout=120)


def people(settings) -> dict[str, Subscriber]:
    with session_scope(settings.database_url) as session:
        return {s.email: s for s in session.scalars(select(Subscriber))}


def roster(settings, name: str, text: str) -> Path:
    path = Path(settings.data_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))
    return path


HOSTILE_NAMES = {
    "hyperlink@kommune.no": '=HYPERLINK("http://evil.example/x";"Klikk")',
    "pluss@kommune.no": "+47 22 00 00 00",
    "minus@kommune.no": "-1+1",
    "krøll@kommune.no": "@SUM(A1:A9)",
}


def test_export_neutralises_formula_cells_and_reads_back(settings, tmp_path) -> None:
    lines = ["email;name;municipality"]
    lines += [
        f'{email};"{name.replace(chr(34), chr(34) * 2)}";0301'
        for email, name in HOSTILE_NAMES.items()
    ]
    lines.append("=1+2@kommune.no;Vanlig;0301")
    path = roster(settings, "farlig.csv", "\n".join(lines) + "\n")
    imported = digest("subscribers", "import", str(path), "--confirmed", "--basis", "test")
    assert imported.returncode == 0, imported.stderr
    # The report shows a value that would be a formula escaped, as the export does.
    assert "line 6: imported '=1+2@kommune.no" in imported.stdout
    with session_scope(settings.database_url) as session:  # rows from before names were cleaned
        session.add(Subscriber(email="tab@kommune.no", name="\t=1+1", status="active"))
        session.add(Subscriber(email="cr@kommune.no", name="\r=1+1", status="active"))
    exported = tmp_path / "ut.csv"
    assert digest("subscribers", "export", str(exported)).returncode == 0
    with exported.open(encoding="utf-8-sig", newline="") as file:
        rows = list(csv.reader(file, delimiter=";"))
    assert rows[0][:2] == ["email", "name"]
    for row in rows[1:]:
        for cell in row:
            assert not cell.startswith(FORMULA_STARTS), row
    by_email = {row[0]: row for row in rows[1:]}
    for email, name in HOSTILE_NAMES.items():
        assert by_email[email][1] == "'" + name
    assert by_email["'=1+2@kommune.no"][1] == "Vanlig"
    assert by_email["tab@kommune.no"][1] == "'\t=1+1"
    assert by_email["cr@kommune.no"][1] == "'\r=1+1"
    # The quote is how the file says "text"; reading the file back does not keep it.
    for email in (*HOSTILE_NAMES, "=1+2@kommune.no"):
        assert digest("subscribers", "remove", email).returncode == 0
    back = digest("subscribers", "import", str(exported), "--confirmed", "--basis", "x")
    assert "5 imported" in back.stdout, back.stdout
    found = people(settings)
    for email, name in HOSTILE_NAMES.items():
        assert found[email].name == name
    assert found["=1+2@kommune.no"].name == "Vanlig"


MULTILINE = (
    "email,name,municipality\n"
    'kari@kommune.no,"Kari\nNordmann",0301\n'
    '"ola@kommune.no\r\nBcc: x@evil.example",Ola,0301\n'
    "per@kommune.no,Faktura \u202efdp.exe,Atlantis\u202e\u0007\n"
    'lise@kommune.no,"=?utf-8?q?Lise=0D=0AReply-To:_x@evil.example?=",0301\n'
)


def test_the_report_names_the_first_line_of_a_record_and_escapes_what_it_shows(
    settings, smtp
) -> None:
    result = digest("subscribers", "import", str(roster(settings, "linjer.csv", MULTILINE)))
    assert result.returncode == 0, result.stderr
    out = result.stdout.splitlines()
    assert "line 2: imported kari@kommune.no" in out
    assert any(
        line.startswith("line 4: refused ola@kommune.no\\r\\nBcc: x@evil.example: invalid")
        for line in out
    ), out
    assert any(
        line.startswith("line 6: refused per@kommune.no: unknown municipality 'Atlantis")
        for line in out
    ), out
    assert "line 7: imported lise@kommune.no" in out
    # One line per record, then the counts and the mails: nothing split the report.
    assert len(out) == 4 + 2 and all(line.isprintable() for line in out), out
    found = people(settings)
    assert found["kari@kommune.no"].name == "Kari Nordmann"
    assert found["lise@kommune.no"].name == "Lise Reply-To: x@evil.example"
    assert all(is_safe_line(p.name) for p in found.values())


def test_names_and_basis_from_the_cli_are_one_clean_line(settings) -> None:
    result = digest(
        "subscribers",
        "add",
        "ny@kommune.no",
        "--name",
        "Faktura \u202efdp.exe\u200b",
        "--basis",
        "avtale\r\nmed\u202e KS",
        "--confirmed",
    )
    assert result.returncode == 0, result.stderr
    with session_scope(settings.database_url) as session:
        row = session.scalar(select(Subscriber))
        assert row.name == "Faktura fdp.exe"
        details = set(session.scalars(select(ConsentEvent.detail)))
        assert details == {"avtale med KS"}


def test_add_without_confirmed_sends_the_confirmation_mail(settings, smtp) -> None:
    result = digest("subscribers", "add", "ny@kommune.no", "--name", "Ny Person")
    assert result.returncode == 0, result.stderr
    assert "confirmation mail sent" in result.stdout
    deadline = time.monotonic() + 10
    while not smtp.inbox.to("ny@kommune.no") and time.monotonic() < deadline:
        time.sleep(0.01)
    [mail] = smtp.inbox.to("ny@kommune.no")
    text = mail.get_body(preferencelist=("plain",)).get_content()
    path = re.search(r"/bekreft/[A-Za-z0-9_.\-]+", text)[0]
    assert people(settings)["ny@kommune.no"].status == "pending"
    server = LiveServer(create_app(settings)).start()
    try:
        with server.client() as client:
            page = client.get(path)
            token = re.search(r'name="csrf" value="([^"]+)"', page.text)[1]
            answer = client.post(path, data={"csrf": token})
            assert "Abonnementet er bekreftet" in answer.text
    finally:
        server.stop()
    assert people(settings)["ny@kommune.no"].status == "active"
