"""The pub/sub listener's own link: messages parsed by hiredis as they arrive and handed on in
the same turn of the loop, one call each.

Through redis-py's ``PubSub`` every message took a coroutine's await to read and a dict to
carry it, and a relayed message is read twice, by the citizen's process and by the gendarme's:
at 1,000 chats this link cut the server's CPU per relayed message by a sixth
(docs/benchmarks.md, "The pub/sub listener's own link"). As with the batcher's link
(wire.py), redis-py makes the connection (behind Sentinel it asks where the primary is; TLS,
AUTH, the handshake), then this protocol takes its transport over. Nothing here reconnects: a
lost link ends ``lost`` with ``ConnectionError``, and the listener (fanout.py) connects afresh,
subscribes again and resyncs.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

import hiredis
from redis.asyncio import Redis
from redis.exceptions import ConnectionError

from .wire import pack, parsed, reader, take_over

log = logging.getLogger("chatd.fanout")
#: called with a push's kind ('message', 'subscribe', ... as bytes), its channel and the
#: rest (the payload; the count of a (un)subscription)
OnPush = Callable[[bytes, bytes, Any], None]


class Pushes(asyncio.Protocol):
    def __init__(self, keep: Any, on_push: OnPush) -> None:
        self._keep = keep  # the redis-py connection whose transport this is (not used again)
        self._on_push = on_push
        self._reader = reader()
        self.transport: asyncio.Transport | None = None
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @classmethod
    async def open(cls, client: Redis, on_push: OnPush) -> Pushes:
        return await take_over(client, lambda conn: cls(conn, on_push))

    def send(self, *args: Any) -> None:
        """(S)(UN)SUBSCRIBE: written now; Redis confirms each channel with a push."""
        transport = self.transport
        if self.lost.done() or transport is None or transport.is_closing():
            raise ConnectionError("Redis pub/sub connection lost")
        try:
            transport.write(pack(args))
        except Exception as exc:  # noqa: BLE001 - closed under it (uvloop says so a turn later)
            why = f"Redis pub/sub connection lost: {exc}"
            self._cut(ConnectionError(why))
            raise ConnectionError(why) from exc

    def data_received(self, data: bytes) -> None:
        try:
            for push in parsed(self._reader, data):
                if isinstance(push, Exception):
                    # a (S)SUBSCRIBE refused (NOPERM, MOVED): the error itself, so that the
                    # listener tells a fault of ours from an outage as it does for any reply
                    self._cut(push)
                    return
                # a push of pub/sub: kind, channel, payload or count; anything else (a
                # RESP3 notification of another kind) is not for the listener
                if (isinstance(push, list) and len(push) >= 3 and type(push[0]) is bytes
                        and type(push[1]) is bytes):
                    try:
                        self._on_push(push[0], push[1], push[2])
                    except Exception:  # a bug in its handling: logged, the link lives on
                        log.exception("pub/sub push not handled")
        except hiredis.ProtocolError as exc:
            self._cut(ConnectionError(f"Redis protocol error: {exc}"))

    def _cut(self, exc: Exception) -> None:
        if not self.lost.done():
            self.lost.set_exception(exc)
        if self.transport is not None:
            try:
                self.transport.abort()
            except RuntimeError:  # its event loop is gone
                pass

    def connection_lost(self, exc: Exception | None) -> None:
        self._keep._writer = self._keep._reader = None  # noqa: SLF001 - closed here, not there
        if not self.lost.done():
            self.lost.set_exception(ConnectionError(
                f"Redis pub/sub connection lost: {exc}" if exc else "Redis closed the connection"))

    def close(self) -> None:
        if self.transport is not None:
            try:
                self.transport.close()
            except RuntimeError:  # its event loop is gone
                pass
        if not self.lost.done():
            self.lost.set_exception(ConnectionError("closed"))
        if not self.lost.cancelled():
            self.lost.exception()  # retrieved: nobody waits for it any more
