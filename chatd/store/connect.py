"""How chatd reaches Redis, whatever ``CHATD_REDIS_URL`` names (``chatd.redis_url``): pooled
clients for commands and scripts, and the client the pub/sub listener uses (for a cluster:
one per node).

Every client gives up on a silent link: a reply that does not come within ``SOCKET_TIMEOUT``
fails the command (the caller answers `unavailable`, the connection is dropped and the next one
is made afresh), and a connection idle for ``HEALTH_CHECK`` seconds is PINGed before use.
Behind Sentinel, a new connection asks the Sentinels where the primary is, so after a failover
the clients follow it; a connection still on a demoted primary gets READONLY, which redis-py
turns into a dropped connection (retried, or `unavailable`).
"""

from __future__ import annotations

from typing import Any, Callable

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import ConnectionError

from ..redis_url import RedisTarget, parse
from .packing import use_hiredis

SOCKET_TIMEOUT = 5.0  # seconds a reply may take before the link counts as dead
CONNECT_TIMEOUT = 2.0
HEALTH_CHECK = 5.0  # seconds idle before a pooled connection is PINGed on its next use
POOL_WAIT = 5.0  # seconds a caller waits for a free pooled connection


class _SentinelBlockingPool(SentinelConnectionPool, BlockingConnectionPool):
    """The primary's address from the Sentinels (SentinelConnectionPool), and callers that wait
    for a free connection instead of failing with "Too many connections" (BlockingConnectionPool;
    docs: DESIGN, traps)."""


def _tls(target: RedisTarget) -> dict[str, Any]:
    if not target.tls:
        return {}
    return {"ssl": True, **target.tls_options}


def _sentinel(target: RedisTarget, decode: bool, retry: Retry,
              socket_timeout: float | None = SOCKET_TIMEOUT) -> Sentinel:
    """The Sentinels (asked where the primary is) and how to talk to the data nodes."""
    sentinel_kwargs = {"socket_connect_timeout": CONNECT_TIMEOUT,
                       "socket_timeout": SOCKET_TIMEOUT,
                       "username": target.sentinel_username,
                       "password": target.sentinel_password, **_tls(target)}
    return Sentinel(
        list(target.nodes), sentinel_kwargs=sentinel_kwargs,
        username=target.username, password=target.password, db=target.db,
        decode_responses=decode, socket_connect_timeout=CONNECT_TIMEOUT,
        socket_timeout=socket_timeout,
        health_check_interval=HEALTH_CHECK if socket_timeout else 0, retry=retry,
        **_tls(target))


def command_client(url: str, decode: bool = True, max_connections: int = 64,
                   retries: int = 2) -> Redis:
    """A pooled client. ``retries``: how often a command that failed on its connection is sent
    again (a pooled connection that Redis closed meanwhile, a failover). Only for commands whose
    replay is harmless: scripts go through a client with 0, since a script whose reply was lost
    may have run (its caller answers `unavailable`, and the client resends the same cid).

    Replies are decoded as UTF-8 with surrogate escapes, and arguments encoded the same way:
    the msgpack events that scripts hand back for publishing (``scripts.py``) go back to Redis
    byte for byte."""
    target = parse(url)
    retry = Retry(ExponentialBackoff(cap=0.5, base=0.02), retries,
                  supported_errors=(ConnectionError,))
    if target.kind == "sentinel":
        return use_hiredis(_sentinel(target, decode, retry).master_for(
            target.service, connection_pool_class=_SentinelBlockingPool,
            max_connections=max_connections, timeout=POOL_WAIT,
            encoding_errors="surrogateescape"))
    if target.kind == "cluster":
        return RedisCluster(
            startup_nodes=[ClusterNode(h, p) for h, p in target.nodes],
            decode_responses=decode, username=target.username, password=target.password,
            socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=SOCKET_TIMEOUT,
            health_check_interval=HEALTH_CHECK, max_connections=max_connections,
            encoding_errors="surrogateescape", **_tls(target))
    pool = BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=POOL_WAIT, decode_responses=decode,
        socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=SOCKET_TIMEOUT,
        health_check_interval=HEALTH_CHECK, retry=retry, encoding_errors="surrogateescape")
    return use_hiredis(Redis(connection_pool=pool))


def pubsub_client(url: str) -> Redis:
    """For the pub/sub listener: payloads stay bytes (msgpack), and nothing reconnects
    silently (the listener must know, to subscribe again and resync). Its connection waits
    for messages without a read timeout; the listener checks the link itself (fanout)."""
    target = parse(url)
    retry = Retry(NoBackoff(), 0)
    if target.kind == "sentinel":
        return _sentinel(target, False, retry, socket_timeout=None).master_for(target.service)
    if target.kind == "cluster":
        raise ValueError("a cluster's pub/sub is one connection per node: node_factory()")
    return Redis.from_url(url, decode_responses=False, socket_connect_timeout=CONNECT_TIMEOUT,
                          retry=retry)


def is_cluster(url: str) -> bool:
    return parse(url).kind == "cluster"


def node_factory(url: str, decode: bool = True, pubsub: bool = False
                 ) -> Callable[[str, int], Redis]:
    """For a cluster: a client to one node (the batcher's pipelines, the sharded pub/sub),
    with the cluster's credentials and TLS; never retrying by itself."""
    target = parse(url)

    def make(host: str, port: int) -> Redis:
        return use_hiredis(Redis(
            host=host, port=port, username=target.username, password=target.password,
            decode_responses=decode, socket_connect_timeout=CONNECT_TIMEOUT,
            socket_timeout=None if pubsub else SOCKET_TIMEOUT,
            health_check_interval=0 if pubsub else HEALTH_CHECK,
            retry=Retry(NoBackoff(), 0), encoding_errors="surrogateescape", **_tls(target)))
    return make
