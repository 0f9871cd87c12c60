"""uvicorn's HTTP protocol, with a deadline on the request headers and WebSockets handed to chatd.

uvicorn keeps a TCP connection that never sends a request open indefinitely (measured: over 20 s
with no byte sent), so idle sockets could exhaust file descriptors before any per-address limit
applies (those count WebSockets after the handshake). This subclass closes a connection whose
request headers are not complete within ``CHATD_HANDSHAKE_TIMEOUT`` seconds.

An upgrade to WebSocket is not handed to uvicorn's ASGI WebSocket layer but to
``transport.upgrade``, which serves it on the socket directly (see there for why). The client's
address and scheme are read through uvicorn's own proxy-header middleware, so that a WebSocket
sees the same client address as an HTTP request behind the same trusted proxy.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .transport import upgrade

if TYPE_CHECKING:
    from .runtime import Runtime


async def _scope_of(scope: dict[str, Any], receive: Any, send: Any) -> dict[str, Any]:
    return scope


def _as_the_app_sees_it(proxy: Any, scope: dict[str, Any]) -> dict[str, Any]:
    """Runs the proxy-header middleware over ``scope`` (it never awaits: one step completes it)."""
    if proxy is None:
        return scope
    step = proxy(scope, None, None)
    try:
        step.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    step.close()
    raise RuntimeError("the proxy-header middleware awaited")


def chatd_protocol(seconds: float, rt: Runtime) -> type[HttpToolsProtocol]:
    proxy: list[Any] = []  # built on first use, from uvicorn's settings

    class ChatdHttpProtocol(HttpToolsProtocol):
        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._deadline: asyncio.TimerHandle | None = self.loop.call_later(
                seconds, self._headers_too_slow)

        def on_headers_complete(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None
            super().connection_lost(exc)

        def _headers_too_slow(self) -> None:
            self._deadline = None
            if not self.transport.is_closing():
                self.transport.close()

        def handle_websocket_upgrade(self) -> None:
            self.connections.discard(self)
            if not proxy:
                config = self.config
                proxy.append(ProxyHeadersMiddleware(_scope_of, config.forwarded_allow_ips)
                             if config.proxy_headers else None)
            scope = _as_the_app_sees_it(proxy[0], {
                "type": "websocket", "scheme": "wss" if self.scheme == "https" else "ws",
                "client": self.client, "headers": self.headers})
            path = self.url.split(b"?", 1)[0].decode("latin-1")
            upgrade(rt, scope, path, self.transport, self.connections)

    return ChatdHttpProtocol
