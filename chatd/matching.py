"""The background work each process does for the whole deployment, and for its own clients.

Every process runs the same loops; the Lua scripts make concurrent runs safe, so losing a
process loses no duty. ``kick()`` asks for a matching run soon (coalesced): on a new chat, an
agent becoming available, a decline, a close, a transfer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from redis.exceptions import RedisError

from . import estimates, metrics
from .config import Settings
from .hub import Hub
from .store import Store, transient
from .supervised import spawn

log = logging.getLogger("chatd.matching")

DEFAULT_HANDLING_S = 300  # assumed chat length before any chat of a topic has closed
POSITIONS_EVERY = 1.0  # seconds: queue positions are re-sent at most this often (contract)
FRESH_WAIT_S = 0.5  # a new chat's estimate waits this long at most for fresh figures
REPAIR_EVERY = 2.0  # seconds between repairs of interrupted operations (one process each time)


class Matcher:
    def __init__(self, settings: Settings, store: Store, hub: Hub) -> None:
        self.settings = settings
        self.store = store
        self.hub = hub
        self._kick = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.redis_ok = True
        self.handling: dict[str, int] = {}  # topic -> ms, refreshed with the positions
        self._positions_at = 0.0
        self._sweep_at = 0.0  # loop time of this process's next try at the automatic purge
        self._repair_at = 0.0  # and at the repair of interrupted operations
        self.topics = {t.id: t for t in settings.topics}
        self.slots: dict[str, int] = {}  # topic -> chats of it the available agents can hold
        self.free: dict[str, int] = {}  # topic -> of which free now
        self.pace: dict[str, float] = {}  # topic -> seconds per place in its line
        self.queued: dict[str, int] = {}  # topic -> visitors in its queue
        self._refreshed = -1e9  # loop time of the last refresh
        self._next: asyncio.Future[None] | None = None  # the read the next callers share
        self._reader: asyncio.Future[None] | None = None

    def kick(self) -> None:
        self._kick.set()

    async def start(self) -> None:
        self._tasks = [spawn("match", self._match_loop), spawn("tick", self._tick_loop),
                       spawn("heartbeat", self._heartbeat_loop)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _match_loop(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._kick.wait(), self.settings.tick)
            except asyncio.TimeoutError:
                pass
            self._kick.clear()
            try:
                started = time.perf_counter()
                n = await self.store.match()
                metrics.MATCH_RUNS.observe(time.perf_counter() - started)
                if n:
                    metrics.MATCHES.inc(n)
                    if n >= 200:
                        self._kick.set()  # more may be waiting
            except (RedisError, OSError) as exc:
                if not transient(exc):
                    raise  # a bug, not an outage: supervised (logged, restarted, /readyz)
                await asyncio.sleep(self.settings.tick)

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.tick)
            try:
                await self.store.sync_clock()
                expired = await self.store.expire_offers()
                gone, requeued, closed = await self.store.reap()
                if expired or gone or requeued or closed:
                    self.kick()
                if gone or requeued or closed:
                    log.info("liveness: %d agent(s) offline, %d chat(s) re-queued, "
                             "%d chat(s) closed (visitor left)", gone, requeued, closed)
                now = asyncio.get_running_loop().time()
                if now - self._positions_at >= POSITIONS_EVERY:  # not every tick if ticks are fast
                    self._positions_at = now
                    await self._send_positions()
                self.hub.idle.sweep(now, self.settings.idle_timeout)
                if now >= self._repair_at:
                    self._repair_at = now + REPAIR_EVERY
                    if await self.store.claim_repair(REPAIR_EVERY):
                        n = await self.store.repair()
                        if n:
                            log.warning("repair: finished %d interrupted operation(s) (a "
                                        "process died between two steps)", n)
                            self.kick()
                if now >= self._sweep_at:
                    self._sweep_at = now + self.settings.purge_every
                    if await self.store.claim_sweep(self.settings.purge_every):
                        n = await self.store.sweep()
                        if n:
                            log.info("retention: %d closed chat(s) deleted", n)
                if not self.redis_ok:
                    log.warning("Redis answers again")
                    self.redis_ok = True
            except (RedisError, OSError) as exc:
                if not transient(exc):
                    raise
                if self.redis_ok:
                    log.error("Redis unreachable (%s: %s); retrying every %g s",
                              type(exc).__name__, exc, self.settings.tick)
                self.redis_ok = False

    async def _heartbeat_loop(self) -> None:
        every = max(0.5, self.settings.heartbeat_ttl / 3)
        while True:
            try:
                back = await self.hub.presence.beat(list(self.hub.agents))
                for login in back:
                    status = await self.hub.restore_status(login)
                    log.info("an agent is back online after a lapse (%s again)", status)
                    if status == "available":
                        self.kick()
                await self.hub.resync(settle=1.0)
            except (RedisError, OSError) as exc:
                if not transient(exc):
                    raise
            await asyncio.sleep(every)

    async def refresh(self) -> None:
        """Reads the figures anew: every caller gets figures read after it asked, and the
        callers of one moment share one read (those who come during a read share the next)."""
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
            if self._reader is None:
                self._reader = asyncio.ensure_future(self._read_loop())
        await asyncio.shield(self._next)

    async def _read_loop(self) -> None:
        try:
            while self._next is not None:
                fut, self._next = self._next, None
                try:
                    await self._refresh()
                except Exception as exc:  # each waiter has it (Redis away: theirs to handle)
                    fut.set_exception(exc)
                    fut.exception()  # retrieved here too: a waiter may have gone
                else:
                    fut.set_result(None)
        finally:
            self._reader = None

    async def _refresh(self) -> None:
        """What waiting times are estimated from, for every topic: the slots of the gendarmes
        available now who take it (all, and free), how its line moved lately, its average
        chat length, and how many wait in its queue."""
        topics = list(self.topics)
        figures = await self.store.figures(topics)
        agents, self.queued, self.handling = figures.agents, figures.queued, figures.handling
        lines = figures.lines
        now = self.store.now_ms()
        self.slots, self.free, self.pace = {}, {}, {}
        for t in self.topics.values():
            fit = [a for a in agents if not a.get("topics") or t.id in str(a["topics"]).split()]
            self.slots[t.id] = sum(int(a.get("cap") or 0) for a in fit) // t.weight
            # room for a whole chat on one gendarme (two single slots on two do not fit one
            # chat of two), and none while a higher-priority topic has someone waiting
            self.free[t.id] = sum(max(0, int(a.get("cap") or 0) - int(a.get("load") or 0))
                                  // t.weight for a in fit)
            handling = self.handling.get(t.id)
            model = (handling / 1000 if handling else DEFAULT_HANDLING_S) / max(1, self.slots[t.id])
            moves, head_since = lines.get(t.id, ([], None))
            self.pace[t.id] = estimates.pace(moves, head_since, now, model)
        for t in self.topics.values():
            if any(self.queued.get(h.id, 0) > 0 for h in self.topics.values()
                   if h.priority > t.priority):
                self.free[t.id] = 0
        self._refreshed = asyncio.get_running_loop().time()

    async def queued_frame(self, sid: str, topic: str, position: int) -> dict[str, Any]:
        """The `queued` frame for a visitor at ``position``: from figures read now (shared
        with the starts of the same moment), since a gendarme may have just come or gone. A
        Redis that does not answer at once does not hold the answer back: the chat exists,
        the visitor must learn its id; the figures of the last tick do."""
        try:
            await asyncio.wait_for(asyncio.shield(self.refresh()), FRESH_WAIT_S)
        except (asyncio.TimeoutError, RedisError, OSError) as exc:
            if not isinstance(exc, asyncio.TimeoutError) and not transient(exc):
                raise
            log.warning("estimates from the last tick: %s", type(exc).__name__)
        return self.frame(sid, topic, position)

    def frame(self, sid: str, topic: str, position: int) -> dict[str, Any]:
        eta = self.estimate(topic, position)
        frame: dict[str, Any] = {"type": "queued", "session": sid, "position": position,
                                 "eta_s": eta, "available": eta is not None}
        t = self.topics.get(topic)
        if (eta is not None and eta > self.settings.async_after_s and t is not None
                and t.priority < self.settings.live_priority):
            frame["suggest_leave"] = True  # surge: an answer later beats a long wait
        return frame

    async def _send_positions(self) -> None:
        """Tell each waiting visitor of this process their place and an honest wait estimate,
        only when it changed, at most once a second (the places: Store.queue_positions)."""
        await self.refresh()
        waiting: list[tuple[Any, str, str]] = [
            (conn, sid, topic) for conn in self.hub.visitors if conn.has("waiting")
            for sid, topic in conn.waiting.items()
        ]
        if not waiting:
            return
        positions = await self.store.queue_positions([(t, s) for _, s, t in waiting])
        for (conn, sid, topic), pos in zip(waiting, positions):
            if pos is None:
                continue
            frame = self.frame(sid, topic, pos)
            seen = (pos, frame["eta_s"], frame.get("suggest_leave", False))
            if conn.positions.get(sid) != seen:
                conn.positions[sid] = seen
                conn.send(frame)

    def estimate(self, topic: str, position: int) -> int | None:
        """Seconds until a gendarme takes the chat at ``position`` of ``topic``'s queue, or
        None when no gendarme who takes the topic is available: free slots take the first
        ones at once, the others wait their places at the line's pace (estimates.py)."""
        if self.slots.get(topic, 0) <= 0:
            return None
        ahead = position - self.free.get(topic, 0)
        if ahead <= 0:
            return 0
        return max(1, round(ahead * self.pace.get(topic, DEFAULT_HANDLING_S)))
