"""Editor accounts as the service keeps them: the last admin cannot be lost to two admins
acting on each other at once, and a new password lifts the lock of failed sign-ins."""

from __future__ import annotations

import threading

from digest.core.db import get_sessionmaker, session_scope
from digest.core.migrate import upgrade
from digest.core.models import EditorRole, SignInFailure
from digest.core.settings import Settings
from digest.editors import accounts, signins
from tests.support.editors import PASSWORD, make_editor


def test_two_admins_demoting_each_other_at_once_leave_one_admin_on_postgresql(
    settings: Settings, pg_url: str
) -> None:
    pg = settings.model_copy(update={"database_url": pg_url})
    upgrade(pg.database_url)
    make_editor(pg, "a@bufdir.no", EditorRole.ADMIN)
    make_editor(pg, "b@bufdir.no", EditorRole.ADMIN)
    sessions = get_sessionmaker(pg.database_url)
    first = sessions()
    # A demotes B: B is not the last admin, A stays.
    b = accounts.get(first, "b@bufdir.no")
    assert accounts.other_active_admins(first, b) == 1
    seen: list[int] = []

    def b_demotes_a() -> None:
        with sessions() as second:
            a = accounts.get(second, "a@bufdir.no")
            # Waits on the rows the first transaction holds, then reads what it committed.
            seen.append(accounts.other_active_admins(second, a))
            second.rollback()

    other = threading.Thread(target=b_demotes_a)
    other.start()
    # Time for the other to read, were it not held: then it would count A's one fellow.
    other.join(timeout=1)
    accounts.set_role(b, EditorRole.EDITOR)
    first.commit()
    first.close()
    other.join(timeout=30)
    assert seen == [0]  # B is no admin any more: A is the last, and cannot be demoted


def test_a_new_password_lifts_the_lock_of_failed_sign_ins(settings: Settings) -> None:
    make_editor(settings, "a@bufdir.no", EditorRole.ADMIN)
    with session_scope(settings.database_url) as session:
        for _ in range(settings.sign_in_attempts):
            signins.record_failure(session, settings, "a@bufdir.no", "10.0.0.1")
    with session_scope(settings.database_url) as session:
        assert signins.throttled(session, settings, "A@bufdir.no", "10.0.0.2")
        accounts.set_password(session, accounts.get(session, "a@bufdir.no"), PASSWORD + "!")
    with session_scope(settings.database_url) as session:
        assert not signins.throttled(session, settings, "a@bufdir.no", "10.0.0.2")
        # The client that guessed is still counted.
        assert session.query(SignInFailure).filter(SignInFailure.key.like("client:%")).count()
