"""``POST /api/uploads`` and ``GET /api/uploads/{id}[/thumb]`` (docs/protocol.md, "Photos").

Who may: the chat's parties only. A visitor proves who they are with their token (Bearer: the
widget runs on other sites, where chatd's cookie is not sent), a gendarme with their login
token (Bearer) or the console's cookie (then the CSRF rule of every cookie POST holds).
Everyone else, and every id that does not exist, gets the same 404: ids cannot be probed.
A photo is served as a download-proof, script-proof file: its stored type, no sniffing, a CSP
that forbids everything and sandboxes it, never cached by a shared cache.
"""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from protocol import ErrorCode
from protocol.fields import ID_RE

from ..api import (
    AUDIT_ONCE_PER_S,
    SECURITY_HEADERS,
    ApiError,
    bearer,
    check_same_origin,
    error_response,
    json_response,
)
from ..auth import Account
from ..store import transient
from ..store.uploads import Upload
from ..transport import cookie_token, own_origin
from ..visitor import NOT_FOUND
from .detect import sniff
from .form import SLACK, FormError, FormTooLarge, read_form
from .images import BadImage
from .pool import PoolFull
from .storage import StorageError

if TYPE_CHECKING:
    from ..runtime import Runtime

log = logging.getLogger("chatd.uploads")

#: an upload id: its chat's id, a dot, 128 random bits (URL-safe base64)
UPLOAD_ID = re.compile(r"([A-Za-z0-9_-]{1,40})\.([A-Za-z0-9_-]{22})\Z")
THUMB = ".thumb"
EXTENSION = {"image/jpeg": "jpg", "image/png": "png"}
#: a photo is data, never a page: even opened on its own, nothing in it may run or load
FILE_HEADERS = {"X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": "default-src 'none'; sandbox",
                "Cache-Control": "private, no-store", "Referrer-Policy": "no-referrer",
                "Cross-Origin-Resource-Policy": "same-origin"}


@dataclass(frozen=True, slots=True)
class Caller:
    side: str  # 'visitor' or 'agent'
    actor: str  # visitor id or login
    account: Account | None = None
    by_cookie: bool = False


