"""The admins' subscriber pages: search and filters, one person's data, the roster upload
(a dry run that stores nothing, then the import of exactly what was checked), and the
export with spreadsheet-safe cells."""

from __future__ import annotations

import csv
import io
import re
import time

import httpx
import pytest
from sqlalchemy import func, select

from digest.core.db import session_scope
from digest.core.models import AuditEntry, Notice
from digest.core.settings import Settings
from subscribers.choices import choices
from subscribers.models import Subscriber
from subscribers.signups import add_subscriber
from tests.support.server import csrf
from tests.support.smtp import SMTPServer

LIST = "/redaksjon/abonnenter"
IMPORT = "/redaksjon/abonnenter/import"


def add(
    settings: Settings,
    email: str,
    *,
    name: str = "",
    municipality: str = "",
    role: str = "",
    frequency: str = "daily",
    confirmed: bool = True,
) -> str:
    """A subscriber as the CLI adds one; their public ref."""
    with session_scope(settings.database_url) as session:
        chosen = choices(name=name, municipality=municipality, role=role, frequency=frequency)
        return add_subscriber(session, email, chosen, confirmed=confirmed).ref


def emails(page: httpx.Response) -> list[str]:
    return re.findall(r'<td data-label="E-post"><a href="[^"]+">([^<]+)</a>', page.text)


def count(settings: Settings, model: type) -> int:
    with session_scope(settings.database_url) as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def audit_actions(settings: Settings) -> list[tuple[str, object]]:
    with session_scope(settings.database_url) as session:
        return [
            (e.action, e.after) for e in session.scalars(select(AuditEntry).order_by(AuditEntry.id))
        ]


def upload(
    client: httpx.Client,
    data: bytes,
    *,
    confirmed: bool = False,
    basis: str = "",
    token: str | None = None,
) -> httpx.Response:
    fields = {"csrf": token if token is not None else csrf(client, IMPORT), "basis": basis}
    if confirmed:
        fields["confirmed"] = "1"
    return client.post(IMPORT, data=fields, files={"file": ("liste.csv", data, "text/csv")})


def hidden(page: httpx.Response) -> dict[str, str]:
    """The fields of the «Importer» form on a dry run's page."""
    form = page.text.split('action="/redaksjon/abonnenter/import/lagre"')[1].split("</form>")[0]
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form))


def import_checked(client: httpx.Client, fields: dict[str, str]) -> httpx.Response:
    # Sent as the browser sends the form: multipart, every field a part.
    return client.post(
        f"{IMPORT}/lagre", files={name: (None, value) for name, value in fields.items()}
    )


ROSTER = (
    "email;name;municipality;role;frequency\r\n"
    "kari@oslo.kommune.no;Kari Nordmann;0301;kommunal-ledelse;daily\r\n"
    "feil-adresse@@kommune.no;Feil;Oslo;;\r\n"
    "anne@atlantis.no;Anne;Atlantis;;\r\n"
    "bo@tromso.kommune.no;Bo\x07 \u202eLarsen;Tromsø;;weekly\r\n"
    "per@tana.kommune.no;Per;Tana;helse-omsorg;\r\n"
).encode()


def test_search_and_filters(settings: Settings, admin_client: httpx.Client) -> None:
    add(
        settings,
        "kari@oslo.kommune.no",
        name="Kari Nordmann",
        municipality="0301",
        role="krisesenter",
    )
    add(
        settings,
        "ola@bergen.kommune.no",
        name="Ola Hansen",
        municipality="Bergen",
        frequency="weekly",
    )
    add(settings, "nora@oslo.kommune.no", name="Nora", municipality="0301", confirmed=False)
    assert emails(admin_client.get(LIST)) == [
        "kari@oslo.kommune.no",
        "nora@oslo.kommune.no",
        "ola@bergen.kommune.no",
    ]
    # Substring of the address or the name, in any case.
    assert emails(admin_client.get(LIST, params={"q": "OSLO"})) == [
        "kari@oslo.kommune.no",
        "nora@oslo.kommune.no",
    ]
    assert emails(admin_client.get(LIST, params={"q": "hansen"})) == ["ola@bergen.kommune.no"]
    # LIKE's wildcards are plain characters here.
    assert emails(admin_client.get(LIST, params={"q": "%"})) == []
    page = admin_client.get(LIST, params={"status": "pending"})
    assert emails(page) == ["nora@oslo.kommune.no"]
    assert "1 abonnent passer" in page.text
    assert "aktiv 2" in page.text and "venter på bekreftelse 1" in page.text
    assert emails(admin_client.get(LIST, params={"municipality": "0301", "status": "active"})) == [
        "kari@oslo.kommune.no"
    ]
    assert emails(admin_client.get(LIST, params={"role": "krisesenter"})) == [
        "kari@oslo.kommune.no"
    ]
    assert emails(admin_client.get(LIST, params={"frequency": "weekly"})) == [
        "ola@bergen.kommune.no"
    ]
    # Values that are not choices are ignored, not a 500.
    odd = admin_client.get(
        LIST, params={"status": "x", "role": "\x00", "frequency": "yearly", "side": "99999999999"}
    )
    assert odd.status_code == 200 and len(emails(odd)) == 3


