"""Whether each chat's visitor is connected, as this process sees it, told to Redis in order.

A gendarme sees whether the citizen is still there (docs/protocol.md, "Presence"), and
matching passes over a queued visitor who has been gone a while (``CHATD_ABSENT_SKIP_S``). The
truth is in Redis (presence.lua): the visitor is connected while any process holds a visitor
connection to the chat. This module keeps which local visitor connections follow which chat;
when a chat's first local one opens or its last one closes, the change is queued and one task
tells Redis, in order, coalesced (a tab reloaded within the same moment changes nothing, and
no flicker reaches the gendarme). The same task sends the visitors' heartbeat, so that a beat
read before a close can never land after it and say "connected" again. A process that dies
without a word is found by the reaper when its heartbeats stop (reap.lua): the holders hear
"gone" within ``CHATD_HEARTBEAT_TTL`` + one tick of its last beat.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Callable

from redis.exceptions import RedisError

from .store import transient
from .supervised import spawn

if TYPE_CHECKING:
    from .connection import Connection
    from .store import Store

log = logging.getLogger("chatd.presence")

RETRY_S = 0.5  # seconds before telling Redis again after it did not answer
STOP_FLUSH_S = 1.0  # seconds a stopping process gives its last presence changes


class Presence:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.local: dict[str, set[Connection]] = {}  # sid -> this process's visitor connections
        self.told: set[str] = set()  # the chats Redis knows this process holds
        self.dirty: set[str] = set()  # chats whose holding may differ from what Redis was told
        self.on_back: Callable[[], None] = lambda: None  # a queued visitor is back: match
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = spawn("presence", self._run)

    async def stop(self) -> None:
        """A last flush, briefly: the visitors of a process that stops (1012) are told gone at
        once, rather than when their heartbeat lapses (they reconnect elsewhere anyway)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            await asyncio.wait_for(self.flush(), STOP_FLUSH_S)
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            log.warning("presence not told at shutdown (%s): heartbeats lapse instead",
                        type(exc).__name__)

    def opened(self, sid: str, conn: Connection) -> None:
        """A visitor connection follows this chat (hello, resume, a new chat, another tab)."""
        conns = self.local.setdefault(sid, set())
        if not conns:
            self._changed(sid)
        conns.add(conn)

    def closed(self, sid: str, conn: Connection, ended: bool = False) -> None:
        """A visitor connection no longer follows this chat (closed, or, ``ended``, the chat
        is closed: nothing to tell Redis, its routing record and presence are gone with it;
        a write then would only slow the close down)."""
        conns = self.local.get(sid)
        if conns is None or conn not in conns:
            return
        conns.discard(conn)
        if not conns:
            del self.local[sid]
            if ended:
                self.told.discard(sid)
                self.dirty.discard(sid)
            else:
                self._changed(sid)

    def _changed(self, sid: str) -> None:
        self.dirty.add(sid)
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
            except (RedisError, OSError) as exc:
                if not transient(exc):
                    raise
                await asyncio.sleep(RETRY_S)
                self._wake.set()

    async def flush(self) -> None:
        """Tells Redis every change since the last flush (a change that was undone meanwhile
        is no change); what could not be told is tried again."""
        async with self._lock:
            changes = [(sid, sid in self.local) for sid in self.dirty
                       if (sid in self.local) != (sid in self.told)]
            self.dirty.clear()
            if not changes:
                return
            try:
                back = await self.store.presence(changes)
            except BaseException:
                self.dirty.update(sid for sid, _ in changes)
                raise
            for sid, held in changes:
                if held:
                    self.told.add(sid)
                else:
                    self.told.discard(sid)
        if back:
            self.on_back()

    async def beat(self, logins: list[str]) -> list[str]:
        """The heartbeat of this process's agents and of the chats it holds a visitor
        connection to (only those Redis was told of: a change still queued goes first)."""
        async with self._lock:
            held = [sid for sid in self.told if sid in self.local]
            if not logins and not held:
                return []
            return await self.store.heartbeat(logins, held)
