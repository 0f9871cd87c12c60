"""Commands packed into the Redis protocol by hiredis rather than by redis-py.

redis-py's asyncio connections pack each command in Python, argument by argument: for the
script call of one chat message (eighteen arguments) that was about 30 µs of the worker's
CPU, against 3 µs for ``hiredis.pack_command`` (docs/benchmarks.md, "Performance"). The
connection classes redis-py picks (plain, TLS, Sentinel-managed) keep everything else; only
their ``pack_command`` is replaced. A text hiredis will not encode (a lone surrogate, which a
JSON client can send) goes the old way, with the client's own encoding rules.
"""

from __future__ import annotations

from typing import Any

import hiredis


class _HiredisPacking:
    def pack_command(self, *args: Any) -> list[bytes]:
        first = args[0]
        if isinstance(first, str) and " " in first:  # e.g. "SCRIPT LOAD": two words
            args = (*first.split(), *args[1:])
        try:
            return [hiredis.pack_command(args)]
        except (UnicodeEncodeError, TypeError):
            return super().pack_command(*args)  # type: ignore[misc, no-any-return]


_made: dict[type, type] = {}


def fast(connection_class: type) -> type:
    """``connection_class`` with commands packed by hiredis (one class made per kind)."""
    if issubclass(connection_class, _HiredisPacking):
        return connection_class
    made = _made.get(connection_class)
    if made is None:
        made = type("Packed" + connection_class.__name__, (_HiredisPacking, connection_class),
                    {})
        _made[connection_class] = made
    return made


def use_hiredis(client: Any) -> Any:
    """A redis-py asyncio client (not a cluster client) whose new connections pack with
    hiredis; returned for chaining."""
    pool = client.connection_pool
    pool.connection_class = fast(pool.connection_class)
    return client
