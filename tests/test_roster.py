"""Importing a messy, real-world roster of municipal contacts, and exporting it."""

from __future__ import annotations

import subprocess
from pathlib import Path

from sqlalchemy import func, select

from digest.core.db import session_scope
from subscribers.models import ConsentAction, ConsentEvent, Subscriber
from tests.support import command

ROSTERS = Path(__file__).parent / "fixtures" / "rosters"


def digest(*args: str) -> subprocess.CompletedProcess[str]:
    return command.digest(*args, timeout=120)


def people(settings) -> dict[str, Subscriber]:
    with session_scope(settings.database_url) as session:
        return {s.email: s for s in session.scalars(select(Subscriber))}


def test_a_messy_roster_imports_its_good_rows_and_says_why_not_the_rest(settings, smtp) -> None:
    # Windows line endings, as Excel writes them.
    path = Path(settings.data_dir) / "roster.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((ROSTERS / "messy.csv").read_bytes().replace(b"\n", b"\r\n"))
    result = digest("subscribers", "import", str(path))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "line 2: imported kari.nordmann@oslo.kommune.no" in out
    assert "line 3: imported ola@bergen.kommune.no" in out
    assert "line 5: imported per@tana.kommune.no" in out
    assert "line 6: refused feil-adresse@@kommune.no: invalid address" in out
    assert "line 7: duplicate kari.nordmann@oslo.kommune.no: also on line 2" in out
    assert "line 8: refused anne@atlantis.no: unknown municipality 'Atlantis'" in out
    assert "line 9: refused bo@tromso.kommune.no: unknown topic(s): fotball" in out
    assert "line 10: imported lise@trondheim.kommune.no" in out
    assert "4 imported, 0 updated, 1 duplicate, 3 refused" in out
    assert "confirmation mails: 4 sent" in out
    found = people(settings)
    assert set(found) == {
        "kari.nordmann@oslo.kommune.no",
        "ola@bergen.kommune.no",
        "per@tana.kommune.no",
        "lise@trondheim.kommune.no",
    }
    ola = found["ola@bergen.kommune.no"]
    assert (ola.name, ola.municipality, ola.frequency, ola.topics, ola.language) == (
        'Ola "Krise" Hansen',
        "4601",
        "weekly",
        ["barn", "vold"],
        "nn",
    )
    assert found["per@tana.kommune.no"].municipality == "5628"
    assert found["lise@trondheim.kommune.no"].name == "Lise; Trondheim"
    assert all(p.status == "pending" for p in found.values())  # until they confirm
    assert sorted(rcpt for _, rcpts in smtp.inbox.envelopes for rcpt in rcpts) == sorted(found)

    again = digest("subscribers", "import", str(path))
    assert "0 imported, 0 updated, 5 duplicate, 3 refused" in again.stdout


def test_confirmed_import_records_the_basis_and_sends_nothing(settings, smtp) -> None:
    path = ROSTERS / "messy.csv"
    missing = digest("subscribers", "import", str(path), "--confirmed")
    assert missing.returncode == 1 and "--basis" in missing.stderr
    result = digest(
        "subscribers",
        "import",
        str(path),
        "--confirmed",
        "--basis",
        "Avtale med KS om varsling av krisesenterledere, 2026",
    )
    assert result.returncode == 0 and "4 imported" in result.stdout
    assert smtp.inbox.messages == []
    with session_scope(settings.database_url) as session:
        assert (
            session.scalar(
                select(func.count()).select_from(Subscriber).where(Subscriber.status == "active")
            )
            == 4
        )
        events = session.scalars(
            select(ConsentEvent).where(ConsentEvent.action == ConsentAction.CONFIRMED)
        )
        assert {(e.channel, e.detail) for e in events} == {
            ("import", "Avtale med KS om varsling av krisesenterledere, 2026")
        }


def test_dry_run_stores_nothing(settings, smtp) -> None:
    result = digest("subscribers", "import", str(ROSTERS / "messy.csv"), "--dry-run")
    assert "dry run, nothing stored: 4 imported" in result.stdout
    assert people(settings) == {} and smtp.inbox.messages == []


def test_a_broken_quote_refuses_the_file_and_changes_nothing(settings) -> None:
    digest("subscribers", "add", "fra-for@kommune.no", "--confirmed")
    result = digest("subscribers", "import", str(ROSTERS / "broken_quote.csv"))
    assert result.returncode == 1
    assert "not valid CSV" in result.stderr and "nothing was imported" in result.stderr
    assert set(people(settings)) == {"fra-for@kommune.no"}


def test_suppressed_and_unsubscribed_addresses_do_not_come_back(settings) -> None:
    digest("subscribers", "import", str(ROSTERS / "messy.csv"), "--confirmed", "--basis", "x")
    with session_scope(settings.database_url) as session:
        ola = session.scalar(select(Subscriber).where(Subscriber.email == "ola@bergen.kommune.no"))
        ola.status = "suppressed"
        kari = session.scalar(
            select(Subscriber).where(Subscriber.email == "kari.nordmann@oslo.kommune.no")
        )
        kari.status = "unsubscribed"
    assert digest("subscribers", "erase", "per@tana.kommune.no", "--yes").returncode == 0
    result = digest(
        "subscribers", "import", str(ROSTERS / "messy.csv"), "--confirmed", "--basis", "x"
    )
    assert "refused ola@bergen.kommune.no: suppressed" in result.stdout
    assert "refused kari.nordmann@oslo.kommune.no: unsubscribed" in result.stdout
    assert "refused per@tana.kommune.no: suppressed" in result.stdout  # erased: hash only
    assert "per@tana.kommune.no" not in people(settings)


def test_export_reads_back_in(settings, tmp_path) -> None:
    digest("subscribers", "import", str(ROSTERS / "messy.csv"), "--confirmed", "--basis", "x")
    exported = tmp_path / "ut.csv"
    assert digest("subscribers", "export", str(exported)).returncode == 0
    text = exported.read_text(encoding="utf-8-sig")
    assert text.splitlines()[0] == "email;name;municipality;role;frequency;topics;language;status"
    assert 'ola@bergen.kommune.no;"Ola ""Krise"" Hansen";4601' in text
    digest("subscribers", "remove", "ola@bergen.kommune.no")
    back = digest("subscribers", "import", str(exported), "--confirmed", "--basis", "x")
    assert "1 imported, 0 updated, 3 duplicate, 0 refused" in back.stdout
