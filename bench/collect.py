"""Collection benchmark: 200 sources of mixed kinds on a local server, a first pass and a
pass where nothing changed (all 304), and rss2email on the same feeds for comparison.

Run with `make bench` (or `python -m bench.collect` in the virtual environment).
Targets: the first pass over the feeds at least 5 times faster than `r2e run --no-send`,
and a no-change pass under 10 ms of our own CPU per source.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

COUNTS = {"feed": 120, "sitemap": 30, "index": 30, "sections": 20}


def _serve(queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    from bench.sites import build
    from tests.support.site import FixtureSite

    site = FixtureSite()
    routes, sources = build(site.base_url, COUNTS)
    site.routes.update(routes)
    site.start()
    queue.put((site.base_url, sources))
    while True:
        time.sleep(3600)


def _environment(folder: Path, sources_file: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    env.update(
        {
            "DIGEST_DATA_DIR": str(folder / "var"),
            "DIGEST_SOURCES_FILE": str(sources_file),
            "DIGEST_ALLOW_PRIVATE_HOSTS": "true",
            "DIGEST_FETCH_HOST_DELAY_SECONDS": "0",
        }
    )
    return env


def _pass(settings, ids: dict[str, tuple[str, int]]) -> tuple[float, float, dict[str, float]]:  # type: ignore[no-untyped-def]
    from digest.watch.collect import collect_by_id, make_fetcher
    from subscribers.base import utcnow

    per_kind: dict[str, float] = defaultdict(float)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    with make_fetcher(settings) as fetcher:
        for kind, source_id in ids.values():
            started = time.perf_counter()
            outcome = collect_by_id(settings, source_id, utcnow(), fetcher)
            if outcome is None or not outcome.ok:
                raise SystemExit(f"collection failed: {outcome}")
            per_kind[kind] += time.perf_counter() - started
    return time.perf_counter() - wall0, time.process_time() - cpu0, per_kind


def _rss2email(folder: Path, feeds: list[dict]) -> float:
    r2e = shutil.which("r2e", path=str(Path(sys.executable).parent)) or shutil.which("r2e")
    if r2e is None:
        raise SystemExit("rss2email is not installed: pip install -e '.[bench]'")
    config, data = folder / "r2e.cfg", folder / "r2e.json"
    subprocess.run(
        [r2e, "-c", config, "-d", data, "new", "bench@example.org"], check=True, capture_output=True
    )
    with config.open("a") as handle:
        for feed in feeds:
            handle.write(f"\n[feed.{feed['key']}]\nurl = {feed['url']}\n")
    started = time.perf_counter()
    subprocess.run(
        [r2e, "-c", config, "-d", data, "run", "--no-send"], check=True, capture_output=True
    )
    return time.perf_counter() - started


def main() -> None:
    from bench.sites import sources_toml

    queue: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    server = multiprocessing.Process(target=_serve, args=(queue,), daemon=True)
    server.start()
    base_url, sources = queue.get(timeout=60)
    folder = Path(tempfile.mkdtemp(prefix="digest-bench-"))
    try:
        all_file = folder / "sources.toml"
        all_file.write_text(sources_toml(sources), encoding="utf-8")
        os.environ.update(_environment(folder, all_file))

        from sqlalchemy import select

        from digest.db import session_scope
        from digest.migrate import upgrade
        from digest.models import Source
        from digest.settings import get_settings
        from digest.watch.sources import load_sources, sync_sources

        settings = get_settings()
        upgrade(settings.database_url)
        with session_scope(settings.database_url) as session:
            sync_sources(session, load_sources(all_file).sources)
            ids = {s.key: (s.kind, s.id) for s in session.scalars(select(Source))}
        n = len(ids)
        first_wall, first_cpu, first_kinds = _pass(settings, ids)
        second_wall, second_cpu, _ = _pass(settings, ids)
        with session_scope(settings.database_url) as session:
            statuses = [s.http_status for s in session.scalars(select(Source))]

        # The same feeds, as a command like rss2email's, startup included.
        feeds = [s for s in sources if s["kind"] == "feed"]
        feed_folder = folder / "feeds"
        feed_folder.mkdir()
        feed_file = feed_folder / "sources.toml"
        feed_file.write_text(sources_toml(feeds), encoding="utf-8")
        env = _environment(feed_folder, feed_file)
        digest = [sys.executable, "-m", "digest"]
        subprocess.run([*digest, "db", "upgrade"], env=env, check=True, capture_output=True)
        subprocess.run([*digest, "sources", "sync"], env=env, check=True, capture_output=True)
        started = time.perf_counter()
        subprocess.run([*digest, "collect"], env=env, check=True, capture_output=True)
        ours_feeds = time.perf_counter() - started
        r2e_feeds = _rss2email(folder, feeds)
    finally:
        server.terminate()
        shutil.rmtree(folder, ignore_errors=True)

    ratio = r2e_feeds / ours_feeds
    per_source_cpu_ms = second_cpu / n * 1000
    print(f"sources: {n} ({', '.join(f'{v} {k}' for k, v in COUNTS.items())}) on {base_url}")
    print(
        f"first pass:      {first_wall:6.2f} s wall, {first_wall / n * 1000:6.1f} ms per source,"
        f" {first_cpu:6.2f} s CPU"
    )
    for kind, seconds in sorted(first_kinds.items()):
        print(f"  {kind:9} {seconds / COUNTS[kind] * 1000:6.1f} ms per source")
    print(
        f"no-change pass:  {second_wall:6.2f} s wall, {second_wall / n * 1000:6.1f} ms per source,"
        f" {per_source_cpu_ms:6.2f} ms CPU per source; "
        f"{statuses.count(304)} of {n} answered 304"
    )
    print(
        f"feeds only, first pass, whole command: digest collect {ours_feeds:6.2f} s, "
        f"r2e run --no-send {r2e_feeds:6.2f} s: {ratio:4.1f} times faster"
    )
    met_speed = ratio >= 5
    met_cpu = per_source_cpu_ms < 10
    print(
        f"target ≥5× rss2email: {'met' if met_speed else 'MISSED'}; "
        f"target <10 ms CPU per unchanged source: {'met' if met_cpu else 'MISSED'}"
    )
    sys.exit(0 if met_speed and met_cpu else 1)


if __name__ == "__main__":
    main()
