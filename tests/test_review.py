"""Review of detected changes: waiting at detection for a source that wants review (from
the sources file, or an editor's override), the list and its filters, and hiding,
showing again, approving, notes and corrected titles."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from digest.core.db import session_scope
from digest.core.models import ChangeReview, Editor, Source
from digest.core.periods import Period
from digest.core.settings import Settings
from digest.delivery import review
from digest.delivery.digests import changes_in
from digest.delivery.review import NotWaiting, ReviewError, UnknownChange
from subscribers.base import utcnow
from subscribers.models import Frequency
from tests.support.collecting import collect_key
from tests.support.editors import make_editor
from tests.support.reviewing import AT, changes_of, detected, publish, sources
from tests.support.site import FixtureSite


@pytest.fixture
def found(settings: Settings, site: FixtureSite, tmp_path: Path) -> dict[str, list[int]]:
    return detected(settings, site, tmp_path)


def states(settings: Settings, key: str) -> list[ChangeReview]:
    return [c.review for c in changes_of(settings, key)]


def test_a_source_with_review_in_its_file_holds_its_changes(settings, found) -> None:
    assert states(settings, "krise") == [ChangeReview.WAITING] * 2
    assert states(settings, "vold") == [ChangeReview.AUTO] * 2
    with session_scope(settings.database_url) as session:
        krise = session.scalars(select(Source).where(Source.key == "krise")).one()
        assert krise.review_in_file and krise.review_override is None
        assert review.waiting_count(session) == 2
        waiting = review.waiting_changes(session)
        assert [w.change_id for w in waiting] == found["krise"]
        assert {w.source_wants_review for w in waiting} == {True}


def test_sync_keeps_the_editors_override_and_the_pause(settings, site, tmp_path) -> None:
    sources(settings, site, tmp_path, review=True)
    paused = utcnow()
    with session_scope(settings.database_url) as session:
        krise = session.scalars(select(Source).where(Source.key == "krise")).one()
        krise.review_override, krise.paused_at = False, paused
    sources(settings, site, tmp_path, review=False)
    with session_scope(settings.database_url) as session:
        krise = session.scalars(select(Source).where(Source.key == "krise")).one()
        assert krise.review_in_file is False
        assert krise.review_override is False and krise.paused_at == paused
    sources(settings, site, tmp_path, review=True)
    with session_scope(settings.database_url) as session:
        krise = session.scalars(select(Source).where(Source.key == "krise")).one()
        # The file asks again, but the editor's «no» stands.
        assert krise.review_in_file is True and not krise.review_before_sending


def test_an_editors_override_decides_at_detection(settings, site, tmp_path, found) -> None:
    with session_scope(settings.database_url) as session:
        for source in session.scalars(select(Source)):
            source.review_override = source.key == "vold"
    publish(site, "vold", ["Ny veileder om partnervold", "Rutiner for avdekking", "Tredje sak"])
    publish(site, "krise", ["Krisesentertilbudet for menn", "Botilbud etter opphold", "Ny"])
    assert collect_key(settings, "vold", AT + timedelta(hours=3)).ok
    assert collect_key(settings, "krise", AT + timedelta(hours=3)).ok
    assert states(settings, "vold")[-1] is ChangeReview.WAITING
    assert states(settings, "krise")[-1] is ChangeReview.AUTO


def test_the_list_is_newest_first_and_filters(settings, found) -> None:
    with session_scope(settings.database_url) as session:
        everything = review.recent(session)
        assert everything.total == 4
        # krise's were detected an hour after vold's.
        assert [r.source_key for r in everything.rows] == ["krise", "krise", "vold", "vold"]
        first = everything.rows[0]
        assert first.url.startswith("http://") and first.source_name == "Krisesenterveilederen"
        assert first.summary_text.startswith("Om ")
        vold = review.recent(session, source_key="vold")
        # Detected at one time: the later id first.
        assert [r.change_id for r in vold.rows] == sorted(found["vold"], reverse=True)
        assert {r.source_key for r in review.recent(session, topic="vold").rows} == {"vold"}
        assert review.recent(session, topic="barn").total == 0
        waiting = review.recent(session, review=ChangeReview.WAITING)
        assert {r.source_key for r in waiting.rows} == {"krise"} and waiting.total == 2
        paged = review.recent(session, page=2, per_page=3)
        assert paged.total == 4 and paged.pages == 2 and len(paged.rows) == 1
        assert paged.rows[0].source_key == "vold"
        assert review.recent(session, page=9, per_page=3).rows == []


def test_hide_and_show_again_return_where_the_change_stood(settings, found) -> None:
    auto, waiting = found["vold"][0], found["krise"][0]
    editor_id = make_editor(settings)
    with session_scope(settings.database_url) as session:
        editor = session.get_one(Editor, editor_id)
        hidden = review.hide(session, auto)
        assert hidden is not None
        assert hidden.before["review"] is ChangeReview.AUTO
        assert hidden.after["review"] is ChangeReview.HIDDEN
        assert review.hide(session, auto) is None  # nothing to do twice
        assert review.unhide(session, auto) is not None
        assert review.unhide(session, auto) is None
        review.hide(session, waiting)
        review.unhide(session, waiting)
        review.approve(session, waiting, editor, AT + timedelta(days=1))
        review.hide(session, waiting)
        assert review.recent(session, review=ChangeReview.HIDDEN).total == 1
        review.unhide(session, waiting)
    assert states(settings, "vold")[0] is ChangeReview.AUTO
    # An approved change shown again is approved still (its approval time kept).
    approved = changes_of(settings, "krise")[0]
    assert approved.review is ChangeReview.APPROVED
    assert approved.reviewed_at == AT + timedelta(days=1)


def test_a_hidden_change_of_a_review_source_waits_again(settings, found) -> None:
    with session_scope(settings.database_url) as session:
        review.hide(session, found["krise"][1])
        review.unhide(session, found["krise"][1])
    assert states(settings, "krise")[1] is ChangeReview.WAITING


def test_approve_only_what_waits(settings, found) -> None:
    editor_id = make_editor(settings)
    now = AT + timedelta(hours=5)
    with session_scope(settings.database_url) as session:
        editor = session.get_one(Editor, editor_id)
        done = review.approve(session, found["krise"][0], editor, now)
        assert done is not None and done.after["review"] is ChangeReview.APPROVED
        assert done.after["reviewed_by_id"] == editor_id and done.after["reviewed_at"] == now
        # A second click (or a second editor) changes nothing, not even the time.
        assert review.approve(session, found["krise"][0], editor, now + timedelta(hours=1)) is None
        with pytest.raises(NotWaiting) as auto:
            review.approve(session, found["vold"][0], editor, now)
        assert auto.value.review is ChangeReview.AUTO
        review.hide(session, found["krise"][1])
        with pytest.raises(NotWaiting) as hidden:
            review.approve(session, found["krise"][1], editor, now)
        assert hidden.value.review is ChangeReview.HIDDEN
        assert review.waiting_count(session) == 0
    approved = changes_of(settings, "krise")[0]
    assert approved.reviewed_at == now and approved.reviewed_by_id == editor_id


def test_notes_and_titles_are_one_clean_line(settings, found) -> None:
    change_id = found["vold"][0]
    with session_scope(settings.database_url) as session:
        noted = review.set_note(session, change_id, "  Oppdatert\u202e etter\nny lov\x07 ")
        assert noted is not None and noted.after == {"editor_note": "Oppdatert etter ny lov"}
        assert review.set_note(session, change_id, "Oppdatert etter ny lov") is None
        with pytest.raises(ReviewError) as long_note:
            review.set_note(session, change_id, "x" * 201)
        assert long_note.value.field == "note"
        review.set_note(session, change_id, "x" * 200)  # the limit itself is fine
        titled = review.correct_title(session, change_id, "Ny veileder om\tvold i parforhold")
        assert titled is not None and titled.before == {"corrected_title": None}
        row = review.get_row(session, change_id)
        assert row.shown_title == "Ny veileder om vold i parforhold"
        assert row.title == "Ny veileder om partnervold"
        with pytest.raises(ReviewError) as long_title:
            review.correct_title(session, change_id, "t" * 301)
        assert long_title.value.field == "title"
        # Empty, or the detected title itself, brings the detected title back.
        review.correct_title(session, change_id, "Ny veileder om partnervold")
        assert review.get_row(session, change_id).corrected_title is None
        review.correct_title(session, change_id, "Rettet")
        review.correct_title(session, change_id, "   ")
        review.set_note(session, change_id, "")
    change = changes_of(settings, "vold")[0]
    assert change.corrected_title is None and change.editor_note == ""


def test_unknown_changes_are_named(settings, found) -> None:
    editor_id = make_editor(settings)
    with session_scope(settings.database_url) as session:
        editor = session.get_one(Editor, editor_id)
        for action in (
            lambda: review.hide(session, 999),
            lambda: review.unhide(session, 999),
            lambda: review.approve(session, 999, editor, AT),
            lambda: review.set_note(session, 999, "x"),
            lambda: review.correct_title(session, 999, "x"),
            lambda: review.get_row(session, 999),
        ):
            with pytest.raises(UnknownChange) as missing:
                action()
            assert missing.value.change_id == 999


def test_review_decides_which_digests_carry_a_change(settings, found) -> None:
    day = Period(Frequency.DAILY, AT - timedelta(hours=1), AT + timedelta(hours=23))
    later = Period(Frequency.DAILY, day.end, day.end + timedelta(days=1))
    editor_id = make_editor(settings)
    with session_scope(settings.database_url) as session:
        editor = session.get_one(Editor, editor_id)
        # Detected in `day`: vold's go as detected, krise's wait.
        assert {v.change_id for v in changes_in(session, day)} == set(found["vold"])
        review.hide(session, found["vold"][0])
        review.set_note(session, found["vold"][1], "Gjelder fra nyttår")
        review.correct_title(session, found["vold"][1], "Rutiner for å avdekke vold")
        review.approve(session, found["krise"][0], editor, later.start + timedelta(hours=2))
        [shown] = changes_in(session, day)
        assert shown.change_id == found["vold"][1]
        assert shown.title == "Rutiner for å avdekke vold"
        assert shown.editor_note == "Gjelder fra nyttår"
        # The approved one goes in the period of its approval, once.
        [approved] = changes_in(session, later)
        assert approved.change_id == found["krise"][0]
        assert approved.released_at == later.start + timedelta(hours=2)
