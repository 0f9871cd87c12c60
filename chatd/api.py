"""The HTTP API behind the agent console and the supervisor page (docs/protocol.md, "HTTP").

Every endpoint names who may call it; a failure is an ``ApiError`` that becomes one JSON
``{error, message}`` with the protocol's codes, never a traceback. State-changing calls (POST,
DELETE) are refused from other origins (CSRF) and must carry JSON, which a cross-site form
cannot send without a pre-flight: with the SameSite=Strict cookie, that is three locks.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections import Counter
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from protocol import ErrorCode

from . import reports
from .auth import Account
from .canned import PERSONAL_MAX, CannedError, checked
from .store import Entry, NoteEntry, Store, transient
from .store.store import HISTORY_PAGE, message_of, note_of, transcript_head
from .transport import cookie_token, own_origin
from .visitor import NOT_FOUND

if TYPE_CHECKING:
    from .runtime import Runtime

log = logging.getLogger("chatd.api")

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}
#: a supervisor's reads of one chat within this many seconds share one audit entry
AUDIT_ONCE_PER_S = 600
_STATUS = {ErrorCode.BAD_MESSAGE: 400, ErrorCode.UNAUTHORIZED: 401, ErrorCode.FORBIDDEN: 403,
           ErrorCode.NOT_FOUND: 404, ErrorCode.CONFLICT: 409, ErrorCode.UNAVAILABLE: 503,
           ErrorCode.TOO_LARGE: 413, ErrorCode.RATE_LIMITED: 429,
           ErrorCode.UNSUPPORTED_TYPE: 415, ErrorCode.BAD_IMAGE: 422}


class ApiError(Exception):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(data, status_code=status,
                        headers={**SECURITY_HEADERS, "Cache-Control": "no-store", **(headers or {})})


def error_response(exc: ApiError) -> JSONResponse:
    return json_response({"error": exc.code.value, "message": exc.message}, _STATUS[exc.code])


def bearer(request: Request) -> str | None:
    value = request.headers.get("authorization", "")
    return value[7:] if value.lower().startswith("bearer ") else None


def request_token(request: Request) -> str | None:
    return bearer(request) or cookie_token(request.scope)


def check_same_origin(rt: Runtime, request: Request) -> None:
    """CSRF: a state-changing call from a browser must come from our own pages."""
    origin = request.headers.get("origin")
    if origin is None:
        ok = request.headers.get("sec-fetch-site") in (None, "same-origin", "none")
    else:
        ok = origin.lower() == own_origin(rt, request.scope)
    if not ok:
        raise ApiError(ErrorCode.FORBIDDEN, "cross-site request")


Handler = Callable[[Request, Account], Awaitable[Any]]


def endpoint(rt: Runtime, handler: Handler, supervisor: bool = False) -> Callable[[Request], Awaitable[Response]]:
    """Wraps a handler: signed-in account (cookie or Bearer), role, CSRF for writes, errors."""

    async def run(request: Request) -> Response:
        try:
            if request.method in ("POST", "PUT", "DELETE"):
                check_same_origin(rt, request)
                if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
                    raise ApiError(ErrorCode.BAD_MESSAGE, "send JSON (Content-Type: application/json)")
            if not rt.ready.is_set() or rt.auth is None:
                raise ApiError(ErrorCode.UNAVAILABLE, "retry")
            account = await rt.auth.token_account(request_token(request))
            if account is None:
                raise ApiError(ErrorCode.UNAUTHORIZED, "sign in first")
            if supervisor and not account.is_supervisor:
                raise ApiError(ErrorCode.FORBIDDEN, "supervisors only")
            result = await handler(request, account)
        except ApiError as exc:
            return error_response(exc)
        except RedisError as exc:
            if not transient(exc):
                log.exception("%s %s failed", request.method, request.url.path)
            return error_response(ApiError(ErrorCode.UNAVAILABLE, "retry"))
        if isinstance(result, Response):
            return result
        return json_response(result)

    return run


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > 16384:
        raise ApiError(ErrorCode.TOO_LARGE, "body over 16 KiB")
    try:
        body = json.loads(raw)
    except ValueError:
        raise ApiError(ErrorCode.BAD_MESSAGE, "body is not JSON") from None
    if not isinstance(body, dict):
        raise ApiError(ErrorCode.BAD_MESSAGE, "expected a JSON object")
    return body


async def _transcript_json(store: Store, sid: str, info: dict[str, str], first: list[Entry],
                           first_notes: list[NoteEntry]) -> AsyncIterator[bytes]:
    """``{facts…, "messages": [...], "notes": [...]}``, written as it is read."""
    head = json.dumps(transcript_head(sid, info), ensure_ascii=False)
    yield (head[:-1] + ', "messages": [').encode()

    async def pages(first: list[Any], more: Any) -> AsyncIterator[list[Any]]:
        yield first
        if len(first) >= HISTORY_PAGE:
            async for page in more:
                yield page
    sep = ""
    last = first[-1].seq if first else 0
    async for page in pages(first, store.history_pages(sid, last)):
        if page:
            yield (sep + ",".join(json.dumps(message_of(e), ensure_ascii=False)
                                  for e in page)).encode()
            sep = ","
    yield b'], "notes": ['
    sep = ""
    last = first_notes[-1].nseq if first_notes else 0
    async for page in pages(first_notes, store.notes_pages(sid, last)):
        if page:
            yield (sep + ",".join(json.dumps(note_of(n), ensure_ascii=False)
                                  for n in page)).encode()
            sep = ","
    yield b"]}"


def routes(rt: Runtime) -> list[Route]:
    store = rt.store

    async def me(request: Request, account: Account) -> Any:
        return {"agent": account.profile()}

    async def agents(request: Request, account: Account) -> Any:
        """Colleagues with their status and load: whom a chat can be transferred to."""
        return {"agents": await _agents(rt)}

    async def left_for_later(request: Request, account: Account) -> Any:
        """« À traiter »: the chats left for later still waiting, of the topics this gendarme
        takes (supervisors: all), the one left first first; one of them is taken with the
        agent frame `take` (docs/protocol.md, "Answers later")."""
        topics = None if account.is_supervisor or not account.topics else frozenset(account.topics)
        return {"chats": await store.left_for_later(topics), "server_time": store.now_ms()}

    async def sessions(request: Request, account: Account) -> Any:
        return {"sessions": await store.open_sessions(), "server_time": store.now_ms()}

    async def transcript(request: Request, account: Account) -> Any:
        """A chat's whole transcript: supervisors any chat, an agent only a chat they hold;
        ``?after=N&notes_after=M``: only messages with a greater seq and notes with a greater
        nseq (a supervisor following a chat live polls cheaply). Every read is written to the
        audit trail before anything is shown; a supervisor's reads of one chat share one
        entry per AUDIT_ONCE_PER_S. Streamed page by page: a transcript of 100,000 messages
        holds neither Redis nor this process's loop."""
        sid = request.path_params["sid"]
        after, notes_after = _cursor(request, "after"), _cursor(request, "notes_after")
        opened = await store.open_chat(sid, account.login, account.role, "transcript",
                                       any_chat=account.is_supervisor, after=after,
                                       notes_after=notes_after,
                                       once_per=AUDIT_ONCE_PER_S if account.is_supervisor else 0)
        if opened is None:
            raise ApiError(ErrorCode.NOT_FOUND, NOT_FOUND)
        return StreamingResponse(_transcript_json(store, sid, *opened),
                                 media_type="application/json",
                                 headers={**SECURITY_HEADERS, "Cache-Control": "no-store"})

    async def audit(request: Request, account: Account) -> Any:
        try:
            limit = min(1000, max(1, int(request.query_params.get("limit", "100"))))
        except ValueError:
            raise ApiError(ErrorCode.BAD_MESSAGE, "limit: a whole number") from None
        return {"entries": await store.audit_entries(limit, request.query_params.get("session"))}

    async def canned(request: Request, account: Account) -> Any:
        return {"shared": [c.public() for c in rt.settings.canned],
                "mine": await store.personal_canned(account.login)}

    async def canned_add(request: Request, account: Account) -> Any:
        body = await _body(request)
        try:
            answer = checked("p-" + secrets.token_hex(6), body.get("title"), body.get("text"))
        except CannedError as exc:
            raise ApiError(ErrorCode.BAD_MESSAGE, str(exc)) from None
        if not await store.add_canned(account.login, answer.public(), PERSONAL_MAX):
            raise ApiError(ErrorCode.CONFLICT, f"at most {PERSONAL_MAX} personal answers")
        return json_response(answer.public(), 201)

    async def canned_delete(request: Request, account: Account) -> Any:
        if not await store.delete_canned(account.login, request.path_params["cid"][:64]):
            raise ApiError(ErrorCode.NOT_FOUND, "no such answer")
        return {"ok": True}

    async def stats(request: Request, account: Account) -> Any:
        return await _stats(rt)

    async def report(request: Request, account: Account) -> Any:
        """Volumes, waits, abandons, first responses, ratings (docs/protocol.md, "Reports")."""
        try:
            first, last, by, fmt = reports.parse_query(
                dict(request.query_params), datetime.now(timezone.utc).date(),
                rt.settings.reports_days)
        except reports.ReportError as exc:
            raise ApiError(ErrorCode.BAD_MESSAGE, str(exc)) from None
        rows = await store.report(first, last, by)
        if fmt == "csv":
            name = f"chatd-{by}-{first.isoformat()}-{last.isoformat()}.csv"
            return Response(reports.to_csv(rows), media_type="text/csv; charset=utf-8",
                            headers={**SECURITY_HEADERS, "Cache-Control": "no-store",
                                     "Content-Disposition": f'attachment; filename="{name}"'})
        return {"from": first.isoformat(), "to": last.isoformat(), "by": by, "rows": rows}

    return [
        Route("/api/me", endpoint(rt, me)),
        Route("/api/agents", endpoint(rt, agents)),
        Route("/api/async", endpoint(rt, left_for_later)),
        Route("/api/sessions", endpoint(rt, sessions, supervisor=True)),
        Route("/api/sessions/{sid}", endpoint(rt, transcript)),
        Route("/api/audit", endpoint(rt, audit, supervisor=True)),
        Route("/api/canned", endpoint(rt, canned)),
        Route("/api/canned", endpoint(rt, canned_add), methods=["POST"]),
        Route("/api/canned/{cid}", endpoint(rt, canned_delete), methods=["DELETE"]),
        Route("/api/stats", endpoint(rt, stats, supervisor=True)),
        Route("/api/reports", endpoint(rt, report, supervisor=True)),
    ]


