"""uvicorn's HTTP protocol with a deadline on the request headers.

uvicorn keeps a TCP connection that never sends a request open indefinitely (measured: over 20 s
with no byte sent), so idle sockets could exhaust file descriptors before any per-address limit
applies (those count WebSockets after the handshake). This subclass closes a connection whose
request headers are not complete within ``CHATD_HANDSHAKE_TIMEOUT`` seconds.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def with_deadline(seconds: float) -> type[HttpToolsProtocol]:
    class DeadlineHttpToolsProtocol(HttpToolsProtocol):
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

    return DeadlineHttpToolsProtocol
