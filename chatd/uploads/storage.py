"""Where the photos' files are kept: one small interface, a directory or an S3 bucket.

Keys are ``<session>/<name>``: every file of a chat shares its prefix, so a chat's files go
together (``delete_session``) whatever else the store holds. Names are made by chatd (upload
ids, ``.thumb``), never taken from a request, and checked here again all the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Protocol

from ..config import Settings

_PART = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}\Z")


class StorageError(Exception):
    """The store could not do it now (unreachable, refused): the caller answers 503."""


class Storage(Protocol):
    async def put(self, sid: str, name: str, data: bytes, media_type: str) -> None: ...
    async def get(self, sid: str, name: str) -> bytes | None: ...
    async def delete(self, sid: str, name: str) -> None: ...
    async def delete_session(self, sid: str) -> None: ...
    async def names(self, sid: str) -> list[str]: ...
    async def aclose(self) -> None: ...


def _checked(*parts: str) -> str:
    for part in parts:
        if not _PART.match(part) or ".." in part:
            raise ValueError(f"not a storage name: {part!r}")
    return "/".join(parts)


def open_storage(settings: Settings) -> Storage:
    if settings.upload_store == "s3":
        return S3Storage(settings)
    return DirStorage(settings.upload_dir or settings.data_dir / "uploads")


class DirStorage:
    """A directory (``CHATD_UPLOAD_DIR``): ``<dir>/<session>/<name>``. Every chatd process of
    a deployment must see the same directory (one host, or a shared volume); several hosts
    use a bucket. Writes go to a temporary file renamed into place: a reader never sees half
    a photo. File work runs in a thread: a slow disk does not stall the event loop."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, sid: str, name: str | None = None) -> Path:
        return self.root / (_checked(sid, name) if name else _checked(sid))

    async def put(self, sid: str, name: str, data: bytes, media_type: str) -> None:
        path = self._path(sid, name)
        await asyncio.to_thread(self._write, path, data)

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    async def get(self, sid: str, name: str) -> bytes | None:
        path = self._path(sid, name)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            return None

    async def delete(self, sid: str, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(self._path(sid, name).unlink)

    async def delete_session(self, sid: str) -> None:
        path = self._path(sid)
        await asyncio.to_thread(_rmtree, path)

    async def names(self, sid: str) -> list[str]:
        path = self._path(sid)
        try:
            return sorted(p.name for p in await asyncio.to_thread(lambda: list(path.iterdir()))
                          if not p.name.startswith(".tmp-"))
        except FileNotFoundError:
            return []

    async def aclose(self) -> None:
        return None


def _rmtree(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(path)


class S3Storage:
    """An S3-compatible bucket (AWS, MinIO, Garage, a cloud provider's), through aiobotocore:
    ``s3://<bucket>/<session>/<name>``. The client is made at the first use and kept."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.bucket = settings.s3_bucket or ""
        self._client: Any = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._lock = asyncio.Lock()

    async def _s3(self) -> Any:
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is None:
                from aiobotocore.config import AioConfig
                from aiobotocore.session import get_session

                s = self.settings
                stack = contextlib.AsyncExitStack()
                self._client = await stack.enter_async_context(get_session().create_client(
                    "s3", region_name=s.s3_region, endpoint_url=s.s3_endpoint,
                    aws_access_key_id=s.s3_access_key, aws_secret_access_key=s.s3_secret_key,
                    config=AioConfig(connect_timeout=5, read_timeout=30,
                                     retries={"max_attempts": 3},
                                     s3={"addressing_style": "path"})))
                self._stack = stack
        return self._client

    async def _call(self, method: str, **kw: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        s3 = await self._s3()
        try:
            return await getattr(s3, method)(Bucket=self.bucket, **kw)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404", "NotFound"):
                return None
            raise StorageError(f"S3 {method}: {code or exc}") from None
        except (BotoCoreError, OSError, asyncio.TimeoutError) as exc:
            raise StorageError(f"S3 {method}: {type(exc).__name__}: {exc}") from None

    async def put(self, sid: str, name: str, data: bytes, media_type: str) -> None:
        await self._call("put_object", Key=_checked(sid, name), Body=data,
                         ContentType=media_type)

    async def get(self, sid: str, name: str) -> bytes | None:
        reply = await self._call("get_object", Key=_checked(sid, name))
        if reply is None:
            return None
        async with reply["Body"] as body:
            return bytes(await body.read())

    async def delete(self, sid: str, name: str) -> None:
        await self._call("delete_object", Key=_checked(sid, name))

    async def names(self, sid: str) -> list[str]:
        prefix = _checked(sid) + "/"
        out: list[str] = []
        token: str | None = None
        while True:
            kw: dict[str, Any] = {"Prefix": prefix}
            if token:
                kw["ContinuationToken"] = token
            page = await self._call("list_objects_v2", **kw) or {}
            out += [o["Key"][len(prefix):] for o in page.get("Contents", ())]
            token = page.get("NextContinuationToken")
            if not token:
                return sorted(out)

    async def delete_session(self, sid: str) -> None:
        names = await self.names(sid)
        for i in range(0, len(names), 1000):  # DeleteObjects takes at most 1000 keys
            await self._call("delete_objects", Delete={
                "Objects": [{"Key": f"{sid}/{n}"} for n in names[i:i + 1000]], "Quiet": True})

    async def aclose(self) -> None:
        if self._stack is not None:
            await self._stack.aclose()
            self._stack = None
            self._client = None
