"""A process that has imported the `digest` command and forks a child to run each invocation.

Started once per test session by `tests.support.command`. Each child gets the caller's
arguments, environment, working folder and standard streams, runs `python -m digest` (or
`python -c`) as the interpreter would, and exits; this process reports the child's pid and
then its exit status. It stays single-threaded, so forking it is safe.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import importlib
import io
import json
import os
import pkgutil
import runpy
import selectors
import signal
import socket
import sys
import threading
import time
import types
from typing import TypedDict


class Request(TypedDict):
    argv: list[str]  # ["-m", module, *args] or ["-c", code, *args]
    env: dict[str, str]
    cwd: str


def _read_request(conn: socket.socket) -> tuple[Request, list[int]]:
    """A length-prefixed JSON request with the child's stdin, stdout and stderr attached."""
    data, fds, _flags, _addr = socket.recv_fds(conn, 65536, 3)
    size = int.from_bytes(data[:8], "big")
    body = data[8:]
    while len(body) < size:
        chunk = conn.recv(size - len(body))
        if not chunk:
            raise ConnectionError("request cut short")
        body += chunk
    request: Request = json.loads(body)
    return request, fds


def _stream(fd: int, name: str, unbuffered: bool) -> io.TextIOWrapper:
    """A standard stream as CPython sets it up at start-up, for the environment given."""
    raw = io.FileIO(fd, "r" if name == "stdin" else "w", closefd=False)
    binary: io.RawIOBase | io.BufferedIOBase = raw
    if name == "stdin":
        binary = io.BufferedReader(raw)
    elif not unbuffered:
        binary = io.BufferedWriter(raw)
    encoding = os.environ.get("PYTHONIOENCODING", "").split(":")[0] or "utf-8"
    return io.TextIOWrapper(
        binary,  # type: ignore[arg-type]
        encoding=encoding,
        errors="backslashreplace" if name == "stderr" else "strict",
        line_buffering=name == "stderr" or os.isatty(fd),
        write_through=unbuffered and name != "stdin",
    )


def _child(request: Request, fds: list[int]) -> None:
    """Become the `digest` command (or run `-c` code); never returns."""
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    time.tzset()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    unbuffered = bool(os.environ.get("PYTHONUNBUFFERED"))
    sys.stdin = sys.__stdin__ = _stream(0, "stdin", unbuffered)  # type: ignore[misc]
    sys.stdout = sys.__stdout__ = _stream(1, "stdout", unbuffered)  # type: ignore[misc]
    sys.stderr = sys.__stderr__ = _stream(2, "stderr", unbuffered)  # type: ignore[misc]
    # Other exceptions and KeyboardInterrupt end this child as they end the interpreter.
    try:
        _run(request["argv"])
    except SystemExit as exit:
        _exit(exit.code)
    _exit(0)


def _run(argv: list[str]) -> None:
    option, target, *rest = argv
    if option == "-m":  # python -m target ...
        sys.path.insert(0, os.getcwd())
        sys.argv = ["-m", *rest]
        runpy.run_module(target, run_name="__main__", alter_sys=True)
    elif option == "-c":  # python -c target ...
        sys.path.insert(0, "")
        sys.argv = ["-c", *rest]
        main = types.ModuleType("__main__")
        sys.modules["__main__"] = main
        exec(compile(target, "<string>", "exec"), main.__dict__)
    else:
        raise SystemExit(f"the fork server runs -m or -c, not {option}")


def _exit(code: object) -> None:
    """End as the interpreter does, without tearing down every module one by one.

    That teardown touches every object this process shares with the fork server, copying
    the whole heap page by page: most of a short command's time. What it does that anyone
    can see is done here: threads are waited for, exit functions run, database
    connections closed (SQLite folds its WAL back into the file), streams flushed.
    """
    status = 0
    if isinstance(code, int):
        status = code
    elif code is not None:
        print(code, file=sys.stderr)
        status = 1
    threading._shutdown()  # type: ignore[attr-defined]
    atexit._run_exitfuncs()
    from digest.core.db import get_engine

    get_engine.cache_clear()
    gc.collect()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            status = status or 120  # as the interpreter does when stdout cannot be flushed
    os._exit(status)


# Imported at its first use, because it reads the settings of the process that imports it.
LATE = {"digest.actors", "digest.__main__"}


def _import_everything() -> None:
    """What the commands import, now or later: every module of ours but the late ones.

    None of them reads the environment or the working folder when imported, so a child
    that gets its own environment afterwards behaves as a freshly started interpreter.
    """
    import digest
    import subscribers

    for package in (digest, subscribers):
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if module.name not in LATE:
                importlib.import_module(module.name)
    if LATE & set(sys.modules):
        raise SystemExit(f"{LATE & set(sys.modules)} must be imported by the child only")
    if threading.active_count() != 1:
        raise SystemExit("importing the command started a thread; forking would be unsafe")
    # Out of the collector's sight: a child's collections and its exit then leave these pages
    # shared instead of copying the whole heap (a second per child without this).
    gc.freeze()


def serve(path: str) -> None:
    # This script's folder is no child's: each puts its own first, as the interpreter does.
    sys.path.pop(0)
    _import_everything()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    print("ready", flush=True)
    while True:
        for key, _events in selector.select():
            if key.fileobj is listener:
                conn, _ = listener.accept()
                try:
                    request, fds = _read_request(conn)
                except (OSError, ValueError):
                    conn.close()
                    continue
                pid = os.fork()
                if pid == 0:
                    _child(request, fds)
                for fd in fds:
                    os.close(fd)
                with contextlib.suppress(OSError):
                    conn.sendall(f"{pid}\n".encode())
                pidfd = os.pidfd_open(pid)
                selector.register(pidfd, selectors.EVENT_READ, (pid, conn))
            else:
                pid, conn = key.data
                selector.unregister(key.fileobj)
                os.close(key.fd)
                _, status = os.waitpid(pid, 0)
                with contextlib.suppress(OSError):
                    conn.sendall(f"{os.waitstatus_to_exitcode(status)}\n".encode())
                conn.close()


if __name__ == "__main__":
    serve(sys.argv[1])
