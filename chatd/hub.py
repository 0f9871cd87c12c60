"""This process's live connections: who follows which chat and which gendarme, and the
subscriptions that go with them (the first local connection to a chat subscribes its channel,
the last one to leave unsubscribes).

The hub is split by job: this module (the registry and subscriptions), ``delivery.py``
(cursors, backfill, and bringing connections in line with the state in Redis), ``events.py``
(what arrives from pub/sub, translated into frames), ``idle.py`` (the idle sweep).
"""

from __future__ import annotations

import logging
from typing import Any


from .connection import Connection
from .delivery import Delivery
from .events import Events
from .idle import IdleSweep
from .presence import Presence
from .store import Store

log = logging.getLogger("chatd.hub")


class Hub(Delivery, Events):
    def __init__(self, store: Store, make_fanout: Any) -> None:
        """``make_fanout(on_event, on_resync)``: this process's pub/sub (fanout.py)."""
        self.store = store
        self.keys = store.keys
        self.sessions: dict[str, set[Connection]] = {}
        self.agents: dict[str, set[Connection]] = {}
        self.visitors: set[Connection] = set()
        self.connections: set[Connection] = set()  # every open connection, for the idle sweep
        self.idle = IdleSweep(self.connections)
        self.max_seq: dict[str, int] = {}
        self._held: dict[str, list[tuple[Any, dict[str, Any]]]] = {}  # sessions being created
        self._channel_owner: dict[str, tuple[str, str]] = {}  # channel -> ("s"|"a", id)
        self.fanout = make_fanout(self.on_event, self.resync)
        self.on_assigned_agent: Any = None  # set by the agent handlers: builds `assigned`
        self.wanted: dict[str, tuple[str, int]] = {}  # login -> the status and capacity chosen
        self.presence = Presence(store)  # which chats' visitors this process holds

    # -- registry -----------------------------------------------------------------------------

    async def attach(self, conn: Connection, sid: str, after: int | None) -> bool:
        """Start delivering a session to a connection from seq ``after`` (None: not yet).
        True when every event published from now on will reach this process."""
        conn.attached.add(sid)
        if conn.role == "visitor":
            self.presence.opened(sid, conn)
        channel = self.keys.session_channel(sid)
        await self._join(self.sessions, sid, channel, "s", conn)
        if after is not None:
            self.start_from(conn, sid, after)
        return self.fanout.live(channel)

    async def attach_new(self, conn: Connection, sid: str) -> None:
        """Subscribe to a session about to be created. Its events are held back until
        ``created``: a fast match must not tell the visitor `assigned` before `queued`."""
        conn.creating.add(sid)
        self._held[sid] = []
        await self.attach(conn, sid, None)

    def created(self, conn: Connection, sid: str) -> None:
        """The creation was answered: what happened meanwhile is delivered now, in order."""
        conn.creating.discard(sid)
        for kind, ev in self._held.pop(sid, ()):
            self._session_event(sid, kind, ev)

    def start_from(self, conn: Connection, sid: str, after: int, backfill: bool = True) -> None:
        """Live delivery from seq ``after``; ``backfill=False`` when the caller knows nothing
        after it was published yet (skips reading the stream back)."""
        conn.cursors[sid] = after
        if backfill:
            conn.spawn(self._catch_up(conn, sid))

    def detach(self, conn: Connection, sid: str, ended: bool = False) -> None:
        """``ended``: the chat is closed (its routing record goes, and its presence with it)."""
        conn.attached.discard(sid)
        if conn.role == "visitor":
            self.presence.closed(sid, conn, ended)
        conn.holding.pop(sid, None)
        conn.cursors.pop(sid, None)
        conn.ncursors.pop(sid, None)
        conn.waiting.pop(sid, None)
        conn.positions.pop(sid, None)
        if conn.presence:
            conn.presence.pop(sid, None)
        if self._leave(self.sessions, sid, self.keys.session_channel(sid), conn):
            self.max_seq.pop(sid, None)

    async def add_agent(self, conn: Connection) -> None:
        login = conn.identity
        await self._join(self.agents, login, self.keys.agent_channel(login), "a", conn)

    async def _join(self, table: dict[str, set[Connection]], key: str, channel: str,
                    kind: str, conn: Connection) -> None:
        """The first local connection to a session or agent subscribes its channel."""
        conns = table.get(key)
        if conns is not None:
            conns.add(conn)
            return
        table[key] = {conn}
        self._channel_owner[channel] = (kind, key)
        await self.fanout.subscribe(channel)

    def _leave(self, table: dict[str, set[Connection]], key: str, channel: str,
               conn: Connection) -> bool:
        """The last local connection to leave unsubscribes; True when it was the last."""
        conns = table.get(key)
        if conns is None:
            return False
        conns.discard(conn)
        if conns:
            return False
        del table[key]
        self._channel_owner.pop(channel, None)
        self.fanout.unsubscribe(channel)
        return True

    def add_visitor(self, conn: Connection) -> None:
        self.visitors.add(conn)


    def remove(self, conn: Connection) -> None:
        conn.closed = True
        self.connections.discard(conn)
        for sid in list(conn.attached):
            self.detach(conn, sid)
        self.visitors.discard(conn)
        if conn.role == "agent" and conn.identity:
            self._leave(self.agents, conn.identity, self.keys.agent_channel(conn.identity), conn)
        for task in list(conn.tasks):
            task.cancel()

    def agent_connections(self, login: str) -> set[Connection]:
        return self.agents.get(login, set())


