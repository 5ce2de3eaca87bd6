"""`digest send` on the embedded default delivers in its own process: a fault while it
delivers must still end the command with its one-line explanation and status 1."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy.exc import OperationalError

from digest.commands.main import main
from digest.core.settings import Settings
from digest.delivery import digests
from tests.support.smtp import SMTPServer
from tests.test_runs import seed


def test_a_database_fault_while_delivering_fails_the_command(
    settings: Settings, smtp: SMTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(settings, ["kari@kommune.no"])

    def refused(*_: object) -> None:
        # What SQLite says when another process holds the database too long.
        raise OperationalError("SELECT changes", {}, Exception("database is locked"))

    monkeypatch.setattr(digests, "changes_in", refused)
    result = CliRunner().invoke(main, ["send", "daily", "--at", "2026-11-26T08:00"])
    assert result.exit_code == 1, result.output
    assert "error: the database" in result.output and "database is locked" in result.output
    assert "Traceback" not in result.output
    assert smtp.inbox.messages == []


def test_an_unexpected_fault_while_delivering_keeps_its_traceback(
    settings: Settings, smtp: SMTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(settings, ["kari@kommune.no"])

    def bug(*_: object) -> None:
        raise ZeroDivisionError("a bug of ours")

    monkeypatch.setattr(digests, "changes_in", bug)
    result = CliRunner().invoke(main, ["send", "daily", "--at", "2026-11-26T08:00"])
    assert result.exit_code == 1
    assert isinstance(result.exception, ZeroDivisionError)
