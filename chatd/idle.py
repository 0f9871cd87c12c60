"""The idle sweep: one pass over every connection each tick, no timer per connection."""

from __future__ import annotations

from typing import Any

from protocol import CloseCode


class IdleSweep:
    def __init__(self, connections: set[Any]) -> None:
        self.connections = connections
        self._pinged = 0.0

    def sweep(self, now: float, idle: float) -> int:
        """Closes connections that sent nothing for ``idle`` seconds (1001); every third of
        that (20 s by default), pings those silent that long (proxies and NATs drop quiet
        sockets). One pass for all connections: no timer per connection."""
        n = 0
        every = idle / 3
        ping = now - self._pinged >= every
        if ping:
            self._pinged = now
        for conn in list(self.connections):
            silent = now - conn.last_seen
            if silent > idle and conn.close_code is None:
                conn.close(CloseCode.GOING_AWAY, "idle")
                n += 1
            elif ping and silent >= every:
                conn.ping()
        return n
