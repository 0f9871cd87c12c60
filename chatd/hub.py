"""This process's live connections, and delivery of events to them.

Every visible message reaches a client through ``_deliver``, which keeps, per connection and per
session, the last ``seq`` the client was given. The next seq is sent at once; an old one is
dropped; a gap starts a backfill from the stream (``_catch_up``). Resume, a missed publish, and a
pub/sub reconnect are therefore one code path, and each client gets every message exactly once,
in order (docs/protocol.md, "Delivery"). A live message is encoded once per subprotocol, not once
per recipient.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import protocol
from protocol import CloseCode

from .connection import Connection
from .store import Entry, Store, transient

log = logging.getLogger("chatd.hub")


def msg_frame(sid: str, e: Entry) -> dict[str, Any]:
    return protocol.outbound.msg(sid, e.seq, e.sender, e.text, e.ts, e.cid)


class _Encoded:
    """A frame encoded lazily, at most once per subprotocol."""

    __slots__ = ("frame", "json", "msgpack")

    def __init__(self, frame: dict[str, Any]) -> None:
        self.frame = frame
        self.json: str | bytes | None = None
        self.msgpack: str | bytes | None = None

    def for_(self, subprotocol: str) -> str | bytes:
        if subprotocol == protocol.MSGPACK:
            if self.msgpack is None:
                self.msgpack = protocol.encode(self.frame, protocol.MSGPACK)
            return self.msgpack
        if self.json is None:
            self.json = protocol.encode(self.frame, protocol.JSON)
        return self.json


class Hub:
    def __init__(self, store: Store, make_fanout: Any) -> None:
        """``make_fanout(on_event, on_resync)``: this process's pub/sub (fanout.py)."""
        self.store = store
        self.keys = store.keys
        self.sessions: dict[str, set[Connection]] = {}
        self.agents: dict[str, set[Connection]] = {}
        self.visitors: set[Connection] = set()
        self.connections: set[Connection] = set()  # every open connection, for the idle sweep
        self._pinged = 0.0
        self.max_seq: dict[str, int] = {}
        self._held: dict[str, list[tuple[Any, dict[str, Any]]]] = {}  # sessions being created
        self._channel_owner: dict[str, tuple[str, str]] = {}  # channel -> ("s"|"a", id)
        self.fanout = make_fanout(self.on_event, self.resync)
        self.on_assigned_agent: Any = None  # set by the agent handlers: builds `assigned`
        self.wanted: dict[str, tuple[str, int]] = {}  # login -> the status and capacity chosen

    # -- registry -----------------------------------------------------------------------------

    async def attach(self, conn: Connection, sid: str, after: int | None) -> bool:
        """Start delivering a session to a connection from seq ``after`` (None: not yet).
        True when every event published from now on will reach this process."""
        conn.attached.add(sid)
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

    def detach(self, conn: Connection, sid: str) -> None:
        conn.attached.discard(sid)
        conn.holding.pop(sid, None)
        conn.cursors.pop(sid, None)
        conn.ncursors.pop(sid, None)
        conn.waiting.pop(sid, None)
        conn.positions.pop(sid, None)
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

    def close_idle(self, now: float, idle: float) -> int:
        """Closes connections that sent nothing for ``idle`` seconds (1001); every third of
        that (20 s by default), pings those silent that long (proxies and NATs drop quiet
        sockets). One pass for all connections: no timer per connection."""
        n = 0
        every = idle / 3
        ping = now - self._pinged >= every
        if ping:
            self._pinged = now
        for conn in list(self.connections):
            silent = now - conn.last_seen
            if silent > idle and conn.close_code is None:
                conn.close(CloseCode.GOING_AWAY, "idle")
                n += 1
            elif ping and silent >= every:
                conn.ping()
        return n

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

    # -- delivery -----------------------------------------------------------------------------

    def _deliver(self, conn: Connection, sid: str, seq: int, data: _Encoded) -> None:
        cur = conn.cursors.get(sid)
        if cur is None or sid in conn.catching:
            return
        if seq == cur + 1:
            conn.push(data.for_(conn.subprotocol))
            conn.cursors[sid] = seq
        elif seq > cur + 1:
            conn.spawn(self._catch_up(conn, sid))

    async def _catch_up(self, conn: Connection, sid: str) -> None:
        if sid in conn.catching:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        conn.catching[sid] = done  # others (a close) can wait for this backfill to finish
        try:
            while not conn.closed:
                cur = conn.cursors.get(sid)
                if cur is None:
                    return
                entries = await self.store.history(sid, cur, 500)
                for entry in entries:
                    if entry.seq == conn.cursors.get(sid, -1) + 1:
                        await conn.wait_room()
                        if conn.close_code is not None:
                            return
                        conn.send(msg_frame(sid, entry))
                        conn.cursors[sid] = entry.seq
                if len(entries) < 500 and self.max_seq.get(sid, 0) <= conn.cursors.get(sid, 0):
                    return
                if not entries:
                    return
        except Exception as exc:  # Redis away: the periodic resync retries
            if transient(exc):
                log.warning("backfill of a session failed (%s: %s)", type(exc).__name__, exc)
            else:
                log.exception("backfill of a session failed")
        finally:
            del conn.catching[sid]
            done.set_result(None)

    async def _catch_up_if_behind(self, conn: Connection, sid: str, seq: int,
                                  settle: float) -> None:
        await asyncio.sleep(settle)
        if conn.cursors.get(sid, seq) < seq:  # not delivered live meanwhile: it was missed
            await self._catch_up(conn, sid)

    async def resync(self, settle: float = 0.0) -> None:
        """After a pub/sub gap (and periodically, with ``settle``): bring every live session up
        to its stream's end and its connections in line with its state, and each agent's
        connections in line with their offers, chats and credentials."""
        await self.reconcile(list(self.sessions), settle=settle)
        await self.reconcile_agents()

    async def reconcile(self, sids: list[str], only: Connection | None = None,
                        settle: float = 0.0) -> None:
        """Events are not stored, so one missed while (re)subscribing is recovered from the
        session's state: its messages are backfilled, and an `assigned`, `closed` or
        `released` the connection did not see is sent now.

        With ``settle`` (the periodic check), a connection behind the stream is backfilled only
        if it is still behind ``settle`` seconds later: under load nearly every session has a
        message on its way through pub/sub, and backfilling them all at once held those
        messages back (p99 spikes of 100 ms every few seconds in the relay benchmark)."""
        if not sids:
            return
        # who to reconcile is decided before reading: a session created while the read is in
        # flight would look gone in it (state None) although it was just made
        eligible = {sid: [c for c in self.sessions.get(sid, ())
                          if sid not in c.creating and (only is None or c is only)]
                    for sid in sids}
        try:
            states = await self.store.states(sids)
        except Exception as exc:
            if transient(exc):
                log.warning("resync failed (%s: %s)", type(exc).__name__, exc)
            else:
                log.exception("resync failed")
            return
        for sid, st in zip(sids, states):
            seq = int(st.get("seq", 0))
            if seq > self.max_seq.get(sid, 0):
                self.max_seq[sid] = seq
            state = st.get("state")
            for conn in eligible[sid]:
                if sid not in conn.attached:
                    continue
                cur = conn.cursors.get(sid)
                if state in (None, "closed"):
                    # gone while open: its Redis lost it (emptied, or a failover to a node
                    # that never had it); closed ones are told before their retention ends
                    data = _Encoded({"type": "closed", "session": sid,
                                     "by": st.get("by", "system"), "reason": st.get("reason", "lost")})
                    conn.spawn(self._close_after_catch_up(conn, sid, data))
                    continue
                if cur is not None and cur < seq:
                    conn.spawn(self._catch_up_if_behind(conn, sid, seq, settle) if settle
                               else self._catch_up(conn, sid))
                if conn.role == "visitor":
                    if state == "active" and sid in conn.waiting:
                        conn.waiting.pop(sid, None)
                        conn.send({"type": "assigned", "session": sid,
                                   "agent_name": st.get("agent_name", "")})
                    elif state == "queued" and sid not in conn.waiting:
                        conn.waiting[sid] = st.get("topic", "general")
                elif state != "active" or st.get("agent") != conn.identity:
                    if cur is not None:
                        conn.send({"type": "released", "session": sid, "reason": "reassigned"})
                        self.detach(conn, sid)

    # -- events from Redis --------------------------------------------------------------------

    def on_event(self, channel: str, ev: dict[str, Any]) -> None:
        owner = self._channel_owner.get(channel)
        if owner is None:  # the broadcast channel, or one just left
            return
        kind = ev.get("e")
        if owner[0] == "s":
            self._session_event(owner[1], kind, ev)
        else:
            self._agent_event(owner[1], kind, ev)

    def _session_event(self, sid: str, kind: Any, ev: dict[str, Any]) -> None:
        held = self._held.get(sid)
        if held is not None:
            held.append((kind, ev))
            return
        conns = self.sessions.get(sid)
        if not conns:
            return
        if kind == "msg":
            seq = ev["seq"]
            if seq > self.max_seq.get(sid, 0):
                self.max_seq[sid] = seq
            data = _Encoded(protocol.outbound.msg(sid, seq, ev["from"], ev["text"], ev["ts"],
                                                  ev.get("cid")))
            for conn in list(conns):
                self._deliver(conn, sid, seq, data)
        elif kind == "note":
            frame = protocol.outbound.note(sid, ev["nseq"], ev["agent"], ev["text"], ev["ts"],
                                           ev.get("cid"))
            for conn in list(conns):
                if conn.role == "agent":
                    self._deliver_note(conn, sid, ev["nseq"], frame)
        elif kind in ("typing", "read"):
            frame = {"type": kind, "session": sid, "from": ev["from"]}
            if kind == "typing":
                frame["on"] = bool(ev.get("on"))
            else:
                frame["seq"] = ev.get("seq", 0)
            data = _Encoded(frame)
            for conn in list(conns):
                if conn.role != ev["from"]:
                    conn.push(data.for_(conn.subprotocol))
        elif kind == "assigned":
            data = _Encoded({"type": "assigned", "session": sid, "agent_name": ev.get("name", "")})
            for conn in list(conns):
                if conn.role == "visitor":
                    conn.waiting.pop(sid, None)
                    conn.positions.pop(sid, None)
                    conn.push(data.for_(conn.subprotocol))
        elif kind == "queued":
            for conn in list(conns):
                if conn.role == "visitor":
                    conn.waiting[sid] = ev.get("topic", "general")
                    conn.positions.pop(sid, None)
        elif kind == "offered":
            for conn in list(conns):
                if conn.role == "visitor":
                    conn.waiting.pop(sid, None)
        elif kind == "closed":
            data = _Encoded({"type": "closed", "session": sid, "by": ev["by"],
                             "reason": ev["reason"]})
            for conn in list(conns):
                # messages before the close first: the close comes after the last seq
                conn.spawn(self._close_after_catch_up(conn, sid, data))

    async def _close_after_catch_up(self, conn: Connection, sid: str, data: _Encoded) -> None:
        if sid in conn.ending or sid not in conn.attached:
            return  # told already (the live event and a resync can both notice a close)
        conn.ending.add(sid)
        cur = conn.cursors.get(sid)
        if cur is not None and (cur < self.max_seq.get(sid, 0) or sid in conn.catching):
            try:
                seq = (await self.store.last_seqs([sid]))[0]
            except Exception:
                seq = 0
            self.max_seq[sid] = max(self.max_seq.get(sid, 0), seq)
            running = conn.catching.get(sid)
            if running is not None:
                await running
            if conn.cursors.get(sid, seq) < seq:
                await self._catch_up(conn, sid)
        conn.push(data.for_(conn.subprotocol))
        conn.ending.discard(sid)
        self.detach(conn, sid)

    def _deliver_note(self, conn: Connection, sid: str, nseq: int, frame: dict[str, Any]) -> None:
        cur = conn.ncursors.get(sid)
        if cur is None:
            return
        if nseq == cur + 1:
            conn.send(frame)
            conn.ncursors[sid] = nseq
        elif nseq > cur + 1:
            conn.spawn(self.catch_up_notes(conn, sid))

    async def catch_up_notes(self, conn: Connection, sid: str) -> None:
        cur = conn.ncursors.get(sid)
        if cur is None:
            return
        async for page in self.store.notes_pages(sid, cur):
            for n in page:
                if n.nseq == conn.ncursors.get(sid, -1) + 1:
                    await conn.wait_room()
                    conn.send(protocol.outbound.note(sid, n.nseq, n.agent, n.text, n.ts, n.cid))
                    conn.ncursors[sid] = n.nseq

    def _agent_event(self, login: str, kind: Any, ev: dict[str, Any]) -> None:
        conns = self.agents.get(login)
        if not conns:
            return
        sid = ev.get("sid", "")
        if kind == "offer":
            frame = {"type": "offer", "session": sid, "topic": ev["topic"], "lang": ev["lang"],
                     "waited_s": int(ev["waited_ms"]) // 1000,
                     "expires_in_s": int(ev["expires_ms"]) // 1000}
            if ev.get("preview"):
                frame["preview"] = ev["preview"]
            if ev.get("from_agent"):
                frame["from_agent"] = ev["from_agent"]
            data = _Encoded(frame)
            for conn in list(conns):
                conn.offers.add(sid)
                conn.push(data.for_(conn.subprotocol))
        elif kind == "offer_revoked":
            data = _Encoded({"type": "offer_revoked", "session": sid, "reason": ev["reason"]})
            for conn in list(conns):
                conn.offers.discard(sid)
                conn.push(data.for_(conn.subprotocol))
        elif kind == "assigned":
            for conn in list(conns):
                conn.offers.discard(sid)
                if self.on_assigned_agent is not None:
                    conn.spawn(self.on_assigned_agent(conn, sid, ev.get("at")))
        elif kind == "released":
            data = _Encoded({"type": "released", "session": sid, "reason": ev["reason"]})
            for conn in list(conns):
                self.detach(conn, sid)
                conn.push(data.for_(conn.subprotocol))
        elif kind == "status":
            self.wanted[login] = (ev["status"], int(ev["cap"]))
            data = _Encoded({"type": "agent_status", "status": ev["status"],
                             "load": ev["load"], "capacity": ev["cap"]})
            for conn in list(conns):
                conn.push(data.for_(conn.subprotocol))
        elif kind == "kick":
            for conn in list(conns):
                _sign_out(conn)

    async def restore_status(self, login: str) -> str:
        """The status a gendarme chose, set again after Redis forgot it (their heartbeat lapsed
        while they were still connected: a silent link, a failover; or Redis lost its data):
        a blip must not turn them `away` without their knowing. Every tab is told."""
        acct = next((c.agent for c in self.agent_connections(login) if c.agent is not None), None)
        if acct is None:
            return "offline"
        status, cap = self.wanted.get(login, ("away", acct.capacity))
        await self.store.set_status(login, status, cap, acct.langs, acct.topics, acct.name)
        return status

    async def reconcile_agents(self) -> None:
        """Agent-side events are not stored either: an offer, an assignment, a revocation or a
        sign-out missed while pub/sub was away (a failover, a silent link) is found again in
        the state of each local agent's chats and credentials, and sent now."""
        logins = list(self.agents)
        if not logins:
            return
        conns = [(login, c) for login in logins for c in self.agents.get(login, ())]
        try:
            views, valid = await self.store.agent_view(logins, [c.credential for _, c in conns])
        except Exception as exc:
            if transient(exc):
                log.warning("agent resync failed (%s: %s)", type(exc).__name__, exc)
            else:
                log.exception("agent resync failed")
            return
        now = self.store.now_ms()
        for (login, conn), ok in zip(conns, valid):
            if conn.closed or conn.close_code is not None:
                continue
            if not ok:
                _sign_out(conn)
                continue
            offered = {}
            for v in views.get(login, ()):
                if v["state"] == "offered" and v["offer_agent"] == login:
                    offered[v["session"]] = v
                elif (v["state"] == "active" and v["agent"] == login
                      and conn.holding.get(v["session"]) != v["assigned_at"]
                      and self.on_assigned_agent):  # not told, or told of an earlier holding
                    conn.spawn(self.on_assigned_agent(conn, v["session"], v["assigned_at"]))
            for sid, v in offered.items():
                if sid not in conn.offers:
                    conn.offers.add(sid)
                    conn.send({"type": "offer", "session": sid, "topic": v["topic"],
                               "lang": v["lang"], "waited_s": max(0, now - v["created"]) // 1000,
                               "expires_in_s": max(0, v["deadline"] - now) // 1000})
            mine = {v["session"]: v for v in views.get(login, ())}
            for sid in list(conn.offers - set(offered)):
                conn.offers.discard(sid)
                v = mine.get(sid)
                if v is not None and v["state"] == "active" and v["agent"] == login:
                    continue  # accepted: `assigned` comes (above, or live)
                reason = ("taken" if v is not None and v["state"] == "active" else
                          "visitor_left" if v is None or v["state"] == "closed" else "expired")
                conn.send({"type": "offer_revoked", "session": sid, "reason": reason})


def _sign_out(conn: Connection) -> None:
    conn.send(protocol.outbound.error(protocol.ErrorCode.UNAUTHORIZED, "signed out", None))
    conn.close(CloseCode.POLICY, "signed out")
