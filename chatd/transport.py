"""The two WebSocket endpoints: the handshake checks, then each message to its handler.

uvicorn parses the upgrade request; from there the socket is chatd's (``Connection``): no ASGI
scope, queue or task per connection, which is what made idle connections and handshakes cost
(docs/benchmarks.md). The handshake itself (key, version, subprotocol) is the websockets
library's; the rules on top of it are docs/protocol.md, "Connections".
"""

from __future__ import annotations

import asyncio
import logging
import sys
from http.cookies import SimpleCookie
from typing import TYPE_CHECKING, Any

import protocol
from protocol import CloseCode, ErrorCode, ProtocolError
from protocol.outbound import error
from redis.exceptions import RedisError
from websockets.datastructures import Headers
from websockets.http11 import Request
from websockets.server import ServerProtocol

from . import metrics
from .agent import Closing
from .auth import token_digest
from .connection import Connection
from .limits import TokenBucket
from .store import transient
from .visitor import Blocked, Refused

if TYPE_CHECKING:
    from .runtime import Runtime

log = logging.getLogger("chatd.transport")

COOKIE = "chatd_session"
MAX_BAD_FRAMES = 20  # in a row: a client this broken is closed (1008)
MAX_RATE_STRIKES = 50  # frames refused in a row for rate: persistent flood (1008)


def header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


def _all(scope: dict[str, Any], name: bytes) -> list[str]:
    return [v.decode("latin-1") for k, v in scope.get("headers", ()) if k == name]


def own_origin(rt: Runtime, scope: dict[str, Any]) -> str | None:
    if rt.settings.public_url:
        return rt.settings.public_url
    host = header(scope, b"host")
    if not host:
        return None
    scheme = "https" if scope.get("scheme") in ("wss", "https") else "http"
    return f"{scheme}://{host}".lower()


def cookie_token(scope: dict[str, Any]) -> str | None:
    raw = header(scope, b"cookie")
    if not raw:
        return None
    try:
        jar = SimpleCookie(raw)
    except Exception:
        return None
    morsel = jar.get(COOKIE)
    return morsel.value if morsel else None


FORBIDDEN = 403


def upgrade(rt: Runtime, scope: dict[str, Any], path: str, transport: Any,
            registry: set[Any]) -> None:
    """Takes a WebSocket upgrade request over from uvicorn (``http_protocol``): the checks of
    docs/protocol.md "Handshake", then the 101 or a 403, on a ``Connection`` that owns the socket
    from here on. Synchronous unless an agent's cookie must be looked up or the process is still
    starting."""
    role = {"/ws/visitor": "visitor", "/ws/agent": "agent"}.get(path)
    offered = [p.strip() for v in _all(scope, b"sec-websocket-protocol")
               for p in v.split(",")]
    # the constants, not the header's copies, and one string per address: an idle connection
    # keeps both for its lifetime (docs/benchmarks.md, idle)
    sub = next((s for p in offered for s in protocol.SUBPROTOCOLS if p == s), None)
    s = rt.settings
    ip = sys.intern((scope.get("client") or ("?", 0))[0])
    counted = role is not None and sub is not None and rt.connections.acquire(ip)
    conn = Connection(transport, rt.endpoint, role or "visitor", sub or "", ip, s.outbox_size,
                      s.send_timeout, registry, s.outbox_bytes)
    conn.counted = counted
    transport.set_protocol(conn)
    if not counted:
        why = ("no such endpoint" if role is None else "no chatd subprotocol" if sub is None
               else "too many connections from this address")
        return _refuse(rt, conn, path, why)
    origin = header(scope, b"origin")
    if origin is not None:
        origin = origin.lower()
        own = own_origin(rt, scope)
        if role == "agent":
            allowed = origin == own
        else:
            allowed = origin in s.allowed_origins if s.allowed_origins else origin == own
        if not allowed:
            return _refuse(rt, conn, path, "origin not allowed")
    request = Request(path, Headers((k.decode("latin-1"), v.decode("latin-1"))
                                    for k, v in scope["headers"]))
    cookie = role == "agent" and origin is not None  # only on a same-origin handshake
    if rt.ready.is_set() and not cookie:
        return _accept(rt, conn, path, request, None)
    conn.spawn(_accept_later(rt, conn, path, request, cookie_token(scope) if cookie else None))


async def _accept_later(rt: Runtime, conn: Connection, path: str, request: Request,
                        token: str | None) -> None:
    if not rt.ready.is_set():
        # a worker just started (or Redis is away): give its set-up a moment, then refuse
        try:
            await asyncio.wait_for(rt.ready.wait(), 2.0)
        except asyncio.TimeoutError:
            return _refuse(rt, conn, path, "not ready (Redis)")
    account = None
    if token is not None:
        assert rt.auth is not None
        try:
            account = await rt.auth.token_account(token)
        except RedisError:
            return _refuse(rt, conn, path, "Redis unreachable")
    if not conn.ended and not conn.transport.is_closing():
        if account is not None and token is not None:
            conn.credential = token_digest(token)
        _accept(rt, conn, path, request, account)


