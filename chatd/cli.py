"""The ``chatd`` command: serve, agents, export, purge.

Each subcommand parses its flags, builds ``Settings`` once (``config.load``), and turns every
expected failure into one line on stderr and exit status 2 (bad setting) or 1 (cannot run).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, AsyncIterator, Sequence

from .config import ConfigError, Settings, load
from .embedded import DataDir, EmbeddedError, EmbeddedRedis


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--redis-url", help="external Redis (default: embedded, in --data-dir)")
    p.add_argument("--data-dir", help="where the embedded Redis keeps its files (./chatd-data)")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="chatd", description="Live chat between citizens and gendarmes.")
    sub = top.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the server")
    serve.add_argument("--host", help="address to listen on (127.0.0.1)")
    serve.add_argument("--port", help="port to listen on (8000)")
    serve.add_argument("--workers", help="server processes sharing the Redis (1)")
    _common(serve)

    agents = sub.add_parser("agents", help="manage agent accounts")
    asub = agents.add_subparsers(dest="action", required=True)
    add = asub.add_parser("add", help="create an account")
    add.add_argument("login")
    add.add_argument("--name", required=True)
    add.add_argument("--role", default="agent", choices=("agent", "supervisor", "admin"))
    add.add_argument("--lang", default="fr", help="languages, comma-separated (fr)")
    add.add_argument("--topics", default="", help="topics, comma-separated (all)")
    add.add_argument("--capacity", type=int, default=3,
                     help="slots at once (3): a chat takes its topic's weight in slots "
                          "(violence: 2, the others: 1)")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    _common(add)
    lst = asub.add_parser("list", help="list accounts")
    _common(lst)
    dis = asub.add_parser("disable", help="disable an account and sign it out everywhere")
    dis.add_argument("login")
    _common(dis)

    export = sub.add_parser("export", help="closed chats as JSON Lines on stdout")
    export.add_argument("--since", help="only chats closed at or after this ISO date/time")
    export.add_argument("--session", help="only this session")
    export.add_argument("--with-files", metavar="DIR",
                        help="also write the chats' photos as DIR/<session>/<id>.jpg|png")
    _common(export)

    purge = sub.add_parser("purge", help="delete closed chats older than DAYS")
    purge.add_argument("--older-than", required=True, type=float, metavar="DAYS")
    _common(purge)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "serve":
            settings = load(host=args.host, port=args.port, workers=args.workers,
                            redis_url=args.redis_url, data_dir=args.data_dir)
            from .server import Supervisor, configure_logging

            configure_logging(settings)
            return Supervisor(settings).run()
        settings = load(redis_url=args.redis_url, data_dir=args.data_dir)
        return asyncio.run(_admin(settings, args))
    except ConfigError as exc:
        print(f"chatd: {exc}", file=sys.stderr)
        return 2
    except (EmbeddedError, AdminError) as exc:
        print(f"chatd: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


class AdminError(Exception):
    pass


@contextlib.asynccontextmanager
async def _store_for_admin(settings: Settings) -> AsyncIterator[Any]:
    """The deployment's store: on the configured Redis (any topology), a running server's
    embedded one, or the embedded one started for the duration of the command."""
    from redis.exceptions import RedisError

    from .store import open_store

    embedded = None
    data = None
    if settings.redis_url is not None:
        url = settings.redis_url
    else:
        data = DataDir(settings.data_dir)
        data.prepare()
        if data.try_lock():
            embedded = EmbeddedRedis(data)
            embedded.start()
        url = data.url()
    from .uploads.storage import open_storage

    store = open_store(url, settings, max_connections=4, retries=0)
    store.files = open_storage(settings)  # a purge deletes the chats' photos too
    try:
        try:
            await store.redis.ping()
        except (RedisError, OSError) as exc:
            raise AdminError(f"Redis unreachable: {exc}") from None
        yield store
    finally:
        await store.files.aclose()
        await store.aclose()
        if embedded is not None:
            embedded.stop()
        if data is not None:
            data.unlock()


async def _admin(settings: Settings, args: argparse.Namespace) -> int:
    from .auth import AccountError, Auth

    async with _store_for_admin(settings) as store:
        if args.command == "agents":
            auth = Auth(store, await store.shared_secret(settings.secret),
                        settings.agent_session_hours * 3600)
            try:
                return await _agents(auth, args)
            except AccountError as exc:
                raise AdminError(str(exc)) from None
        if args.command == "export":
            since = _parse_since(args.since) if args.since else 0
            async def chosen() -> AsyncIterator[str]:
                if args.session:
                    yield args.session
                else:
                    async for sid in store.closed_sessions(since):
                        yield sid
            async for sid in chosen():
                t = await store.transcript(sid)
                if t is None:
                    if args.session:
                        raise AdminError(f"no session {sid!r}")
                    continue
                if t.get("state") != "closed":
                    if args.session:
                        raise AdminError(f"session {sid!r} is still open")
                    continue
                if args.with_files:
                    await _write_files(store, t, Path(args.with_files))
                sys.stdout.write(json.dumps(t, ensure_ascii=False) + "\n")
            return 0
        if args.command == "purge":
            if not args.older_than >= 0:
                raise AdminError("--older-than: expected a number of days >= 0")
            n = await store.purge(int((time.time() - args.older_than * 86400) * 1000))
            print(f"purged {n} closed session(s)")
            return 0
    return 2


async def _write_files(store: Any, transcript: dict[str, Any], root: Path) -> None:
    """The photos of an exported chat beside the JSON Lines: DIR/<session>/<id>.<ext>; each
    message's ``attachment`` gets ``file``, the path written relative to DIR."""
    from .uploads.storage import StorageError

    sid = transcript["session"]
    for m in transcript["messages"]:
        photo = m.get("attachment")
        if not photo:
            continue
        try:
            data = await store.files.get(sid, photo["id"])
        except StorageError as exc:
            raise AdminError(f"the photo store cannot be read: {exc}") from None
        if data is None:  # deleted meanwhile: the transcript says what it was all the same
            continue
        ext = "png" if photo["type"] == "image/png" else "jpg"
        path = root / sid / f"{photo['id']}.{ext}"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        except OSError as exc:
            raise AdminError(f"--with-files: cannot write {path}: {exc.strerror}") from None
        photo["file"] = f"{sid}/{path.name}"


async def _agents(auth: Any, args: argparse.Namespace) -> int:
    if args.action == "add":
        generated = not args.password_stdin
        password = secrets.token_urlsafe(15) if generated else sys.stdin.readline().rstrip("\n")
        langs = [x.strip() for x in args.lang.split(",") if x.strip()]
        topics = [x.strip() for x in args.topics.split(",") if x.strip()]
        acct = await auth.add_account(args.login, args.name, args.role, langs, topics,
                                      args.capacity, password)
        print(f"created {acct.login} ({acct.role}, capacity {acct.capacity})")
        if generated:
            print(f"password: {password}")
        return 0
    if args.action == "list":
        for a in await auth.accounts():
            state = "disabled" if a.disabled else "active"
            print(f"{a.login}\t{a.name}\t{a.role}\t{','.join(a.langs)}\t"
                  f"{','.join(a.topics) or '*'}\t{a.capacity}\t{state}")
        return 0
    await auth.disable(args.login)
    print(f"disabled {args.login}; its sessions are signed out")
    return 0


def _parse_since(raw: str) -> int:
    try:
        dt = datetime.fromisoformat(raw)
    except ValueError:
        raise AdminError(f"--since: expected an ISO date such as 2026-01-31, got {raw!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1000)
