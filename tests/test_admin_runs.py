"""The admins' runs pages: counts and progress of each run, one run's deliveries searched by
address and filtered by status with each failure's reason, and «retry failed», which
sends the failed mails of even an old run once, through the app's in-process jobs."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select

from digest.core.db import session_scope
from digest.core.models import (
    AuditEntry,
    Change,
    Delivery,
    DigestRun,
    Item,
    MailStatus,
    RunStatus,
    Source,
)
from digest.core.periods import latest_period, schedule_of
from digest.core.settings import Settings
from digest.delivery import retry, runs
from subscribers.choices import choices
from subscribers.models import Frequency, Status, Subscriber
from subscribers.signups import add_subscriber
from tests.support.mailroom import deliver_chunk
from tests.support.server import csrf
from tests.support.smtp import SMTPServer

PAGE = "/redaksjon/utsendelser"
TRY_LATER = "451 4.3.0 Mail server temporarily rejected message"


def make_run(settings: Settings, emails: list[str], days_ago: int = 0) -> runs.StartedRun:
    """A daily run with one change in its period for subscribers to «vold» (those named
    `barn…` want «barn» only, and get nothing); `days_ago` makes it that old, so that its
    failing deliveries have been given up."""
    period = latest_period(
        Frequency.DAILY, datetime.now(UTC) - timedelta(days=days_ago), schedule_of(settings)
    )
    detected = period.start + timedelta(hours=1)
    with session_scope(settings.database_url) as session:
        source = Source(key="s", name="Bufdir", kind="feed", url="https://x.no/f", topics=["vold"])
        session.add(source)
        session.flush()
        item = Item(
            source_id=source.id,
            key="a",
            url="https://x.no/a",
            title="Ny veileder",
            content_hash="h",
            first_seen_at=detected,
            last_seen_at=detected,
        )
        session.add(item)
        session.flush()
        session.add(
            Change(
                item_id=item.id,
                kind="new",
                detected_at=detected,
                title="Ny veileder",
                url="https://x.no/a",
            )
        )
        for email in emails:
            topics = ["barn"] if email.startswith("barn") else ["vold"]
            add_subscriber(session, email, choices(topics=topics), confirmed=True)
    with session_scope(settings.database_url) as session:
        started = runs.start_run(session, period)
        if days_ago:
            run = session.get_one(DigestRun, started.run_id)
            run.created_at = run.period_end  # started on time, days ago
    return started


def statuses(settings: Settings, run_id: int) -> dict[str, str]:
    with session_scope(settings.database_url) as session:
        rows = session.execute(
            select(Subscriber.email, Delivery.status)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Delivery.run_id == run_id)
        ).all()
    return {email: str(status) for email, status in rows}


def wait_for(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def cell(page: str, label: str) -> list[str]:
    """The text of every cell with this data-label (tags dropped, spaces collapsed)."""
    found = re.findall(rf'data-label="{label}">(.*?)</td>', page, re.S)
    return [html.unescape(" ".join(re.sub(r"<[^>]+>", " ", c).split())) for c in found]


def test_runs_are_listed_newest_first_with_counts_and_progress(
    settings: Settings, smtp: SMTPServer, admin_client: httpx.Client
) -> None:
    started = make_run(
        settings, ["ok@kommune.no", "barn@kommune.no", "full@kommune.no", "gone@kommune.no"]
    )
    smtp.inbox.refuse["full@kommune.no"] = "452 4.2.2 Mailbox full"
    smtp.inbox.refuse["gone@kommune.no"] = "550 5.1.1 No such user"
    deliver_chunk(settings, started.run_id, started.chunks[0])
    with session_scope(settings.database_url) as session:  # an older, empty run
        old = latest_period(
            Frequency.WEEKLY, datetime.now(UTC) - timedelta(days=8), schedule_of(settings)
        )
        runs.start_run(session, old)
    page = admin_client.get(PAGE)
    assert page.status_code == 200
    text = page.text
    assert cell(text, "Utsendelse") == [
        f"Daglig nr. {started.run_id}",
        f"Ukentlig nr. {started.run_id + 1}",
    ]
    assert cell(text, "Sendt")[0] == "1"
    assert cell(text, "Hoppet over")[0] == "1"
    assert cell(text, "Feilet")[0] == "1"
    assert cell(text, "Venter")[0] == "1"
    assert cell(text, "Status") == ["Pågår", "Ferdig"]
    assert '<progress value="3" max="4"' in text and "3 av 4" in text
    assert cell(text, "Fremdrift")[1] == "Ingen mottakere"
    assert " kl. 08.00 – " in cell(text, "Periode")[0]  # local times of the period


def test_a_runs_deliveries_are_searched_by_address_with_each_failures_reason(
    settings: Settings, smtp: SMTPServer, admin_client: httpx.Client
) -> None:
    started = make_run(
        settings, ["ok@kommune.no", "full@kommune.no", "gone@kommune.no", "full_2@x.no"]
    )
    smtp.inbox.refuse["full@kommune.no"] = "452 4.2.2 Mailbox full"
    smtp.inbox.refuse["gone@kommune.no"] = "550 5.1.1 No such user"
    deliver_chunk(settings, started.run_id, started.chunks[0])
    url = f"{PAGE}/{started.run_id}"
    every = admin_client.get(url).text
    assert cell(every, "Adresse") == [
        "full@kommune.no",
        "full_2@x.no",
        "gone@kommune.no",
        "ok@kommune.no",
    ]
    found = admin_client.get(url, params={"adresse": " FULL@"}).text
    assert cell(found, "Adresse") == ["full@kommune.no"]
    assert "452" in cell(found, "Feil")[0] and "4.2.2 Mailbox full" in cell(found, "Feil")[0]
    assert cell(found, "Status") == ["Venter"]
    # A LIKE wildcard in the search is a plain character.
    assert cell(admin_client.get(url, params={"adresse": "l_2"}).text, "Adresse") == ["full_2@x.no"]
    assert cell(admin_client.get(url, params={"adresse": "l%k"}).text, "Adresse") == []
    failed = admin_client.get(url, params={"status": "failed"}).text
    assert cell(failed, "Adresse") == ["gone@kommune.no"]
    assert "550" in cell(failed, "Feil")[0] and "5.1.1 No such user" in cell(failed, "Feil")[0]
    assert 'value="failed" selected' in failed
    # The suppressed address's failure is not offered for a retry, and the page says why.
    assert "Prøv feilede på nytt" not in failed
    assert "1 som er sperret" in failed
    # Hostile or unknown filters show everything, or nothing, never an error.
    odd = admin_client.get(url, params={"status": "nope", "adresse": "\u202egone\x00", "side": "x"})
    assert odd.status_code == 200
    assert cell(odd.text, "Adresse") == ["gone@kommune.no"]
    assert 'aria-invalid="true"' in odd.text


def test_deliveries_are_paged(
    settings: Settings, smtp: SMTPServer, admin_client: httpx.Client
) -> None:
    emails = [f"k{n:02}@kommune.no" for n in range(55)]
    started = make_run(settings, emails)
    url = f"{PAGE}/{started.run_id}"
    first = admin_client.get(url, params={"status": "pending"}).text
    assert cell(first, "Adresse") == emails[:50]
    assert "55 mottakere som passer søket" in first
    link = re.search(r'href="([^"]+)" rel="next"', first)
    assert link is not None
    second = admin_client.get(link[1].replace("&amp;", "&")).text
    assert cell(second, "Adresse") == emails[50:]
    assert 'rel="next"' not in second and 'rel="prev"' in second


def test_unknown_runs_are_404_and_editors_are_refused(
    settings: Settings, admin_client: httpx.Client, editor_client: httpx.Client
) -> None:
    for target in ("999999", "abc", "٣", "-1", "9" * 40):
        assert admin_client.get(f"{PAGE}/{target}").status_code == 404
        answer = admin_client.post(
            f"{PAGE}/{target}/prov-igjen", data={"csrf": csrf(admin_client, PAGE)}
        )
        assert answer.status_code == 404 and "Fant ikke utsendelsen" in answer.text
    assert editor_client.get(PAGE).status_code == 403
    assert editor_client.get(f"{PAGE}/1").status_code == 403


def test_retry_failed_sends_the_failed_mails_of_an_old_run_once(
    settings: Settings, smtp: SMTPServer, admin_client: httpx.Client
) -> None:
    emails = ["a@kommune.no", "b@kommune.no", "c@kommune.no", "left@kommune.no"]
    started = make_run(settings, emails, days_ago=3)
    # The relay refused a, b and left for now; the run is old, so they were given up.
    for email in ("a@kommune.no", "b@kommune.no", "left@kommune.no"):
        smtp.inbox.refuse[email] = TRY_LATER
    deliver_chunk(settings, started.run_id, started.chunks[0])
    assert statuses(settings, started.run_id) == {
        "a@kommune.no": "failed",
        "b@kommune.no": "failed",
        "c@kommune.no": "sent",
        "left@kommune.no": "failed",
    }
    with session_scope(settings.database_url) as session:
        assert session.get_one(DigestRun, started.run_id).status == RunStatus.COMPLETE
        left = session.scalar(select(Subscriber).where(Subscriber.email == "left@kommune.no"))
        assert left is not None
        left.status = Status.UNSUBSCRIBED  # left meanwhile: not to be mailed again
    smtp.inbox.refuse.clear()  # the relay is fixed
    url = f"{PAGE}/{started.run_id}"
    page = admin_client.get(url).text
    assert "gave up" in " ".join(cell(page, "Feil"))
    assert "2 feilet til mottakere som fortsatt abonnerer" in page
    assert "1 som har meldt seg av" in page

    answer = admin_client.post(f"{url}/prov-igjen", data={"csrf": csrf(admin_client, url)})
    assert answer.status_code == 303 and answer.headers["location"] == f"{url}?melding=provd"

    def sent() -> bool:
        return statuses(settings, started.run_id)["b@kommune.no"] == "sent"

    wait_for(sent)
    assert statuses(settings, started.run_id) == {
        "a@kommune.no": "sent",
        "b@kommune.no": "sent",
        "c@kommune.no": "sent",
        "left@kommune.no": "failed",
    }
    wait_for(lambda: run_status(settings, started.run_id) == RunStatus.COMPLETE)
    assert sorted(r for _sender, rcpts in smtp.inbox.envelopes for r in rcpts) == [
        "a@kommune.no",
        "b@kommune.no",
        "c@kommune.no",
    ]
    page = admin_client.get(answer.headers["location"]).text
    assert "lagt i kø på nytt" in page
    assert "Prøv feilede på nytt" not in page
    with session_scope(settings.database_url) as session:
        entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "run_retry"))
        assert entry is not None and entry.editor_email == "admin@bufdir.no"
        assert entry.target_type == "run" and entry.target_id == str(started.run_id)
        assert entry.before == {"status": "complete", "failed": 3}
        assert entry.after == {
            "status": "running",
            "retried": 2,
            "not_retried": {"unsubscribed": 1},
        }
    # Again: nothing left to retry, nothing sent twice.
    again = admin_client.post(f"{url}/prov-igjen", data={"csrf": csrf(admin_client, url)})
    assert again.headers["location"] == f"{url}?melding=ingen"
    assert len(smtp.inbox.messages) == 3


def run_status(settings: Settings, run_id: int) -> str:
    with session_scope(settings.database_url) as session:
        return str(session.get_one(DigestRun, run_id).status)


def test_a_retried_delivery_gets_one_fresh_try(settings: Settings, smtp: SMTPServer) -> None:
    # Refused for now again, a retried delivery of an old run fails again at once: a retry
    # is one more try, not a new round of them.
    started = make_run(settings, ["a@kommune.no"], days_ago=3)
    smtp.inbox.refuse["a@kommune.no"] = TRY_LATER
    deliver_chunk(settings, started.run_id, started.chunks[0])
    with session_scope(settings.database_url) as session:
        run = session.get_one(DigestRun, started.run_id)
        done = retry.retry_failed(session, run)
        assert (done.retried, done.reopened, done.chunks) == (1, True, started.chunks)
        delivery = session.scalar(select(Delivery))
        assert delivery is not None
        assert (delivery.status, delivery.attempts) == (MailStatus.PENDING, 0)
        assert "451" in (delivery.error or "")  # the last error stays until the next outcome
    report = deliver_chunk(settings, started.run_id, started.chunks[0])
    assert (report.failed, report.retry) == (1, 0)
    with session_scope(settings.database_url) as session:
        delivery = session.scalar(select(Delivery))
        assert delivery is not None and delivery.attempts == 1
        assert delivery.error is not None and delivery.error.startswith("gave up after 1 attempt")
        assert session.get_one(DigestRun, started.run_id).status == RunStatus.COMPLETE


class Recorded:
    """Jobs that note what they were asked, and what the database said at that moment."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.asked: list[tuple[str, int, list[int], dict[str, str]]] = []

    def collect_now(self, source_id: int) -> None:
        self.asked.append(("collect", source_id, [], {}))

    def deliver(self, run_id: int, subscriber_ids: list[int]) -> None:
        self.asked.append(("deliver", run_id, subscriber_ids, statuses(self.settings, run_id)))


