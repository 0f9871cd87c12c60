"""A light protocol client for the load generator: one WebSocket (picows, a fast asyncio
client), msgpack frames through ``protocol/``, every frame handed to a callback."""

from __future__ import annotations

import asyncio
import itertools
import socket
from typing import Any, Callable

import httpx
import picows

import protocol
from chatd.auth import Auth
from chatd.config import Settings
from chatd.store import open_store

from .cluster import Target

OnFrame = Callable[["Conn", dict[str, Any]], None]
PASSWORD = "loadtest password"
_ids = itertools.count()


class _Listener(picows.WSListener):  # type: ignore[misc]
    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    def on_ws_frame(self, transport: Any, frame: Any) -> None:
        kind = frame.msg_type
        if kind == picows.WSMsgType.BINARY:
            conn = self.conn
            conn.on_frame(conn, _decode(frame.get_payload_as_bytes(), protocol.MSGPACK))
        elif kind == picows.WSMsgType.CLOSE:
            self.conn.closed = True
            transport.disconnect()

    def on_ws_disconnected(self, transport: Any) -> None:
        self.conn.closed = True


_decode = protocol.decode_server


class Conn:
    """One client connection on picows: frames are handled in the transport's callback, with no
    task or future per frame, so the generator stays light next to the server."""

    __slots__ = ("transport", "on_frame", "name", "state", "closed")

    def __init__(self, on_frame: OnFrame, name: str) -> None:
        self.transport: Any = None
        self.on_frame = on_frame
        self.name = name
        self.state: dict[str, Any] = {}
        self.closed = False

    @classmethod
    async def open(cls, url: str, role: str, on_frame: OnFrame, name: str = "",
                   local_addr: tuple[str, int] | None = None) -> Conn:
        conn = cls(on_frame, name or f"{role}{next(_ids)}")
        factory = None
        if local_addr is not None:
            async def factory(parsed: Any) -> socket.socket:
                sock = socket.socket()
                sock.setblocking(False)
                sock.bind(local_addr)
                await asyncio.get_running_loop().sock_connect(sock, (parsed.host, parsed.port))
                return sock
        conn.transport, _ = await picows.ws_connect(
            lambda: _Listener(conn), f"{url}/ws/{role}", websocket_handshake_timeout=30,
            extra_headers={"Sec-WebSocket-Protocol": protocol.MSGPACK}, socket_factory=factory)
        return conn

    def send_now(self, frame: dict[str, Any]) -> None:
        if not self.closed:
            self.transport.send(picows.WSMsgType.BINARY, protocol.encode(frame, protocol.MSGPACK))

    async def send(self, frame: dict[str, Any]) -> None:
        self.send_now(frame)

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.transport.send_close(picows.WSCloseCode.OK)
            self.transport.disconnect()

    def abort(self) -> None:
        self.closed = True
        self.transport.disconnect(graceful=False)


async def create_agents(target: Target, n: int, capacity: int, langs: tuple[str, ...] = ("fr",),
                        tag: str = "lt") -> list[tuple[str, str]]:
    """Creates n agent accounts and signs each in: [(login, token)]."""
    store = open_store(target.redis_url, Settings(key_prefix=target.prefix))
    auth = Auth(store, "unused-for-accounts", 86400)
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
    await store.aclose()
    return list(out)
