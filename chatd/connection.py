"""One client's WebSocket: the websockets sans-I/O engine on the raw transport, and a bounded
outbox.

chatd takes the socket over from uvicorn at the upgrade (``http_protocol``), so a connection is
this one object plus the engine: no ASGI queue, no reader task and no writer task while it is
idle. Inbound messages are handled one after another by a task that exists only while some are
waiting. Fan-out never awaits a client: ``push`` appends to the outbox, and the outbox is
written once per turn of the event loop, a whole burst in one ``write``. A client that does not
read makes the transport pause; its outbox then fills and it is closed with ``CloseCode.SLOW``
(it loses nothing: it resumes from the stream, docs/protocol.md "Backpressure"). A write stalled
past the deadline, or a close the peer never answers, aborts the TCP connection, because a plain
close would wait for the peer to drain its buffer, forever.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any, Awaitable, Protocol

from websockets.frames import Opcode
from websockets.protocol import Protocol as Engine
from websockets.protocol import Side, State

from protocol import CloseCode, ErrorCode, encode
from protocol.outbound import error

from . import metrics

log = logging.getLogger("chatd.connection")

CLOSE_WAIT = 5.0  # seconds a peer has to answer our close before the socket is dropped
READ_AHEAD = 64  # inbound messages waiting to be handled before the socket stops being read
_GONE = None  # the end marker in the inbox: the socket is closed


class Endpoint(Protocol):
    """What handles a connection's messages (``transport``): one per process, not per socket."""

    async def message(self, conn: Connection, data: str | bytes) -> None: ...

    def ended(self, conn: Connection) -> None: ...


_LAZY: dict[str, Any] = {
    "cursors": dict, "ncursors": dict, "catching": dict, "attached": set, "ending": set,
    "creating": set, "assigning": set, "holding": dict, "offers": set, "waiting": dict,
    "positions": dict, "tasks": set,
}


