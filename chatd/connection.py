"""One client's WebSocket as the rest of chatd sees it: a bounded outbox and a writer task.

Fan-out never awaits a client: it calls ``push``, which only appends to the outbox. The writer
task drains the outbox with a deadline on every write. A client that does not read fills its
outbox and is closed with ``CloseCode.SLOW``; it loses nothing, because it resumes from the
stream (docs/protocol.md, "Backpressure"). When a write stalls past the deadline the transport is
aborted, because a plain close would wait for the peer to drain its buffer, forever.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any, Awaitable, Callable

import protocol
from protocol import CloseCode

from . import metrics

log = logging.getLogger("chatd.connection")

Send = Callable[[dict[str, Any]], Awaitable[None]]


class Connection:
    __slots__ = (
        "role", "subprotocol", "identity", "name", "agent", "ip", "_send", "_outbox", "_wake",
        "_limit", "_timeout", "close_code", "close_reason", "closed", "cursors", "ncursors",
        "catching", "ending", "creating", "attached", "waiting", "positions", "writer", "tasks", "hello_done", "bucket", "_room", "last_seen",
    )

    def __init__(self, send: Send, role: str, subprotocol: str, ip: str,
                 outbox_size: int, send_timeout: float) -> None:
        self.role = role  # "visitor" | "agent"
        self.subprotocol = subprotocol
        self.identity = ""  # visitor id or agent login, set by hello
        self.name = ""
        self.agent: Any = None  # the Account of an agent connection
        self.ip = ip
        self._send = send
        self._outbox: deque[str | bytes] = deque()
        self._wake = asyncio.Event()
        self._room: asyncio.Event | None = None  # set while a backfill waits for the outbox
        self._limit = outbox_size
        self._timeout = send_timeout
        self.close_code: int | None = None
        self.close_reason = ""
        self.closed = False
        self.cursors: dict[str, int] = {}  # session -> last seq delivered to this client
        self.ncursors: dict[str, int] = {}  # session -> last note nseq delivered (agents)
        self.catching: dict[str, asyncio.Future[None]] = {}  # session -> backfill under way
        self.attached: set[str] = set()  # sessions this connection receives
        self.ending: set[str] = set()  # sessions whose `closed` is on its way
        self.creating: set[str] = set()  # sessions subscribed to but not yet in Redis
        self.waiting: dict[str, str] = {}  # queued session -> topic (visitors)
        self.positions: dict[str, tuple[int, int]] = {}  # last (position, eta) sent
        self.writer: asyncio.Task[None] | None = None
        self.tasks: set[asyncio.Task[Any]] = set()
        self.hello_done = False
        self.bucket: Any = None
        self.last_seen = 0.0  # loop time of the last frame received (idle sweep)

    # -- outbound ----------------------------------------------------------------------------

    def push(self, data: str | bytes) -> None:
        """Queue one encoded frame; never blocks. Overflow closes the connection as too slow."""
        if self.close_code is not None:
            return
        if len(self._outbox) >= self._limit:
            log.warning("closing a %s connection: outbox full (slow consumer)", self.role)
            metrics.SLOW_CLOSES.inc()
            self._outbox.clear()
            self.close(CloseCode.SLOW, "too slow")
            return
        self._outbox.append(data)
        self._wake.set()

    async def wait_room(self) -> None:
        """Backfills pace themselves on the client: wait until the outbox is half empty."""
        while len(self._outbox) >= self._limit // 2 and self.close_code is None:
            if self._room is None:
                self._room = asyncio.Event()
            self._room.clear()
            await self._room.wait()

    def send(self, frame: dict[str, Any]) -> None:
        self.push(protocol.encode(frame, self.subprotocol))

    def close(self, code: int, reason: str = "") -> None:
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason
            self._wake.set()

    def spawn(self, coro: Awaitable[Any]) -> None:
        """Run a task tied to this connection: cancelled when the connection ends."""
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.error("connection task failed: %s: %s", type(exc).__name__, exc)

    async def run_writer(self) -> None:
        send = self._send
        outbox = self._outbox
        direct = _direct_protocol(send)
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while outbox and self.close_code != CloseCode.SLOW:
                    if direct is not None:
                        await self._write_batch(direct, outbox)
                    else:
                        data = outbox.popleft()
                        event = ({"type": "websocket.send", "text": data} if type(data) is str
                                 else {"type": "websocket.send", "bytes": data})
                        await asyncio.wait_for(send(event), self._timeout)
                    if self._room is not None and len(outbox) < self._limit // 2:
                        self._room.set()
                if self.close_code is not None:
                    await asyncio.wait_for(
                        send({"type": "websocket.close", "code": self.close_code,
                              "reason": self.close_reason}), min(self._timeout, 2.0))
                    return
        except asyncio.TimeoutError:
            if self._room is not None:
                self._room.set()
            log.warning("aborting a %s connection: a write stalled for %.0f s", self.role,
                        self._timeout)
            metrics.SLOW_CLOSES.inc()
            self.abort()
        except Exception:  # the peer went away mid-write: nothing to tell anyone
            self.abort()

    async def _write_batch(self, proto: Any, outbox: deque[str | bytes]) -> None:
        """Frames every queued message and hands them to the socket in one write: one
        system call for a burst instead of one per frame (uvicorn's ASGI send does one each)."""
        if not proto.writable.is_set():  # the kernel buffer is full: wait, with a deadline
            await asyncio.wait_for(proto.writable.wait(), self._timeout)
        if proto.close_sent or proto.transport.is_closing():
            raise ConnectionError("closed")
        ws = proto.conn
        for _ in range(min(len(outbox), 256)):
            data = outbox.popleft()
            if type(data) is str:
                ws.send_text(data.encode())
            else:
                ws.send_binary(data)
        proto.transport.write(b"".join(ws.data_to_send()))

    def abort(self) -> None:
        """Drop the TCP connection now (uvicorn: the protocol object behind ``send``)."""
        proto = getattr(self._send, "__self__", None)
        transport = getattr(proto, "transport", None)
        if transport is not None:
            transport.abort()


def _direct_protocol(send: Send) -> Any:
    """uvicorn's websockets-sansio protocol behind an ASGI ``send``, when it is that one."""
    proto = getattr(send, "__self__", None)
    if type(proto).__name__ != "WebSocketsSansIOProtocol":
        return None
    if not all(hasattr(proto, a) for a in ("conn", "transport", "writable", "close_sent")):
        return None
    return proto
