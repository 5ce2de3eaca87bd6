"""The admins' audit log page: newest first, filtered by editor, action and kind of target,
paged, with before and after shown field by field; and the sweep that deletes entries
past the retention period and editors' sessions that have ended."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import httpx
from sqlalchemy import func, select, update

from digest.core.db import session_scope
from digest.core.models import AuditEntry, Editor, EditorRole, EditorSession
from digest.core.settings import Settings
from digest.editors import audit, signins
from subscribers.base import utcnow
from tests.support import command
from tests.support.editors import make_editor

PAGE = "/redaksjon/logg"
SWEEP = "from digest import actors; actors.recover.send(); actors.work_here()"


def cell(page: str, label: str) -> list[str]:
    found = re.findall(rf'data-label="{label}">(.*?)</td>', page, re.S)
    return [html.unescape(" ".join(re.sub(r"<[^>]+>", " ", c).split())) for c in found]


def log(
    settings: Settings, email: str, action: str, target: str, target_id: object, **kw: object
) -> None:
    with session_scope(settings.database_url) as session:
        editor = session.scalar(select(Editor).where(Editor.email == email))
        audit.record(session, editor, action, target, target_id, **kw)  # type: ignore[arg-type]


def test_entries_newest_first_with_before_and_after(
    settings: Settings, admin_client: httpx.Client
) -> None:
    make_editor(settings, "redaktor@bufdir.no", EditorRole.EDITOR)
    log(
        settings,
        "redaktor@bufdir.no",
        "announcement_edit",
        "announcement",
        7,
        before={"title": "Kurs i mai", "pinned": False, "topics": ["vold"]},
        after={"title": "Kurs i juni <script>alert(1)</script>", "pinned": False, "topics": []},
    )
    log(
        settings,
        "admin@bufdir.no",
        "source_pause",
        "source",
        3,
        before={"paused_at": None},
        after={"paused_at": "2026-11-27T10:00:00+00:00"},
    )
    page = admin_client.get(PAGE)
    assert page.status_code == 200
    text = page.text
    assert "<script>alert(1)" not in text  # escaped
    assert cell(text, "Hvem") == ["admin@bufdir.no", "redaktor@bufdir.no", "admin@bufdir.no"]
    assert cell(text, "Handling")[0] == "Satte kilde på pause source_pause"
    assert cell(text, "Handling")[2] == "Logget inn sign_in"  # the admin's own sign-in
    assert cell(text, "Gjelder")[:2] == ["Kilde nr. 3", "Kunngjøring nr. 7"]
    changes = cell(text, "Før og etter")
    assert changes[0] == "paused_at – → 27.11.2026 kl. 11.00"  # in Oslo time
    # Changed fields first, each from → to; unchanged ones said so.
    assert changes[1] == (
        "title Kurs i mai → Kurs i juni <script>alert(1)</script> "
        "topics vold → (ingen) pinned (uendret) nei"
    )


def test_filters_by_editor_action_and_target(
    settings: Settings, admin_client: httpx.Client
) -> None:
    make_editor(settings, "redaktor@bufdir.no", EditorRole.EDITOR)
    log(settings, "redaktor@bufdir.no", "change_hide", "change", 1)
    log(settings, "redaktor@bufdir.no", "announcement_publish", "announcement", 2)
    log(settings, "admin@bufdir.no", "run_retry", "run", 5, after={"retried": 2})
    by_editor = admin_client.get(PAGE, params={"redaktor": "Redaktor@bufdir.no"}).text
    assert cell(by_editor, "Gjelder") == ["Kunngjøring nr. 2", "Endring nr. 1"]
    assert 'value="redaktor@bufdir.no" selected' in by_editor
    by_action = admin_client.get(PAGE, params={"handling": "run_retry"}).text
    assert cell(by_action, "Gjelder") == ["Utsendelse nr. 5"]
    assert "Prøvde feilede utsendelser på nytt" in by_action
    by_target = admin_client.get(PAGE, params={"gjelder": "change"}).text
    assert cell(by_target, "Handling") == ["Skjulte endring change_hide"]  # label, then code
    both = admin_client.get(PAGE, params={"redaktor": "admin@bufdir.no", "gjelder": "editor"})
    assert cell(both.text, "Handling") == ["Logget inn sign_in"]
    # What to choose from is what the log holds.
    assert '<option value="announcement_publish">Publiserte kunngjøring</option>' in by_editor
    nothing = admin_client.get(PAGE, params={"handling": "\u202e" + "x" * 500, "side": "-2"})
    assert nothing.status_code == 200 and "Ingen handlinger passer utvalget" in nothing.text


def test_the_log_is_paged(settings: Settings, admin_client: httpx.Client) -> None:
    with session_scope(settings.database_url) as session:
        admin = session.scalar(select(Editor).where(Editor.email == "admin@bufdir.no"))
        for n in range(60):
            entry = audit.record(session, admin, "source_review", "source", n)
            entry.at = utcnow() - timedelta(minutes=n)
    first = admin_client.get(PAGE, params={"handling": "source_review"}).text
    assert len(cell(first, "Tid")) == 50
    assert cell(first, "Gjelder")[0] == "Kilde nr. 0"
    link = re.search(r'href="([^"]+)" rel="next"', first)
    assert link is not None
    second = admin_client.get(html.unescape(link[1])).text
    assert cell(second, "Gjelder") == [f"Kilde nr. {n}" for n in range(50, 60)]
    assert 'rel="next"' not in second and 'rel="prev"' in second


def test_editors_may_not_read_the_log(settings: Settings, editor_client: httpx.Client) -> None:
    answer = editor_client.get(PAGE)
    assert answer.status_code == 403
    assert "bare for administratorer" in answer.text


def test_the_sweep_deletes_old_entries_and_ended_sessions(
    settings: Settings, admin_client: httpx.Client
) -> None:
    old = utcnow() - timedelta(days=settings.retention_days + 1)
    log(settings, "admin@bufdir.no", "source_pause", "source", 1)
    log(settings, "admin@bufdir.no", "source_resume", "source", 1)
    with session_scope(settings.database_url) as session:
        session.execute(
            update(AuditEntry).where(AuditEntry.action == "source_pause").values(at=old)
        )
        admin = session.scalar(select(Editor).where(Editor.email == "admin@bufdir.no"))
        assert admin is not None
        ended = signins.start_session(session, admin)
        assert ended
        idle = utcnow() - timedelta(minutes=settings.editor_idle_minutes + 5)
        session.execute(
            update(EditorSession)
            .where(EditorSession.token_hash == signins.token_hash(ended))
            .values(last_seen_at=idle)
        )
        assert session.scalar(select(func.count()).select_from(EditorSession)) == 2
    result = command.run(["-c", SWEEP], timeout=60)
    assert result.returncode == 0, result.stderr
    with session_scope(settings.database_url) as session:
        assert set(session.scalars(select(AuditEntry.action))) == {"sign_in", "source_resume"}
        assert session.scalar(select(func.count()).select_from(EditorSession)) == 1
    assert admin_client.get(PAGE).status_code == 200  # the live session is kept


def test_every_action_the_code_records_has_a_name_in_the_log() -> None:
    """The log shows actions in bokmål: an action recorded anywhere (pages, API, commands)
    without a label would show as its code."""
    import ast
    from pathlib import Path

    from digest.web.admin.audit import ACTIONS

    recorded: set[str] = set()
    for path in Path("digest").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "record"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "audit"
                and len(node.args) >= 3
                and isinstance(node.args[2], ast.Constant)
            ):
                recorded.add(node.args[2].value)
    # The announcement pages name theirs by the action taken.
    recorded |= {f"announcement_{a}" for a in ("publish", "withdraw", "delete")}
    assert len(recorded) > 15
    assert recorded - set(ACTIONS) == set()
