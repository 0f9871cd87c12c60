"""The background work each process does for the whole deployment, and for its own clients.

Every process runs the same loops; the Lua scripts make concurrent runs safe, so losing a
process loses no duty. ``kick()`` asks for a matching run soon (coalesced): on a new chat, an
agent becoming available, a decline, a close, a transfer.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any

from redis.exceptions import RedisError

from . import metrics
from .config import Settings
from .hub import Hub
from .store import Store, transient
from .supervised import spawn

log = logging.getLogger("chatd.matching")

DEFAULT_HANDLING_S = 300  # assumed chat length before any chat of a topic has closed
POSITIONS_EVERY = 1.0  # seconds: queue positions are re-sent at most this often (contract)
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
        self.capacity = 0  # slots of available agents, refreshed each tick

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
                logins = list(self.hub.agents)
                sids = [sid for conn in self.hub.visitors for sid in conn.attached]
                if logins or sids:
                    back = await self.store.heartbeat(logins, sids)
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

    async def _send_positions(self) -> None:
        """Tell each waiting visitor of this process their place and an honest wait estimate,
        only when it changed: one pipelined ZRANK each, at most once a second."""
        self.handling = await self.store.handling_ms()
        self.capacity = await self.store.capacity_online()
        waiting: list[tuple[Any, str, str]] = [
            (conn, sid, topic) for conn in self.hub.visitors for sid, topic in conn.waiting.items()
        ]
        if not waiting:
            return
        positions = await self.store.queue_positions([(t, s) for _, s, t in waiting])
        for (conn, sid, topic), pos in zip(waiting, positions):
            if pos is None:
                continue
            eta = self.estimate(topic, pos)
            if conn.positions.get(sid) != (pos, eta):
                conn.positions[sid] = (pos, eta)
                conn.send({"type": "queued", "session": sid, "position": pos, "eta_s": eta})

    def estimate(self, topic: str, position: int) -> int:
        return self.eta(position, self.handling.get(topic), self.capacity)

    @staticmethod
    def eta(position: int, handling_ms: int | None, capacity: int) -> int:
        """Seconds until served: the people ahead (and you) share the online capacity, each
        taking the topic's average handling time (a moving average of closed chats)."""
        per_chat = (handling_ms / 1000) if handling_ms else DEFAULT_HANDLING_S
        return int(math.ceil(position * per_chat / max(1, capacity)))
