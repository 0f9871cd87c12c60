"""What arrives from pub/sub, as frames: each event of a chat's channel or a gendarme's channel
is translated once (encoded at most once per subprotocol, not once per recipient) and pushed to
the connections that follow it. Part of ``Hub``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import protocol
from protocol import CloseCode

from .connection import Connection
from .store.records import attachment_of

if TYPE_CHECKING:
    from .hub import Hub


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


class Events:
    def on_event(self: Hub, channel: str, ev: dict[str, Any]) -> None:
        owner = self._channel_owner.get(channel)
        if owner is None:  # the broadcast channel, or one just left
            return
        kind = ev.get("e")
        if owner[0] == "s":
            self._session_event(owner[1], kind, ev)
        else:
            self._agent_event(owner[1], kind, ev)

    def _session_event(self: Hub, sid: str, kind: Any, ev: dict[str, Any]) -> None:
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
                                                  ev.get("cid"), attachment_of(ev.get("a"))))
            for conn in list(conns):
                self._deliver(conn, sid, seq, data)
        elif kind == "note":
            frame = protocol.outbound.note(sid, ev["nseq"], ev["agent"], ev["text"], ev["ts"],
                                           ev.get("cid"), ev.get("name"))
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
            # still waiting until `assigned` (an offer may be declined; and if the `assigned`
            # event is lost, the resync tells it because the chat is still marked waiting)
            for conn in list(conns):
                if conn.role == "visitor":
                    conn.positions.pop(sid, None)
        elif kind == "presence":
            # the visitor came or went (presence.lua): their gendarme's connections that were
            # told `assigned` hear it; one still preparing `assigned` reads it there
            state, since = str(ev["state"]), int(ev["since"])
            data = _Encoded({"type": "presence", "session": sid, "state": state, "since": since})
            for conn in list(conns):
                if conn.role == "agent" and sid in conn.cursors:
                    told_presence(conn, sid, state, since)
                    conn.push(data.for_(conn.subprotocol))
        elif kind == "closed":
            data = _Encoded({"type": "closed", "session": sid, "by": ev["by"],
                             "reason": ev["reason"]})
            for conn in list(conns):
                # messages before the close first: the close comes after the last seq
                conn.spawn(self._close_after_catch_up(conn, sid, data))

    def _agent_event(self: Hub, login: str, kind: Any, ev: dict[str, Any]) -> None:
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
            if ev.get("from_agent"):  # handed on: by whom (login, and the name to show)
                frame["from_agent"] = ev["from_agent"]
                frame["from_agent_name"] = ev.get("from_agent_name") or ev["from_agent"]
            if ev.get("note"):  # the note the chat was handed on with
                frame["note"] = ev["note"]
            if ev.get("async"):
                frame["async"] = True  # left by the visitor to be answered later
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


def told_presence(conn: Connection, sid: str, state: str, since: int) -> None:
    """Remembers what this agent connection was told of the visitor's presence (the resync
    compares it with the state in Redis: an event missed is told again)."""
    if conn.presence is None:
        conn.presence = {}
    conn.presence[sid] = (state, since)


def _sign_out(conn: Connection) -> None:
    conn.send(protocol.outbound.error(protocol.ErrorCode.UNAUTHORIZED, "signed out", None))
    conn.close(CloseCode.POLICY, "signed out")
