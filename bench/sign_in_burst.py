"""Sign-in under a burst: thirty wrong passwords for one account sent at once to a real
`digest run`, at the service's argon2 cost. Counts how many got their password checked
(the rest are refused before it) and the server's peak memory.

Run with `make bench` (or `python -m bench.sign_in_burst` in the virtual environment).
Targets: no more checks than DIGEST_SIGN_IN_ATTEMPTS (5), and the peak within four checks'
memory (4 x 64 MiB) of the server's memory before the burst.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.support.smtp import free_port

GUESSES = 30
EMAIL = "sjef@bufdir.no"


def _peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def main() -> int:
    digest = str(Path(sys.executable).with_name("digest"))
    with tempfile.TemporaryDirectory() as data:
        env = {**os.environ, "DIGEST_DATA_DIR": data}
        port = free_port()
        server = subprocess.Popen(
            [digest, "run", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{base}/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("the service did not start")
                time.sleep(0.2)
            subprocess.run(
                [digest, "editors", "add", EMAIL, "--role", "admin"],
                input="et langt passord 123\n",
                env=env,
                text=True,
                check=True,
                capture_output=True,
            )
            with httpx.Client(base_url=base) as web:
                page = web.get("/redaksjon/logg-inn")
                found = re.search(r'name="csrf" value="([^"]+)"', page.text)
                assert found is not None
                token, cookies = found[1], dict(web.cookies)
            before = _peak_kib(server.pid)

            def guess(n: int) -> int:
                with httpx.Client(base_url=base, timeout=120, cookies=cookies) as web:
                    return web.post(
                        "/redaksjon/logg-inn",
                        data={"email": EMAIL, "password": f"gjett {n}", "csrf": token},
                    ).status_code

            started = time.perf_counter()
            with ThreadPoolExecutor(GUESSES) as pool:
                answers = list(pool.map(guess, range(GUESSES)))
            took = time.perf_counter() - started
            after = _peak_kib(server.pid)
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=30)
    checked = answers.count(400)
    print(
        f"{GUESSES} wrong passwords at once: {checked} checked, {answers.count(429)} refused "
        f"unchecked, in {took:.1f} s; peak memory {before // 1024} MB before, "
        f"{after // 1024} MB after"
    )
    ok = checked <= 5 and after - before <= 4 * 64 * 1024 + 32 * 1024
    print("target met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
