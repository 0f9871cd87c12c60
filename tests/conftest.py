"""Fixtures: one real redis-server for the run, chatd processes per test, helper clients."""

from __future__ import annotations

import asyncio
import itertools
import shutil
from typing import Any, AsyncIterator, Awaitable, Callable

import httpx
import pytest
import redis.asyncio as aioredis
from chatd.auth import Auth
from chatd.config import Settings
from chatd.store import open_store

from harness import Chatd, Client, RedisServer, new_prefix

PASSWORD = "correct horse battery"
_logins = itertools.count(1)


@pytest.fixture(scope="session")
async def redis_server() -> AsyncIterator[RedisServer]:
    server = RedisServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def prefix() -> str:
    return new_prefix()


CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Any]:
    """Debian's Chromium driven by Playwright (no browser download at run time)."""
    from playwright.async_api import async_playwright

    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    assert executable, "Debian's chromium is needed: ./scripts/test installs it"
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield b
        await b.close()


@pytest.fixture
async def rds(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    # decoded as chatd decodes (surrogate escapes: its records are msgpack, connect.py)
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True,
                                     encoding_errors="surrogateescape")
    yield client
    await client.aclose()


@pytest.fixture
async def chatd_factory(redis_server: RedisServer, prefix: str
                        ) -> AsyncIterator[Callable[..., Awaitable[Chatd]]]:
    """``await chatd_factory(env=…)``: a chatd process on the test Redis, ready (unless
    ``start=False``); every one is stopped after the test."""
    started: list[Chatd] = []

    async def make(env: dict[str, str] | None = None, start: bool = True, **kw: Any) -> Chatd:
        kw.setdefault("redis_url", redis_server.url)
        server = Chatd(prefix=prefix, env=env, **kw)
        started.append(server)
        return await server.start() if start else server

    yield make
    await asyncio.gather(*(server.stop() for server in started))


@pytest.fixture
async def server(chatd_factory: Callable[..., Awaitable[Chatd]]) -> Chatd:
    return await chatd_factory()


async def make_agent(server: Chatd, redis_url: str, login: str | None = None, *,
                     capacity: int = 3, langs: tuple[str, ...] = ("fr",),
                     topics: tuple[str, ...] = (), role: str = "agent",
                     available: bool = True, subprotocol: str = "chatd.v1.msgpack",
                     create: bool = True) -> Client:
    """Create an account (unless it exists), sign in over HTTP, connect, hello, set status."""
    login = login or f"agent{next(_logins)}"
    if create:
        await create_account(server, redis_url, login, capacity=capacity, langs=langs,
                             topics=topics, role=role)
    token = await login_token(server, login)
    agent = await Client.connect(server.ws, "agent", subprotocol)
    await agent.send({"type": "hello", "token": token})
    await agent.recv("welcome")
    agent.login = login  # type: ignore[attr-defined]
    agent.token = token  # type: ignore[attr-defined]
    if available:
        await agent.send({"type": "status", "status": "available"})
        await agent.recv("agent_status", status="available")
    return agent


async def create_account(server: Chatd, redis_url: str, login: str | None = None, *,
                         capacity: int = 3, langs: tuple[str, ...] = ("fr",),
                         topics: tuple[str, ...] = (), role: str = "agent",
                         name: str | None = None) -> str:
    """An account with the test PASSWORD, written the way `chatd agents add` writes it."""
    login = login or f"agent{next(_logins)}"
    store = open_store(redis_url, Settings(key_prefix=server.prefix))  # any topology
    try:
        auth = Auth(store, "unused-secret", 3600)
        await auth.add_account(login, name or login.title(), role, list(langs), list(topics),
                               capacity, PASSWORD)
    finally:
        await store.aclose()
    return login


async def login_token(server: Chatd, login: str) -> str:
    async with httpx.AsyncClient() as http:
        r = await http.post(server.http + "/api/login", json={"login": login, "password": PASSWORD})
        assert r.status_code == 200, r.text
        return str(r.json()["token"])


async def make_visitor(server: Chatd, subprotocol: str = "chatd.v1.msgpack",
                       token: str | None = None, resume: dict[str, Any] | None = None) -> Client:
    visitor = await Client.connect(server.ws, "visitor", subprotocol)
    hello: dict[str, Any] = {"type": "hello"}
    if token:
        hello["token"] = token
    if resume:
        hello["resume"] = resume
    await visitor.send(hello)
    welcome = await visitor.recv("welcome")
    visitor.token = welcome["token"]  # type: ignore[attr-defined]
    visitor.welcome = welcome  # type: ignore[attr-defined]
    return visitor


async def start_chat(visitor: Client, topic: str = "general", text: str | None = "Bonjour",
                     lang: str | None = None) -> str:
    frame: dict[str, Any] = {"type": "start", "topic": topic}
    if text:
        frame["text"] = text
    if lang:
        frame["lang"] = lang
    await visitor.send(frame)
    queued = await visitor.recv("queued")
    return str(queued["session"])


async def connect_pair(server: Chatd, redis_url: str, agent_server: Chatd | None = None,
                       **agent_kw: Any) -> tuple[Client, Client, str]:
    """A visitor and an agent in an active chat (the agent accepts the offer)."""
    agent = await make_agent(agent_server or server, redis_url, **agent_kw)
    visitor = await make_visitor(server)
    sid = await start_chat(visitor)
    offer = await agent.recv("offer", session=sid)
    await agent.send({"type": "accept", "session": offer["session"]})
    await agent.recv("assigned", session=sid)
    await visitor.recv("assigned", session=sid)
    return visitor, agent, sid
