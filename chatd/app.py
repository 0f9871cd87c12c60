"""The ASGI application of one chatd process: HTTP routes on Starlette and a lifespan that owns
the Runtime (Redis clients, hub, loops). WebSockets never reach it: uvicorn's protocol hands the
upgrade to the transport module (``http_protocol``)."""

from __future__ import annotations

import contextlib
import json
import logging
from importlib import resources
from typing import Any, AsyncIterator

from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from protocol import CloseCode, ErrorCode

from . import api, metrics, supervised
from .api import (
    SECURITY_HEADERS,
    ApiError,
    bearer,
    check_same_origin,
    error_response,
    json_response,
)
from .config import Settings
from .runtime import Runtime
from .transport import COOKIE, Endpoint, cookie_token

log = logging.getLogger("chatd")

PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; "
            "base-uri 'none'; form-action 'self'")
# The console sets no inline style or script at all: nothing but our own files may run or style
CONSOLE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
               "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


def _web(name: str) -> bytes:
    data = resources.files("chatd").joinpath("web", name).read_bytes()
    if name == "widget.js":  # the codes are defined once, in protocol/, and exported here
        codes = {"ErrorCode": {c.name: c.value for c in ErrorCode},
                 "CloseCode": {c.name: int(c) for c in CloseCode}}
        data = data.replace(b"__CHATD_CODES__", json.dumps(codes).encode())
    return data


def create_app(settings: Settings, redis_url: str) -> Any:
    rt = Runtime(settings, redis_url)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        from .agent import AgentHandlers
        from .visitor import VisitorHandlers

        rt.handlers = {"visitor": VisitorHandlers(rt), "agent": AgentHandlers(rt)}
        rt.endpoint = Endpoint(rt)
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
        if not (rt.ready.is_set() and await rt.redis_answers()):
            return PlainTextResponse("redis unreachable", status_code=503)
        down = supervised.failing()
        if down:  # e.g. matching or live delivery keeps failing on this process
            return PlainTextResponse("failing: " + ", ".join(down), status_code=503)
        return PlainTextResponse("ready")

    async def metrics_endpoint(request: Request) -> Response:
        body, media = metrics.render()
        return Response(body, media_type=media)

    async def topics(request: Request) -> Response:
        # read by the widget from the pages that embed it: those origins may (CORS)
        headers = {"Vary": "Origin"}
        origin = (request.headers.get("origin") or "").lower()
        if origin and origin in settings.allowed_origins:
            headers["Access-Control-Allow-Origin"] = origin
        return json_response([t.public(settings.retention_days) for t in settings.topics],
                             headers=headers)

    async def login(request: Request) -> Response:
        try:
            check_same_origin(rt, request)
        except ApiError as exc:
            return error_response(exc)
        if not rt.ready.is_set() or rt.auth is None:
            return json_response({"error": "unavailable", "message": "retry"}, 503)
        try:
            body = json.loads(await request.body())
            user, password = body["login"], body["password"]
            if not isinstance(user, str) or not isinstance(password, str) or len(password) > 1024:
                raise ValueError
        except (ValueError, KeyError, TypeError):
            return json_response({"error": "bad_message", "message": "expected {login, password}"}, 400)
        try:
            result = await rt.auth.login(user, password)
        except RedisError:
            return json_response({"error": "unavailable", "message": "retry"}, 503)
        if result is None:
            log.info("failed sign-in")
            return json_response({"error": "unauthorized", "message": "wrong login or password"}, 401)
        token, account = result
        resp = json_response({"token": token, "agent": account.profile()})
        resp.set_cookie(COOKIE, token, max_age=int(settings.agent_session_hours * 3600),
                        httponly=True, samesite="strict", secure=settings.cookie_secure, path="/")
        return resp

    async def logout(request: Request) -> Response:
        try:
            check_same_origin(rt, request)
        except ApiError as exc:
            return error_response(exc)
        token = bearer(request) or cookie_token(request.scope)
        if token and rt.auth is not None:
            try:
                await rt.auth.logout(token)
            except RedisError:
                return json_response({"error": "unavailable", "message": "retry"}, 503)
        resp = json_response({"ok": True})
        resp.delete_cookie(COOKIE, path="/")
        return resp

    routes = [
        Route("/", static("index.html", "text/html; charset=utf-8", PAGE_CSP)),
        Route("/widget.js", static("widget.js", "text/javascript; charset=utf-8")),
        Route("/demo.css", static("demo.css", "text/css; charset=utf-8")),
        Route("/console/", static("console.html", "text/html; charset=utf-8", CONSOLE_CSP)),
        Route("/console/console.js", static("console.js", "text/javascript; charset=utf-8")),
        Route("/console/console.css", static("console.css", "text/css; charset=utf-8")),
        Route("/console/reports.js", static("reports.js", "text/javascript; charset=utf-8")),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics_endpoint),
        Route("/api/topics", topics),
        Route("/api/login", login, methods=["POST"]),
        Route("/api/logout", logout, methods=["POST"]),
        *api.routes(rt),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.runtime = rt  # WebSockets are served beside it: http_protocol, transport
    return app
