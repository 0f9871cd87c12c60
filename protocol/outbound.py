"""Builders for server-to-client frames.

Plain dicts rather than dataclasses: these are built once per event on the hot path and encoded
straight away; ``docs/protocol.md`` ("Server to clients") is their schema. Clients (tests, the
load tester) read them back with ``protocol.codec.decode_server``.
"""

from __future__ import annotations

from typing import Any

from .errors import ErrorCode


def error(code: ErrorCode, message: str, ref: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "error", "code": str(code), "message": message}
    if ref is not None:
        out["ref"] = ref
    return out


def ack(cid: str, session: str, seq: int) -> dict[str, Any]:
    return {"type": "ack", "cid": cid, "session": session, "seq": seq}


def note_ack(cid: str, session: str, nseq: int) -> dict[str, Any]:
    return {"type": "ack", "cid": cid, "session": session, "nseq": nseq}


def msg(session: str, seq: int, sender: str, text: str, ts: int, cid: str | None,
        attachment: dict[str, Any] | None = None) -> dict[str, Any]:
    """``text`` is '' for a photo sent without words; ``attachment``: see ``attachment``."""
    out: dict[str, Any] = {
        "type": "msg", "session": session, "seq": seq, "from": sender, "text": text, "ts": ts,
    }
    if cid:
        out["cid"] = cid
    if attachment is not None:
        out["attachment"] = attachment
    return out


def attachment(upload_id: str, media_type: str, width: int, height: int) -> dict[str, Any]:
    """A photo as messages carry it: relative URLs, read with the same credentials as the
    chat (docs/protocol.md, "Photos")."""
    return {"id": upload_id, "type": media_type, "width": width, "height": height,
            "url": f"/api/uploads/{upload_id}", "thumb_url": f"/api/uploads/{upload_id}/thumb"}


def note(session: str, nseq: int, from_agent: str, text: str, ts: int, cid: str | None,
         from_agent_name: str | None = None) -> dict[str, Any]:
    """``from_agent_name``: the author's display name (their login when unknown)."""
    out: dict[str, Any] = {
        "type": "note", "session": session, "nseq": nseq, "from_agent": from_agent,
        "from_agent_name": from_agent_name or from_agent, "text": text, "ts": ts,
    }
    if cid:
        out["cid"] = cid
    return out


def pong() -> dict[str, Any]:
    return {"type": "pong"}
