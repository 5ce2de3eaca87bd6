"""Hostile bodies and links on the watcher side, from a real local server: a body that names
a local file, compression bombs (stacked or single, in a page or a redirect), XML that
hides entity declarations in a stateful encoding, and links no URL parser can use.
"""

from __future__ import annotations

import codecs
import encodings
import functools
import gzip
import logging
import pkgutil
import tracemalloc
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from digest.core.db import session_scope
from digest.core.models import Item, Source
from digest.core.settings import Settings, get_settings
from digest.watch.fetch import Fetcher, FetchError, FetchLimits
from digest.watch.readers.feed import read as read_feed
from digest.watch.xmlguard import declares_entities
from tests.support.collecting import collect_key, watch
from tests.support.feeds import rss
from tests.support.site import FixtureSite, Route

AT = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
HTML = "text/html; charset=utf-8"
MB = 1_000_000

SOURCES = """
[topics]
t = "T"

[[source]]
key = "good"
name = "Good"
kind = "feed"
url = "{base}/good"
topics = ["t"]

[[source]]
key = "feed"
name = "Feed"
kind = "feed"
url = "{base}/feed"
topics = ["t"]

[[source]]
key = "index"
name = "Index"
kind = "index"
url = "{base}/index"
topics = ["t"]
options = {{ link_pattern = "/a/" }}

[[source]]
key = "sitemap"
name = "Sitemap"
kind = "sitemap"
url = "{base}/sitemap"
topics = ["t"]
"""


@pytest.fixture
def watched(settings: Settings, site: FixtureSite, tmp_path: Path, env) -> Settings:
    env.setenv("DIGEST_FETCH_MAX_BYTES", str(MB))
    env.setenv("DIGEST_FETCH_TIMEOUT_SECONDS", "2")
    get_settings.cache_clear()
    limited = get_settings()
    watch(limited, tmp_path / "bodies.toml", SOURCES.format(base=site.base_url))
    site.routes["/good"] = Route(
        rss("Good", site.url("/"), [{"title": "Trygg", "link": site.url("/n/"), "published": AT}])
    )
    return limited


def collect(settings: Settings, key: str):
    return collect_key(settings, key, AT)


def stored_titles(settings: Settings) -> list[str]:
    with session_scope(settings.database_url) as session:
        return [item.title for item in session.scalars(select(Item))]


def fetcher(max_bytes: int = MB) -> Fetcher:
    limits = FetchLimits(
        timeout=5, max_bytes=max_bytes, host_delay=0, allow_private=True, respect_robots=False
    )
    return Fetcher("x", limits)


# 1. A body is data, never a name of something to open.


def test_a_body_that_names_a_local_file_is_not_read_from_disk(
    watched: Settings, site: FixtureSite, tmp_path: Path
) -> None:
    local = tmp_path / "localfeed.xml"
    local.write_bytes(
        rss(
            "Lokal",
            "https://x.no/",
            [{"title": "LOCAL-FILE", "link": "https://x.no/l", "published": AT}],
        )
    )
    for body in (str(local).encode(), str(local).encode() + b"\n"):
        site.routes["/feed"] = Route(body)
        outcome = collect(watched, "feed")
        assert not outcome.ok and "not a readable feed" in outcome.error
    assert "LOCAL-FILE" not in " ".join(stored_titles(watched))
    assert collect(watched, "good").ok


def test_the_feed_reader_reads_a_path_as_text(tmp_path: Path) -> None:
    local = tmp_path / "feed.xml"
    local.write_bytes(
        rss(
            "Lokal",
            "https://x.no/",
            [{"title": "LOCAL-FILE", "link": "https://x.no/l", "published": AT}],
        )
    )
    with pytest.raises(Exception, match="not a readable feed"):
        read_feed(str(local).encode(), {"content-type": "application/rss+xml"}, "https://x.no/", {})


# 2. Compressed bodies are decoded by us, within the cap.


