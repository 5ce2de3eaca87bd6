"""What each reader gets by role: the sources file's [audiences] and [roles] (checked, and
stored on sync), the matching (pure), and readers narrowed to their role getting what it
calls for through `digest sources sync` and `digest send` to a real SMTP server."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command as alembic
from sqlalchemy import select, text, update

from digest.core.db import get_engine, session_scope
from digest.core.migrate import SchemaState, alembic_config, schema_state, upgrade
from digest.core.models import Change, ChangeKind, Delivery, Item, Source
from digest.core.periods import Period, latest_period, schedule_of
from digest.core.roles import (
    SourceInfo,
    audience_labels,
    audiences_for,
    audiences_of,
    covers_topics,
    matching_sources,
    reader_audiences,
    role_audiences,
    shares_audience,
    sources_by_role,
    sources_for,
)
from digest.core.settings import PACKAGE_DIR, Settings
from digest.delivery import sending
from digest.delivery.announcements import add_announcement
from digest.delivery.previews import SampleProfile, next_digest, next_period
from digest.mail.compose import AnnouncementView, ChangeView, Recipient, compose, recipient_of
from digest.watch.audiences import sync_roles
from digest.watch.sources import SourcesFileError, load_sources, sync_sources
from subscribers.choices import choices
from subscribers.models import ConsentEvent, Frequency, Role, Subscriber
from subscribers.signups import add_subscriber
from tests.support import command
from tests.support.mailroom import deliver_chunk
from tests.support.smtp import SMTPServer
from tests.test_batching import FIXED_STATEMENTS, statements
from tests.test_runs import seed, start

START = datetime(2026, 11, 25, 7, 0, tzinfo=UTC)
PERIOD = Period(Frequency.DAILY, START, START + timedelta(days=1))

AUDIENCES = """
[audiences]
kommunal-ledelse = "Kommunal ledelse og ledere av krisesentre"
krisesenter-ansatte = "Ansatte på krisesentre"
helse-omsorg = "Helse- og omsorgspersonell"
barnehage-skole = "Barnehager og skoler"
alle-barn = "Alle som jobber med barn"
"""

ROLES = """
[roles]
kommunal-ledelse = ["kommunal-ledelse"]
krisesenter = ["krisesenter-ansatte", "kommunal-ledelse"]
helse-omsorg = ["helse-omsorg"]
barnehage-skole = ["barnehage-skole", "alle-barn"]
barnevern = ["alle-barn"]
annet = []
"""

# Four sources on the same topic, each written for other readers.
SOURCES = """
[topics]
vold = "Vold i nære relasjoner"
barn = "Barn og unge"
{audiences}
{roles}
[[source]]
key = "jegvet"
name = "Jeg Vet"
kind = "feed"
url = "https://jegvet.example/feed"
topics = ["vold"]
audiences = ["barnehage-skole"]

[[source]]
key = "komplan"
name = "Komplan"
kind = "feed"
url = "https://komplan.example/feed"
topics = ["vold"]
audiences = ["kommunal-ledelse"]

[[source]]
key = "snakke"
name = "SNAKKE"
kind = "feed"
url = "https://snakke.example/feed"
topics = ["vold", "barn"]
audiences = ["alle-barn", "barnehage-skole"]

