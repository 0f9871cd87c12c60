"""The Redis keyspace and its atomic operations; the only package that knows key names."""

from __future__ import annotations

from ..config import Settings
from . import connect
from .errors import transient
from .keys import Keys
from .records import Entry, NoteEntry
from .store import Store

__all__ = ["Entry", "Keys", "NoteEntry", "Store", "open_store", "transient"]


def open_store(url: str, settings: Settings, max_connections: int = 64,
               retries: int = 2) -> Store:
    """A Store on the Redis that ``url`` names (one server, Sentinel or Cluster): a pooled
    client for reads and commands whose replay is harmless, and one that never retries for
    the scripts (for a cluster: a client per node, made as needed)."""
    redis = connect.command_client(url, max_connections=max_connections, retries=retries)
    if connect.is_cluster(url):
        return Store(redis, settings, node_client=connect.node_factory(url))
    scripts = connect.command_client(url, max_connections=8, retries=0)
    return Store(redis, settings, script_redis=scripts)
