"""Every visible message reaches a client through ``_deliver``, which keeps, per connection and
per chat, the last ``seq`` the client was given. The next seq is sent at once; an old one is
dropped; a gap starts a backfill from the stream (``_catch_up``). Resume, a missed publish, and
a pub/sub reconnect are therefore one code path, and each client gets every message exactly
once, in order (docs/protocol.md, "Delivery"). Events are not stored: what a connection missed
is found again in the state (``reconcile``, ``reconcile_agents``). Part of ``Hub``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import protocol

from .connection import Connection
from .events import _Encoded, _sign_out, told_presence
from .store import Entry, transient
from .store.records import attachment_of

if TYPE_CHECKING:
    from .hub import Hub

log = logging.getLogger("chatd.hub")

RESYNC_PAGE = 100  # sessions read and checked at once by a resync
AGENT_PAGE = 10  # gendarmes (and their chats) read and checked at once


def _failed(what: str, exc: Exception) -> None:
    """A periodic check that could not read Redis: an outage is a warning (the next period
    tries again), anything else a bug, with its traceback."""
    if transient(exc):
        log.warning("%s failed (%s: %s)", what, type(exc).__name__, exc)
    else:
        log.exception("%s failed", what)


def msg_frame(sid: str, e: Entry) -> dict[str, Any]:
    return protocol.outbound.msg(sid, e.seq, e.sender, e.text, e.ts, e.cid,
                                 attachment_of(e.photo))


class Delivery:
    def _deliver(self: Hub, conn: Connection, sid: str, seq: int, data: _Encoded) -> None:
        cur = conn.cursors.get(sid)
        if cur is None or sid in conn.catching:
            return
        if seq == cur + 1:
            conn.push(data.for_(conn.subprotocol))
            conn.cursors[sid] = seq
        elif seq > cur + 1:
            conn.spawn(self._catch_up(conn, sid))

    def deliver_own(self: Hub, conn: Connection, sid: str, seq: int, frame: dict[str, Any]
                    ) -> None:
        """The sender's copy of its message, with its ack: only when it is the next of this
        connection (no gap, no backfill under way), else pub/sub or the backfill brings it."""
        if conn.cursors.get(sid) == seq - 1 and sid not in conn.catching:
            conn.send(frame)
            conn.cursors[sid] = seq
            if seq > self.max_seq.get(sid, 0):
                self.max_seq[sid] = seq

    async def _catch_up(self: Hub, conn: Connection, sid: str) -> None:
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
            _failed("backfill of a session", exc)
        finally:
            del conn.catching[sid]
            done.set_result(None)

    async def _catch_up_if_behind(self: Hub, conn: Connection, sid: str, seq: int,
                                  settle: float) -> None:
        await asyncio.sleep(settle)
        if conn.cursors.get(sid, seq) < seq:  # not delivered live meanwhile: it was missed
            await self._catch_up(conn, sid)

    async def resync(self: Hub, settle: float = 0.0) -> None:
        """After a pub/sub gap (and periodically, with ``settle``): bring every live session up
        to its stream's end and its connections in line with its state, and each agent's
        connections in line with their offers, chats and credentials. Sessions are read a
        page at a time: reading and checking a thousand at once held the loop (and every
        message of the process) for tens of milliseconds at each period."""
        sids = list(self.sessions)
        for i in range(0, len(sids), RESYNC_PAGE):
            await self.reconcile(sids[i:i + RESYNC_PAGE], settle=settle)
        await self.reconcile_agents()

    async def reconcile(self: Hub, sids: list[str], only: Connection | None = None,
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
            _failed("resync", exc)
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
                elif cur is not None and conn.presence is not None and sid in conn.presence:
                    # a `presence` event missed (pub/sub away): the state tells it (a newer
                    # change only: one told live while this was read is not undone)
                    now = (st.get("presence", "connected"), int(st.get("presence_since", 0)))
                    if now[0] != conn.presence[sid][0] and now[1] > conn.presence[sid][1]:
                        told_presence(conn, sid, *now)
                        conn.send({"type": "presence", "session": sid, "state": now[0],
                                   "since": now[1]})

    # -- events from Redis --------------------------------------------------------------------

    async def _close_after_catch_up(self: Hub, conn: Connection, sid: str, data: _Encoded) -> None:
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
        self.detach(conn, sid, ended=True)

    def _deliver_note(self: Hub, conn: Connection, sid: str, nseq: int, frame: dict[str, Any]) -> None:
        cur = conn.ncursors.get(sid)
        if cur is None:
            return
        if nseq == cur + 1:
            conn.send(frame)
            conn.ncursors[sid] = nseq
        elif nseq > cur + 1:
            conn.spawn(self.catch_up_notes(conn, sid))

    async def catch_up_notes(self: Hub, conn: Connection, sid: str) -> None:
        cur = conn.ncursors.get(sid)
        if cur is None:
            return
        async for page in self.store.notes_pages(sid, cur):
            for n in page:
                if n.nseq == conn.ncursors.get(sid, -1) + 1:
                    await conn.wait_room()
                    conn.send(protocol.outbound.note(sid, n.nseq, n.agent, n.text, n.ts, n.cid,
                                                     n.name))
                    conn.ncursors[sid] = n.nseq

    async def restore_status(self: Hub, login: str) -> str:
        """The status a gendarme chose, set again after Redis forgot it (their heartbeat lapsed
        while they were still connected: a silent link, a failover; or Redis lost its data):
        a blip must not turn them `away` without their knowing. Every tab is told."""
        acct = next((c.agent for c in self.agent_connections(login) if c.agent is not None), None)
        if acct is None:
            return "offline"
        status, cap = self.wanted.get(login, ("away", acct.capacity))
        await self.store.set_status(login, status, cap, acct.langs, acct.topics, acct.name)
        return status

    async def reconcile_agents(self: Hub) -> None:
        """Agent-side events are not stored either: an offer, an assignment, a revocation or a
        sign-out missed while pub/sub was away (a failover, a silent link) is found again in
        the state of each local agent's chats and credentials, and sent now. A page of
        gendarmes at a time (their chats are read with them), as ``resync`` does."""
        logins = list(self.agents)
        for i in range(0, len(logins), AGENT_PAGE):
            await self._reconcile_agent_page(logins[i:i + AGENT_PAGE])

    async def _reconcile_agent_page(self: Hub, logins: list[str]) -> None:
        conns = [(login, c) for login in logins for c in self.agents.get(login, ())]
        try:
            views, valid = await self.store.agent_view(logins, [c.credential for _, c in conns])
        except Exception as exc:
            _failed("agent resync", exc)
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
                    frame = {"type": "offer", "session": sid, "topic": v["topic"],
                             "lang": v["lang"], "waited_s": max(0, now - v["created"]) // 1000,
                             "expires_in_s": max(0, v["deadline"] - now) // 1000}
                    if v["async"]:
                        frame["async"] = True
                    conn.send(frame)
            mine = {v["session"]: v for v in views.get(login, ())}
            for sid in list(conn.offers - set(offered)):
                conn.offers.discard(sid)
                v = mine.get(sid)
                if v is not None and v["state"] == "active" and v["agent"] == login:
                    continue  # accepted: `assigned` comes (above, or live)
                reason = ("taken" if v is not None and v["state"] == "active" else
                          "visitor_left" if v is None or v["state"] == "closed" else "expired")
                conn.send({"type": "offer_revoked", "session": sid, "reason": reason})
