"""What must not outlive its time, and what a dead process left half done.

Part of ``Store``. Retention: closed chats are deleted after their retention (their keys carry
the TTL; the sweep cleans the closed index and the visitors' lists, and deletes the chats'
photos, files first, then their records: the records carry no TTL, so a photo's file is never
left without the record that leads the sweep to it). The repair: an operation
that spans slots (store.py) is a sequence of idempotent steps; if a process died between two
of them, the next repair (every few seconds, one process per period) finds what was left and
finishes it (docs/operations.md, "Interrupted operations"):

- a chat left ``pending`` (its hash or its queue entry never came) is finished, or dropped
  with the visitor's claim if its hash never came;
- a chat closed in its hash but still in the routing state is closed there too, and in the
  visitor's record and the closed index;
- a chat whose hash is behind its routing record (a routing change it was never told of) is
  told now.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from .records import READ_PAGE

if TYPE_CHECKING:
    from .store import Store

log = logging.getLogger("chatd.store")

REPAIR_PAGE = 200  # open chats checked per repair
STALE_MS = 10_000  # a step this old that has no follow-up was cut short


class Retention:
    async def purge(self: Store, older_than_ms: int) -> int:
        """Deletes the chats closed before ``older_than_ms`` (epoch ms), transcripts too
        (``chatd purge``). Returns how many."""
        return await self._delete_closed(older_than_ms, lambda info: True)

    async def sweep(self: Store) -> int:
        """Deletes the chats past their retention (the deployment's, or their topic's): the
        automatic purge. Their keys also carry a TTL; this removes them from the closed index
        and the visitors' lists, and deletes any key whose TTL was lost."""
        now = self.now_ms()

        def due(info: dict[str, Any]) -> bool:
            return int(info["closed_at"] or 0) + self.retention_of(info["topic"]) <= now
        shortest = min(self.retention_of(t) for t in [None, *self.topics])
        return await self._delete_closed(now - shortest, due)

    async def claim_sweep(self: Store, period_s: float) -> bool:
        """One process per period sweeps: whoever sets the mark first."""
        return await self._claim(self.keys.sweep, period_s)

    async def claim_repair(self: Store, period_s: float) -> bool:
        return await self._claim(self.keys.repair, period_s)

    async def _claim(self: Store, key: str, period_s: float) -> bool:
        return bool(await self.redis.set(key, os.getpid(), nx=True,
                                         px=max(1, int(period_s * 1000))))

    async def _delete_closed(self: Store, closed_before_ms: int, due: Any,
                             page: int = READ_PAGE) -> int:
        """Pages through the closed index (oldest first) up to ``closed_before_ms``, deleting
        each chat for which ``due(info)`` holds, and index entries whose chat is gone."""
        deleted = 0
        start = 0
        while True:
            sids = await self.redis.zrangebyscore(self.keys.closed, "-inf", closed_before_ms,
                                                  start=start, num=page)
            if not sids:
                return deleted
            fields = ("visitor", "topic", "closed_at")
            async with self.redis.pipeline(transaction=False) as pipe:
                for sid in sids:
                    pipe.hmget(self.keys.session(sid), *fields)
                    pipe.exists(self.keys.uploads(sid))
                replies = await pipe.execute()
            kept = 0
            due_sids = []
            for sid, row, photos in zip(sids, replies[::2], replies[1::2]):
                info = dict(zip(fields, row))
                if info["closed_at"] is not None and not due(info):
                    kept += 1
                elif photos and not await self._delete_files(sid):
                    kept += 1  # the store is away: chat and record stay for the next sweep
                else:
                    due_sids.append((sid, info))
            async with self.redis.pipeline(transaction=False) as pipe:
                for sid, info in due_sids:
                    for key in self.keys.chat(sid):
                        if key != self.keys.session_channel(sid):
                            pipe.delete(key)
                    if info["visitor"]:
                        pipe.srem(self.keys.visitor_sessions(info["visitor"]), sid)
                    pipe.zrem(self.keys.closed, sid)
                    deleted += 1
                await pipe.execute()
            start += kept  # what stays is skipped; what was deleted left the index
            if len(sids) < page:
                return deleted

    async def _delete_files(self: Store, sid: str) -> bool:
        """A chat's photos, before its record: False (and a log line) when the photo store
        cannot delete them now."""
        if self.files is None:
            log.warning("chat %s has photos but no photo store is set up: they are kept", sid)
            return False
        try:
            await self.files.delete_session(sid)
        except Exception as exc:
            log.warning("the photos of a chat could not be deleted now (%s: %s); next sweep",
                        type(exc).__name__, exc)
            return False
        return True

    async def repair(self: Store) -> int:
        """Finishes what dead processes left half done (the module's docstring says what).
        Returns how many chats it fixed."""
        fixed = await self._repair_pending()
        fixed += await self._repair_open()
        return fixed

    async def _repair_pending(self: Store) -> int:
        stale = await self.redis.zrangebyscore(self.keys.pending, "-inf",
                                               self.now_ms() - STALE_MS, start=0, num=REPAIR_PAGE)
        fixed = 0
        for sid, route in zip(stale, await self.routes(stale)):
            if route is None or route["st"] != "pending":
                await self.redis.zrem(self.keys.pending, sid)
                continue
            if await self.redis.exists(self.keys.session(sid)):
                await self._route("route_enqueue", sid, "", "")  # its hash exists: queue it
                await self._count_safely(self.count_request(
                    sid, int(route["created"]), route["topic"], route["lang"]))
            else:  # it never got a hash: the visitor's start was answered `unavailable`
                await self._route("route_close", sid)
                await self._release_visitor(route["visitor"], sid, "")
            fixed += 1
        return fixed

    async def _repair_open(self: Store) -> int:
        """A page of open chats each time, round the whole set."""
        sids = await self.redis.zrange(self.keys.open, self._repair_at, self._repair_at
                                       + REPAIR_PAGE - 1)
        self._repair_at = 0 if len(sids) < REPAIR_PAGE else self._repair_at + len(sids)
        if not sids:
            return 0
        names = ("state", "rv", "visitor", "topic", "closed_at", "reason", "disposition")
        async with self.redis.pipeline(transaction=False) as pipe:
            for sid in sids:
                pipe.hmget(self.keys.session(sid), *names)
            rows = await pipe.execute()
        routes = await self.routes(sids)
        fixed = 0
        behind = []
        for sid, row, route in zip(sids, rows, routes):
            info = dict(zip(names, row))
            if route is None:
                continue
            if info["state"] == "closed":
                # closed in its hash, not in the routing state: finished once it is old enough
                # that the process closing it is not still on its way through the next steps
                # (under load they can be seconds apart: a warning would blame a death that
                # did not happen)
                if self.now_ms() - int(info["closed_at"] or 0) <= STALE_MS:
                    continue
                await self.finish_close(sid, info["visitor"] or route["visitor"],
                                        info["topic"] or route["topic"],
                                        int(info["closed_at"] or 0), info["reason"] or "",
                                        info["disposition"] or "")
                fixed += 1
            elif info["state"] is not None and route["st"] != "pending" \
                    and int(info["rv"] or 0) < int(route["ver"]) \
                    and self.now_ms() - int(route.get("changed") or 0) > STALE_MS:
                # (a recent change has its own sync on the way: only a stale one is repaired)
                behind.append([sid, route["ver"], route["st"], route.get("agent") or "",
                               route.get("name") or "", route.get("assigned_at") or 0,
                               route["topic"], "", route.get("prev_agent") or "",
                               *_handoff(route)])
        if behind:
            await self.tell_chats(behind)
            fixed += len(behind)
        return fixed


def _handoff(route: dict[str, Any]) -> list[str]:
    """The internal note a handoff made at the record's current version carries (lib.lua
    ``sync``): a sync repaired after a process died still stores it."""
    if route.get("ho_ver") is not None and route.get("ho_ver") == route.get("ver") \
            and route.get("ho_note"):
        return [route["ho_note"], route.get("ho_from") or "", route.get("ho_name") or ""]
    return ["", "", ""]