def test_pages_of_fifty(settings: Settings, admin_client: httpx.Client) -> None:
    with session_scope(settings.database_url) as session:
        for i in range(55):
            add_subscriber(session, f"p{i:02}@kommune.no", choices(), confirmed=True)
    first = admin_client.get(LIST)
    assert len(emails(first)) == 50 and "side 1 av 2" in first.text
    second = admin_client.get(LIST, params={"side": "2"})
    assert emails(second) == [f"p{i:02}@kommune.no" for i in range(50, 55)]


def test_editors_are_refused(editor_client: httpx.Client) -> None:
    for path in (LIST, IMPORT, f"{LIST}/eksport.csv", f"{LIST}/1"):
        assert editor_client.get(path).status_code == 403


def test_show_page_has_what_the_cli_shows(settings: Settings, admin_client: httpx.Client) -> None:
    ref = add(settings, "kari@oslo.kommune.no", name="Kari <b>Nordmann</b>", municipality="0301")
    with session_scope(settings.database_url) as session:
        subscriber_id = session.scalar(select(Subscriber.id).where(Subscriber.ref == ref))
    page = admin_client.get(f"{LIST}/{ref}")
    assert page.status_code == 200
    assert "kari@oslo.kommune.no" in page.text
    assert "Kari &lt;b&gt;Nordmann&lt;/b&gt;" in page.text
    assert "Oslo" in page.text and "Aktiv" in page.text
    assert "Meldt på" in page.text and "Kommandolinjen" in page.text  # the consent history
    assert re.search(r"\d\d\.\d\d\.\d{4} kl\. \d\d\.\d\d", page.text)
    assert admin_client.get(f"{LIST}/{subscriber_id}").status_code == 200
    for unknown in ("nobody", "999999", "9" * 30, "%00"):
        assert admin_client.get(f"{LIST}/{unknown}").status_code == 404


def test_dry_run_stores_nothing_then_import_stores_the_good_rows(
    settings: Settings, admin_client: httpx.Client, smtp: SMTPServer
) -> None:
    checked = upload(admin_client, ROSTER)
    assert checked.status_code == 200, checked.text
    assert count(settings, Subscriber) == 0 and count(settings, Notice) == 0
    text = checked.text
    assert "5 linjer: 3 nye, 0 oppdateres, 0 duplikater, 2 avvist" in text
    row = re.compile(r'<td data-label="Linje">(\d+)</td><td data-label="E-post">([^<]*)</td>')
    refused = dict(row.findall(text.split("ikke blir importert")[1].split("</table>")[0]))
    assert refused == {"3": "feil-adresse@@kommune.no", "4": "anne@atlantis.no"}
    assert "Velg en kommune fra listen." in text  # the reason, in bokmål
    # A name with control and bidi characters is imported cleaned, not refused.
    assert "\u202e" not in text and "\x07" not in text

    fields = hidden(checked)
    done = import_checked(admin_client, fields)
    assert done.status_code == 200, done.text
    assert "3 nye lagt til" in done.text
    with session_scope(settings.database_url) as session:
        stored = {s.email: s for s in session.scalars(select(Subscriber))}
        assert set(stored) == {
            "kari@oslo.kommune.no",
            "bo@tromso.kommune.no",
            "per@tana.kommune.no",
        }
        assert stored["bo@tromso.kommune.no"].name == "Bo Larsen"
        assert {s.status for s in stored.values()} == {"pending"}
    # Confirmation mails go out after the commit, as the CLI sends them.
    deadline = time.monotonic() + 10
    while len(smtp.inbox.messages) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(smtp.inbox.messages) == 3
    assert [a for a, _ in audit_actions(settings) if a.startswith("roster")] == ["roster_import"]
    after = next(after for a, after in audit_actions(settings) if a == "roster_import")
    assert isinstance(after, dict) and after["imported"] == 3 and after["refused"] == 2


