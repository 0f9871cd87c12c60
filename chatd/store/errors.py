"""Which Redis errors mean "Redis is unreachable or changing hands: retry", as opposed to a
bug (a script error, a wrong type), which must be logged with its traceback.

Transient: the connection failed or timed out; the server is loading its data; a Sentinel
failover is under way (a demoted primary answers READONLY, a replica without its primary
MASTERDOWN); a cluster is reconfiguring (CLUSTERDOWN, TRYAGAIN). A client told `unavailable`
resends with the same `cid`, which is safe (docs/protocol.md, "Delivery").
"""

from __future__ import annotations

from redis.exceptions import (
    ClusterDownError,
    ConnectionError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TimeoutError,
    TryAgainError,
)

_TRANSIENT_REPLIES = ("MASTERDOWN", "LOADING", "CLUSTERDOWN", "TRYAGAIN", "NOREPLICAS",
                      "READONLY")


class NotReplicated(RedisError):
    """The writes did not reach ``CHATD_ACK_REPLICAS`` replicas within the ack timeout: nothing
    of them was shown; the client resends (the same cid: idempotent)."""


def transient(exc: BaseException) -> bool:
    """Whether ``exc`` says Redis cannot answer now (retry later), not that chatd erred."""
    if isinstance(exc, (ConnectionError, TimeoutError, ReadOnlyError, ClusterDownError,
                        TryAgainError, NotReplicated, OSError)):
        return True
    if isinstance(exc, ResponseError):
        return str(exc).startswith(_TRANSIENT_REPLIES)
    return False


__all__ = ["NotReplicated", "RedisError", "transient"]