[[source]]
key = "voldsveileder"
name = "Voldsveileder"
kind = "feed"
url = "https://voldsveileder.example/feed"
topics = ["vold"]
audiences = ["helse-omsorg"]
"""

# The article each source published in the period.
ARTICLES = {
    "jegvet": "Nytt undervisningsopplegg om grenser",
    "komplan": "Ny mal for kommunal handlingsplan",
    "snakke": "Samtaleverktøy for barnehageansatte",
    "voldsveileder": "Rutiner for helsepersonell ved mistanke",
}


def write_sources(path: Path, audiences: str = AUDIENCES, roles: str = ROLES) -> Path:
    path.write_text(SOURCES.format(audiences=audiences, roles=roles), encoding="utf-8")
    return path


# --- the matching, pure -----------------------------------------------------------------


def test_a_reader_narrowed_to_audiences_reads_only_sources_sharing_one() -> None:
    assert shares_audience((), ("helse-omsorg",)) and shares_audience((), ())
    assert shares_audience(("alle-barn", "barnehage-skole"), ("alle-barn",))
    assert not shares_audience(("kommunal-ledelse",), ("helse-omsorg", "alle-barn"))
    # A source that names no audience is for no role in particular.
    assert not shares_audience(("kommunal-ledelse",), ())


def test_topics_match_as_compose_matches_them() -> None:
    assert covers_topics((), ("vold",)) and covers_topics(("vold",), ())
    assert covers_topics(("vold", "barn"), ("barn",))
    assert not covers_topics(("skole",), ("vold", "barn"))


def test_only_a_reader_who_asked_is_narrowed_to_their_roles_audiences() -> None:
    roles = {"barnehage-skole": ("barnehage-skole", "alle-barn"), "annet": ()}
    assert reader_audiences(roles, "barnehage-skole", True) == ("barnehage-skole", "alle-barn")
    assert reader_audiences(roles, "barnehage-skole", False) == ()
    assert reader_audiences(roles, "annet", True) == ()  # a role with none: not narrowed
    assert reader_audiences(roles, "barnevern", True) == ()  # not in the file: not narrowed
    assert reader_audiences(roles, "", True) == ()  # no role given
    kari = Subscriber(email="kari@skole.no", role="barnehage-skole", role_only=True)
    assert audiences_of(roles, kari) == ("barnehage-skole", "alle-barn")


def test_the_sources_a_choice_brings() -> None:
    sources = [
        SourceInfo("jegvet", "Jeg Vet", "https://j", ("vold",), ("barnehage-skole",)),
        SourceInfo("komplan", "Komplan", "https://k", ("planer",), ("kommunal-ledelse",)),
        SourceInfo("snakke", "SNAKKE", "https://s", ("barn",), ("alle-barn",)),
    ]
    school = ("barnehage-skole", "alle-barn")
    assert [s.key for s in matching_sources(sources, school, ())] == ["jegvet", "snakke"]
    assert [s.key for s in matching_sources(sources, school, ("barn",))] == ["snakke"]
    assert [s.key for s in matching_sources(sources, (), ("planer", "vold"))] == [
        "jegvet",
        "komplan",
    ]
    assert matching_sources(sources, ("helse-omsorg",), ()) == []


# --- compose ----------------------------------------------------------------------------


def view(cid: int, source: str, audiences: tuple[str, ...], kind=ChangeKind.NEW, hours=1.0):
    return ChangeView(
        cid,
        cid,
        kind,
        START + timedelta(hours=hours),
        f"Artikkel nummer {cid}",
        f"https://x.no/{cid}",
        "",
        None,
        "",
        source,
        source.title(),
        ("vold",),
        source_audiences=audiences,
    )


def reader(role: str = "", audiences: tuple[str, ...] = ()) -> Recipient:
    return Recipient(
        1, "kari@kommune.no", "Kari", Frequency.DAILY, ("vold",), role=role, audiences=audiences
    )


def test_compose_keeps_the_changes_of_sources_for_the_readers_audiences() -> None:
    changes = [
        view(1, "jegvet", ("barnehage-skole",)),
        view(2, "komplan", ("kommunal-ledelse",)),
        view(3, "snakke", ("alle-barn", "barnehage-skole")),
        view(4, "ukjent", ()),
    ]
    school = compose(
        reader("barnehage-skole", ("barnehage-skole", "alle-barn")), changes, [], PERIOD
    )
    assert [g.name for g in school.groups] == ["Jegvet", "Snakke"]
    leader = compose(reader("kommunal-ledelse", ("kommunal-ledelse",)), changes, [], PERIOD)
    assert [g.name for g in leader.groups] == ["Komplan"]
    everything = compose(reader("kommunal-ledelse"), changes, [], PERIOD)
    assert [g.name for g in everything.groups] == ["Jegvet", "Komplan", "Snakke", "Ukjent"]


def test_a_narrowed_reader_still_gets_every_announcement_targeted_at_them() -> None:
    def announcement(aid: int, roles: tuple[str, ...]) -> AnnouncementView:
        return AnnouncementView(aid, f"Melding {aid}", "", None, (), START, roles=roles)

    notes = [
        announcement(1, ()),
        announcement(2, ("barnehage-skole",)),
        announcement(3, ("barnevern",)),
    ]
    school = reader("barnehage-skole", ("barnehage-skole",))
    digest = compose(school, [view(1, "komplan", ("kommunal-ledelse",))], notes, PERIOD)
    assert [a.announcement_id for a in digest.announcements] == [1, 2]
    assert digest.groups == ()


def test_new_items_come_before_updated_ones_within_a_resource() -> None:
    changes = [
        view(1, "snakke", ("alle-barn",), ChangeKind.UPDATED, hours=5),
        view(2, "snakke", ("alle-barn",), ChangeKind.NEW, hours=1),
        view(3, "snakke", ("alle-barn",), ChangeKind.UPDATED, hours=3),
        view(4, "snakke", ("alle-barn",), ChangeKind.NEW, hours=2),
    ]
    (group,) = compose(reader(), changes, [], PERIOD).groups
    assert [(i.title[-1], i.is_new) for i in group.items] == [
        ("4", True),
        ("2", True),
        ("1", False),
        ("3", False),
    ]


def test_recipient_of_carries_the_audiences_it_is_given() -> None:
    kari = Subscriber(id=7, email="kari@skole.no", name="", role="barnehage-skole", topics=["vold"])
    assert recipient_of(kari).audiences == ()
    assert recipient_of(kari, ("alle-barn",)).audiences == ("alle-barn",)


# --- the sources file -------------------------------------------------------------------


def test_the_shipped_file_maps_every_role_to_declared_audiences() -> None:
    catalogue = load_sources(PACKAGE_DIR / "watch" / "sources.toml")
    assert set(catalogue.roles) == {r.value for r in Role}
    assert catalogue.roles["barnehage-skole"] == ("barnehage-skole", "alle-barn")
    assert catalogue.roles["kommunal-ledelse"] == ("kommunal-ledelse",)
    assert catalogue.roles["annet"] == ()
    declared = set(catalogue.audiences)
    assert {a for keys in catalogue.roles.values() for a in keys} <= declared
    assert {a for s in catalogue.sources for a in s.audiences} == declared
    # Every role but «annet» reads something, and something less than everything.
    for role, keys in catalogue.roles.items():
        read = [s for s in catalogue.sources if set(s.audiences) & set(keys)]
        assert role == "annet" or 0 < len(read) < len(catalogue.sources), role


@pytest.mark.parametrize(
    ("audiences", "roles", "problem"),
    [
        (AUDIENCES, '[roles]\nrektor = ["barnehage-skole"]\n', r"'rektor' is not a role"),
        (AUDIENCES, '[roles]\nbarnevern = "alle-barn"\n', r"barnevern must be a list"),
        (AUDIENCES, "[roles]\nbarnevern = [1, 2]\n", r"barnevern must be a list"),
        (AUDIENCES, "[roles]\nbarnevern = { a = 1 }\n", r"barnevern must be a list"),
        (
            AUDIENCES,
            '[roles]\nbarnevern = ["alle-barna"]\n',
            r"barnevern: audiences not declared in \[audiences\]: alle-barna",
        ),
        ("", ROLES, r"kommunal-ledelse: audiences not declared in \[audiences\]"),
        ('[audiences]\nAlle-Barn = "Alle"\n', "", r"'Alle-Barn' is not an audience key"),
        ("[audiences]\nalle-barn = 3\n", "", r"'alle-barn' needs a label"),
        ('[audiences]\nalle-barn = " "\n', "", r"'alle-barn' needs a label"),
        ('[audiences]\nalle-barn = "' + "x" * 201 + '"\n', "", r"'alle-barn' needs a label"),
    ],
)
def test_hostile_roles_and_audiences_are_refused_naming_the_key(
    tmp_path: Path, audiences: str, roles: str, problem: str
) -> None:
    path = write_sources(tmp_path / "sources.toml", audiences, roles)
    with pytest.raises(SourcesFileError, match=problem):
        load_sources(path)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('roles = "alle"\n[topics]\n', r"\[roles\] must be a table"),
        ("roles = [1]\n[topics]\n", r"\[roles\] must be a table"),
        ('audiences = ["alle-barn"]\n[topics]\n', r"\[audiences\] must be a table"),
        (
            "[topics]\n[[source]]\nkey = 'x'\nname = 'X'\nkind = 'feed'\n"
            "url = 'https://x.no/feed'\naudiences = ['Alle-Barn']\n",
            r"source #1 \(x\): audiences not declared in \[audiences\]: alle-barn",
        ),
        (
            "[topics]\n[audiences]\nalle-barn = 'Alle'\n[[source]]\nkey = 'x'\nname = 'X'\n"
            "kind = 'feed'\nurl = 'https://x.no/feed'\naudiences = 'alle-barn'\n",
            r"source #1 \(x\): audiences",
        ),
    ],
)
def test_hostile_tables_are_refused(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "sources.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SourcesFileError, match=problem):
        load_sources(path)


def test_every_problem_is_named_at_once_and_nothing_is_stored(
    settings: Settings, tmp_path: Path
) -> None:
    good = write_sources(tmp_path / "good.toml")
    with session_scope(settings.database_url) as session:
        sync_sources(session, load_sources(good))
    bad = write_sources(
        tmp_path / "bad.toml",
        AUDIENCES,
        '[roles]\nrektor = []\nbarnevern = "alle-barn"\nhelse-omsorg = ["ukjent"]\n',
    )
    with pytest.raises(SourcesFileError) as refused:
        load_sources(bad)
    assert len(refused.value.problems) == 3
    with session_scope(settings.database_url) as session:
        assert role_audiences(session)["barnevern"] == ("alle-barn",)


def test_sync_stores_the_roles_and_audiences_and_follows_their_changes(
    settings: Settings, tmp_path: Path
) -> None:
    path = write_sources(tmp_path / "sources.toml")
    with session_scope(settings.database_url) as session:
        sync_sources(session, load_sources(path))
    with session_scope(settings.database_url) as session:
        assert role_audiences(session) == {
            "kommunal-ledelse": ("kommunal-ledelse",),
            "krisesenter": ("krisesenter-ansatte", "kommunal-ledelse"),
            "helse-omsorg": ("helse-omsorg",),
            "barnehage-skole": ("barnehage-skole", "alle-barn"),
            "barnevern": ("alle-barn",),
            "annet": (),
        }
        assert audiences_for(session, "barnehage-skole") == ("barnehage-skole", "alle-barn")
        assert audiences_for(session, "") == () and audiences_for(session, "ukjent") == ()
        assert list(audience_labels(session)) == [
            "kommunal-ledelse",
            "krisesenter-ansatte",
            "helse-omsorg",
            "barnehage-skole",
            "alle-barn",
        ]
        assert audience_labels(session)["alle-barn"] == "Alle som jobber med barn"
        assert [s.name for s in sources_for(session, "barnehage-skole", [])] == [
            "Jeg Vet",
            "SNAKKE",
        ]
        assert [s.name for s in sources_for(session, "barnehage-skole", ["barn"])] == ["SNAKKE"]
        assert len(sources_for(session, "barnehage-skole", [], role_only=False)) == 4
        assert len(sources_for(session, "annet", [])) == 4
        by_role = sources_by_role(session)
        assert [s.name for s in by_role["helse-omsorg"]] == ["Voldsveileder"]
        assert [s.name for s in by_role["krisesenter"]] == ["Komplan"]
    # Barnevern leaves the file, helse-omsorg reads more, and an audience goes.
    changed = ROLES.replace('barnevern = ["alle-barn"]\n', "").replace(
        'helse-omsorg = ["helse-omsorg"]', 'helse-omsorg = ["helse-omsorg", "alle-barn"]'
    )
    fewer = AUDIENCES.replace('krisesenter-ansatte = "Ansatte på krisesentre"\n', "")
    changed = changed.replace('"krisesenter-ansatte", ', "")
    with session_scope(settings.database_url) as session:
        sync_sources(session, load_sources(write_sources(path, fewer, changed)))
    with session_scope(settings.database_url) as session:
        roles = role_audiences(session)
        assert "barnevern" not in roles and roles["krisesenter"] == ("kommunal-ledelse",)
        assert roles["helse-omsorg"] == ("helse-omsorg", "alle-barn")
        assert "krisesenter-ansatte" not in audience_labels(session)


# --- delivery, for real -----------------------------------------------------------------

RUN_AT = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


def seed_articles(settings: Settings, detected: datetime) -> None:
    """One new article of each source, detected at `detected`."""
    with session_scope(settings.database_url) as session:
        for source in session.scalars(select(Source)):
            title = ARTICLES[source.key]
            url = f"{source.url.rsplit('/', 1)[0]}/artikkel"
            item = Item(
                source_id=source.id,
                key=url,
                url=url,
                title=title,
                content_hash="h",
                first_seen_at=detected,
                last_seen_at=detected,
            )
            session.add(item)
            session.flush()
            session.add(
                Change(item_id=item.id, kind="new", detected_at=detected, title=title, url=url)
            )


def subscribe(settings: Settings, email: str, role: str, role_only: bool) -> None:
    with session_scope(settings.database_url) as session:
        person = add_subscriber(session, email, choices(role=role, topics=["vold"]), confirmed=True)
        person.role_only = role_only


def text_to(smtp: SMTPServer, address: str) -> str:
    (message,) = smtp.inbox.to(address)
    return str(message.get_body(("plain",)).get_content())


def html_to(smtp: SMTPServer, address: str) -> str:
    (message,) = smtp.inbox.to(address)
    return str(message.get_body(("html",)).get_content())


def test_readers_with_the_same_topics_get_the_digests_their_roles_call_for(
    settings: Settings, smtp: SMTPServer
) -> None:
    write_sources(settings.sources_file)
    synced = command.digest("sources", "sync", timeout=60)
    assert synced.returncode == 0, synced.stderr
    period = latest_period(Frequency.DAILY, RUN_AT, schedule_of(settings))
    seed_articles(settings, period.start + timedelta(hours=1))
    subscribe(settings, "skole@kommune.no", Role.SCHOOL, role_only=True)
    subscribe(settings, "leder@kommune.no", Role.MANAGEMENT, role_only=True)
    subscribe(settings, "alt@kommune.no", Role.MANAGEMENT, role_only=False)
    subscribe(settings, "helse@kommune.no", Role.HEALTH, role_only=True)
    with session_scope(settings.database_url) as session:
        for title, roles in [
            ("Fagdag for alle", ()),
            ("Kurs for barnehagelærere", ("barnehage-skole",)),
            ("Ledersamling", ("kommunal-ledelse",)),
            ("Kurs for barnevernet", ("barnevern",)),
        ]:
            add_announcement(
                session, title=title, roles=roles, publish_from=period.start - timedelta(days=1)
            )

    sent = command.digest("send", "daily", "--at", RUN_AT.isoformat(), timeout=120)
    assert sent.returncode == 0, sent.stderr
    assert re.search(r"run \d+: .*4 sent", sent.stdout), sent.stdout

    def titles(address: str) -> set[str]:
        mail = text_to(smtp, address)
        assert mail.count("Fagdag for alle") == 1
        return {t for t in ARTICLES.values() if t in mail} | {
            a
            for a in ("Kurs for barnehagelærere", "Ledersamling", "Kurs for barnevernet")
            if a in mail
        }

    assert titles("skole@kommune.no") == {
        ARTICLES["jegvet"],
        ARTICLES["snakke"],
        "Kurs for barnehagelærere",
    }
    assert titles("leder@kommune.no") == {ARTICLES["komplan"], "Ledersamling"}
    assert titles("helse@kommune.no") == {ARTICLES["voldsveileder"]}
    # Not narrowed: every source on their topics, and the announcements for their role.
    assert titles("alt@kommune.no") == {*ARTICLES.values(), "Ledersamling"}
    # The HTML part holds the same, and no resource beyond the role's.
    html = html_to(smtp, "skole@kommune.no")
    assert ARTICLES["jegvet"] in html and ARTICLES["komplan"] not in html
    assert "Komplan" not in html and "Voldsveileder" not in html


def test_the_preview_of_a_sample_reader_narrowed_to_a_role(
    settings: Settings, tmp_path: Path
) -> None:
    with session_scope(settings.database_url) as session:
        sync_sources(session, load_sources(write_sources(tmp_path / "sources.toml")))
    now = datetime.now(UTC)
    upcoming = next_period(Frequency.DAILY, now, settings)
    # Known by now, in the period the next run sends.
    seed_articles(settings, upcoming.start + (now - upcoming.start) / 2)
    profile = SampleProfile(topics=("vold",), role="barnevern", role_only=True)
    with session_scope(settings.database_url) as session:
        narrowed = next_digest(session, settings, profile, now)
        everything = next_digest(
            session, settings, SampleProfile(topics=("vold",), role="barnevern"), now
        )
    assert [g.name for g in narrowed.digest.groups] == ["SNAKKE"]
    assert len(everything.digest.groups) == 4


# --- the migration ----------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'digest.db'}"
    return str(request.getfixturevalue("pg_url"))


def test_0008_keeps_every_subscriber_reading_everything_and_their_history(
    database_url: str,
) -> None:
    upgrade(database_url, "0007")
    with get_engine(database_url).begin() as connection:
        connection.execute(
            text(
                "INSERT INTO subscribers (email, name, municipality, role, language, frequency,"
                " topics, status, created_at, soft_failures, ref)"
                " VALUES ('kari@skole.no', '', '', 'barnehage-skole', 'nb', 'daily', '[]',"
                " 'active', :at, 0, 'ref-kari')"
            ),
            {"at": START},
        )
        connection.execute(
            text(
                "INSERT INTO consent_events (subscriber_id, at, action, channel, detail)"
                " SELECT id, :at, 'confirmed', 'web', '' FROM subscribers"
            ),
            {"at": START},
        )
        connection.execute(
            text(
                "INSERT INTO digest_runs (frequency, period_start, period_end, status, created_at)"
                " VALUES ('daily', :at, :at, 'complete', :at)"
            ),
            {"at": START},
        )
        connection.execute(
            text(
                "INSERT INTO deliveries (run_id, subscriber_id, status, attempts, item_count,"
                " bounce_counted) SELECT r.id, s.id, 'sent', 1, 3, false"
                " FROM digest_runs r, subscribers s"
            )
        )
    upgrade(database_url)
    assert schema_state(database_url) == SchemaState.CURRENT
    with session_scope(database_url) as session:
        kari = session.scalars(select(Subscriber)).one()
        assert kari.role_only is False and kari.role == "barnehage-skole"
        assert session.scalars(select(Delivery)).one().item_count == 3
        assert len(session.scalars(select(ConsentEvent)).all()) == 1
        assert role_audiences(session) == {}  # filled by the next `digest sources sync`
        kari.role_only = True
    alembic.downgrade(alembic_config(database_url), "0007")
    with get_engine(database_url).connect() as connection:
        for table in ("subscribers", "deliveries", "consent_events"):
            assert connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() == 1
    upgrade(database_url)
    with session_scope(database_url) as session:
        assert session.scalars(select(Subscriber)).one().role_only is False


@pytest.mark.parametrize("count", [10, 40])
def test_narrowing_readers_costs_one_statement_a_chunk_not_one_a_mail(
    settings: Settings, smtp: SMTPServer, count: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sending, "RECORD_EVERY", 10)
    monkeypatch.setattr(sending, "RECORD_INTERVAL", 3600.0)
    seed(settings, [f"k{n}@kommune.no" for n in range(count)])
    roles = (Role.SCHOOL, Role.CHILD_WELFARE, Role.MANAGEMENT)
    with session_scope(settings.database_url) as session:
        session.execute(update(Source).values(audiences=["alle-barn"]))
        sync_roles(
            session,
            {
                "barnehage-skole": ("alle-barn",),
                "barnevern": ("alle-barn",),
                "kommunal-ledelse": ("kommunal-ledelse",),
            },
        )
        for n, person in enumerate(session.scalars(select(Subscriber).order_by(Subscriber.id))):
            person.role, person.role_only = roles[n % 3], True
    started = start(settings)
    with statements(settings) as seen:
        report = deliver_chunk(settings, started.run_id, started.chunks[0])
    # Management reads nothing of a source for everyone working with children.
    narrowed_out = sum(1 for n in range(count) if n % 3 == 2)
    assert report.sent == count - narrowed_out == len(smtp.inbox.messages)
    assert report.skipped == narrowed_out
    per_batch = 2  # as in test_batching
    batches = (count - narrowed_out + 9) // 10
    # One UPDATE for the skipped ones, and one SELECT of the roles' audiences.
    assert (
        sum(seen[v] for v in ("SELECT", "UPDATE", "INSERT", "DELETE")) - batches * per_batch
        == FIXED_STATEMENTS + 2
    )