class Photos:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.settings = rt.settings
        self.max_bytes = int(rt.settings.upload_max_mb * 1024 * 1024)

    # -- who is asking ------------------------------------------------------------------------

    async def caller(self, request: Request) -> Caller | None:
        auth = self.rt.auth
        assert auth is not None
        token = bearer(request)
        if token:
            vid = auth.visitor_of(token)
            if vid is not None:
                return Caller("visitor", vid)
            account = await auth.token_account(token)
            return Caller("agent", account.login, account) if account else None
        token = cookie_token(request.scope)
        account = await auth.token_account(token) if token else None
        return Caller("agent", account.login, account, by_cookie=True) if account else None

    def cors(self, request: Request) -> dict[str, str]:
        """The widget reads and sends photos from the sites that embed it (CORS, with the
        Bearer header; never the cookie)."""
        origin = (request.headers.get("origin") or "").lower()
        allowed = set(self.settings.allowed_origins) | {own_origin(self.rt, request.scope)}
        if origin and origin in allowed:
            return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
        return {"Vary": "Origin"}

    async def preflight(self, request: Request) -> Response:
        headers = self.cors(request)
        if "Access-Control-Allow-Origin" in headers:
            headers.update({"Access-Control-Allow-Methods": "GET, POST",
                            "Access-Control-Allow-Headers": "Authorization",
                            "Access-Control-Max-Age": "600"})
        return Response(status_code=204, headers={**SECURITY_HEADERS, **headers})

    def error(self, request: Request, code: ErrorCode, message: str) -> Response:
        response = error_response(ApiError(code, message))
        response.headers.update(self.cors(request))
        return response

    # -- POST /api/uploads --------------------------------------------------------------------

    async def upload(self, request: Request) -> Response:
        try:
            return await self._upload(request)
        except ApiError as exc:
            return self.error(request, exc.code, exc.message)
        except RedisError as exc:
            if not transient(exc):
                log.exception("an upload failed")
            return self.error(request, ErrorCode.UNAVAILABLE, "retry")

    async def _upload(self, request: Request) -> Response:
        rt = self.rt
        if not rt.ready.is_set() or rt.auth is None:
            raise ApiError(ErrorCode.UNAVAILABLE, "retry")
        who = await self.caller(request)
        if who is None:
            raise ApiError(ErrorCode.UNAUTHORIZED, "send your token (Authorization: Bearer)")
        if who.by_cookie:
            check_same_origin(rt, request)
        length = request.headers.get("content-length", "")
        limit = f"a photo may have at most {self.settings.upload_max_mb:g} MB"
        if length.isdigit() and int(length) > self.max_bytes + SLACK:
            raise ApiError(ErrorCode.TOO_LARGE, limit)
        try:
            form = await read_form(request.headers.get("content-type", ""), request.stream(),
                                   self.max_bytes)
        except FormTooLarge:
            raise ApiError(ErrorCode.TOO_LARGE, limit) from None
        except FormError as exc:
            raise ApiError(ErrorCode.BAD_MESSAGE, str(exc)) from None
        sid = form.session
        if not sid or not ID_RE.match(sid):
            raise ApiError(ErrorCode.BAD_MESSAGE, "missing field session (the chat's id)")
        if form.file is None:
            raise ApiError(ErrorCode.BAD_MESSAGE, "missing field file (the photo)")
        allowance = self.settings.uploads_per_session
        self._refuse(await rt.store.may_upload(sid, who.side, who.actor, allowance), allowance)
        mime = sniff(form.file[:64])
        if mime is None:
            raise ApiError(ErrorCode.UNSUPPORTED_TYPE,
                           "send a photo: JPEG, PNG, WebP or HEIC/HEIF")
        try:
            done = await rt.images.process(form.file, mime)
        except PoolFull:
            raise ApiError(ErrorCode.UNAVAILABLE, "too many photos at once: retry shortly") from None
        except BadImage as exc:
            raise ApiError(ErrorCode.BAD_IMAGE, str(exc)) from None
        upload_id = f"{sid}.{secrets.token_urlsafe(16)}"
        files = rt.files
        try:
            await files.put(sid, upload_id, done.data, done.type)
            await files.put(sid, upload_id + THUMB, done.thumb, done.type)
        except StorageError as exc:
            log.warning("a photo could not be stored: %s", exc)
            await self._forget(sid, upload_id)
            raise ApiError(ErrorCode.UNAVAILABLE, "the photo could not be stored: retry") from None
        upload = Upload(who.side, done.type, done.width, done.height, len(done.data),
                        done.thumb_width, done.thumb_height, rt.store.now_ms())
        try:
            status = await rt.store.add_upload(sid, who.side, who.actor, upload_id, upload,
                                               allowance)
        except BaseException:
            await self._forget(sid, upload_id)
            raise
        if status != "ok":
            await self._forget(sid, upload_id)
            self._refuse(status, allowance)
        return json_response({"id": upload_id, "type": done.type, "width": done.width,
                              "height": done.height, "bytes": len(done.data),
                              "thumb_width": done.thumb_width,
                              "thumb_height": done.thumb_height},
                             201, headers=self.cors(request))

    @staticmethod
    def _refuse(status: str, allowance: int) -> None:
        """upload_add.lua's answer (or may_upload's), as the sender is told."""
        if status == "full":
            raise ApiError(ErrorCode.RATE_LIMITED, f"at most {allowance} photos per chat")
        if status == "closed":
            raise ApiError(ErrorCode.CONFLICT, "this chat is closed")
        if status != "ok":
            raise ApiError(ErrorCode.NOT_FOUND, NOT_FOUND)

    async def _forget(self, sid: str, upload_id: str) -> None:
        """Files stored for a photo that will have no record."""
        for name in (upload_id, upload_id + THUMB):
            try:
                await self.rt.files.delete(sid, name)
            except Exception as exc:  # the sweep of the chat deletes it later
                log.warning("a refused photo's file stays until its chat is deleted: %s", exc)

    # -- GET /api/uploads/{id}[/thumb] --------------------------------------------------------

    async def file(self, request: Request) -> Response:
        try:
            return await self._file(request)
        except ApiError as exc:
            return self.error(request, exc.code, exc.message)
        except RedisError as exc:
            if not transient(exc):
                log.exception("a photo could not be read")
            return self.error(request, ErrorCode.UNAVAILABLE, "retry")

    async def _file(self, request: Request) -> Response:
        rt = self.rt
        if not rt.ready.is_set() or rt.auth is None:
            raise ApiError(ErrorCode.UNAVAILABLE, "retry")
        nowhere = ApiError(ErrorCode.NOT_FOUND, "no such photo, or not yours")
        upload_id = request.path_params["uid"]
        match = UPLOAD_ID.match(upload_id)
        if match is None:
            raise nowhere
        sid = match.group(1)
        who = await self.caller(request)
        found = await rt.store.upload(sid, upload_id) if who is not None else None
        if who is None or found is None:
            raise nowhere
        upload, parties = found
        download = request.query_params.get("download") == "1"
        account = who.account
        if who.side == "visitor":
            if parties.visitor != who.actor:
                raise nowhere
        elif account is not None and parties.agent == who.actor:
            if download:
                await rt.store.audit(who.actor, account.role, sid, "download")
        elif account is not None and account.is_supervisor:
            # a supervisor's view of a chat's photo is a reading of that chat: audited
            if download:
                await rt.store.audit(who.actor, account.role, sid, "download")
            else:
                await rt.store.audit_once(who.actor, account.role, sid, "attachment",
                                          AUDIT_ONCE_PER_S)
        else:
            raise nowhere
        thumb = request.url.path.endswith("/thumb")
        try:
            data = await rt.files.get(sid, upload_id + (THUMB if thumb else ""))
        except StorageError as exc:
            log.warning("a photo could not be read: %s", exc)
            raise ApiError(ErrorCode.UNAVAILABLE, "retry") from None
        if data is None:
            raise nowhere
        ext = EXTENSION.get(upload.type, "img")
        name = f"photo-{upload_id}{'-thumb' if thumb else ''}.{ext}"
        disposition = f'attachment; filename="{name}"' if download else "inline"
        return Response(data, media_type=upload.type,
                        headers={**SECURITY_HEADERS, **FILE_HEADERS, **self.cors(request),
                                 "Content-Disposition": disposition})


def routes(rt: Runtime) -> list[Any]:
    photos = Photos(rt)
    return [
        Route("/api/uploads", photos.upload, methods=["POST"]),
        Route("/api/uploads", photos.preflight, methods=["OPTIONS"]),
        Route("/api/uploads/{uid}", photos.file, methods=["GET"]),
        Route("/api/uploads/{uid}/thumb", photos.file, methods=["GET"]),
        Route("/api/uploads/{uid}", photos.preflight, methods=["OPTIONS"]),
        Route("/api/uploads/{uid}/thumb", photos.preflight, methods=["OPTIONS"]),
    ]
