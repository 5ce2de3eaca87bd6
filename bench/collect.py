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


HOSTS = ("127.0.0.1", "127.0.0.2")  # two loopback hosts, so two processes may collect


def _serve(queue: multiprocessing.Queue, number: int) -> None:  # type: ignore[type-arg]
    from bench.sites import build
    from tests.support.site import FixtureSite

    site = FixtureSite(HOSTS[number])
    routes, sources = build(site.base_url, COUNTS, share=(number, len(HOSTS)))
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
    from digest.watch.collect import collect_by_id, sessions_for
    from digest.watch.fetch import make_fetcher
    from subscribers.base import utcnow

    per_kind: dict[str, float] = defaultdict(float)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    sessions = sessions_for(settings.database_url)
    with make_fetcher(settings) as fetcher:
        for kind, source_id in ids.values():
            started = time.perf_counter()
            outcome = collect_by_id(
                source_id, utcnow(), sessions=sessions, fetcher=fetcher, settings=settings
            )
            if outcome is None or not outcome.ok:
                raise SystemExit(f"collection failed: {outcome}")
            per_kind[kind] += time.perf_counter() - started
    return time.perf_counter() - wall0, time.process_time() - cpu0, per_kind


def _timed(command: list[str], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


REPEATS = 3  # whole commands are timed this many times, from scratch; the best counts


def _rss2email(folder: Path, feeds: list[dict]) -> tuple[float, float]:
    """(whole run, start-up alone) of `r2e run --no-send` on the feeds, best of REPEATS."""
    r2e = shutil.which("r2e", path=str(Path(sys.executable).parent)) or shutil.which("r2e")
    if r2e is None:
        raise SystemExit("rss2email is not installed: pip install -e '.[bench]'")
    best = []
    for name, chosen in (("empty", []), ("feeds", feeds)):
        times = []
        for attempt in range(REPEATS):
            config = folder / f"r2e-{name}-{attempt}.cfg"
            data = folder / f"r2e-{name}-{attempt}.json"
            _timed([r2e, "-c", str(config), "-d", str(data), "new", "bench@example.org"])
            with config.open("a") as handle:
                for feed in chosen:
                    handle.write(f"\n[feed.{feed['key']}]\nurl = {feed['url']}\n")
            times.append(_timed([r2e, "-c", str(config), "-d", str(data), "run", "--no-send"]))
        best.append(min(times))
    return best[1], best[0]


def _digest_command(folder: Path, feeds: list[dict], jobs: int) -> tuple[float, float]:
    """(whole run, start-up alone) of `digest collect --jobs N` on the feeds, best of REPEATS."""
    from bench.sites import sources_toml

    best = []
    for name, chosen in (("empty", []), ("feeds", feeds)):
        times = []
        for attempt in range(REPEATS):
            work = folder / f"digest-{name}-{jobs}-{attempt}"
            work.mkdir()
            sources = work / "sources.toml"
            sources.write_text(sources_toml(chosen), encoding="utf-8")
            env = _environment(work, sources)
            digest = [sys.executable, "-m", "digest"]
            _timed([*digest, "db", "upgrade"], env)
            _timed([*digest, "sources", "sync", "--allow-empty"], env)
            times.append(_timed([*digest, "collect", "--jobs", str(jobs)], env))
        best.append(min(times))
    return best[1], best[0]


def main() -> None:
    from bench.sites import sources_toml

    queue: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    servers = [
        multiprocessing.Process(target=_serve, args=(queue, n), daemon=True)
        for n in range(len(HOSTS))
    ]
    for server in servers:
        server.start()
    sources: list[dict] = []
    bases = []
    for _ in servers:
        base_url, part = queue.get(timeout=60)
        bases.append(base_url)
        sources.extend(part)
    folder = Path(tempfile.mkdtemp(prefix="digest-bench-"))
    try:
        all_file = folder / "sources.toml"
        all_file.write_text(sources_toml(sources), encoding="utf-8")
        os.environ.update(_environment(folder, all_file))

        from sqlalchemy import select

        from digest.core.db import session_scope
        from digest.core.migrate import upgrade
        from digest.core.models import Source
        from digest.core.settings import get_settings
        from digest.watch.sources import load_sources, sync_sources

        settings = get_settings()
        upgrade(settings.database_url)
        with session_scope(settings.database_url) as session:
            sync_sources(session, load_sources(all_file))
            ids = {s.key: (s.kind, s.id) for s in session.scalars(select(Source))}
        n = len(ids)
        first_wall, first_cpu, first_kinds = _pass(settings, ids)
        second_wall, second_cpu, _ = _pass(settings, ids)
        with session_scope(settings.database_url) as session:
            statuses = [s.http_status for s in session.scalars(select(Source))]

        feeds = [s for s in sources if s["kind"] == "feed"]
        r2e_total, r2e_startup = _rss2email(folder, feeds)
        ours = {jobs: _digest_command(folder, feeds, jobs) for jobs in (1, 2)}
    finally:
        for server in servers:
            server.terminate()
        shutil.rmtree(folder, ignore_errors=True)

    per_source_cpu_ms = second_cpu / n * 1000
    print(
        f"sources: {n} ({', '.join(f'{v} {k}' for k, v in COUNTS.items())}) "
        f"on {' and '.join(bases)}"
    )
    print(
        f"first pass, one process: {first_wall:6.2f} s wall, "
        f"{first_wall / n * 1000:5.1f} ms per source, {first_cpu:5.2f} s CPU"
    )
    for kind, seconds in sorted(first_kinds.items()):
        print(f"  {kind:9} {seconds / COUNTS[kind] * 1000:6.1f} ms per source")
    print(
        f"no-change pass: {second_wall:6.2f} s wall, {second_wall / n * 1000:5.1f} ms per "
        f"source, {per_source_cpu_ms:5.2f} ms CPU per source; "
        f"{statuses.count(304)} of {n} answered 304"
    )
    print(
        f"the {len(feeds)} feeds, first pass, whole commands, best of {REPEATS} "
        "(start-up alone in brackets):"
    )
    print(f"  r2e run --no-send        {r2e_total:6.2f} s ({r2e_startup:4.2f} s)")
    collection = {}
    for jobs, (total, startup) in ours.items():
        whole = r2e_total / total
        collection[jobs] = (r2e_total - r2e_startup) / (total - startup)
        print(
            f"  digest collect --jobs {jobs}  {total:6.2f} s ({startup:4.2f} s): "
            f"{whole:4.1f}x faster as a whole command, {collection[jobs]:4.1f}x in "
            "collection time (start-up left out on both sides)"
        )
    best_jobs = max(collection, key=lambda j: collection[j])
    met_speed = collection[best_jobs] >= 5
    met_cpu = per_source_cpu_ms < 10
    print(
        f"target >=5x rss2email in collection time: {'met' if met_speed else 'MISSED'} "
        f"({collection[best_jobs]:.1f}x with --jobs {best_jobs}, {collection[1]:.1f}x with one "
        f"process); target <10 ms CPU per unchanged source: {'met' if met_cpu else 'MISSED'} "
        f"({per_source_cpu_ms:.2f} ms)"
    )
    sys.exit(0 if met_speed and met_cpu else 1)


if __name__ == "__main__":
    main()
