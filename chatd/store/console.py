"""What the console, supervisors and the operator's commands read: open chats, the audit
trail, the closed index, personal canned answers. Part of ``Store``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, AsyncIterator

from .records import AUDIT_MAXLEN, READ_PAGE

if TYPE_CHECKING:
    from .store import Store


class Console:
    async def open_sessions(self: Store, limit: int = 500) -> list[dict[str, Any]]:
        """Chats not closed yet, oldest first: queued, offered or active."""
        sids = await self.redis.zrange(self.keys.open, 0, limit - 1)
        routes = await self.routes(sids)
        seqs = await self.last_seqs(sids)
        out = []
        for sid, r, seq in zip(sids, routes, seqs):
            if r is None or r["st"] == "closed":
                continue
            out.append({"session": sid, "state": "queued" if r["st"] == "pending" else r["st"],
                        "topic": r["topic"], "lang": r["lang"],
                        "agent": r.get("agent") or None, "agent_name": r.get("name") or None,
                        "created": int(r["created"]),
                        "assigned_at": int(r.get("assigned_at") or 0) or None,
                        "messages": seq})
        return out

    async def audit(self: Store, login: str, role: str, sid: str, how: str,
                    reason: str = "") -> None:
        """One entry of the audit trail: who saw or did what to which chat, and when
        (``how``: 'assigned', 'transcript', 'take_over', 'reassign', 'block'); ``reason``:
        the one given, if any (a block's)."""
        entry = {"who": login, "role": role, "session": sid, "how": how, "ts": self.now_ms()}
        if reason:
            entry["reason"] = reason
        await self.redis.xadd(self.keys.audit, entry, maxlen=AUDIT_MAXLEN, approximate=True)

    async def left_for_later(self: Store, topics: frozenset[str] | None, limit: int = 200,
                             scan: int = 5000) -> list[dict[str, Any]]:
        """Chats left to be answered later still waiting in their queue (not offered, not
        answered), of ``topics`` (None: every topic), the one left first first, at most
        ``limit`` among the first ``scan`` open ones left for later: what a gendarme may
        take (take.lua). Nothing about the visitor beyond what an offer shows."""
        out: list[dict[str, Any]] = []
        now = self.now_ms()
        ttl_ms = int(self.settings.async_ttl_h * 3_600_000)
        for start in range(0, scan, READ_PAGE):
            sids = await self.redis.zrange(self.keys.async_due, start, start + READ_PAGE - 1)
            for sid, r in zip(sids, await self.routes(sids)):
                if r is None or r["st"] != "queued" or (topics is not None
                                                       and r["topic"] not in topics):
                    continue
                created = int(r["created"])
                item = {"session": sid, "topic": r["topic"], "lang": r["lang"],
                        "left_at": int(r.get("left_at") or int(r["async_until"]) - ttl_ms),
                        "created": created, "waited_s": max(0, now - created) // 1000}
                if r.get("preview"):
                    item["preview"] = r["preview"]
                out.append(item)
                if len(out) >= limit:
                    return out
            if len(sids) < READ_PAGE:
                break
        return out

    async def audit_entries(self: Store, count: int = 100, session: str | None = None
                            ) -> list[dict[str, Any]]:
        """The newest entries first (``session``: only those about that chat, among the last
        10,000), read page by page."""
        out: list[dict[str, Any]] = []
        top, scanned = "+", 0
        while len(out) < count and scanned < 10_000:
            rows = await self.redis.xrevrange(self.keys.audit, top, "-", count=READ_PAGE)
            for entry_id, f in rows:
                if session and f.get("session") != session:
                    continue
                out.append({"who": f.get("who"), "role": f.get("role"),
                            "session": f.get("session"), "how": f.get("how"),
                            "ts": int(f.get("ts", 0)),
                            **({"reason": f["reason"]} if f.get("reason") else {})})
                if len(out) >= count:
                    break
            if len(rows) < READ_PAGE:
                break
            scanned += len(rows)
            top = "(" + rows[-1][0]
        return out

    async def closed_sessions(self: Store, since_ms: int = 0) -> AsyncIterator[str]:
        """Chats closed at or after ``since_ms``, oldest first, read page by page."""
        start = 0
        while True:
            page = await self.redis.zrangebyscore(self.keys.closed, since_ms, "+inf",
                                                  start=start, num=READ_PAGE)
            for sid in page:
                yield sid
            if len(page) < READ_PAGE:
                return
            start += len(page)

    async def personal_canned(self: Store, login: str) -> list[dict[str, Any]]:
        raw = await self.redis.hgetall(self.keys.canned(login))
        items = [json.loads(v) for v in raw.values()]
        return sorted(items, key=lambda c: c["title"].lower())

    async def add_canned(self: Store, login: str, answer: dict[str, Any], limit: int) -> bool:
        """False when the agent already has ``limit`` answers."""
        key = self.keys.canned(login)
        if await self.redis.hlen(key) >= limit:
            return False
        await self.redis.hset(key, answer["id"], json.dumps(answer))
        return True

    async def delete_canned(self: Store, login: str, answer_id: str) -> bool:
        return bool(await self.redis.hdel(self.keys.canned(login), answer_id))
