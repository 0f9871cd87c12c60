"""The batcher's own link to one Redis node: a pipeline written in one write, its replies
parsed by hiredis as they arrive.

Every step of a chat is a round trip of the batcher (batch.py), and at a few hundred chats a
second most batches carry one or two calls. Through a redis-py pipeline such a round trip cost
a worker about 155 µs of CPU (a pipeline object, a pooled connection taken and given back, a
retry wrapper, a timeout and a stream read per reply); here it costs about 55 µs, most of it
the system calls (docs/benchmarks.md, "Matching"). redis-py still makes the connection: its
connect() finds the node (behind Sentinel, the Sentinels say where the primary is), speaks TLS,
AUTH, SELECT and the handshake. Then this protocol takes the connection's transport over, and
nothing else ever reads from it.

Replies come in the order the commands went (Redis answers a connection in order), so each
batch waits for its count of replies. A link that gives no reply within ``SOCKET_TIMEOUT``
is cut: every batch still waiting fails with ``TimeoutError`` (its callers answer
`unavailable`), and the next batch connects afresh, as does the next one after the link is
lost. A primary that answers READONLY was demoted (a failover): the link is cut so that the
next connection asks the Sentinels again.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any, Callable, Iterator, TypeVar

import hiredis
from redis._parsers import BaseParser  # redis-py's mapping of error replies to its exceptions
from redis.asyncio import Redis
from redis.exceptions import ConnectionError, ReadOnlyError, TimeoutError

from .connect import SOCKET_TIMEOUT


def pack(args: tuple[Any, ...]) -> bytes:
    """One command in the Redis protocol; text that UTF-8 cannot encode (a lone surrogate, as
    decoded replies carry binary payloads) goes back byte for byte."""
    try:
        return hiredis.pack_command(args)
    except UnicodeEncodeError:
        return hiredis.pack_command(tuple(
            a.encode("utf-8", "surrogateescape") if isinstance(a, str) else a for a in args))


Link = TypeVar("Link", bound=asyncio.Protocol)


async def take_over(client: Redis, make: Callable[[Any], Link]) -> Link:
    """A new connection of ``client``'s, made by redis-py (the node, TLS, AUTH, the
    handshake), its transport handed to the protocol ``make`` builds from that connection
    (kept only so that nothing closes it meanwhile)."""
    conn = client.connection_pool.make_connection()
    try:
        await conn.connect()
    except BaseException:  # cancelled, or refused, half-way: the pool does not know it
        await conn.disconnect(nowait=True)
        raise
    link = make(conn)
    transport = conn._writer.transport  # noqa: SLF001 - taken over, see the module's doc
    link.transport = transport  # type: ignore[attr-defined]
    transport.set_protocol(link)
    return link


_MORE = object()  # hiredis: no whole reply in the buffer yet (False is a RESP3 reply)


def reader(**options: Any) -> hiredis.Reader:
    """A parser of replies: an error reply as the exception redis-py would raise for it."""
    return hiredis.Reader(notEnoughData=_MORE, replyError=BaseParser.parse_error, **options)


def parsed(parser: hiredis.Reader, data: bytes) -> Iterator[Any]:
    """Every whole reply that ``data`` completes, in order (the parser keeps a part)."""
    parser.feed(data)
    while (reply := parser.gets()) is not _MORE:
        yield reply


class _Batch:
    __slots__ = ("fut", "count", "replies", "sent")

    def __init__(self, fut: asyncio.Future[list[Any]], count: int, sent: float) -> None:
        self.fut = fut
        self.count = count
        self.replies: list[Any] = []
        self.sent = sent


class Wire(asyncio.Protocol):
    """One connection; ``batch`` sends commands and returns their replies in order, an error
    reply as the exception redis-py would raise for it (in its place, not raised)."""

    def __init__(self, keep: Any, timeout: float) -> None:
        self._keep = keep  # the redis-py connection whose transport this is (not used again)
        self._timeout = timeout
        self._reader = reader(encoding="utf-8", errors="surrogateescape")
        self._waiting: deque[_Batch] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self.transport: asyncio.Transport | None = None
        self.closed = False

    @classmethod
    async def open(cls, client: Redis, timeout: float = SOCKET_TIMEOUT) -> Wire:
        return await take_over(client, lambda conn: cls(conn, timeout))

    def batch(self, commands: list[bytes]) -> asyncio.Future[list[Any]]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[list[Any]] = loop.create_future()
        transport = self.transport
        if self.closed or transport is None or transport.is_closing():
            self.closed = True
            fut.set_exception(ConnectionError("Redis connection lost"))
            return fut
        try:
            transport.write(b"".join(commands))
        except Exception as exc:  # noqa: BLE001 - closed under it (uvloop says so a turn later)
            self.closed = True
            fut.set_exception(ConnectionError(f"Redis connection lost: {exc}"))
            return fut
        self._waiting.append(_Batch(fut, len(commands), time.monotonic()))
        if self._timer is None:
            self._timer = loop.call_later(self._timeout, self._check)
        return fut

    def data_received(self, data: bytes) -> None:
        try:
            for reply in parsed(self._reader, data):
                if isinstance(reply, hiredis.PushNotification):
                    continue  # not a reply (a notification the handshake may have asked for)
                self._reply(reply)
        except hiredis.ProtocolError as exc:
            self._cut(ConnectionError(f"Redis protocol error: {exc}"))

    def _reply(self, reply: Any) -> None:
        if isinstance(reply, ReadOnlyError):  # a demoted primary: connect afresh next time
            self.closed = True
        if not self._waiting:  # nothing asked for it: the link is out of step
            self._cut(ConnectionError("Redis sent a reply nobody waited for"))
            return
        head = self._waiting[0]
        head.replies.append(reply)
        if len(head.replies) == head.count:
            self._waiting.popleft()
            if not head.fut.done():
                head.fut.set_result(head.replies)
            if self.closed and not self._waiting and self.transport is not None:
                self.transport.close()

    def _check(self) -> None:
        """The oldest batch waiting: if it has waited too long, the link is dead."""
        self._timer = None
        if not self._waiting:
            return
        due = self._waiting[0].sent + self._timeout
        late = due - time.monotonic()
        if late <= 0:
            self._cut(TimeoutError(f"no reply from Redis within {self._timeout:g} s"))
        else:
            self._timer = asyncio.get_running_loop().call_later(late, self._check)

    def _cut(self, exc: Exception) -> None:
        self.closed = True
        self._fail(exc)  # first: whatever the abort does, nobody is left waiting
        if self.transport is not None:
            try:
                self.transport.abort()
            except RuntimeError:  # its event loop is gone
                pass

    def _fail(self, exc: Exception) -> None:
        while self._waiting:
            batch = self._waiting.popleft()
            if not batch.fut.done():
                batch.fut.set_exception(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._keep._writer = self._keep._reader = None  # noqa: SLF001 - closed here, not there
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._fail(ConnectionError(f"Redis connection lost: {exc}" if exc else
                                   "Redis closed the connection"))

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            try:
                self.transport.close()
            except RuntimeError:  # its event loop is gone
                pass
