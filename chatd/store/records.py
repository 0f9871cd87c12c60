"""What the store reads back: messages and notes as stored, routing records, transcripts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack

from protocol.outbound import attachment as attachment_frame

READ_PAGE = 500  # entries per read: no single Redis call works through a whole long list
HISTORY_PAGE = 200  # messages an `assigned` carries; later ones follow as `msg` frames
AUDIT_MAXLEN = 1_000_000  # entries the audit trail keeps, about (XADD MAXLEN ~)
COUNTER_WINDOW_S = 3700  # an hourly counter lives a little over its hour
PACE_RING = 24  # the last moves of each topic's line that its pace is made of (estimates.py)
# a queue's scores are arrival times (epoch ms), less this for chats sent back to the front of
# their line, plus this for chats left for later (behind every live one)
QUEUE_SHIFT = 10**13


@dataclass(frozen=True, slots=True)
class Entry:
    """One message of a session's stream, as stored."""

    seq: int
    sender: str
    text: str
    ts: int
    cid: str
    photo: str = ""  # '' or 'id|type|width|height' (append.lua): see ``attachment_of``


@dataclass(frozen=True, slots=True)
class NoteEntry:
    nseq: int
    agent: str
    text: str
    ts: int
    cid: str
    name: str = ""  # the author's display name ('' for notes written before names were kept)


def unpack(raw: Any) -> dict[str, Any]:
    """A record as Lua's cmsgpack packed it (read through a client that decodes replies with
    surrogate escapes: back to bytes first)."""
    data = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else raw
    return msgpack.unpackb(data, raw=False)  # type: ignore[no-any-return]


def transcript_head(sid: str, info: dict[str, str]) -> dict[str, Any]:
    """A chat's facts as exported and as shown read-only (``messages`` and ``notes`` follow,
    read page by page)."""
    out: dict[str, Any] = {"session": sid}
    for field in ("state", "topic", "lang", "created", "assigned_at", "closed_at", "by",
                  "reason", "disposition", "rating", "comment", "agent", "prev_agent"):
        value = info.get(field)
        if value not in (None, ""):
            out[field] = int(value) if field in ("created", "assigned_at", "closed_at",
                                                 "rating") else value
    return out


def attachment_of(photo: str | None) -> dict[str, Any] | None:
    """A message's photo as clients see it, from the compact form the stream keeps
    ('id|type|width|height': a text message pays nothing for photos)."""
    if not photo:
        return None
    upload_id, media_type, width, height = photo.split("|")
    return attachment_frame(upload_id, media_type, int(width), int(height))


def message_of(e: Entry) -> dict[str, Any]:
    out = {"seq": e.seq, "from": e.sender, "text": e.text, "ts": e.ts}
    if e.photo:
        out["attachment"] = attachment_of(e.photo)
    return out


def note_of(n: NoteEntry) -> dict[str, Any]:
    """A note as transcripts and `assigned.notes` show it: signed by login and by name."""
    return {"nseq": n.nseq, "from_agent": n.agent, "from_agent_name": n.name or n.agent,
            "text": n.text, "ts": n.ts}


def _visible(seq: Any, durable: Any) -> int:
    """The last number that may be shown: what reached the replicas (``dseq``, kept by the
    scripts; a chat from before it existed has only ``seq``)."""
    return int(durable if durable is not None else (seq or 0))


def _pairs(rows: list[Any]) -> list[Any]:
    """Stream entries as a script returns them ([id, [field, value, ...]]) as XRANGE gives them."""
    return [(i, dict(zip(f[::2], f[1::2]))) for i, f in rows]


def _entries(rows: list[Any]) -> list[Entry]:
    return [Entry(int(i.split("-", 1)[1]), f["from"], f["text"], int(f["ts"]), f.get("cid", ""),
                  f.get("a", ""))
            for i, f in rows]


def _notes(rows: list[Any]) -> list[NoteEntry]:
    return [NoteEntry(int(i.split("-", 1)[1]), f["agent"], f["text"], int(f["ts"]), f.get("cid", ""),
                      f.get("name", ""))
            for i, f in rows]
