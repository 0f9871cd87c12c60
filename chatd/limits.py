"""Rate and size limits that keep one abusive client from hurting the others.

Per-connection limits (frames per second) are local token buckets: a connection lives on one
process. Limits that must hold across processes (new chats per token and per address per
hour) are counted in Redis, when a chat is created (store/routing.py: admit.lua, count.lua;
the address is hashed, never stored).
"""

from __future__ import annotations

import time


class TokenBucket:
    __slots__ = ("rate", "burst", "tokens", "stamp", "strikes")

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.stamp = time.monotonic()
        self.strikes = 0  # frames refused in a row: persistent abuse closes the connection

    def take(self, scale: float = 1.0) -> bool:
        now = time.monotonic()
        rate = self.rate * scale
        self.tokens = min(self.burst * scale, self.tokens + (now - self.stamp) * rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            self.strikes = 0
            return True
        self.strikes += 1
        return False


class ConnectionCounter:
    """Open WebSocket connections per client address, in this process."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.by_ip: dict[str, int] = {}

    def acquire(self, ip: str) -> bool:
        n = self.by_ip.get(ip, 0)
        if n >= self.limit:
            return False
        self.by_ip[ip] = n + 1
        return True

    def release(self, ip: str) -> None:
        n = self.by_ip.get(ip, 0) - 1
        if n <= 0:
            self.by_ip.pop(ip, None)
        else:
            self.by_ip[ip] = n
