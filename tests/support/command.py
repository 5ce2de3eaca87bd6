"""The real `digest` command in its own process, without paying Python's start-up each time.

Starting the interpreter and importing the command costs about half a second of CPU, and the
suite runs the command a few hundred times. So one process imports it once per session
(`forkserver.py`) and forks a child per invocation: a separate process with the caller's
arguments, environment, working folder and standard streams, whose exit status comes back
as a subprocess's would.

`digest(*args)` stands for `subprocess.run([python, "-m", "digest", *args],
capture_output=True, text=True)`, `start(*args)` for `subprocess.Popen`, and
`run(["-c", code])` runs Python code the same way.
"""

from __future__ import annotations

import atexit
import json
import locale
import os
import select
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

PIPE = subprocess.PIPE
STDOUT = subprocess.STDOUT
FORKSERVER = Path(__file__).with_name("forkserver.py")
# DIGEST_TEST_FORKSERVER=0 starts a fresh interpreter for every command instead.
FORKING = os.environ.get("DIGEST_TEST_FORKSERVER", "1") != "0"
# The environment the suite began with, before any test changed it: the fork server's.
BASE_ENV = dict(os.environ)
# Read once, when the interpreter or a library starts (Dramatiq reads its dramatiq_*
# variables on import): a command whose value differs gets a fresh interpreter. The child
# sets up PYTHONUNBUFFERED and PYTHONIOENCODING itself.
READ_AT_START = ("PYTHON", "dramatiq_", "LANG", "LC_")
SET_UP_BY_CHILD = {"PYTHONUNBUFFERED", "PYTHONIOENCODING"}


def forkable(env: dict[str, str]) -> bool:
    """Whether a child of the fork server starts as a fresh interpreter with `env` would."""
    names = {n for n in env.keys() | BASE_ENV.keys() if n.startswith(READ_AT_START)}
    return FORKING and all(env.get(n) == BASE_ENV.get(n) for n in names - SET_UP_BY_CHILD)


class _Forkserver:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._folder = tempfile.mkdtemp(prefix="digest-forkserver-")
        self.path = os.path.join(self._folder, "socket")
        # Run last first: stop the server, then remove its folder.
        atexit.register(shutil.rmtree, self._folder, ignore_errors=True)
        atexit.register(self.stop)

    def ensure(self) -> str:
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                Path(self.path).unlink(missing_ok=True)  # left by one that died
                # Started from the environment the suite began with; each child gets its own.
                self._process = subprocess.Popen(
                    [sys.executable, str(FORKSERVER), self.path],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    cwd=self._folder,
                    env=BASE_ENV,
                )
                assert self._process.stdout is not None
                line = self._process.stdout.readline()
                if line.strip() != b"ready":
                    raise RuntimeError("the digest fork server did not start")
        return self.path

    def stop(self) -> None:
        with self._lock:
            if self._process is not None and self._process.poll() is None:
                self._process.terminate()
                self._process.wait(timeout=10)
            self._process = None
            Path(self.path).unlink(missing_ok=True)


FORKER = _Forkserver()


