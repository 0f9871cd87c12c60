"""Real parts for the tests: a redis-server, chatd processes, and protocol-speaking clients.

Nothing here fakes Redis or the server: ``RedisServer`` runs the real binary on a free port,
``Chatd`` runs ``python -m chatd serve`` as a child process, and ``Client`` speaks either
subprotocol over a real WebSocket. Each test gets its own key prefix, so tests share one Redis
without seeing each other.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import msgpack
import websockets
from chatd.embedded import find_redis_server

ROOT = Path(__file__).resolve().parent.parent
MS = 0.001  # one millisecond, the unit of test timeouts


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def get_once_listening(http: httpx.AsyncClient, url: str, tries: int) -> httpx.Response:
    """GET ``url`` as soon as the server accepts connections (it may still be starting)."""
    for _ in range(tries - 1):
        try:
            return await http.get(url)
        except httpx.HTTPError:
            await asyncio.sleep(0.1)
    return await http.get(url)


async def eventually(predicate: Any, timeout: float = 10.0, every: float = 0.05) -> bool:
    """Whether ``predicate`` (a function, or a coroutine function) becomes true within
    ``timeout`` seconds; the event loop keeps running meanwhile (clients keep reading)."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(every)


async def run(args: list[str], stdin: str | None = None, env: dict[str, str] | None = None,
              timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """A command run to completion beside the event loop (the tests' clients keep reading)."""
    proc = await asyncio.create_subprocess_exec(
        *args, cwd=ROOT, env=env, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin else None), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return subprocess.CompletedProcess(args, proc.returncode or 0, out.decode(errors="replace"),
                                       err.decode(errors="replace"))


async def wait_for_exit(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """Whether ``proc`` exits within ``timeout`` (reaped), without blocking the event loop."""
    return await eventually(lambda: proc.poll() is not None, timeout, 0.02)


class RedisServer:
    """A real redis-server on a free loopback port, AOF on so that restarts keep data."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="chatd-test-redis-")
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.proc = subprocess.Popen(
            [find_redis_server(), "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", self.dir, "--appendonly", "yes", "--appendfsync", "always", "--save", "",
             "--maxclients", "10000"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert await eventually(self._answers, 10), "redis-server did not start"

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), 0.2) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    async def stop(self, kill: bool = False) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            if not await wait_for_exit(self.proc, 10):
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class Chatd:
    """One `chatd serve` process (a supervisor and its workers) on a free port."""

    def __init__(self, redis_url: str | None, prefix: str, env: dict[str, str] | None = None,
                 workers: int = 1, data_dir: str | None = None, port: int | None = None) -> None:
        self.port = port or free_port()
        self.redis_url = redis_url
        self.prefix = prefix
        self.workers = workers
        self.data_dir = data_dir
        self.env = {
            **os.environ,
            "CHATD_KEY_PREFIX": prefix,
            "CHATD_SECRET": "test-secret-" + prefix + "-0123456789",
            "CHATD_FRAME_RATE": "1000", "CHATD_FRAME_BURST": "1000",
            "CHATD_SESSIONS_PER_IP_HOUR": "100000", "CHATD_MAX_CONN_PER_IP": "100000",
            "CHATD_SESSIONS_PER_TOKEN_HOUR": "100000",
            "CHATD_LOG_LEVEL": "info",
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = Path(tempfile.mkstemp(prefix="chatd-test-log-")[1])

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def start(self, wait_ready: bool = True) -> Chatd:
        args = [sys.executable, "-m", "chatd", "serve", "--port", str(self.port),
                "--workers", str(self.workers)]
        if self.redis_url:
            args += ["--redis-url", self.redis_url]
        if self.data_dir:
            args += ["--data-dir", self.data_dir]
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, env=self.env, cwd=ROOT, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        if wait_ready:
            assert await eventually(self.ready, 15), f"chatd did not get ready:\n{self.output()}"
        return self

    async def ready(self) -> bool:
        try:
            async with httpx.AsyncClient() as http:
                return (await http.get(self.http + "/readyz", timeout=0.5)).status_code == 200
        except httpx.HTTPError:
            return False

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def kill(self) -> None:
        """SIGKILL the supervisor and every worker: a crash, not a shutdown."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            await wait_for_exit(self.proc, 10)

    async def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            if not await wait_for_exit(self.proc, 15):
                await self.kill()


class Closed(Exception):
    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"closed with {code} {reason!r}")
        self.code = code
        self.reason = reason


class Client:
    """A WebSocket client speaking chatd.v1.json or chatd.v1.msgpack."""

    def __init__(self, ws: Any, subprotocol: str) -> None:
        self.ws = ws
        self.subprotocol = subprotocol
        self.frames: list[dict[str, Any]] = []  # everything received, in order
        self._buffer: list[dict[str, Any]] = []

    @classmethod
    async def connect(cls, base: str, role: str, subprotocol: str = "chatd.v1.msgpack",
                      headers: dict[str, str] | None = None, origin: str | None = None,
                      rcvbuf: int | None = None) -> Client:
        """``rcvbuf`` shrinks the socket's receive buffer: a client that reads slowly."""
        extra: dict[str, Any] = {}
        if rcvbuf is not None:
            host, port = base.split("//", 1)[1].split(":")
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.connect((host, int(port)))
            sock.setblocking(False)
            extra = {"sock": sock, "max_queue": 1}
        ws = await websockets.connect(
            f"{base}/ws/{role}", subprotocols=[subprotocol],  # type: ignore[list-item]
            additional_headers=headers or {}, origin=origin,  # type: ignore[arg-type]
            max_size=2**20, open_timeout=5, compression=None, ping_interval=None, **extra)
        return cls(ws, subprotocol)

    def forget(self) -> None:
        """Drop every frame received so far (a long exchange need not keep them)."""
        self.frames.clear()
        self._buffer.clear()

    async def send(self, frame: dict[str, Any]) -> None:
        if self.subprotocol.endswith("msgpack"):
            await self.ws.send(msgpack.packb(frame))
        else:
            await self.ws.send(json.dumps(frame))

    async def send_raw(self, data: str | bytes) -> None:
        await self.ws.send(data)

    async def _next(self, timeout: float) -> dict[str, Any]:
        try:
            data = await asyncio.wait_for(self.ws.recv(), timeout)
        except websockets.ConnectionClosed as exc:
            rcvd = exc.rcvd
            raise Closed(rcvd.code if rcvd else None, rcvd.reason if rcvd else "") from None
        frame = json.loads(data) if isinstance(data, str) else msgpack.unpackb(data)
        self.frames.append(frame)
        return frame  # type: ignore[no-any-return]

    async def recv(self, type_: str | None = None, timeout: float = 5.0, **match: Any) -> dict[str, Any]:
        """The next frame of this type (and fields), keeping the others for later."""
        for i, frame in enumerate(self._buffer):
            if _matches(frame, type_, match):
                return self._buffer.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {type_ or 'frame'} {match or ''} within {timeout} s; "
                                     f"got {self._buffer[-5:]}")
            try:
                frame = await self._next(left)
            except asyncio.TimeoutError:
                continue
            if _matches(frame, type_, match):
                return frame
            self._buffer.append(frame)

    async def no_frame(self, type_: str | None = None, within: float = 0.5, **match: Any) -> None:
        try:
            frame = await self.recv(type_, within, **match)
        except AssertionError:
            return
        raise AssertionError(f"unexpected {frame}")

    async def closed(self, timeout: float = 5.0) -> Closed:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                frame = await self._next(deadline - time.monotonic())
                self._buffer.append(frame)
            except Closed as exc:
                return exc
            except asyncio.TimeoutError:
                break
        raise AssertionError("connection still open")

    async def close(self) -> None:
        await self.ws.close()


def _matches(frame: dict[str, Any], type_: str | None, match: dict[str, Any]) -> bool:
    if type_ is not None and frame.get("type") != type_:
        return False
    return all(frame.get(k) == v for k, v in match.items())


def new_prefix() -> str:
    return "t" + uuid.uuid4().hex[:12]