@functools.cache  # the same bomb serves several tests; making it is most of their time
def zeros_gzipped(size: int, times: int = 1) -> bytes:
    """`size` zero bytes gzipped `times` times, without holding them all at once."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(MB)
    data = b"".join(packer.compress(block) for _ in range(size // MB)) + packer.flush()
    for _ in range(times - 1):
        data = gzip.compress(data, 9)
    return data


def test_stacked_content_encodings_are_refused(site: FixtureSite) -> None:
    site.routes["/twice"] = Route(
        zeros_gzipped(20 * MB, times=2),
        content_type="text/html",
        headers={"Content-Encoding": "gzip, gzip"},
    )
    with fetcher() as client, pytest.raises(FetchError) as info:
        client.get(site.url("/twice"))
    assert info.value.reason == "refused Content-Encoding 'gzip, gzip': one of gzip or deflate only"


@pytest.mark.parametrize("coding", ["br", "compress", "zstd", "gzip, x-bomb"])
def test_compressions_we_do_not_undo_are_refused(site: FixtureSite, coding: str) -> None:
    site.routes["/odd"] = Route(
        b"data", content_type="text/plain", headers={"Content-Encoding": coding}
    )
    with fetcher() as client, pytest.raises(FetchError) as info:
        client.get(site.url("/odd"))
    assert info.value.reason == f"refused Content-Encoding '{coding}': one of gzip or deflate only"


@pytest.mark.parametrize("coding", ["none", "UTF-8", "binary"])
def test_a_coding_that_names_no_compression_is_ignored(site: FixtureSite, coding: str) -> None:
    # Misconfigured servers say this of plain bodies; browsers and httpx read them as such.
    site.routes["/plain"] = Route(
        b"data", content_type="text/plain", headers={"Content-Encoding": coding}
    )
    with fetcher() as client:
        assert client.get(site.url("/plain")).body == b"data"


def test_a_cut_off_compressed_body_is_a_fetch_error(site: FixtureSite) -> None:
    whole = gzip.compress("Blåbær og ærfugl. ".encode() * 5000)
    site.routes["/cut"] = Route(
        whole[: len(whole) // 2], content_type="text/plain", headers={"Content-Encoding": "gzip"}
    )
    with fetcher() as client, pytest.raises(FetchError, match="ends before its data"):
        client.get(site.url("/cut"))


def test_broken_compressed_data_is_a_fetch_error(site: FixtureSite) -> None:
    site.routes["/broken"] = Route(
        b"not gzip at all", content_type="text/plain", headers={"Content-Encoding": "gzip"}
    )
    with fetcher() as client, pytest.raises(FetchError, match="broken gzip data"):
        client.get(site.url("/broken"))


@pytest.mark.parametrize(
    ("coding", "pack"),
    [
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw deflate, as some servers send
        ("identity", lambda data: data),
        ("GZIP", gzip.compress),
    ],
    ids=["gzip", "x-gzip", "deflate", "raw-deflate", "identity", "upper-case"],
)
def test_the_codings_we_ask_for_are_decoded(site: FixtureSite, coding: str, pack) -> None:
    text = "Blåbær og ærfugl. ".encode() * 5000
    site.routes["/ok"] = Route(
        pack(text), content_type="text/plain", headers={"Content-Encoding": coding}
    )
    with fetcher() as client:
        assert client.get(site.url("/ok")).body == text


def test_a_body_exactly_at_the_cap_passes_after_decompression(site: FixtureSite) -> None:
    site.routes["/edge"] = Route(bytes(MB), gzip=True, content_type="text/plain")
    with fetcher() as client:
        assert client.get(site.url("/edge")).body == bytes(MB)
    site.routes["/over"] = Route(bytes(MB + 1), gzip=True, content_type="text/plain")
    with fetcher() as client, pytest.raises(FetchError, match="larger than 1000000 bytes"):
        client.get(site.url("/over"))


def peak_while(call) -> int:
    """The most memory Python held at once during `call`, in bytes (tracemalloc)."""
    tracemalloc.start()
    try:
        call()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def test_a_gzip_bomb_is_stopped_at_the_cap_without_inflating_it(site: FixtureSite) -> None:
    site.routes["/bomb"] = Route(
        zeros_gzipped(200 * MB), content_type="text/html", headers={"Content-Encoding": "gzip"}
    )

    def fetch() -> None:
        with fetcher() as client, pytest.raises(FetchError, match="larger than 1000000 bytes"):
            client.get(site.url("/bomb"))

    # 200 MB inflated at once before; now never much more than the 1 MB cap.
    assert peak_while(fetch) < 30 * MB


def test_a_redirect_body_is_never_read(site: FixtureSite) -> None:
    site.routes["/go"] = Route(
        zeros_gzipped(200 * MB),
        status=302,
        content_type="text/html",
        headers={"Location": site.url("/there"), "Content-Encoding": "gzip"},
    )
    site.routes["/there"] = Route(b"arrived", content_type="text/plain")

    def fetch() -> None:
        with fetcher() as client:
            result = client.get(site.url("/go"))
        assert result.body == b"arrived" and result.url == site.url("/there")

    assert peak_while(fetch) < 30 * MB


def test_permanent_redirects_are_still_followed_and_reported(site: FixtureSite) -> None:
    site.routes["/old"] = Route(status=301, headers={"Location": "/mid"})
    site.routes["/mid"] = Route(status=308, headers={"Location": site.url("/new")})
    site.routes["/new"] = Route(b"new", content_type="text/plain")
    with fetcher() as client:
        result = client.get(site.url("/old"))
    assert (result.body, result.url, result.moved_to) == (
        b"new",
        site.url("/new"),
        site.url("/new"),
    )
    site.routes["/loop"] = Route(status=302, headers={"Location": "/loop"})
    with fetcher() as client, pytest.raises(FetchError, match="more than 5 redirects"):
        client.get(site.url("/loop"))
    assert [path for path, _ in site.requests].count("/loop") == 6


def test_a_collected_double_gzip_page_fails_only_its_source(
    watched: Settings, site: FixtureSite
) -> None:
    site.routes["/feed"] = Route(
        zeros_gzipped(50 * MB, times=2), headers={"Content-Encoding": "gzip, gzip"}
    )
    outcome = collect(watched, "feed")
    assert not outcome.ok and "refused Content-Encoding 'gzip, gzip'" in outcome.error
    assert collect(watched, "good").ok


# 3. Entity declarations hidden by a stateful or unusual encoding.

TAIL = (
    b'<rss version="2.0"><channel><title>T</title><link>https://x.no/</link>'
    b"<item><title>x &a; y</title><link>https://x.no/1</link><guid>g1</guid></item>"
    b"</channel></rss>"
)
PAD = b" " * 250


def ebcdic(codec: str, padding: str = "") -> bytes:
    doc = (
        f'<?xml version="1.0"{padding} encoding="{codec}"?>'
        '<!DOCTYPE rss [<!ENTITY a "PWNED-ENTITY">]>' + TAIL.decode()
    )
    return doc.encode(codec)


HIDDEN = {
    "iso 2022 jp": b'<?xml version="1.0" encoding="iso 2022 jp"?>'
    b'<!DOCTYPE rss [<!EN\x1b(BTITY a "PWNED-ENTITY">]>' + TAIL,
    "iso-2022-jp after padding": b'<?xml version="1.0"' + PAD + b' encoding="iso-2022-jp"?>'
    b'<!DOCTYPE rss [<!EN\x1b(BTITY a "PWNED-ENTITY">]>' + TAIL,
    "hz after padding": b'<?xml version="1.0"' + PAD + b' encoding="hz"?>'
    b'<!DOCTYPE rss [<!EN~\nTITY a "PWNED-ENTITY">]>' + TAIL,
    "iso-2022-kr, second declaration": b'<?xml version="1.0" encoding="utf-8"?>'
    b'<?x encoding="iso-2022-kr"?><!DOCTYPE rss [<!EN\x0f\x0fTITY a "PWNED-ENTITY">]>' + TAIL,
    "mixed quotes": b'<?xml version="1.0" encoding="iso-2022-jp\'?>'
    b'<!DOCTYPE rss [<!EN\x1b(BTITY a "PWNED-ENTITY">]>' + TAIL,
    "mac-arabic after padding": b'<?xml version="1.0"' + PAD + b' encoding="mac-arabic"?>'
    b'<!DOCTYPE rss [\xbc\xa1ENTITY a "PWNED-ENTITY">]>' + TAIL,
    "cp500 after padding": ebcdic("cp500", " " * 250),
    "cp1140 after padding": ebcdic("cp1140", " " * 250),
}


@pytest.mark.parametrize("case", list(HIDDEN))
def test_entities_hidden_by_an_encoding_are_refused(case: str) -> None:
    assert declares_entities(HIDDEN[case], "application/rss+xml")


@pytest.mark.parametrize("case", list(HIDDEN))
def test_a_collected_feed_with_hidden_entities_stores_nothing(
    watched: Settings, site: FixtureSite, case: str
) -> None:
    site.routes["/feed"] = Route(HIDDEN[case], content_type="application/rss+xml")
    outcome = collect(watched, "feed")
    assert not outcome.ok and "declares entities" in outcome.error
    assert not any("PWNED" in title for title in stored_titles(watched))


def test_an_internal_subset_is_refused_in_any_encoding() -> None:
    # Entities can only be declared in an internal subset: refuse it even when empty.
    for doc in (
        '<?xml version="1.0"?><!DOCTYPE rss [ ]><rss/>',
        '<?xml version="1.0"?><!doctype rss SYSTEM "a>b" [<!-- x -->]><rss/>',
        "<!DOCTYPE rss PUBLIC \"-//x//EN\" 'y'\n[\n]><rss/>",
    ):
        assert declares_entities(doc.encode())
        assert declares_entities(doc.encode("utf-16"))
        assert declares_entities(doc.encode("cp500"))
    hidden = b'<?xml version="1.0" encoding="iso-2022-jp"?><!DOC\x1b(BTYPE rss [ ]><rss/>'
    assert declares_entities(hidden)


@pytest.mark.parametrize(
    "body",
    [
        b'<?xml version="1.0"?>\n<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN"'
        b' "http://my.netscape.com/publish/formats/rss-0.91.dtd">\n<rss version="0.91"/>',
        b"<!DOCTYPE html><html><body>[ok]</body></html>",
        '<?xml version="1.0" encoding="utf-8"?><rss><channel><title>Blåbær [1] &lt;!DOCTYPE x [</title>'
        "</channel></rss>".encode(),
        '<?xml version="1.0" encoding="iso-2022-jp"?><rss><channel><title>日本語 [1]</title>'
        "</channel></rss>".encode("iso-2022-jp"),
    ],
    ids=["netscape", "html", "escaped", "iso-2022-jp"],
)
def test_plain_documents_pass(body: bytes) -> None:
    assert not declares_entities(body, "application/rss+xml")


def test_every_codec_that_can_hide_markup_is_searched() -> None:
    from digest.watch.xmlguard import ESCAPING_CODECS

    # A codec is safe to skip only when the characters of "<!ENTITY" and "<!DOCTYPE ["
    # come out of it from their own ASCII bytes and nothing else; the rest are searched.
    # (The stateful ones, which need more than one byte to switch, are listed by hand.)
    wanted = set("<!ENTITYDOCPentitydocp[")
    unsafe = set()
    for module in pkgutil.iter_modules(encodings.__path__):
        try:
            info = codecs.lookup(module.name)
        except LookupError:
            continue
        if not getattr(info, "_is_text_encoding", True) or not _decodes(info.name):
            continue
        for byte in range(256):
            try:
                text = bytes([byte]).decode(info.name, "ignore")
            except UnicodeError:  # punycode refuses any byte past ASCII
                continue
            if any(char in wanted and ord(char) != byte for char in text):
                unsafe.add(info.name)
    assert unsafe
    assert unsafe <= {codecs.lookup(name).name for name in ESCAPING_CODECS}


# What each escaping codec can put inside a word without changing its text.
NO_OPS = {"iso2022_kr": b"\x0f", "hz": b"~\n"}


def hidden(markup: str, codec: str) -> bytes:
    """`markup` in `codec`, written so that its bytes are not the ASCII ones."""
    body = markup.encode(codec)
    word = markup[2:5].encode()  # "ENT" or "DOC", after "<!"
    letter = markup[3]
    if codec == "utf_7":
        spelled = "+" + codecs.encode(letter.encode("utf-16-be"), "base64").decode()[:3] + "-"
        return body.replace(word, word[:1] + spelled.encode() + word[2:], 1)
    if codec.endswith("unicode_escape"):
        return body.replace(word, word[:1] + b"\\u%04x" % ord(letter) + word[2:], 1)
    if codec.startswith("mac"):
        return body.replace(b"<!", b"\xbc\xa1", 1)
    no_op = NO_OPS.get(codec, b"\x1b(B" if codec.startswith("iso2022") else b"")
    return body.replace(word, word[:1] + no_op + word[1:], 1)


@pytest.mark.parametrize(
    "markup", ['<!ENTITY a "x"><r>&a;</r>', "<!DOCTYPE r [ ]><r/>"], ids=["entity", "subset"]
)
def test_each_escaping_codec_is_searched_without_being_declared(markup: str) -> None:
    from digest.watch.xmlguard import ESCAPING_CODECS

    for codec in ESCAPING_CODECS:
        body = hidden(markup, codec)
        assert markup[:5].encode() not in body, codec
        assert body.decode(codec) == markup, codec
        assert declares_entities(body), codec


def _decodes(codec: str) -> bool:
    try:
        b"a".decode(codec, "ignore")
    except (UnicodeError, ValueError, TypeError, LookupError):
        return False
    return True


# 4. Links no URL parser can use are warnings about those links only.

BAD_LINKS = [
    "http://xn--/a/1",
    "http://[fe80::1%25eth0]/a/2",
    "http://[::1%]/a/3",
    "http://[v1.x]/a/4",
    "http://x\u00ad.no/a/5",
    "http://\u2488.no/a/6",
    "http://xn--zz-zz.no/a/7",
]


@pytest.mark.parametrize("url", BAD_LINKS)
def test_an_unusable_url_is_a_one_line_fetch_error(url: str) -> None:
    with fetcher() as client, pytest.raises(FetchError) as info:
        client.get(url)
    assert "\n" not in info.value.reason


def test_a_redirect_to_an_unusable_url_is_a_fetch_error(site: FixtureSite) -> None:
    site.routes["/go"] = Route(status=302, headers={"Location": "http://xn--/x"})
    with fetcher() as client, pytest.raises(FetchError) as info:
        client.get(site.url("/go"))
    assert "\n" not in info.value.reason


def test_unusable_page_links_are_warnings_without_tracebacks(
    watched: Settings, site: FixtureSite, caplog: pytest.LogCaptureFixture
) -> None:
    links = "".join(f'<a href="{url}">Sak</a>' for url in BAD_LINKS)
    site.routes["/index"] = Route(
        f'<html><body><main>{links}<a href="/a/ok">God</a></main></body></html>'.encode(),
        content_type=HTML,
    )
    site.routes["/a/ok"] = Route(
        b"<html><body><article><h1>God sak</h1><p>Tekst</p></article></body></html>",
        content_type=HTML,
    )
    with caplog.at_level(logging.DEBUG):
        outcome = collect(watched, "index")
    assert outcome.ok
    assert "God sak" in stored_titles(watched)
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records]
    with session_scope(watched.database_url) as session:
        row = session.scalar(select(Source).where(Source.key == "index"))
        assert row.warning and "could not be read" in row.warning


def test_the_guards_shortcuts_read_as_the_codecs_do() -> None:
    # Single-byte code pages are decoded through a table and stateful codecs are skipped
    # when the body has none of their switching bytes: both must read what the codec does.
    import random

    from digest.watch import xmlguard

    chance = random.Random(7)
    for _ in range(300):
        data = bytes(chance.randrange(256) for _ in range(chance.randrange(80)))
        for codec in xmlguard._SINGLE_BYTE:
            assert xmlguard._decoded(data, codec) == data.decode(codec, "ignore").replace(
                "\x00", ""
            ), codec
        for codec, switches in xmlguard._STATEFUL.items():
            if not any(byte in data for byte in switches):
                assert data.decode(codec, "ignore") == data.decode("ascii", "ignore"), codec


def test_the_guard_holds_one_reading_of_a_large_body_at_a_time() -> None:
    # A sitemap may be 20 MB once unzipped; twenty decodings of it at once would be gigabytes.
    body = (
        b'<?xml version="1.0" encoding="UTF-8"?><urlset>'
        + b"<url><loc>https://x.no/a/b/c</loc></url>" * (8 * MB // 40)
        + b"</urlset>"
    )
    assert peak_while(lambda: declares_entities(body, "application/xml")) < 6 * len(body)
