"""The ASGI application of one chatd process: HTTP routes on Starlette, WebSockets on the
transport module, and a lifespan that owns the Runtime (Redis clients, hub, loops)."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from importlib import resources
from typing import Any, AsyncIterator

from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from protocol import CloseCode, ErrorCode

from . import metrics
from .config import Settings
from .runtime import Runtime
from .transport import COOKIE, cookie_token, own_origin, websocket_endpoint

log = logging.getLogger("chatd")

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}
PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
            "base-uri 'none'; form-action 'self'")


def _web(name: str) -> bytes:
    data = resources.files("chatd").joinpath("web", name).read_bytes()
    if name == "widget.js":  # the codes are defined once, in protocol/, and exported here
        codes = {"ErrorCode": {c.name: c.value for c in ErrorCode},
                 "CloseCode": {c.name: int(c) for c in CloseCode}}
        data = data.replace(b"__CHATD_CODES__", json.dumps(codes).encode())
    return data


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(data, status_code=status,
                        headers={**SECURITY_HEADERS, "Cache-Control": "no-store", **(headers or {})})


def create_app(settings: Settings, redis_url: str) -> Any:
    rt = Runtime(settings, redis_url)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        from .agent import AgentHandlers
        from .visitor import VisitorHandlers

        rt.handlers = {"visitor": VisitorHandlers(rt), "agent": AgentHandlers(rt)}
        await rt.start()
        try:
            yield
        finally:
            await rt.stop()

    def static(name: str, media: str, csp: str | None = None) -> Any:
        body = _web(name)  # read once: these files do not change while chatd runs

        async def endpoint(request: Request) -> Response:
            headers = {**SECURITY_HEADERS, "Cache-Control": "no-cache"}
            if csp:
                headers["Content-Security-Policy"] = csp
            if name.endswith(".js"):
                headers.pop("X-Frame-Options")
                headers["Cross-Origin-Resource-Policy"] = "cross-origin"
            return Response(body, media_type=media, headers=headers)
        return endpoint

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(request: Request) -> Response:
        if rt.ready.is_set() and await rt.redis_answers():
            return PlainTextResponse("ready")
        return PlainTextResponse("redis unreachable", status_code=503)

    async def metrics_endpoint(request: Request) -> Response:
        body, media = metrics.render()
        return Response(body, media_type=media)

    async def topics(request: Request) -> Response:
        return _json([t.public() for t in settings.topics])

    def same_origin(request: Request) -> bool:
        """CSRF: a state-changing call from a browser must come from our own pages."""
        origin = request.headers.get("origin")
        if origin is None:
            return request.headers.get("sec-fetch-site") in (None, "same-origin", "none")
        return origin.lower() == own_origin(rt, request.scope)

    async def login(request: Request) -> Response:
        if not same_origin(request):
            return _json({"error": "forbidden", "message": "cross-site request"}, 403)
        if not rt.ready.is_set() or rt.auth is None:
            return _json({"error": "unavailable", "message": "retry"}, 503)
        try:
            body = json.loads(await request.body())
            user, password = body["login"], body["password"]
            if not isinstance(user, str) or not isinstance(password, str) or len(password) > 1024:
                raise ValueError
        except (ValueError, KeyError, TypeError):
            return _json({"error": "bad_message", "message": "expected {login, password}"}, 400)
        try:
            result = await rt.auth.login(user, password)
        except RedisError:
            return _json({"error": "unavailable", "message": "retry"}, 503)
        if result is None:
            log.info("failed sign-in")
            return _json({"error": "unauthorized", "message": "wrong login or password"}, 401)
        token, account = result
        resp = _json({"token": token, "agent": account.profile()})
        resp.set_cookie(COOKIE, token, max_age=int(settings.agent_session_hours * 3600),
                        httponly=True, samesite="strict", secure=settings.cookie_secure, path="/")
        return resp

    async def logout(request: Request) -> Response:
        if not same_origin(request):
            return _json({"error": "forbidden", "message": "cross-site request"}, 403)
        token = _bearer(request) or cookie_token(request.scope)
        if token and rt.auth is not None:
            try:
                await rt.auth.logout(token)
            except RedisError:
                return _json({"error": "unavailable", "message": "retry"}, 503)
        resp = _json({"ok": True})
        resp.delete_cookie(COOKIE, path="/")
        return resp

    async def stats(request: Request) -> Response:
        token = _bearer(request) or cookie_token(request.scope)
        try:
            account = await rt.auth.token_account(token) if rt.auth else None
            if account is None:
                return _json({"error": "unauthorized", "message": "sign in first"}, 401)
            if not account.is_supervisor:
                return _json({"error": "forbidden", "message": "supervisors only"}, 403)
            return _json(await _stats(rt))
        except RedisError:
            return _json({"error": "unavailable", "message": "retry"}, 503)

    routes = [
        Route("/", static("index.html", "text/html; charset=utf-8", PAGE_CSP)),
        Route("/widget.js", static("widget.js", "text/javascript; charset=utf-8")),
        Route("/demo.css", static("demo.css", "text/css; charset=utf-8")),
        Route("/console/", static("console.html", "text/html; charset=utf-8", PAGE_CSP)),
        Route("/console/console.js", static("console.js", "text/javascript; charset=utf-8")),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics_endpoint),
        Route("/api/topics", topics),
        Route("/api/login", login, methods=["POST"]),
        Route("/api/logout", logout, methods=["POST"]),
        Route("/api/stats", stats),
    ]
    http_app = Starlette(routes=routes, lifespan=lifespan)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            await websocket_endpoint(rt, scope, receive, send)
        else:
            await http_app(scope, receive, send)

    app.runtime = rt  # type: ignore[attr-defined]
    return app


def _bearer(request: Request) -> str | None:
    value = request.headers.get("authorization", "")
    return value[7:] if value.lower().startswith("bearer ") else None


async def _stats(rt: Runtime) -> dict[str, Any]:
    keys = rt.store.keys
    r = rt.redis
    now = int(time.time() * 1000)
    queues = {}
    async with r.pipeline(transaction=False) as pipe:
        for t in rt.settings.topics:
            pipe.zcard(keys.queue(t.id))
            pipe.zrange(keys.queue(t.id), 0, 0)
        res = await pipe.execute()
    longest = 0
    for i, t in enumerate(rt.settings.topics):
        count, head = res[2 * i], res[2 * i + 1]
        wait = 0
        if head:
            created = await r.hget(keys.session(head[0]), "created")
            wait = max(0, (now - int(created or now)) // 1000)
        longest = max(longest, wait)
        queues[t.id] = {"waiting": count, "longest_wait_s": wait}
    logins = sorted(await r.smembers(keys.accounts))
    by_status: dict[str, int] = {}
    agents = []
    for login in logins:
        st = await r.hgetall(keys.agent(login))
        status = st.get("status", "offline")
        by_status[status] = by_status.get(status, 0) + 1
        agents.append({"login": login, "status": status, "load": int(st.get("load", 0) or 0),
                       "capacity": int(st.get("cap", 0) or 0)})
    return {"queues": queues, "longest_wait_s": longest, "agents_by_status": by_status,
            "agents": agents, "active_sessions": await r.zcard(keys.open),
            "offers_pending": await r.zcard(keys.offers), "server_time": now}
