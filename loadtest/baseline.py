"""The yardstick for ``relay --against baseline``: the least a relay on chatd's stack does.

uvicorn with its WebSocket protocol, redis-py, msgpack and uvloop, as chatd; one Redis channel
per chat, every PUBLISH of a turn of the loop sent in one pipeline, one pub/sub connection per
process. Nothing else: no durability (a message published while nobody listens is gone), no
order across processes, no resume, no accounts, no limits. It speaks just enough of chatd's
protocol for the relay scenario's clients: ``hello`` → ``welcome``; a visitor's ``start`` →
``queued``, then ``assigned`` once a gendarme's slot is taken from a Redis list; a gendarme's
``status`` puts its slots in that list; ``send`` → ``ack`` (at once) and ``msg`` to everyone on
the chat, the sender included, as chatd does. ``seq`` counts per sender, not per chat.

    python -m loadtest.baseline --port P --redis-url URL [--prefix P]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from typing import Any, Callable

import msgpack
import redis.asyncio as aioredis
import uvicorn

SLOTS = 10  # chats per gendarme, as the relay scenario's agents (capacity 10)
SUBPROTOCOL = "chatd.v1.msgpack"

Send = Callable[[dict[str, Any]], Any]


class Client:
    __slots__ = ("send", "role", "id", "chats", "seq")

    def __init__(self, send: Send, role: str) -> None:
        self.send = send
        self.role = role
        self.id = uuid.uuid4().hex
        self.chats: set[bytes] = set()  # channels
        self.seq = 0  # this sender's messages


class Relay:
    def __init__(self, redis_url: str, prefix: str) -> None:
        self.redis = aioredis.from_url(redis_url)
        self.prefix = prefix
        self.me = uuid.uuid4().hex[:12]
        self.clients: dict[str, Client] = {}
        self.local: dict[bytes, set[Client]] = {}  # channel -> its clients in this process
        self.pubsub: Any = None
        self.queue: list[tuple[bytes, bytes]] = []  # PUBLISHes waiting for the next pipeline
        self.wake = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        self.pack = msgpack.Packer(use_bin_type=True).pack

    def channel(self, sid: str) -> bytes:
        return f"{self.prefix}:c:{sid}".encode()

    async def start(self) -> None:
        self.pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        await self.pubsub.subscribe(f"{self.prefix}:p:{self.me}")
        self.tasks = [asyncio.create_task(self._publisher()),
                      asyncio.create_task(self._listener())]

    async def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.pubsub.aclose()
        await self.redis.aclose()

    def publish(self, channel: bytes, payload: bytes) -> None:
        self.queue.append((channel, payload))
        self.wake.set()

    async def _publisher(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            batch, self.queue = self.queue, []
            async with self.redis.pipeline(transaction=False) as pipe:
                for channel, payload in batch:
                    pipe.publish(channel, payload)
                await pipe.execute()

    async def _listener(self) -> None:
        mine = f"{self.prefix}:p:{self.me}".encode()
        while True:
            m = await self.pubsub.get_message(timeout=1.0)
            if m is None or m["type"] != "message":
                continue
            if m["channel"] == mine:  # a visitor on another process took one of our slots
                order = msgpack.unpackb(m["data"])
                agent = self.clients.get(order["agent"])
                if agent is not None:
                    await self.join(agent, self.channel(order["session"]))
                    await agent.send({"type": "websocket.send", "bytes": self.pack(
                        {"type": "assigned", "session": order["session"], "history": []})})
                continue
            for client in tuple(self.local.get(m["channel"], ())):
                await client.send({"type": "websocket.send", "bytes": m["data"]})

    async def join(self, client: Client, channel: bytes) -> None:
        client.chats.add(channel)
        members = self.local.setdefault(channel, set())
        members.add(client)
        if len(members) == 1:
            await self.pubsub.subscribe(channel)

    async def leave(self, client: Client) -> None:
        self.clients.pop(client.id, None)
        for channel in client.chats:
            members = self.local.get(channel)
            if members is not None:
                members.discard(client)
                if not members:
                    del self.local[channel]
                    await self.pubsub.unsubscribe(channel)

    async def frame(self, client: Client, f: dict[str, Any]) -> None:
        kind = f.get("type")
        if kind == "send":
            sid = f["session"]
            client.seq += 1
            await client.send({"type": "websocket.send", "bytes": self.pack(
                {"type": "ack", "cid": f["cid"], "session": sid, "seq": client.seq})})
            self.publish(self.channel(sid), self.pack(
                {"type": "msg", "session": sid, "seq": client.seq, "from": client.role,
                 "text": f["text"], "ts": int(time.time() * 1000), "cid": f["cid"]}))
        elif kind == "hello":
            await client.send({"type": "websocket.send", "bytes": self.pack(
                {"type": "welcome", "role": client.role})})
        elif kind == "status" and client.role == "agent":
            await self.redis.rpush(f"{self.prefix}:slots",
                                   *[f"{self.me}:{client.id}"] * SLOTS)
        elif kind == "start" and client.role == "visitor":
            sid = uuid.uuid4().hex
            await self.join(client, self.channel(sid))
            await client.send({"type": "websocket.send", "bytes": self.pack(
                {"type": "queued", "session": sid, "position": 1})})
            while (slot := await self.redis.lpop(f"{self.prefix}:slots")) is None:
                await asyncio.sleep(0.05)
            proc, agent = slot.decode().split(":")
            await self.redis.publish(f"{self.prefix}:p:{proc}",
                                     self.pack({"session": sid, "agent": agent}))
            await client.send({"type": "websocket.send", "bytes": self.pack(
                {"type": "assigned", "session": sid})})


def app_for(relay: Relay) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                event = await receive()
                if event["type"] == "lifespan.startup":
                    await relay.start()
                    await send({"type": "lifespan.startup.complete"})
                elif event["type"] == "lifespan.shutdown":
                    await relay.stop()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] == "http":  # /readyz, and nothing else
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"ok"})
            return
        role = "agent" if scope["path"].endswith("/agent") else "visitor"
        await receive()  # websocket.connect
        await send({"type": "websocket.accept", "subprotocol": SUBPROTOCOL})
        client = Client(send, role)
        relay.clients[client.id] = client
        try:
            while True:
                event = await receive()
                if event["type"] == "websocket.disconnect":
                    return
                data = event.get("bytes")
                if data:
                    await relay.frame(client, msgpack.unpackb(data))
        finally:
            await relay.leave(client)
    return app


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m loadtest.baseline")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--redis-url", required=True)
    p.add_argument("--prefix", default="bl")
    p.add_argument("--ws", default="websockets-sansio", help="uvicorn's WebSocket protocol")
    args = p.parse_args()
    uvicorn.run(app_for(Relay(args.redis_url, args.prefix)), host="127.0.0.1", port=args.port,
                ws=args.ws, loop="uvloop", lifespan="on", log_level="warning",
                access_log=False, ws_ping_interval=None)


if __name__ == "__main__":
    main()
