"""Everything one chatd process holds while it runs, built at start-up and closed at shutdown.

Redis may be down when the process starts: chatd serves anyway (``/readyz`` says 503), and the
part of start-up that needs Redis (the shared secret, the topic table) is retried with one log
line per attempt until Redis answers (docs/operations.md, "Start-up").
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import ConnectionError, RedisError

from .auth import Auth
from .config import Settings, Topic
from .hub import Hub
from .limits import ConnectionCounter
from .matching import Matcher
from .store import Store, transient
from .supervised import spawn

log = logging.getLogger("chatd")


def redis_client(url: str, decode: bool, max_connections: int = 64, retries: int = 2) -> Redis:
    """A pooled client. ``retries``: how often a command that failed on its connection is sent
    again (a pooled connection that Redis closed meanwhile, a restart). Only for commands whose
    replay is harmless: scripts go through a client with 0, since a script whose reply was lost
    may have run (its caller answers `unavailable`, and the client resends the same cid)."""
    pool = BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=5, decode_responses=decode,
        socket_connect_timeout=2, socket_timeout=10, health_check_interval=0,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.02), retries,
                    supported_errors=(ConnectionError,)),
    )
    return Redis(connection_pool=pool)


class Runtime:
    def __init__(self, settings: Settings, redis_url: str) -> None:
        self.settings = settings
        self.redis_url = redis_url
        self.redis = redis_client(redis_url, decode=True)
        self.script_redis = redis_client(redis_url, decode=True, max_connections=8, retries=0)
        # pub/sub: bytes (msgpack payloads), and no silent reconnect: the hub must resync
        self.pubsub_redis = Redis.from_url(redis_url, decode_responses=False,
                                           socket_connect_timeout=2,
                                           retry=Retry(NoBackoff(), 0))
        self.store = Store(self.redis, settings, self.script_redis)
        self.hub = Hub(self.store, self.pubsub_redis)
        self.matcher = Matcher(settings, self.store, self.hub)
        self.connections = ConnectionCounter(settings.max_conn_per_ip)
        self.topics: dict[str, Topic] = {t.id: t for t in settings.topics}
        self.auth: Auth | None = None
        self.ready = asyncio.Event()
        self._setup: asyncio.Task[None] | None = None
        self.handlers: dict[str, Any] = {}
        self.endpoint: Any = None  # transport.Endpoint, set with the handlers

    async def start(self) -> None:
        await self.hub.fanout.start()
        self._setup = spawn("setup", self._set_up, forever=False)
        await self.matcher.start()

    async def _set_up(self) -> None:
        delay = 0.5
        while True:
            try:
                secret = await self.store.shared_secret(self.settings.secret)
                await self.store.publish_topics(self.settings.topics)
                self.auth = Auth(self.store, secret, self.settings.agent_session_hours * 3600,
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

    async def stop(self) -> None:
        if self._setup is not None:
            self._setup.cancel()
        await self.matcher.stop()
        await self.hub.fanout.stop()
        await self.redis.aclose()
        await self.script_redis.aclose()
        await self.pubsub_redis.aclose()

    async def redis_answers(self) -> bool:
        try:
            return bool(await asyncio.wait_for(self.redis.ping(), 1.0))
        except (RedisError, OSError, asyncio.TimeoutError):
            return False