def _refuse(rt: Runtime, conn: Connection, path: str, why: str, response: Any = None) -> None:
    if rt.settings.log_ips:  # the operator asked for addresses in the logs
        log.info("%s - WebSocket %s refused: %s", conn.ip, path, why)
    conn.refuse(response or ServerProtocol().reject(FORBIDDEN, ""))


def _accept(rt: Runtime, conn: Connection, path: str, request: Request, account: Any) -> None:
    # the websockets library checks the handshake (key, version, upgrade) and answers it
    response = ServerProtocol(subprotocols=[conn.subprotocol]).accept(request)
    if response.status_code != 101:  # not a valid WebSocket handshake (400, 426)
        return _refuse(rt, conn, path, f"bad handshake ({response.status_code})", response)
    if rt.settings.log_ips:
        log.info("%s - WebSocket %s accepted", conn.ip, path)
    s = rt.settings
    conn.agent = account
    conn.bucket = TokenBucket(s.frame_rate, s.frame_burst)
    conn.last_seen = asyncio.get_running_loop().time()
    rt.hub.connections.add(conn)
    metrics.CONNECTIONS.labels(conn.role).inc()
    conn.open(response, s.max_frame, s.hello_timeout)


class Endpoint:
    """Handles every connection's messages in this process: decode, limits, hello first, then
    the role's handler. Errors are answered with an ``error`` frame and keep the connection."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.tables = {"visitor": protocol.VISITOR, "agent": protocol.AGENT}
        self.frames_in = {r: metrics.FRAMES_IN.labels(r) for r in ("visitor", "agent")}

    def ended(self, conn: Connection) -> None:
        if conn.live:
            self.rt.hub.remove(conn)
            metrics.CONNECTIONS.labels(conn.role).dec()
        else:
            for task in list(conn.tasks):  # a handshake still waiting
                task.cancel()
        if conn.counted:
            self.rt.connections.release(conn.ip)

    async def message(self, conn: Connection, data: str | bytes) -> None:
        rt = self.rt
        conn.last_seen = asyncio.get_running_loop().time()
        self.frames_in[conn.role].inc()
        try:
            msg = protocol.decode(data, conn.subprotocol, self.tables[conn.role])
        except ProtocolError as exc:
            conn.bad += 1
            _error(conn, exc.code, exc.message, exc.ref)
            if conn.bad >= MAX_BAD_FRAMES:
                conn.close(CloseCode.POLICY, "too many bad frames")
            return
        conn.bad = 0
        ref = getattr(msg, "cid", None) or msg.TYPE
        scale = max(1, len(conn.attached)) if conn.role == "agent" else 1
        if not conn.bucket.take(scale):
            _error(conn, ErrorCode.RATE_LIMITED, "slow down", ref)
            if conn.bucket.strikes >= MAX_RATE_STRIKES:
                conn.close(CloseCode.POLICY, "flood")
            return
        if not conn.hello_done:
            if msg.TYPE != "hello":
                _error(conn, ErrorCode.UNAUTHORIZED, "the first frame must be hello", msg.TYPE)
                conn.close(CloseCode.POLICY, "no hello")
                return
        elif msg.TYPE == "hello":
            _error(conn, ErrorCode.BAD_MESSAGE, "hello was already said", "hello")
            return
        try:
            await rt.handlers[conn.role].table[msg.TYPE](conn, msg)
            if msg.TYPE == "hello":
                conn.said_hello()
        except Refused as exc:
            _error(conn, exc.code, exc.message, ref)
        except (Closing, Blocked):
            conn.close(CloseCode.POLICY, "unauthorized")
        except Exception as exc:
            if isinstance(exc, (RedisError, OSError)) and transient(exc):
                log.warning("Redis unavailable while handling %s (%s: %s)", msg.TYPE,
                            type(exc).__name__, exc)
            else:  # a bug: the traceback is what the operator needs
                log.exception("handler for %s failed", msg.TYPE)
            _error(conn, ErrorCode.UNAVAILABLE, "service temporarily unavailable: retry", ref)
            if msg.TYPE == "hello":
                conn.close(CloseCode.GOING_AWAY, "unavailable")


def _error(conn: Connection, code: ErrorCode, message: str, ref: str | None) -> None:
    metrics.ERRORS.labels(str(code)).inc()
    conn.send(error(code, message, ref))
