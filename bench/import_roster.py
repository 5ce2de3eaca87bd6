"""Roster import benchmark: 10,000 rows of municipal contacts, imported as `digest subscribers
import` does it (checked, stored, one confirmation notice queued each). Target: under 10 s.
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROWS = 10_000


def roster(rows: int, seed: int = 11) -> bytes:
    from subscribers.municipalities import municipalities

    rng = random.Random(seed)
    places = municipalities()
    roles = ["kommunal-ledelse", "krisesenter", "helse-omsorg", "barnehage-skole", "barnevern"]
    lines = ["email;name;municipality;role;frequency;topics;language"]
    for n in range(rows):
        place = rng.choice(places)
        name = rng.choice(["Kari", "Ola", "Ingrid", "Ahmed", "Siri", "Jonas"]) + f" {n}"
        municipality = place.number if n % 2 else place.name
        topics = " ".join(rng.sample(["vold", "barn", "krisesenter", "helse"], rng.randint(0, 2)))
        lines.append(
            f"kontakt{n}@{place.number}.kommune.no;{name};{municipality};"
            f"{rng.choice(roles)};{rng.choice(['daily', 'weekly'])};{topics};nb"
        )
    return ("\r\n".join(lines) + "\r\n").encode("utf-8-sig")


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="digest-import-bench-"))
    os.environ["DIGEST_DATA_DIR"] = str(folder / "var")
    sources = folder / "sources.toml"
    sources.write_text('[topics]\nvold = "V"\nbarn = "B"\nkrisesenter = "K"\nhelse = "H"\n')
    os.environ["DIGEST_SOURCES_FILE"] = str(sources)

    from digest.core.db import session_scope
    from digest.core.migrate import upgrade
    from digest.core.settings import get_settings
    from digest.delivery.notices import queue_notice
    from subscribers.roster import import_roster, read_roster

    settings = get_settings()
    upgrade(settings.database_url)
    data = roster(ROWS)
    started = time.perf_counter()
    rows = read_roster(data)
    with session_scope(settings.database_url) as session:
        report = import_roster(
            session,
            settings.secret_key,
            rows,
            known_topics={"vold", "barn", "krisesenter", "helse"},
            confirmed=False,
        )
        for subscriber in report.to_confirm:
            queue_notice(session, subscriber, "confirm", report.requests[subscriber.id])
    elapsed = time.perf_counter() - started
    imported = report.count("imported")
    print(
        f"{ROWS} rows ({len(data) / 1e6:.1f} MB): {imported} imported, "
        f"{report.count('refused')} refused, in {elapsed:.2f} s "
        f"({elapsed / ROWS * 1e6:.0f} µs per row)"
    )
    met = elapsed < 10 and imported == ROWS
    print(f"target: {ROWS} rows in under 10 s: {'met' if met else 'MISSED'}")
    sys.exit(0 if met else 1)


if __name__ == "__main__":
    main()