def test_confirmed_import_needs_a_basis_and_sends_nothing(
    settings: Settings, admin_client: httpx.Client, smtp: SMTPServer
) -> None:
    refused = upload(admin_client, ROSTER, confirmed=True)
    assert refused.status_code == 400
    assert 'aria-invalid="true" aria-describedby="basis-feil"' in refused.text
    assert 'name="confirmed" type="checkbox" value="1" checked' in refused.text
    checked = upload(admin_client, ROSTER, confirmed=True, basis="Avtale med KS")
    assert import_checked(admin_client, hidden(checked)).status_code == 200
    with session_scope(settings.database_url) as session:
        assert set(session.scalars(select(Subscriber.status))) == {"active"}
    assert count(settings, Notice) == 0 and smtp.inbox.messages == []


@pytest.mark.parametrize("change", ["roster", "confirmed", "basis", "made"])
def test_a_tampered_import_is_refused(
    settings: Settings, admin_client: httpx.Client, change: str
) -> None:
    fields = hidden(upload(admin_client, ROSTER))
    if change == "roster":
        import base64
        import zlib

        other = b"email\r\nevil@example.no\r\n"
        fields["roster"] = base64.b64encode(zlib.compress(other)).decode()
    elif change == "confirmed":
        fields["confirmed"] = "1"
    elif change == "basis":
        fields["basis"] = "noe annet"
    else:
        fields["made"] = str(int(fields["made"]) + 1)
    answer = import_checked(admin_client, fields)
    assert answer.status_code == 400
    assert "utløpt eller endret" in answer.text
    assert count(settings, Subscriber) == 0


def test_a_file_that_is_not_a_roster_is_explained_by_the_field(admin_client: httpx.Client) -> None:
    answer = upload(admin_client, b"navn;kommune\r\nKari;Oslo\r\n")
    assert answer.status_code == 400
    assert 'id="file-feil"' in answer.text and "email" in answer.text
    empty = upload(admin_client, b"")
    assert empty.status_code == 400 and "Velg en CSV-fil" in empty.text


def test_upload_needs_csrf_and_a_size_limit(settings: Settings, admin_client: httpx.Client) -> None:
    assert upload(admin_client, ROSTER, token="forged").status_code == 403
    no_csrf = admin_client.post(IMPORT, files={"file": ("liste.csv", ROSTER, "text/csv")})
    assert no_csrf.status_code == 403
    token = csrf(admin_client, IMPORT)
    big = b"email\r\n" + b"x" * 3_100_000
    assert upload(admin_client, big, token=token).status_code == 413  # by Content-Length
    # Under the body's limit but over the file's.
    assert (
        upload(admin_client, b"email\r\n" + b"a@b.no\r\n" * 320_000, token=token).status_code == 413
    )

    # A body sent without a length is counted while read.
    def chunks():
        yield b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n\r\n'
        for _ in range(40):
            yield b"y" * 100_000

    chunked = admin_client.post(
        IMPORT, content=chunks(), headers={"content-type": "multipart/form-data; boundary=x"}
    )
    assert chunked.status_code == 413
    assert count(settings, Subscriber) == 0


def test_export_is_the_cli_roster_with_formulas_neutralised(
    settings: Settings, admin_client: httpx.Client
) -> None:
    add(settings, "kari@oslo.kommune.no", name='=HYPERLINK("http://evil")', municipality="0301")
    add(settings, "ola@bergen.kommune.no", name="Ola", frequency="weekly")
    answer = admin_client.get(f"{LIST}/eksport.csv")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.headers["content-disposition"] == 'attachment; filename="abonnenter.csv"'
    rows = list(csv.reader(io.StringIO(answer.content.decode("utf-8-sig")), delimiter=";"))
    assert rows[0] == [
        "email",
        "name",
        "municipality",
        "role",
        "frequency",
        "topics",
        "language",
        "status",
    ]
    assert rows[1][:2] == ["kari@oslo.kommune.no", '\'=HYPERLINK("http://evil")']
    assert rows[2][0] == "ola@bergen.kommune.no"
    only = admin_client.get(f"{LIST}/eksport.csv", params={"frequency": "weekly"})
    assert len(list(csv.reader(io.StringIO(only.content.decode("utf-8-sig"))))) == 2
    exports = [after for action, after in audit_actions(settings) if action == "roster_export"]
    assert exports == [
        {"filters": {}, "count": 2},
        {"filters": {"frequency": "weekly"}, "count": 1},
    ]
