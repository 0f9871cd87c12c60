"""The two WebSocket endpoints: handshake checks, then one reader loop and one writer task.

This is the only module that touches WebSocket I/O. It speaks raw ASGI rather than going through
Starlette's router, to keep the per-frame path short and to reach uvicorn's transport for
aborting a stalled client (docs/protocol.md, "Connections"; DESIGN, "Traps").
"""

from __future__ import annotations

import asyncio
import logging
from http.cookies import SimpleCookie
from typing import TYPE_CHECKING, Any

import protocol
from protocol import CloseCode, ErrorCode, ProtocolError
from protocol.outbound import error
from redis.exceptions import RedisError

from . import metrics
from .agent import Closing
from .connection import Connection
from .limits import TokenBucket
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


async def refuse(send: Any, receive: Any) -> None:
    """Refuse a handshake: HTTP 403, no WebSocket."""
    await receive()  # websocket.connect
    await send({"type": "websocket.close", "code": CloseCode.POLICY})


async def websocket_endpoint(rt: Runtime, scope: dict[str, Any], receive: Any, send: Any) -> None:
    path = scope["path"]
    role = {"/ws/visitor": "visitor", "/ws/agent": "agent"}.get(path)
    offered = scope.get("subprotocols") or []
    sub = next((p for p in offered if p in protocol.SUBPROTOCOLS), None)
    if role is None or sub is None:
        return await refuse(send, receive)
    if not rt.ready.is_set():
        # a worker just started (or Redis is away): give its set-up a moment, then refuse
        try:
            await asyncio.wait_for(rt.ready.wait(), 2.0)
        except asyncio.TimeoutError:
            return await refuse(send, receive)
    origin = header(scope, b"origin")
    if origin is not None:
        origin = origin.lower()
        own = own_origin(rt, scope)
        if role == "agent":
            allowed = origin == own
        else:
            allowed = origin in rt.settings.allowed_origins if rt.settings.allowed_origins \
                else origin == own
        if not allowed:
            return await refuse(send, receive)
    client = scope.get("client") or ("?", 0)
    ip = client[0]
    if not rt.connections.acquire(ip):
        return await refuse(send, receive)
    try:
        account = None
        if role == "agent" and origin is not None:
            # the cookie counts only on a same-origin handshake (checked above)
            assert rt.auth is not None
            try:
                account = await rt.auth.token_account(cookie_token(scope))
            except RedisError:
                return await refuse(send, receive)
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept", "subprotocol": sub})
        s = rt.settings
        conn = Connection(send, role, sub, ip, s.outbox_size, s.send_timeout)
        conn.agent = account
        conn.bucket = TokenBucket(s.frame_rate, s.frame_burst)
        metrics.CONNECTIONS.labels(role).inc()
        conn.writer = asyncio.create_task(conn.run_writer())
        try:
            await _read_loop(rt, conn, receive)
        finally:
            rt.hub.remove(conn)
            metrics.CONNECTIONS.labels(role).dec()
            if conn.close_code is None:
                conn.close(CloseCode.NORMAL)
            try:
                await asyncio.wait_for(conn.writer, 3.0)
            except (asyncio.TimeoutError, Exception):
                conn.abort()
    finally:
        rt.connections.release(ip)


async def _read_loop(rt: Runtime, conn: Connection, receive: Any) -> None:
    handlers = rt.handlers[conn.role]
    table = protocol.VISITOR if conn.role == "visitor" else protocol.AGENT
    metric = metrics.FRAMES_IN.labels(conn.role)
    s = rt.settings
    bad = 0
    loop = asyncio.get_running_loop()
    rt.hub.connections.add(conn)
    conn.last_seen = loop.time()
    deadline = conn.last_seen + s.hello_timeout
    while True:
        if conn.hello_done:
            message = await receive()  # idle connections are closed by the sweep (matching)
        else:
            try:
                message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0.001))
            except asyncio.TimeoutError:
                conn.send(error(ErrorCode.UNAUTHORIZED, "say hello first (within "
                                f"{s.hello_timeout:g} s)", None))
                conn.close(CloseCode.POLICY, "no hello")
                return
        conn.last_seen = loop.time()
        kind = message["type"]
        if kind == "websocket.disconnect":
            return
        if conn.close_code is not None:
            return
        metric.inc()
        data = message.get("text")
        if data is None:
            data = message.get("bytes", b"")
        try:
            msg = protocol.decode(data, conn.subprotocol, table)
        except ProtocolError as exc:
            bad += 1
            _error(conn, exc.code, exc.message, exc.ref)
            if bad >= MAX_BAD_FRAMES:
                conn.close(CloseCode.POLICY, "too many bad frames")
                return
            continue
        bad = 0
        ref = getattr(msg, "cid", None) or msg.TYPE
        scale = max(1, len(conn.attached)) if conn.role == "agent" else 1
        if not conn.bucket.take(scale):
            _error(conn, ErrorCode.RATE_LIMITED, "slow down", ref)
            if conn.bucket.strikes >= MAX_RATE_STRIKES:
                conn.close(CloseCode.POLICY, "flood")
                return
            continue
        if not conn.hello_done:
            if msg.TYPE != "hello":
                _error(conn, ErrorCode.UNAUTHORIZED, "the first frame must be hello", msg.TYPE)
                conn.close(CloseCode.POLICY, "no hello")
                return
        elif msg.TYPE == "hello":
            _error(conn, ErrorCode.BAD_MESSAGE, "hello was already said", "hello")
            continue
        try:
            await handlers.table[msg.TYPE](conn, msg)
            if msg.TYPE == "hello":
                conn.hello_done = True
        except Refused as exc:
            _error(conn, exc.code, exc.message, ref)
        except (Closing, Blocked):
            conn.close(CloseCode.POLICY, "unauthorized")
            return
        except (RedisError, OSError) as exc:
            _error(conn, ErrorCode.UNAVAILABLE, "service temporarily unavailable: retry", ref)
            log.warning("Redis error while handling %s: %s", msg.TYPE, type(exc).__name__)
            if msg.TYPE == "hello":
                conn.close(CloseCode.GOING_AWAY, "unavailable")
                return
        except Exception:
            log.exception("handler for %s failed", msg.TYPE)
            _error(conn, ErrorCode.UNAVAILABLE, "internal error: retry", ref)


def _error(conn: Connection, code: ErrorCode, message: str, ref: str | None) -> None:
    metrics.ERRORS.labels(str(code)).inc()
    conn.send(error(code, message, ref))