class Connection(asyncio.Protocol):
    __slots__ = (
        "role", "subprotocol", "identity", "name", "agent", "ip", "endpoint", "transport",
        "engine", "_outbox", "_flushing", "_paused", "_timer", "_hello_timer", "_inbox",
        "_reading", "_parts", "_pending", "_limit", "_bytes", "_max_bytes", "_timeout", "_room",
        "live", "counted",
        "close_code", "close_reason", "close_sent", "closed", "ended", "cursors", "ncursors",
        "catching", "ending", "creating", "assigning", "holding", "offers", "credential",
        "attached", "waiting", "positions", "suggested", "presence", "tasks",
        "hello_done", "bad", "bucket", "last_seen", "registry",
    )

    # Made on first use (__getattr__): most connections are idle citizens who never touch most
    # of them, and an empty set weighs 216 bytes, an empty dict 64 (docs/benchmarks.md, idle).
    cursors: dict[str, int]  # session -> last seq delivered to this client
    ncursors: dict[str, int]  # session -> last note nseq delivered (agents)
    catching: dict[str, asyncio.Future[None]]  # session -> backfill under way
    attached: set[str]  # sessions this connection receives
    ending: set[str]  # sessions whose `closed` is on its way
    creating: set[str]  # sessions subscribed to but not yet in Redis
    assigning: set[str]  # sessions whose `assigned` is being prepared (agents)
    holding: dict[str, int]  # session -> when the holding it was told of began
    offers: set[str]  # offers told to this agent and not yet answered or revoked
    waiting: dict[str, str]  # queued session -> topic (visitors)
    positions: dict[str, tuple[Any, ...]]  # last (position, eta, …) sent
    tasks: set[asyncio.Task[Any]]

    def __getattr__(self, name: str) -> Any:
        """Only called for a slot never set: one of the lazy containers gets made."""
        make = _LAZY.get(name)
        if make is None:
            raise AttributeError(name)
        value = make()
        object.__setattr__(self, name, value)
        return value

    def has(self, name: str) -> bool:
        """Whether the lazy container ``name`` was made (reading it would make it: a pass over
        every connection asks this first)."""
        try:
            object.__getattribute__(self, name)
        except AttributeError:
            return False
        return True

    def __init__(self, transport: Any, endpoint: Endpoint, role: str, subprotocol: str, ip: str,
                 outbox_size: int, send_timeout: float, registry: set[Any],
                 outbox_bytes: int = 8 << 20) -> None:
        self.role = role  # "visitor" | "agent"
        self.subprotocol = subprotocol
        self.identity = ""  # visitor id or agent login, set by hello
        self.name = ""
        self.agent: Any = None  # the Account of an agent connection
        self.ip = ip
        self.endpoint = endpoint
        self.transport = transport
        self.engine: Engine = None  # type: ignore[assignment]  # from the 101 on
        self._outbox: list[str | bytes] = []
        self._flushing = False  # a flush is scheduled for this turn of the loop
        self._paused = False  # the transport's buffer is over its high-water mark
        self._timer: asyncio.TimerHandle | None = None  # a write or close deadline
        self._hello_timer: asyncio.TimerHandle | None = None
        self._inbox: deque[str | bytes | None] | None = None
        self._reading: asyncio.Task[None] | None = None
        self._parts: list[Any] | None = None  # a fragmented message: its opcode, its pieces
        self._pending: bytearray | None = None  # bytes received before the handshake ended
        self._limit = outbox_size  # frames
        self._max_bytes = outbox_bytes  # and bytes: one `assigned` can weigh megabytes
        self._bytes = 0  # in the outbox now
        self._timeout = send_timeout
        self._room: asyncio.Event | None = None  # set while a backfill waits for the outbox
        self.live = False  # the 101 response was sent
        self.counted = False  # holds one of its address's connection slots
        self.close_code: int | None = None
        self.close_reason = ""
        self.close_sent = False
        self.closed = False  # the hub has let go of it
        self.ended = False
        self.credential = ""  # digest of the agent's login token (checked again on resync)
        self.suggested: dict[str, tuple[str, ...]] | None = None  # session -> answers suggested
        # session -> the visitor's presence last told to this agent (state, since); made lazily
        self.presence: dict[str, tuple[str, int]] | None = None
        # the containers of _LAZY are made on first use (__getattr__)
        self.hello_done = False
        self.bad = 0  # bad frames in a row
        self.bucket: Any = None
        self.last_seen = 0.0  # loop time of the last message received (idle sweep)
        self.registry = registry  # uvicorn's open connections: it shuts them down on SIGTERM
        registry.add(self)

    # -- the handshake (transport) -----------------------------------------------------------

    def open(self, response: Any, max_size: int, hello_timeout: float) -> None:
        """Send the 101 response; the connection is live from here."""
        self.live = True
        self.engine = Engine(Side.SERVER, state=State.OPEN, max_size=max_size)
        self.transport.write(response.serialize())
        self._hello_timer = asyncio.get_running_loop().call_later(hello_timeout, self._no_hello)
        if self._pending:
            data, self._pending = bytes(self._pending), None
            self.data_received(data)

    def refuse(self, response: Any) -> None:
        """Send an HTTP refusal (403, or 400 for a bad handshake) and close."""
        self.close_code = self.close_code or CloseCode.POLICY
        self.transport.write(response.serialize())
        self.transport.close()

    def _no_hello(self) -> None:
        self._hello_timer = None
        if not self.hello_done and self.close_code is None:
            self.send(error(ErrorCode.UNAUTHORIZED, "say hello first (within the hello "
                            "timeout)", None))
            self.close(CloseCode.POLICY, "no hello")

    def said_hello(self) -> None:
        self.hello_done = True
        if self._hello_timer is not None:
            self._hello_timer.cancel()
            self._hello_timer = None

    # -- inbound -----------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        engine = self.engine
        if not self.live:  # a client that did not wait for the 101
            if self._pending is None:
                self._pending = bytearray()
            self._pending += data
            if len(self._pending) > READ_AHEAD * 1024:
                self.transport.abort()
            return
        engine.receive_data(data)
        for event in engine.events_received():
            op = event.opcode
            if op is Opcode.TEXT or op is Opcode.BINARY or op is Opcode.CONT:
                self._frame(event)
            # pings are answered and closes acknowledged by the engine itself
        self._write_engine()
        if engine.state is State.CLOSED or engine.parser_exc is not None:
            self.transport.close()  # a protocol error (e.g. 1009) was answered with a close

    def _frame(self, frame: Any) -> None:
        if frame.opcode is not Opcode.CONT:
            if frame.fin:
                self._deliver(frame.data, frame.opcode is Opcode.TEXT)
            else:
                self._parts = [frame.opcode, frame.data]
            return
        parts = self._parts
        if parts is None:  # the engine refuses a continuation with nothing to continue
            return
        parts.append(frame.data)
        if frame.fin:
            self._parts = None
            self._deliver(b"".join(parts[1:]), parts[0] is Opcode.TEXT)

    def _deliver(self, payload: bytes, text: bool) -> None:
        if self.close_code is not None:
            return  # closing: what still arrives is not read
        data: str | bytes = payload
        if text:
            try:
                data = payload.decode()
            except UnicodeDecodeError:
                self.close(CloseCode.BAD_DATA, "invalid UTF-8")
                return
        self._enqueue(data)

    def _enqueue(self, item: str | bytes | None) -> None:
        if self._inbox is None:
            self._inbox = deque()
        self._inbox.append(item)
        if len(self._inbox) > READ_AHEAD and item is not _GONE:
            self.transport.pause_reading()
        if self._reading is None:
            self._reading = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        """Hands the waiting messages to the endpoint in order; ends when none is left."""
        inbox = self._inbox
        assert inbox is not None
        try:
            while inbox:
                item = inbox.popleft()
                if item is _GONE:
                    self._end()
                    return
                if self.close_code is None:
                    await self.endpoint.message(self, item)
                if len(inbox) == READ_AHEAD // 2 and not self.transport.is_closing():
                    self.transport.resume_reading()
        finally:
            self._reading = None
            if not inbox:
                self._inbox = None
            elif not self.ended:  # cancelled (shutdown) or the endpoint raised: carry on
                self._reading = asyncio.ensure_future(self._read())

    def eof_received(self) -> bool | None:
        return None  # the transport closes itself; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.registry.discard(self)
        for timer in (self._timer, self._hello_timer):
            if timer is not None:
                timer.cancel()
        self._timer = self._hello_timer = None
        if self.close_code is None:
            self.close_code = 1006
        if self._room is not None:
            self._room.set()
        self._outbox = []
        self._bytes = 0
        if self._reading is not None:
            self._inbox.append(_GONE)  # type: ignore[union-attr]  # after what was received
        else:
            self._end()

    def _end(self) -> None:
        if not self.ended:
            self.ended = True
            self.endpoint.ended(self)

    # -- outbound ----------------------------------------------------------------------------

    def push(self, data: str | bytes) -> None:
        """Queue one encoded frame; never blocks. Overflow closes the connection as too slow."""
        if self.close_code is not None:
            return
        size = len(data)
        if len(self._outbox) >= self._limit or (
                self._outbox and self._bytes + size > self._max_bytes):
            log.warning("closing a %s connection: outbox full (slow consumer)", self.role)
            metrics.SLOW_CLOSES.inc()
            self._outbox.clear()
            self._bytes = 0
            self.close(CloseCode.SLOW, "too slow")
            return
        self._outbox.append(data)
        self._bytes += size
        if not self._flushing and not self._paused:
            self._flushing = True
            asyncio.get_running_loop().call_soon(self._flush)

    def send(self, frame: dict[str, Any]) -> None:
        self.push(encode(frame, self.subprotocol))

    def close(self, code: int, reason: str = "") -> None:
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason
            if not self._flushing:
                self._flushing = True
                asyncio.get_running_loop().call_soon(self._flush)

    def shutdown(self) -> None:
        """uvicorn's graceful shutdown (SIGTERM): clients reconnect to another process."""
        if self.live:  # the close frame, then the socket: no waiting for the answer
            self.close(CloseCode.RESTART, "restart")
            self._flush()
        self.transport.close()

    async def wait_room(self) -> None:
        """Backfills pace themselves on the client: wait until the outbox is half empty."""
        while (len(self._outbox) >= self._limit // 2 or self._bytes >= self._max_bytes // 2
               or self._paused) and self.close_code is None:
            if self._room is None:
                self._room = asyncio.Event()
            self._room.clear()
            await self._room.wait()

    def _flush(self) -> None:
        self._flushing = False
        if self.transport.is_closing():
            self._outbox.clear()
            self._bytes = 0
            return
        engine = self.engine
        outbox = self._outbox
        if outbox and self.close_code != CloseCode.SLOW and not self._paused:
            self._outbox = []
            self._bytes = 0
            for data in outbox:
                if type(data) is str:
                    engine.send_text(data.encode())
                else:
                    engine.send_binary(data)  # type: ignore[arg-type]
            self._write_engine()
        if self.close_code is not None and not self.close_sent:
            self.close_sent = True
            self._outbox = []
            self._bytes = 0
            if engine is not None and engine.state is State.OPEN:
                engine.send_close(self.close_code, self.close_reason)
                self._write_engine()
            if self._timer is not None:
                self._timer.cancel()
            self._timer = asyncio.get_running_loop().call_later(CLOSE_WAIT, self.abort)
        if (self._room is not None and len(self._outbox) < self._limit // 2
                and self._bytes < self._max_bytes // 2 and not self._paused):
            self._room.set()

    def _write_engine(self) -> None:
        data = self.engine.data_to_send()
        if not data:
            return
        if data[-1] == b"":  # the engine is done: the closing handshake is complete
            self.transport.write(b"".join(data))
            self.transport.close()
        else:
            self.transport.write(data[0] if len(data) == 1 else b"".join(data))

    def ping(self) -> None:
        """A keepalive for proxies and NATs; the engine ignores the pong."""
        if self.live and self.engine.state is State.OPEN and not self.close_sent:
            self.engine.send_ping(b"")
            self._write_engine()

    def pause_writing(self) -> None:
        self._paused = True
        if not self.close_sent and self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._timeout, self._stalled)

    def resume_writing(self) -> None:
        self._paused = False
        if self._timer is not None and not self.close_sent:
            self._timer.cancel()
            self._timer = None
        if self._outbox and not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().call_soon(self._flush)
        elif self._room is not None:
            self._room.set()

    def _stalled(self) -> None:
        self._timer = None
        log.warning("aborting a %s connection: a write stalled for %.0f s", self.role,
                    self._timeout)
        metrics.SLOW_CLOSES.inc()
        self.abort()

    def abort(self) -> None:
        """Drop the TCP connection now."""
        self._timer = None
        self.transport.abort()

    def spawn(self, coro: Awaitable[Any]) -> None:
        """Run a task tied to this connection: cancelled when the connection ends."""
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.error("a connection's task failed", exc_info=exc)
