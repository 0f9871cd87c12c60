"""The records of the chats' photos: who sent which photo to which chat, its type and sizes.
Part of ``Store``. The files themselves are elsewhere (``chatd.uploads.storage``); a record
lives in its chat's slot (keys ``uploads``) and goes with the chat (retention.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .store import Store

SIDES = {"visitor": "v", "agent": "a"}


@dataclass(frozen=True, slots=True)
class Upload:
    """One photo of a chat, as upload_add.lua records it."""

    side: str  # 'visitor' or 'agent': who sent it
    type: str  # the stored MIME type
    width: int
    height: int
    bytes: int
    thumb_width: int
    thumb_height: int
    ts: int

    def record(self) -> str:
        return "|".join([SIDES[self.side], self.type, str(self.width), str(self.height),
                         str(self.bytes), str(self.thumb_width), str(self.thumb_height),
                         str(self.ts)])

    @classmethod
    def parse(cls, raw: str) -> Upload:
        side, mtype, w, h, size, tw, th, ts = raw.split("|")
        return cls("visitor" if side == "v" else "agent", mtype, int(w), int(h), int(size),
                   int(tw), int(th), int(ts))


@dataclass(frozen=True, slots=True)
class Parties:
    """Who may see a chat's photos: its visitor, its (last) holder; and its state."""

    state: str
    visitor: str
    agent: str


class Uploads:
    async def may_upload(self: Store, sid: str, side: str, actor: str, allowance: int) -> str:
        """What upload_add.lua would answer now ('ok', 'not_found', 'closed', 'full'), read
        before a photo is processed: a stranger's or a late photo costs no CPU. The script
        decides again when the photo is recorded."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hmget(self.keys.session(sid), "state", "visitor", "agent")
            pipe.hlen(self.keys.uploads(sid))
            (state, visitor, agent), count = await pipe.execute()
        if state is None:
            return "not_found"
        if side == "visitor" and visitor != actor:
            return "not_found"
        if side == "agent" and (agent != actor or state not in ("active", "closed")):
            return "not_found"
        if state == "closed":
            return "closed"
        return "full" if int(count) >= allowance else "ok"

    async def add_upload(self: Store, sid: str, side: str, actor: str, upload_id: str,
                         upload: Upload, allowance: int) -> str:
        """Records a stored photo (upload_add.lua): 'ok', 'not_found', 'closed' or 'full'."""
        return str(await self._chat("upload_add", sid, side, actor, upload_id, upload.record(),
                                    allowance))

    async def upload(self: Store, sid: str, upload_id: str) -> tuple[Upload, Parties] | None:
        """A photo's record and its chat's parties; None when either is gone."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hget(self.keys.uploads(sid), upload_id)
            pipe.hmget(self.keys.session(sid), "state", "visitor", "agent")
            raw, (state, visitor, agent) = await pipe.execute()
        if raw is None or state is None:
            return None
        return Upload.parse(raw), Parties(state, visitor or "", agent or "")

    async def audit_once(self: Store, login: str, role: str, sid: str, how: str,
                         once_per: int) -> None:
        """An audit entry, unless this person had one of this kind for this chat within
        ``once_per`` seconds (a console showing a chat's photos fetches each of them)."""
        seen = self.keys.audit_seen_how(login, sid, how)
        if await self.redis.exists(seen):
            return
        await self.audit(login, role, sid, how)  # the entry first, as open_chat does
        await self.redis.set(seen, 1, ex=once_per)