def test_retry_hands_the_chunks_to_the_apps_jobs_after_the_commit(
    settings: Settings, smtp: SMTPServer
) -> None:
    from digest.core.models import EditorRole
    from digest.web.app import create_app
    from tests.support.editors import make_editor, sign_in
    from tests.support.server import LiveServer

    started = make_run(settings, ["a@kommune.no", "b@kommune.no"], days_ago=3)
    smtp.inbox.refuse["b@kommune.no"] = TRY_LATER
    deliver_chunk(settings, started.run_id, started.chunks[0])
    jobs = Recorded(settings)
    make_editor(settings, "admin@bufdir.no", EditorRole.ADMIN)
    server = LiveServer(create_app(settings, jobs=jobs)).start()
    try:
        with server.client() as web:
            assert sign_in(web, "admin@bufdir.no").status_code == 303
            url = f"{PAGE}/{started.run_id}"
            answer = web.post(f"{url}/prov-igjen", data={"csrf": csrf(web, url)})
            assert answer.status_code == 303
            wait_for(lambda: bool(jobs.asked))
    finally:
        server.stop()
    with session_scope(settings.database_url) as session:
        b = session.scalar(select(Subscriber.id).where(Subscriber.email == "b@kommune.no"))
    # Asked once, for b only, when b's delivery was already pending in the database.
    assert jobs.asked == [
        ("deliver", started.run_id, [b], {"a@kommune.no": "sent", "b@kommune.no": "pending"})
    ]
    assert len(smtp.inbox.messages) == 1  # these jobs send nothing themselves
