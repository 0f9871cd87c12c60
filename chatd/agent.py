"""What the server does for each message an agent sends (docs/protocol.md, "Agent")."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import protocol.messages as m
from protocol import ErrorCode
from protocol.outbound import error, note_ack

from . import metrics
from .auth import token_digest
from .connection import Connection
from .events import told_presence
from .store.routing import presence_view
from .store.store import HISTORY_PAGE, message_of, note_of
from .visitor import NOT_FOUND, Refused, answer_append, relay_ephemeral

if TYPE_CHECKING:
    from .runtime import Runtime


class AgentHandlers:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.store = rt.store
        self.hub = rt.hub
        self.hub.on_assigned_agent = self.send_assigned
        self.table = {
            "hello": self.hello, "status": self.status, "accept": self.accept,
            "decline": self.decline, "send": self.send, "typing": self.typing, "read": self.read,
            "note": self.note, "transfer": self.transfer, "close": self.close, "ping": self.ping,
            "block": self.block, "take": self.take, "take_over": self.take_over,
            "reassign": self.reassign,
        }

    async def hello(self, conn: Connection, msg: m.AgentHello) -> None:
        auth = self.rt.auth
        assert auth is not None
        account = await auth.token_account(msg.token) if msg.token else conn.agent
        if account is None:
            conn.send(error(ErrorCode.UNAUTHORIZED, "sign in first", "hello"))
            raise Closing()
        conn.agent = account
        if msg.token:
            conn.credential = token_digest(msg.token)
        conn.identity = account.login
        conn.name = account.name
        await self.hub.add_agent(conn)
        status, sessions = await self.store.agent_online(
            account.login, account.capacity, account.langs, account.topics, account.name)
        since = {s["session"]: s.pop("assigned_at") for s in sessions}
        conn.send({"type": "welcome", "agent": account.profile(), "status": status,
                   "sessions": sessions, "server_time": self.store.now_ms()})
        resume = {r.session: r.after for r in (msg.resume or ())}
        mine = {s["session"]: s for s in sessions}
        for sid in resume:
            if sid not in mine:
                conn.send(error(ErrorCode.NOT_FOUND, NOT_FOUND, "hello"))
        resumed = []
        for sid, s in mine.items():
            if sid in resume:
                await self.hub.attach(conn, sid, None)
                conn.holding[sid] = since[sid]
                conn.ncursors[sid] = 0
                self.hub.start_from(conn, sid, min(resume[sid], s["last_seq"]))
                conn.spawn(self.hub.catch_up_notes(conn, sid))
                resumed.append(sid)
            else:
                await self.send_assigned(conn, sid)
        # a resumed chat has no `assigned`: where its visitor stands is told at once
        for sid, presence in zip(resumed, await self.store.presence_of(resumed)):
            if presence is not None:
                told_presence(conn, sid, presence["state"], presence["since"])
                conn.send({"type": "presence", "session": sid, **presence})
        await self.hub.reconcile(list(mine), conn)

    async def send_assigned(self, conn: Connection, sid: str, at: int | None = None) -> None:
        """The `assigned` frame with the history, then live delivery from there on. Once per
        holding of a chat and connection: `hello` and a live `assigned` event can both ask at
        the same time, and a second run would move the cursor back and deliver messages twice.
        ``at``: when this holding began; a chat that comes back to the same gendarme (a
        transfer, a reassignment) whose `released` this connection missed is a new holding."""
        if sid in conn.assigning:
            return
        if sid in conn.cursors:
            if at is None or conn.holding.get(sid) == int(at):
                return
            self.hub.detach(conn, sid)  # told of an earlier holding: start this one afresh
        conn.assigning.add(sid)
        try:
            await self._send_assigned(conn, sid)
        finally:
            conn.assigning.discard(sid)

    async def _send_assigned(self, conn: Connection, sid: str) -> None:
        live = await self.hub.attach(conn, sid, None)  # subscribed before the read below
        opened = await self.store.open_held(sid, conn.identity, conn.agent.role, "assigned")
        if opened is None:
            self.hub.detach(conn, sid)
            return
        info, history, notes, route = opened
        # read after subscribing and last before sending: a change after this read comes as
        # a `presence` event once `assigned` is out (events.py)
        presence = presence_view(route) if route is not None else {
            "state": "gone", "since": self.store.now_ms()}  # closed meanwhile: `closed` follows
        conn.holding[sid] = int(info.get("assigned_at") or 0)
        created = int(info.get("created", 0))
        assigned_at = int(info.get("assigned_at", 0) or 0)
        told_presence(conn, sid, presence["state"], presence["since"])
        conn.send({
            "type": "assigned", "session": sid,
            "visitor": {"topic": info.get("topic"), "lang": info.get("lang"),
                        "waited_s": max(0, (assigned_at - created) // 1000),
                        "started": created, "presence": presence, **_earlier_chats(info)},
            "history": [{**message_of(e), **({"cid": e.cid} if e.cid else {})}
                        for e in history],
            "notes": [note_of(n) for n in notes],
        })
        last = history[-1].seq if history else 0
        conn.ncursors[sid] = notes[-1].nseq if notes else 0
        if len(notes) >= HISTORY_PAGE:  # a long chat: the other notes follow
            conn.spawn(self.hub.catch_up_notes(conn, sid))
        shown = int(info.get("dseq", info.get("seq", 0)))  # the last that may be shown
        self.hub.max_seq[sid] = max(self.hub.max_seq.get(sid, 0), shown)
        # subscribed before the read: whatever came after it was seen live (max_seq), so the
        # stream needs reading back only if something newer came, or the subscription is unsure
        # (a long chat's `history` is its first page: the rest follows as `msg` frames)
        self.hub.start_from(conn, sid, last, backfill=not live or self.hub.max_seq[sid] > last)

    async def status(self, conn: Connection, msg: m.Status) -> None:
        acct = conn.agent
        cap = min(msg.capacity or acct.capacity, acct.capacity)
        self.hub.wanted[acct.login] = (msg.status, cap)
        await self.store.set_status(acct.login, msg.status, cap, acct.langs, acct.topics, acct.name)
        if msg.status == "available":
            self.rt.matcher.kick()

    async def accept(self, conn: Connection, msg: m.Accept) -> None:
        status = await self.store.accept(msg.session, conn.identity, conn.name)
        _refuse_offer_status(status)

    async def decline(self, conn: Connection, msg: m.Decline) -> None:
        status = await self.store.decline(msg.session, conn.identity)
        _refuse_offer_status(status)
        self.rt.matcher.kick()

    async def send(self, conn: Connection, msg: m.Send) -> None:
        status, seq, ts = await self.store.append(msg.session, "msg", "agent", conn.identity,
                                                  msg.text or "", msg.cid,
                                                  attachment=msg.attachment)
        answer_append(self.hub, conn, msg, status, seq, ts)
        if status == "ok":
            metrics.MESSAGES_BY["agent"].inc()

    async def note(self, conn: Connection, msg: m.Note) -> None:
        status, nseq, _ = await self.store.append(msg.session, "note", "agent", conn.identity,
                                                  msg.text, msg.cid, conn.name)
        if status in ("ok", "dup"):
            if msg.cid:
                conn.send(note_ack(msg.cid, msg.session, nseq))
        elif status == "closed":
            raise Refused(ErrorCode.CONFLICT, "this chat is closed")
        else:
            raise Refused(ErrorCode.NOT_FOUND, NOT_FOUND)

    async def typing(self, conn: Connection, msg: m.Typing) -> None:
        await relay_ephemeral(self.rt, conn, msg.session,
                              {"e": "typing", "sid": msg.session, "from": "agent", "on": msg.on})

    async def read(self, conn: Connection, msg: m.Read) -> None:
        await relay_ephemeral(self.rt, conn, msg.session,
                              {"e": "read", "sid": msg.session, "from": "agent", "seq": msg.seq})

    async def transfer(self, conn: Connection, msg: m.Transfer) -> None:
        await self._hand_on(conn, msg, "holder")

    async def _hand_on(self, conn: Connection, msg: m.Transfer | m.Reassign, by: str) -> str:
        """`transfer` (``by`` 'holder') and `reassign` (``by`` 'supervisor'): one script,
        transfer.lua, so both are one atomic move. Returns who held the chat."""
        if bool(msg.to_agent) == bool(msg.to_topic):
            raise Refused(ErrorCode.BAD_MESSAGE,
                          f"{msg.TYPE}: give exactly one of to_agent, to_topic")
        topic = None
        if msg.to_topic:
            topic = self.rt.topics.get(msg.to_topic)
            if topic is None:
                raise Refused(ErrorCode.BAD_MESSAGE, f"unknown topic {msg.to_topic!r}")
        status, holder = await self.store.transfer(msg.session, conn.identity, msg.to_agent,
                                                   topic, (msg.note or "").strip(), conn.name,
                                                   by)
        if status == "not_found":
            raise Refused(ErrorCode.NOT_FOUND, NOT_FOUND)
        if status == "conflict":
            raise Refused(ErrorCode.CONFLICT,
                          "that agent cannot take this chat now, or the chat has just ended")
        self.rt.matcher.kick()
        return holder

    async def close(self, conn: Connection, msg: m.AgentClose) -> None:
        """Ends a chat of yours; or, once the citizen has ended it (quick exit, gone), records
        how it ended: the chat's close then stands, with your disposition, and you are told
        with `closed` {by, reason (the original ones), disposition}."""
        ended = await self.store.close_chat(msg.session, "agent", conn.identity,
                                            "agent_closed", msg.disposition)
        if ended.status == "not_found":
            raise Refused(ErrorCode.NOT_FOUND, NOT_FOUND)
        if ended.status == "conflict":
            raise Refused(ErrorCode.CONFLICT, "this chat's disposition is recorded already")
        if ended.status == "disposed":
            conn.send({"type": "closed", "session": msg.session, "by": ended.by,
                       "reason": ended.reason, "disposition": msg.disposition})
        self.rt.matcher.kick()

    async def block(self, conn: Connection, msg: m.Block) -> None:
        """Bars the visitor of one of your chats (every process: the bar is in Redis), closes
        the chat as abusive and ends the visitor's connections to it. A chat the citizen has
        ended already can still be blocked by the gendarme who held it (abuse, then a quick
        exit): the bar is set, and the chat's disposition becomes `abusive` if it had none.
        The reason given is kept with the bar and in the audit trail."""
        info = await self.store.session(msg.session)
        state = info.get("state")
        if info.get("agent") != conn.identity or state not in ("active", "closed"):
            raise Refused(ErrorCode.NOT_FOUND, NOT_FOUND)
        hours = msg.hours or 24
        reason = (msg.reason or "").strip()
        await self.store.block(info["visitor"], hours, conn.identity, msg.session, reason)
        await self.store.audit(conn.identity, conn.agent.role, msg.session, "block", reason)
        # an open chat is closed as abusive; a closed one gets that disposition if it has none
        # (`conflict` there means it has one: the bar stands all the same)
        await self.store.close(msg.session, "agent", conn.identity, "agent_closed", "abusive")
        conn.send({"type": "blocked", "session": msg.session, "hours": hours})
        self.rt.matcher.kick()

    async def take(self, conn: Connection, msg: m.Take) -> None:
        """A chat left for later, taken from the console's list: offered to this gendarme now
        (the `offer` frame follows, to every tab), to be accepted as any offer."""
        acct = conn.agent
        status = await self.store.take(msg.session, acct.login, acct.is_supervisor)
        if status in _TAKE_REFUSALS:
            raise Refused(*_TAKE_REFUSALS[status])

    async def take_over(self, conn: Connection, msg: m.TakeOver) -> None:
        """A supervisor makes an active (or offered) chat their own, at once and atomically
        (take_over.lua): its holder is `released` (reason `taken_over`), the supervisor gets
        `assigned` as after an accept (beyond their capacity if need be), the visitor a
        system message and `assigned` with the supervisor's name. Audited (`take_over`)."""
        _supervisor_only(conn)
        status, _ = await self.store.take_over(msg.session, conn.identity, conn.name)
        if status == "not_found":
            raise Refused(ErrorCode.NOT_FOUND, NOT_FOUND)
        if status == "conflict":
            raise Refused(ErrorCode.CONFLICT, "this chat cannot be taken over now (yours "
                                              "already, waiting in a queue, or just ended)")
        await self.store.audit(conn.identity, conn.agent.role, msg.session, "take_over")
        self.rt.matcher.kick()

    async def reassign(self, conn: Connection, msg: m.Reassign) -> None:
        """A supervisor hands anybody's active chat on, as its holder's `transfer` would
        (same script, same atomic move): the holder is `released` (reason `reassigned`), the
        offer names the supervisor. Audited (`reassign`)."""
        _supervisor_only(conn)
        await self._hand_on(conn, msg, "supervisor")
        await self.store.audit(conn.identity, conn.agent.role, msg.session, "reassign")

    async def ping(self, conn: Connection, msg: m.Ping) -> None:
        conn.send({"type": "pong"})


