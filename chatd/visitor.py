"""What the server does for each message a visitor sends (docs/protocol.md, "Visitor")."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

import protocol.messages as m
from protocol import ErrorCode
from protocol.outbound import ack, error
from protocol.outbound import msg as msg_out

from . import codes, metrics
from .connection import Connection
from .delivery import msg_frame
from .suggest import suggest

if TYPE_CHECKING:
    from .hub import Hub
    from .runtime import Runtime


class Refused(Exception):
    """A request the caller may not make: becomes an ``error`` frame, the connection stays."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


NOT_FOUND = "no such session, or not yours"
# why create.lua may refuse a new chat, as the visitor is told
_REFUSALS = {
    "blocked": (ErrorCode.FORBIDDEN, "this conversation was ended by the gendarmerie"),
    "rate_token": (ErrorCode.RATE_LIMITED, "too many new chats; try later"),
    "rate_ip": (ErrorCode.RATE_LIMITED, "too many new chats from this network; try later"),
    "conflict": (ErrorCode.CONFLICT, "you already have an open chat"),
}


class Blocked(Exception):
    """The visitor is barred: the transport closes the connection with 1008."""


class VisitorHandlers:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.store = rt.store
        self.hub = rt.hub
        self.table = {
            "hello": self.hello, "start": self.start, "send": self.send, "typing": self.typing,
            "read": self.read, "close": self.close, "rate": self.rate, "ping": self.ping,
            "leave": self.leave,
        }

    async def hello(self, conn: Connection, msg: m.VisitorHello) -> None:
        if msg.code is not None and await self._hello_with_code(conn, msg.code):
            return
        auth = self.rt.auth
        assert auth is not None
        vid = auth.visitor_of(msg.token) if msg.token else None
        if msg.token and vid is None:
            conn.send(error(ErrorCode.UNAUTHORIZED, "token invalid or expired: a new one is issued",
                            "hello"))
        if vid is None:  # a new identity has no chats yet: no lookup (most hellos in a surge)
            vid, token = auth.new_visitor()
            sessions: list[dict[str, Any]] = []
        else:
            if await self.store.is_blocked(vid):
                conn.send(error(*_REFUSALS["blocked"], "hello"))
                raise Blocked()
            token = auth.visitor_token(vid)  # sliding expiry
            sessions = await self.store.visitor_sessions(vid)
        conn.identity = vid
        conn.send({"type": "welcome", "token": token, "sessions": sessions,
                   "server_time": self.store.now_ms()})
        self.hub.add_visitor(conn)
        resume = msg.resume
        if resume is not None and not any(s["session"] == resume.session for s in sessions):
            conn.send(error(ErrorCode.NOT_FOUND, NOT_FOUND, "hello"))
            resume = None
        for s in sessions:
            if s["state"] == "closed":
                continue
            sid = s["session"]
            await self.hub.attach(conn, sid, None)
            # waiting for a gendarme, or one has it: either way the reconcile below tells
            # this connection who answers (`assigned` with the name) once they do
            conn.waiting[sid] = s["topic"]
            after = resume.after if resume is not None and resume.session == sid else s["last_seq"]
            self.hub.start_from(conn, sid, min(after, s["last_seq"]))
        # anything that happened between reading the sessions and subscribing
        await self.hub.reconcile([s["session"] for s in sessions if s["state"] != "closed"], conn)

    async def _hello_with_code(self, conn: Connection, code: str) -> bool:
        """`hello {code}`: the visitor who left a question comes back (on any device) to that
        chat and everything written since. False (after an error frame) when the code leads
        nowhere: the hello goes on as one without a code, so the page still has a session."""
        auth = self.rt.auth
        assert auth is not None
        tries = await self.store.count_code_try(conn.ip, codes.TRY_WINDOW_S)
        if tries > self.rt.settings.code_tries:
            conn.send(error(ErrorCode.RATE_LIMITED, "too many codes tried; wait a few minutes",
                            "hello"))
            return False
        normalized = codes.normalize(code)
        target = await self.store.code_target(codes.digest(normalized)) if normalized else None
        sessions = []
        if target is not None:
            sid, vid = target
            sessions = [s for s in await self.store.visitor_sessions(vid) if s["session"] == sid]
        if not sessions:
            conn.send(error(ErrorCode.NOT_FOUND, "this code is not recognised, or it has expired",
                            "hello"))
            return False
        if await self.store.is_blocked(vid):
            conn.send(error(*_REFUSALS["blocked"], "hello"))
            raise Blocked()
        conn.identity = vid
        metrics.CODE_RESUMES.inc()
        conn.send({"type": "welcome", "token": auth.visitor_token(vid), "sessions": sessions,
                   "server_time": self.store.now_ms()})
        self.hub.add_visitor(conn)
        (chat,) = sessions
        if chat["state"] == "closed":  # answered and closed meanwhile: read it all, then the end
            async for page in self.store.history_pages(sid):
                for entry in page:
                    await conn.wait_room()
                    conn.send(msg_frame(sid, entry))
            (info,) = await self.store.states([sid])
            conn.send({"type": "closed", "session": sid, "by": info.get("by") or "system",
                       "reason": info.get("reason") or "closed"})
            return True
        await self.hub.attach(conn, sid, None)
        conn.waiting[sid] = chat["topic"]
        self.hub.start_from(conn, sid, 0)  # from the first message: a new device has nothing
        await self.hub.reconcile([sid], conn)
        return True

    async def leave(self, conn: Connection, msg: m.Leave) -> None:
        """The question stays for a gendarme to answer later; the code is the way back."""
        if msg.session not in conn.attached:
            raise Refused(ErrorCode.NOT_FOUND, NOT_FOUND)
        ttl_ms = int(self.rt.settings.async_ttl_h * 3_600_000)
        until = await self.store.leave(msg.session, conn.identity, ttl_ms)
        if until is None:
            (info,) = await self.store.states([msg.session])
            if info.get("state") == "closed":
                raise Refused(ErrorCode.CONFLICT, "this chat is closed")
            raise Refused(ErrorCode.NOT_FOUND, NOT_FOUND)
        code = codes.new_code()
        await self.store.save_code(codes.digest(codes.normalize(code) or ""), msg.session,
                                   conn.identity, until)
        metrics.ASYNC_CHATS.inc()
        conn.send({"type": "left", "session": msg.session, "code": code,
                   "expires_in_s": max(0, (until - self.store.now_ms()) // 1000)})

    async def start(self, conn: Connection, msg: m.Start) -> None:
        topic = self.rt.topics.get(msg.topic)
        if topic is None:
            raise Refused(ErrorCode.BAD_MESSAGE, f"unknown topic {msg.topic!r}")
        settings = self.rt.settings
        sid = secrets.token_urlsafe(12)
        lang = matching_lang(msg.lang or settings.default_lang)
        await self.hub.attach_new(conn, sid)  # subscribed first: seq 1 arrives live
        try:
            conn.cursors[sid] = 0
            status, pos, other, other_topic = await self.store.create_session(
                sid, conn.identity, topic, lang, msg.text, conn.ip,
                settings.sessions_per_token_hour, settings.sessions_per_ip_hour)
            if status != "ok":
                self.hub.detach(conn, sid)
                if status == "conflict" and other_topic == topic.id:
                    # a retry (its answer was lost): the chat the visitor already has
                    return await self._rejoin(conn, other, topic.id)
                raise Refused(*_REFUSALS[status])
            metrics.SESSIONS.inc()
            conn.waiting[sid] = topic.id
            # already offered (position 0): next in line, whatever happens
            frame = await self.rt.matcher.queued_frame(sid, topic.id, pos or 1)
            if not pos and frame["eta_s"] is not None:
                frame["eta_s"] = 0
            conn.positions[sid] = (frame["position"], frame["eta_s"],
                                   frame.get("suggest_leave", False))
            # every start is answered with `queued`, first: it is how the visitor learns the
            # session id (an agent may already have taken the chat: that follows, in order)
            conn.send(frame)
        finally:
            self.hub.created(conn, sid)
        self.rt.matcher.kick()
        if msg.text:
            self._suggest(conn, sid, topic.id, msg.text)

    def _suggest(self, conn: Connection, sid: str, topic: str, text: str) -> None:
        """While the citizen waits: shared canned answers that may already help (up to
        three, about the topic and the words written), each set sent once."""
        found = suggest(self.rt.settings.canned, topic, text)
        ids = tuple(a.id for a in found)
        if conn.suggested is None:
            conn.suggested = {}
        if not found or conn.suggested.get(sid) == ids:
            return
        conn.suggested[sid] = ids
        conn.send({"type": "suggestions", "session": sid,
                   "items": [{"id": a.id, "title": a.title, "text": a.text} for a in found]})

    async def _rejoin(self, conn: Connection, sid: str, topic: str) -> None:
        """Answers a start for the chat the visitor already has as a new start would have
        been: `queued` first (it names the chat), its messages from the first unless this
        connection follows it already, then `assigned` if a gendarme has it."""
        await self.hub.attach(conn, sid, None)
        if sid not in conn.cursors:
            self.hub.start_from(conn, sid, 0)
        (pos,) = await self.store.queue_positions([(topic, sid)])
        conn.waiting[sid] = topic
        frame = await self.rt.matcher.queued_frame(sid, topic, pos or 1)
        conn.positions[sid] = (frame["position"], frame["eta_s"], frame.get("suggest_leave", False))
        conn.send(frame)
        await self.hub.reconcile([sid], conn)  # `assigned` if it is active, `closed` if over

    async def send(self, conn: Connection, msg: m.Send) -> None:
        status, seq, ts = await self.store.append(msg.session, "msg", "visitor", conn.identity,
                                                  msg.text or "", msg.cid,
                                                  attachment=msg.attachment)
        answer_append(self.hub, conn, msg, status, seq, ts)
        if status == "ok":
            metrics.MESSAGES_BY["visitor"].inc()
            topic = conn.waiting.get(msg.session)
            if topic is not None and msg.text:  # still waiting for a gendarme
                self._suggest(conn, msg.session, topic, msg.text)

    async def typing(self, conn: Connection, msg: m.Typing) -> None:
        await relay_ephemeral(self.rt, conn, msg.session,
                              {"e": "typing", "sid": msg.session, "from": conn.role, "on": msg.on})

    async def read(self, conn: Connection, msg: m.Read) -> None:
        await relay_ephemeral(self.rt, conn, msg.session,
                              {"e": "read", "sid": msg.session, "from": conn.role, "seq": msg.seq})

    async def close(self, conn: Connection, msg: m.VisitorClose) -> None:
        reason = "quick_exit" if msg.reason == "quick_exit" else "visitor_closed"
        status = await self.store.close(msg.session, "visitor", conn.identity, reason, "",
                                        msg.rating, msg.comment)
        if status == "not_found":
            raise Refused(ErrorCode.NOT_FOUND, NOT_FOUND)
        if status == "closed":
            conn.send({"type": "closed", "session": msg.session, "by": "visitor",
                       "reason": "visitor_closed"})
        self.rt.matcher.kick()

    async def rate(self, conn: Connection, msg: m.Rate) -> None:
        status = await self.store.rate(msg.session, conn.identity, msg.rating, msg.comment)
        if status == "not_found":
            raise Refused(ErrorCode.NOT_FOUND, NOT_FOUND)
        if status == "conflict":
            raise Refused(ErrorCode.CONFLICT, "a chat is rated once, after it is closed")
        conn.send({"type": "rated", "session": msg.session})

    async def ping(self, conn: Connection, msg: m.Ping) -> None:
        conn.send({"type": "pong"})


def matching_lang(lang: str) -> str:
    """The language gendarmes are matched on: easy-read French is French (fr-falc, and its
    other name fr-facile); regional variants are their language (en-GB: en)."""
    low = lang.lower()
    if low in ("fr-falc", "fr-facile"):
        return "fr"
    return low.split("-")[0] if "-" in low else low


def answer_append(hub: Hub, conn: Connection, msg: m.Send, status: str, seq: int,
                  ts: int) -> None:
    sid = msg.session
    if status in ("ok", "dup"):
        conn.send(ack(msg.cid, sid, seq))
        if status == "ok" and not msg.attachment:
            # the sender's own copy leaves with the ack, in the same write, when it is next
            # in line for this connection; its copy from pub/sub is then dropped as old
            # (delivery.py). Otherwise (a gap, a backfill, a photo) pub/sub brings it.
            hub.deliver_own(conn, sid, seq, msg_out(
                sid, seq, conn.role, msg.text or "", ts, msg.cid))
    elif status == "closed":
        raise Refused(ErrorCode.CONFLICT, "this chat is closed")
    else:
        raise Refused(ErrorCode.NOT_FOUND, NOT_FOUND)


async def relay_ephemeral(rt: Runtime, conn: Connection, sid: str, event: dict[str, object]) -> None:
    """typing/read: not stored, only relayed, and only within a session the caller holds."""
    if sid not in conn.attached:
        raise Refused(ErrorCode.NOT_FOUND, NOT_FOUND)
    await rt.store.publish("s", sid, event)
