"""A light protocol client for the load generator: one WebSocket, msgpack frames through
``protocol/``, and a reader task that hands every frame to a callback (no per-frame futures)."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any, Callable

import httpx
import redis.asyncio as aioredis
import websockets

import protocol
from chatd.auth import Auth
from chatd.config import Settings
from chatd.store import Store

from .cluster import Target

OnFrame = Callable[["Conn", dict[str, Any]], None]
PASSWORD = "loadtest password"
_ids = itertools.count()


class Conn:
    __slots__ = ("ws", "on_frame", "reader", "name", "state", "closed")

    def __init__(self, ws: Any, on_frame: OnFrame, name: str) -> None:
        self.ws = ws
        self.on_frame = on_frame
        self.name = name
        self.state: dict[str, Any] = {}
        self.closed = False
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, url: str, role: str, on_frame: OnFrame, name: str = "",
                   local_addr: tuple[str, int] | None = None) -> Conn:
        kw: dict[str, Any] = {}
        if local_addr is not None:
            kw["local_addr"] = local_addr
        ws = await websockets.connect(
            f"{url}/ws/{role}", subprotocols=[protocol.MSGPACK],  # type: ignore[list-item]
            compression=None, ping_interval=None, max_size=2**20, open_timeout=30,
            max_queue=None, **kw)
        return cls(ws, on_frame, name or f"{role}{next(_ids)}")

    def send(self, frame: dict[str, Any]) -> Any:
        return self.ws.send(protocol.encode(frame, protocol.MSGPACK))

    async def _read(self) -> None:
        decode = protocol.decode_server
        try:
            async for data in self.ws:
                self.on_frame(self, decode(data, protocol.MSGPACK))
        except websockets.ConnectionClosed:
            pass
        finally:
            self.closed = True

    async def close(self) -> None:
        self.reader.cancel()
        await self.ws.close()


async def create_agents(target: Target, n: int, capacity: int, langs: tuple[str, ...] = ("fr",),
                        tag: str = "lt") -> list[tuple[str, str]]:
    """Creates n agent accounts and signs each in: [(login, token)]."""
    client = aioredis.Redis.from_url(target.redis_url, decode_responses=True)
    auth = Auth(Store(client, Settings(key_prefix=target.prefix)), "unused-for-accounts", 86400)
    logins = [f"{tag}{i}" for i in range(n)]
    sem = asyncio.Semaphore(4)

    async def one(login: str) -> tuple[str, str]:
        async with sem:
            await auth.add_account(login, login, "agent", list(langs), [], capacity, PASSWORD)
            async with httpx.AsyncClient(timeout=30) as http:
                r = await http.post(target.http(hash(login)) + "/api/login",
                                    json={"login": login, "password": PASSWORD})
                r.raise_for_status()
                return login, str(r.json()["token"])

    out = await asyncio.gather(*[one(login) for login in logins])
    await client.aclose()
    return list(out)