class Closing(Exception):
    """The connection must end (policy): the transport closes it with 1008."""


def _earlier_chats(info: dict[str, str]) -> dict[str, Any]:
    """How many chats this visitor (same browser token) had before, and how the last one ended:
    a gendarme should know that the previous chat was cut short or closed as abusive."""
    out: dict[str, Any] = {"earlier_chats": int(info.get("earlier", 0) or 0)}
    parts = (info.get("prev") or "").split("|")
    if len(parts) == 4 and parts[0]:
        closed_at, topic, reason, disposition = parts
        out["previous"] = {"closed_at": int(closed_at), "topic": topic, "reason": reason,
                           **({"disposition": disposition} if disposition else {})}
    return out


#: why take.lua (or the chat's end) refused a `take`, as the gendarme is told
_TAKE_REFUSALS = {
    "not_found": (ErrorCode.NOT_FOUND, NOT_FOUND),
    "taken": (ErrorCode.CONFLICT, "this chat is no longer waiting: offered or taken already"),
    "closed": (ErrorCode.CONFLICT, "this chat is closed"),
    "offline": (ErrorCode.CONFLICT, "you count as signed out: reconnect first"),
    "no_room": (ErrorCode.CONFLICT, "no room: your open chats already fill your capacity"),
}

def _supervisor_only(conn: Connection) -> None:
    if not conn.agent.is_supervisor:
        raise Refused(ErrorCode.FORBIDDEN, "supervisors only")


def _refuse_offer_status(status: Any) -> None:
    if status == "conflict":
        raise Refused(ErrorCode.CONFLICT, "this offer is no longer yours (expired, taken or answered)")
    if status == "not_found":
        raise Refused(ErrorCode.NOT_FOUND, NOT_FOUND)
