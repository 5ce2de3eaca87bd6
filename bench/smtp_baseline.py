"""The bare aiosmtplib baseline of the delivery benchmark: one process, one connection,
messages sent one after the other, as fast as the relay takes them.

`python -m bench.smtp_baseline PORT COUNT` sends COUNT messages of about 5 KB to an SMTP
server on 127.0.0.1:PORT and prints the rate; `bench.deliver` calls `baseline` in the same
run as the project, with messages the project wrote.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence

import aiosmtplib

SENDER = "bench@example.org"


async def _send_all(port: int, messages: Sequence[bytes], count: int) -> float:
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=30)
    await smtp.connect()
    started = time.perf_counter()
    for n in range(count):
        await smtp.sendmail(SENDER, [f"baseline{n}@example.org"], messages[n % len(messages)])
    elapsed = time.perf_counter() - started
    await smtp.quit()
    return elapsed


def baseline(port: int, messages: Sequence[bytes], count: int) -> float:
    """Seconds to send `count` messages (cycling through `messages`) on one connection."""
    return asyncio.run(_send_all(port, messages, count))


def main() -> None:
    port, count = int(sys.argv[1]), int(sys.argv[2])
    line = b"x" * 76 + b"\r\n"
    message = b"Subject: baseline\r\nFrom: bench@example.org\r\n\r\n" + line * 64
    elapsed = baseline(port, [message], count)
    print(f"{count} messages in {elapsed:.2f} s: {count / elapsed:.0f} msg/s")


if __name__ == "__main__":
    main()