def _cursor(request: Request, name: str) -> int:
    raw = request.query_params.get(name, "0")
    if not raw.isdigit() or len(raw) > 16:
        raise ApiError(ErrorCode.BAD_MESSAGE, f"{name}: a whole number, 0 or more")
    return int(raw)


async def _agents(rt: Runtime) -> list[dict[str, Any]]:
    """Every enabled account with its live status and load. An agent who is not connected is
    `offline` with load 0 and their account's capacity: one never seen since this Redis
    started has no routing record (its figures read 0 / 0), and one whose heartbeat lapsed
    keeps in it the load of chats that wait for them during the grace period, which they are
    not answering."""
    assert rt.auth is not None  # endpoints run only once set up
    accounts = [a for a in await rt.auth.accounts() if not a.disabled]
    states = await rt.store.agent_states([a.login for a in accounts])
    out = []
    for a, (status, load, cap) in zip(accounts, states):
        if status == "offline":
            load, cap = 0, a.capacity
        out.append({"login": a.login, "name": a.name, "role": a.role, "status": status,
                    "load": load, "capacity": cap or a.capacity, "topics": list(a.topics),
                    "langs": list(a.langs)})
    return out


async def _stats(rt: Runtime) -> dict[str, Any]:
    now = rt.store.now_ms()
    waiting, oldest, open_chats, offers = await rt.store.queue_stats([t.id for t in rt.settings.topics])
    queues = {t: {"waiting": waiting[t],
                  "longest_wait_s": max(0, (now - oldest[t]) // 1000) if t in oldest else 0}
              for t in waiting}
    agents = await _agents(rt)
    by_status = Counter(a["status"] for a in agents)
    return {"queues": queues, "longest_wait_s": max((q["longest_wait_s"] for q in queues.values()), default=0),
            "agents_by_status": dict(by_status), "agents": agents, "active_sessions": open_chats,
            "offers_pending": offers, "server_time": now}
