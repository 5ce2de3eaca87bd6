"""Who gets what: announcements targeted by topic, role and municipality, pinned first;
the editors' note and corrected title in the mail; reviewed changes in the period of
their approval; urgent announcements in the next immediate run; Markdown as safe text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from digest.core.db import session_scope
from digest.core.models import (
    Announcement,
    AnnouncementReceipt,
    AnnouncementStatus,
    Change,
    ChangeKind,
    ChangeReview,
    Delivery,
    Item,
    Source,
)
from digest.core.periods import Period
from digest.core.settings import Settings
from digest.delivery import runs
from digest.delivery.digests import changes_in
from digest.mail.compose import AnnouncementView, Recipient, compose
from digest.mail.render import MailLinks, announcement_html, announcement_text, render
from subscribers.models import Frequency, Status, Subscriber
from tests.test_compose import PERIOD, START, change

LINKS = MailLinks("https://x.no/av", "https://x.no/innstillinger")


def reader(role: str = "", municipality: str = "", topics: tuple[str, ...] = ()) -> Recipient:
    return Recipient(
        1, "kari@kommune.no", "Kari", Frequency.DAILY, topics, role=role, municipality=municipality
    )


def announcement(aid: int, **kw: object) -> AnnouncementView:
    base = AnnouncementView(aid, f"Kunngjøring {aid}", "", None, (), START)
    return AnnouncementView(**{**{f: getattr(base, f) for f in base.__slots__}, **kw})  # type: ignore[arg-type]


def test_announcements_follow_role_and_municipality() -> None:
    anns = [
        announcement(1),
        announcement(2, roles=("kommunal-ledelse",)),
        announcement(3, municipalities=("0301",)),
        announcement(4, roles=("helse-omsorg",), municipalities=("0301",)),
    ]
    ids = lambda r: [a.announcement_id for a in compose(r, [], anns, PERIOD).announcements]  # noqa: E731
    assert ids(reader()) == [1]  # no role or municipality told: only what is for everyone
    assert ids(reader("kommunal-ledelse", "4601")) == [1, 2]
    assert ids(reader("helse-omsorg", "0301")) == [1, 3, 4]
    assert ids(reader("kommunal-ledelse", "0301")) == [1, 2, 3]


def test_pinned_announcements_come_first() -> None:
    anns = [announcement(1), announcement(2, pinned=True, publish_from=START + timedelta(hours=2))]
    digest = compose(reader(), [], anns, PERIOD)
    assert [a.announcement_id for a in digest.announcements] == [2, 1]


def test_an_approved_change_counts_in_the_period_of_its_approval() -> None:
    before = change(1, 10, ChangeKind.NEW, -30, "Godkjent i dag")
    approved = type(before)(
        **{
            **{f: getattr(before, f) for f in before.__slots__},
            "released_at": START + timedelta(hours=2),
        }
    )  # type: ignore[arg-type]
    assert compose(reader(), [before], [], PERIOD).is_empty
    assert compose(reader(), [approved], [], PERIOD).item_count == 1


def test_the_editors_note_is_in_both_parts() -> None:
    base = change(1, 10, ChangeKind.UPDATED, 1, "Kapittel 3")
    noted = type(base)(
        **{
            **{f: getattr(base, f) for f in base.__slots__},
            "editor_note": "Kapittelet er oppdatert etter ny lov om krisesentertilbud",
        }
    )  # type: ignore[arg-type]
    mail = render(compose(reader(), [noted], [], PERIOD), LINKS, START.tzinfo, "Veiledervarsel")  # type: ignore[arg-type]
    assert (
        "Redaksjonens merknad: Kapittelet er oppdatert etter ny lov om krisesentertilbud"
        in mail.text
    )
    assert "Kapittelet er oppdatert etter ny lov om krisesentertilbud" in mail.html
    assert "Fra redaksjonen" not in mail.text  # no announcements here


def test_markdown_with_html_script_and_javascript_is_safe_in_both_parts() -> None:
    body = (
        "Les [veilederen](https://bufdir.no/veileder) og [ikke denne](javascript:alert(1)).\n\n"
        "<script>alert('x')</script>\n\n"
        '<a href="javascript:alert(2)">klikk</a> <img src=x onerror=alert(3)>\n\n'
        "- første\n- andre"
    )
    html = str(announcement_html(body))
    assert "<script" not in html and "<img" not in html and '<a href="javascript' not in html
    assert 'href="https://bufdir.no/veileder"' in html
    text = announcement_text(body)
    assert "veilederen (https://bufdir.no/veileder)" in text
    assert "<" not in text.replace("javascript:alert(1)", "")
    assert "- første\n- andre" in text
    assert "javascript:alert(2)" not in text


def _source_with_changes(settings: Settings) -> dict[str, int]:
    with session_scope(settings.database_url) as session:
        source = Source(key="s", name="Kilde", kind="rss", url="https://x.no/feed", topics=[])
        session.add(source)
        session.flush()
        item = Item(
            source_id=source.id,
            key="k",
            url="https://x.no/1",
            title="T",
            first_seen_at=START,
            last_seen_at=START,
        )
        session.add(item)
        session.flush()
        made = {}
        for name, review, reviewed in (
            ("auto", ChangeReview.AUTO, None),
            ("waiting", ChangeReview.WAITING, None),
            ("hidden", ChangeReview.HIDDEN, None),
            ("approved-now", ChangeReview.APPROVED, START + timedelta(hours=3)),
            ("approved-later", ChangeReview.APPROVED, START + timedelta(days=2)),
        ):
            c = Change(
                item_id=item.id,
                kind=ChangeKind.NEW,
                detected_at=START + timedelta(hours=1),
                title=name,
                url=item.url,
                review=review,
                reviewed_at=reviewed,
            )
            session.add(c)
            session.flush()
            made[name] = c.id
        return made


def test_changes_in_a_period_leave_out_hidden_and_waiting_ones(settings: Settings) -> None:
    made = _source_with_changes(settings)
    with session_scope(settings.database_url) as session:
        found = {c.title for c in changes_in(session, PERIOD)}
        # A corrected title is what the digest shows.
        session.get_one(Change, made["auto"]).corrected_title = "Rettet tittel"
    assert found == {"auto", "approved-now"}
    with session_scope(settings.database_url) as session:
        assert {c.title for c in changes_in(session, PERIOD)} == {"Rettet tittel", "approved-now"}


def test_an_immediate_run_mails_urgent_announcements_to_daily_readers_once(
    settings: Settings,
) -> None:
    now = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    with session_scope(settings.database_url) as session:
        people = {
            name: Subscriber(
                email=f"{name}@kommune.no", frequency=freq, status=Status.ACTIVE, role=role
            )
            for name, freq, role in (
                ("daglig", Frequency.DAILY, "kommunal-ledelse"),
                ("ukentlig", Frequency.WEEKLY, "helse-omsorg"),
                ("straks", Frequency.IMMEDIATE, ""),
            )
        }
        session.add_all(people.values())
        session.add(
            Announcement(
                title="Frist i morgen",
                status=AnnouncementStatus.PUBLISHED,
                publish_from=now - timedelta(minutes=5),
                send_immediately=True,
                roles=["kommunal-ledelse"],
            )
        )
        session.flush()
        ids = {name: p.id for name, p in people.items()}
    period = Period(Frequency.IMMEDIATE, now - timedelta(minutes=15), now)
    with session_scope(settings.database_url) as session:
        started = runs.start_run(session, period)
        owed = set(
            session.scalars(select(Delivery.subscriber_id).where(Delivery.run_id == started.run_id))
        )
    # The immediate reader as always; the daily leader for the announcement; not the
    # weekly health worker, whom it does not target.
    assert owed == {ids["straks"], ids["daglig"]}
    # Once the daily reader has had it, the next immediate run leaves them alone.
    with session_scope(settings.database_url) as session:
        announcement_id = session.scalar(select(Announcement.id))
        session.add(
            AnnouncementReceipt(announcement_id=announcement_id, subscriber_id=ids["daglig"])
        )
    later = Period(Frequency.IMMEDIATE, now, now + timedelta(minutes=15))
    with session_scope(settings.database_url) as session:
        started = runs.start_run(session, later)
        owed = set(
            session.scalars(select(Delivery.subscriber_id).where(Delivery.run_id == started.run_id))
        )
    assert owed == {ids["straks"]}
    # Only the run of the period it went live in sends it so: a daily reader who joins
    # later gets it in their own digest, not in a mail of a later immediate run.
    with session_scope(settings.database_url) as session:
        session.add(
            Subscriber(
                email="ny@kommune.no",
                frequency=Frequency.DAILY,
                status=Status.ACTIVE,
                role="kommunal-ledelse",
            )
        )
    latest = Period(Frequency.IMMEDIATE, now + timedelta(minutes=15), now + timedelta(minutes=30))
    with session_scope(settings.database_url) as session:
        started = runs.start_run(session, latest)
        owed = set(
            session.scalars(select(Delivery.subscriber_id).where(Delivery.run_id == started.run_id))
        )
    assert owed == {ids["straks"]}


def test_an_urgent_announcement_prepared_by_two_runs_at_once_goes_out_once(
    settings: Settings,
) -> None:
    """The immediate and the daily run end at the same tick (08:00 is a quarter hour), so
    both may prepare a daily reader's mail before either is sent: the first to claim the
    announcement's receipt carries it, the other leaves it out."""
    from digest.core.db import get_sessionmaker
    from digest.delivery.claims import Outcome, Verdict
    from digest.delivery.digests import Chunk

    end = datetime(2026, 11, 27, 7, 0, tzinfo=UTC)  # 08:00 in Oslo
    with session_scope(settings.database_url) as session:
        reader = Subscriber(
            email="daglig@kommune.no", frequency=Frequency.DAILY, status=Status.ACTIVE
        )
        session.add(reader)
        session.add(
            Announcement(
                title="Frist i morgen",
                status=AnnouncementStatus.PUBLISHED,
                publish_from=end - timedelta(minutes=10),
                send_immediately=True,
            )
        )
    prepared = []
    for period in (
        Period(Frequency.IMMEDIATE, end - timedelta(minutes=15), end),
        Period(Frequency.DAILY, end - timedelta(days=1), end),
    ):
        with session_scope(settings.database_url) as session:
            started = runs.start_run(session, period)
        chunk = Chunk(settings, started.run_id, started.chunks[0])
        prepared.append((chunk, chunk.begin(get_sessionmaker(settings.database_url), end)))
    (first_chunk, [first]), (_, second) = prepared
    assert [a.title for a in first.digest.announcements] == ["Frist i morgen"]
    assert second == []  # nothing else for them today: no mail at all
    with session_scope(settings.database_url) as session:
        assert len(session.scalars(select(AnnouncementReceipt)).all()) == 1
    # Had the first mail failed for good, it would be owed again.
    failed = Outcome(first.mail_id, first.subscriber_id, Verdict.FAILED, "550 no such user")
    with session_scope(settings.database_url) as session:
        first_chunk.record(session, [failed], final=False)()
    with session_scope(settings.database_url) as session:
        assert session.scalars(select(AnnouncementReceipt)).all() == []