class Process:
    """A running `digest` command: the parts of `subprocess.Popen` the tests use."""

    def __init__(
        self,
        argv: list[str],
        *,
        env: dict[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        stdout: int | IO[bytes] | None = None,
        stderr: int | IO[bytes] | None = None,
        text: bool = False,
    ) -> None:
        self.args = [sys.executable, *argv]
        self.returncode: int | None = None
        self._text = text
        self._replies = b""
        request = {
            "argv": argv,
            "env": dict(os.environ if env is None else env),
            "cwd": os.fspath(cwd) if cwd is not None else os.getcwd(),
        }
        ours: dict[str, int] = {}  # the read ends of pipes, by stream
        # No test feeds a command its input: stdin is /dev/null.
        theirs = [os.open(os.devnull, os.O_RDONLY), self._end("stdout", stdout, ours)]
        theirs.append(theirs[1] if stderr == STDOUT else self._end("stderr", stderr, ours))
        body = json.dumps(request).encode()
        self._conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._conn.connect(FORKER.ensure())
            socket.send_fds(self._conn, [len(body).to_bytes(8, "big") + body], theirs)
        finally:
            for fd in set(theirs):
                os.close(fd)
        self.stdout = self._reader(ours.get("stdout"))
        self.stderr = self._reader(ours.get("stderr"))
        line = self._line(None)
        if line is None:
            raise RuntimeError("the fork server did not start the command")
        self.pid = int(line)

    @staticmethod
    def _end(name: str, target: int | IO[bytes] | None, ours: dict[str, int]) -> int:
        """The file descriptor the child writes `name` to (ours to close once sent)."""
        if target == PIPE:
            read, write = os.pipe()
            ours[name] = read
            return write
        if target is None:  # inherited, as subprocess does
            return os.dup(1 if name == "stdout" else 2)
        return os.dup(target if isinstance(target, int) else target.fileno())

    def _reader(self, fd: int | None) -> IO[Any] | None:
        if fd is None:
            return None
        if self._text:  # universal newlines in the locale's encoding, as subprocess does
            return open(fd, encoding=locale.getpreferredencoding(False))
        return open(fd, "rb")

    def _line(self, timeout: float | None) -> str | None:
        """The fork server's next reply line, or None if none came within `timeout`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._replies:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self._conn], [], [], left)
            if not ready:
                return None
            data = self._conn.recv(4096)
            if not data:
                raise ConnectionError("the digest fork server went away")
            self._replies += data
        line, self._replies = self._replies.split(b"\n", 1)
        return line.decode()

    def poll(self) -> int | None:
        if self.returncode is None:
            line = self._line(0)
            if line is not None:
                self.returncode = int(line)
                self._conn.close()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            line = self._line(timeout)
            if line is None:
                raise subprocess.TimeoutExpired(self.args, timeout or 0)
            self.returncode = int(line)
            self._conn.close()
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def communicate(self, timeout: float | None = None) -> tuple[Any, Any]:
        """Read the pipes to their end, then wait for the exit; as Popen.communicate."""
        deadline = None if timeout is None else time.monotonic() + timeout
        streams = {"stdout": self.stdout, "stderr": self.stderr}
        chunks: dict[str, list[bytes]] = {name: [] for name in streams}
        with selectors.DefaultSelector() as selector:
            for name, stream in streams.items():
                if stream is not None:
                    selector.register(stream.fileno(), selectors.EVENT_READ, name)
            while selector.get_map():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise subprocess.TimeoutExpired(self.args, timeout or 0)
                for key, _ in selector.select(left):
                    data = os.read(key.fd, 65536)
                    if data:
                        chunks[key.data].append(data)
                    else:
                        selector.unregister(key.fd)
        self.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
        out: list[Any] = []
        for name, stream in streams.items():
            if stream is None:
                out.append(None)
                continue
            data = b"".join(chunks[name])
            if self._text:
                encoding = locale.getpreferredencoding(False)
                out.append(data.decode(encoding).replace("\r\n", "\n").replace("\r", "\n"))
            else:
                out.append(data)
            stream.close()
        return out[0], out[1]


def start(
    *args: str,
    env: dict[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    stdout: int | IO[bytes] | None = None,
    stderr: int | IO[bytes] | None = None,
    text: bool = False,
) -> Process:
    """`subprocess.Popen([python, "-m", "digest", *args], ...)`."""
    return _start(["-m", "digest", *args], env, cwd, stdout, stderr, text)


def _start(
    argv: list[str],
    env: dict[str, str] | None,
    cwd: str | os.PathLike[str] | None,
    stdout: int | IO[bytes] | None,
    stderr: int | IO[bytes] | None,
    text: bool,
) -> Process:
    if not forkable(dict(os.environ if env is None else env)):
        return subprocess.Popen(  # type: ignore[return-value]
            [sys.executable, *argv], env=env, cwd=cwd, stdout=stdout, stderr=stderr, text=text
        )
    return Process(argv, env=env, cwd=cwd, stdout=stdout, stderr=stderr, text=text)


def run(
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float = 60,
    capture_output: bool = True,
) -> subprocess.CompletedProcess[str]:
    """`subprocess.run([python, *argv], text=True, ...)` for `-m digest ...` or `-c code`."""
    out = PIPE if capture_output else None
    process = _start(argv, env, cwd, out, out, True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise
    return subprocess.CompletedProcess(process.args, process.wait(), stdout, stderr)


def digest(
    *args: str,
    env: dict[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """`subprocess.run([python, "-m", "digest", *args], capture_output=True, text=True)`."""
    return run(["-m", "digest", *args], env=env, cwd=cwd, timeout=timeout)
