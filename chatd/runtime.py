"""Everything one chatd process holds while it runs, built at start-up and closed at shutdown.

Redis may be down when the process starts: chatd serves anyway (``/readyz`` says 503), and the
part of start-up that needs Redis (the shared secret, the topic table) is retried with one log
line per attempt until Redis answers (docs/operations.md, "Start-up").
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from redis.exceptions import RedisError

from .auth import Auth
from .config import Settings, Topic
from .hub import Hub
from .limits import ConnectionCounter
from . import metrics
from .matching import Matcher
from .fanout import Fanout, ShardedFanout
from .store import connect, open_store, transient
from .supervised import spawn
from .uploads.pool import ImagePool
from .uploads.storage import open_storage

log = logging.getLogger("chatd")


class Runtime:
    def __init__(self, settings: Settings, redis_url: str) -> None:
        self.settings = settings
        self.redis_url = redis_url
        self.store = open_store(redis_url, settings)
        self.redis = self.store.redis
        self.store.on_counted = metrics.observe_chat
        store = self.store
        if connect.is_cluster(redis_url):
            nodes = connect.node_factory(redis_url, decode=False, pubsub=True)

            def make_fanout(on_event: Any, on_resync: Any) -> Any:
                return ShardedFanout(store.redis, nodes, store.beat_channel, on_event,
                                     on_resync, store.publish_raw)
        else:
            pubsub = connect.pubsub_client(redis_url)

            def make_fanout(on_event: Any, on_resync: Any) -> Any:
                return Fanout(pubsub, store.beat_channel(), on_event, on_resync,
                              store.publish_raw)
        self.files = open_storage(settings)  # the photos' files (chatd/uploads)
        self.store.files = self.files  # the retention deletes them with their chat
        self.images = ImagePool(settings.image_pool, settings.image_workers, settings.image_queue)
        self.hub = Hub(self.store, make_fanout)
        self.matcher = Matcher(settings, self.store, self.hub)
        self.hub.presence.on_back = self.matcher.kick  # a queued visitor back: offer them
        self.connections = ConnectionCounter(settings.max_conn_per_ip)
        self.topics: dict[str, Topic] = {t.id: t for t in settings.topics}
        self.auth: Auth | None = None
        self.secret = ""  # the one in use (configured, or generated and kept in Redis)
        self.epoch: str | None = None  # the mark of the data this process started on
        self.ready = asyncio.Event()
        self._setup: asyncio.Task[None] | None = None
        self._guard: asyncio.Task[None] | None = None
        self.handlers: dict[str, Any] = {}
        self.endpoint: Any = None  # transport.Endpoint, set with the handlers

    async def start(self) -> None:
        await self.hub.fanout.start()
        self._setup = spawn("setup", self._set_up, forever=False)
        self._guard = spawn("guard", self.guard)
        await self.matcher.start()
        self.hub.presence.start()

    async def _set_up(self) -> None:
        delay = 0.5
        while True:
            try:
                await self.store.sync_clock()
                self.secret = await self.store.shared_secret(self.settings.secret)
                await self.store.publish_topics(self.settings.topics)
                for topic, n in (await self.store.adopt_removed_topics()).items():
                    if n:
                        log.warning("%d waiting chat(s) of the topic %r, no longer configured, "
                                    "moved to the general line", n, topic)
                self.epoch = await self.store.claim_epoch()
                self.auth = Auth(self.store, self.secret,
                                 self.settings.agent_session_hours * 3600,
                                 self.settings.secret_previous)
                self.ready.set()
                return
            except (RedisError, OSError) as exc:
                if not transient(exc):
                    raise
                log.error("Redis unreachable at start-up (%s: %s); retrying in %.1f s",
                          type(exc).__name__, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def guard(self) -> None:
        """Notices a Redis that lost chatd's data (flushed, or a failover to a node that had
        none): its epoch mark is gone. Then topics and settings are seeded again, every process
        ends on one secret, this process's agents are registered again with the status they
        chose, and every open chat and offer here is checked against what is left (a chat that
        is gone is `closed` with reason `lost`): clients hear something, never silence."""
        while True:
            await asyncio.sleep(self.settings.tick)
            if not self.ready.is_set():
                continue
            try:
                if await self.store.epoch() != self.epoch:
                    await self._seed_again()
            except (RedisError, OSError) as exc:
                if not transient(exc):
                    raise

    async def _seed_again(self) -> None:
        log.error("Redis no longer holds chatd's data (emptied, or another server answers): "
                  "seeding topics and settings again; the chats and accounts it held are gone")
        await self.store.publish_topics(self.settings.topics)
        secret = await self.store.shared_secret(self.settings.secret, self.secret)
        if secret != self.secret:
            log.warning("another process seeded the generated secret again first: using it "
                        "(visitor tokens signed before are no longer accepted)")
            self.secret = secret
            self.auth = Auth(self.store, secret, self.settings.agent_session_hours * 3600,
                             self.settings.secret_previous)
        self.epoch = await self.store.claim_epoch()
        for login, conns in list(self.hub.agents.items()):
            acct = next((c.agent for c in conns if c.agent is not None), None)
            if acct is None:
                continue
            for conn in conns:
                await self.auth.restore(acct, conn.credential)
            await self.store.agent_online(login, acct.capacity, acct.langs, acct.topics, acct.name)
            await self.hub.restore_status(login)
        await self.hub.resync()
        self.matcher.kick()

    async def stop(self) -> None:
        for task in (self._guard, self._setup):
            if task is not None:
                task.cancel()
        await self.matcher.stop()
        await self.hub.presence.stop()
        await self.hub.fanout.stop()
        self.images.close()
        await self.files.aclose()
        await self.store.aclose()

    async def redis_answers(self) -> bool:
        try:
            return bool(await asyncio.wait_for(self.redis.ping(), 1.0))
        except (RedisError, OSError, asyncio.TimeoutError):
            return False
