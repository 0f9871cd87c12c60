"""A randomized run of the whole matching machinery across two processes, one of which is
killed with SIGKILL midway. Every assignment is recorded from the frames the clients receive,
and the guarantees of docs/protocol.md are checked on the record."""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict

import pytest
import websockets

from conftest import create_account, make_agent, make_visitor
from harness import Chatd, Client, Closed

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]

VISITORS = 200
AGENTS = 20
ENV = {"CHATD_TICK": "0.2", "CHATD_OFFER_TIMEOUT": "3", "CHATD_HEARTBEAT_TTL": "3",
       "CHATD_AGENT_GRACE": "20", "CHATD_VISITOR_GRACE": "60"}


class Record:
    def __init__(self) -> None:
        self.assigned: dict[str, set[str]] = defaultdict(set)  # session -> agents told "assigned"
        self.holding: dict[str, set[str]] = defaultdict(set)  # agent -> sessions held now
        self.max_held: dict[str, int] = defaultdict(int)
        self.capacity: dict[str, int] = {}
        self.closed: set[str] = set()
        self.visitor_sessions: dict[int, str] = {}


async def test_randomized_matching_with_a_crash(chatd_factory, redis_server, rds, prefix: str) -> None:
    rng = random.Random(20261128)
    a = await chatd_factory(env=ENV)
    b = await chatd_factory(env=ENV)
    servers = [a, b]
    rec = Record()
    stop = asyncio.Event()

    def alive() -> list[Chatd]:
        return [s for s in servers if s.proc and s.proc.poll() is None]

    async def agent_life(i: int) -> None:
        cap = rng.randint(1, 3)
        await asyncio.sleep(rng.random() * 4)
        await create_account(servers[0], redis_server.url, f"st{i}", capacity=cap)
        while True:  # the process may die during sign-in: another one will do
            try:
                client = await make_agent(rng.choice(alive()), redis_server.url, login=f"st{i}",
                                          capacity=cap, create=False)
                break
            except Exception:
                await asyncio.sleep(0.1)
        rec.capacity[client.login] = cap  # type: ignore[attr-defined]
        login = client.login  # type: ignore[attr-defined]
        token = client.token  # type: ignore[attr-defined]
        held: dict[str, float] = {}  # session -> when to close it
        while not stop.is_set():
            try:
                frame = await client.recv(timeout=0.1)
            except AssertionError:
                frame = None
            except Closed:
                frame = None
                client = await reconnect_agent(login, token)
                continue
            now = time.monotonic()
            if frame is not None:
                kind = frame["type"]
                if kind == "offer":
                    sid = frame["session"]
                    answer = "decline" if rng.random() < 0.2 else "accept"
                    try:
                        await client.send({"type": answer, "session": sid})
                    except websockets.ConnectionClosed:  # its process just died: come back
                        client = await reconnect_agent(login, token)
                        continue
                elif kind == "assigned":
                    sid = frame["session"]
                    rec.assigned[sid].add(login)
                    rec.holding[login].add(sid)
                    rec.max_held[login] = max(rec.max_held[login], len(rec.holding[login]))
                    held.setdefault(sid, now + 0.3 + rng.random())
                elif kind in ("closed", "released"):
                    rec.holding[login].discard(frame["session"])
                    held.pop(frame["session"], None)
            for sid, due in list(held.items()):
                if due <= now:
                    del held[sid]
                    rec.holding[login].discard(sid)  # ends before the server frees the slot
                    try:
                        await client.send({"type": "close", "session": sid, "disposition": "answered"})
                    except Exception:
                        pass
            if rng.random() < 0.003:  # a flaky network: drop and come back
                await client.close()
                client = await reconnect_agent(login, token)

    async def reconnect_agent(login: str, token: str) -> Client:
        while True:
            try:
                srv = rng.choice(alive())
                c = await Client.connect(srv.ws, "agent")
                await c.send({"type": "hello", "token": token})
                await c.recv("welcome")
                await c.send({"type": "status", "status": "available"})
                return c
            except Exception:
                await asyncio.sleep(0.1)

    async def visitor_life(i: int) -> None:
        await asyncio.sleep(rng.random() * 8)
        token = None
        while True:  # the process may die under us: retry, never starting a second chat
            try:
                v = await make_visitor(rng.choice(alive()), token=token)
                token = v.token  # type: ignore[attr-defined]
                known = v.welcome["sessions"]  # type: ignore[attr-defined]
                if known:
                    sid = known[0]["session"]
                    if known[0]["state"] == "closed":
                        rec.visitor_sessions[i] = sid
                        rec.closed.add(sid)
                        return
                    break
                await v.send({"type": "start", "topic": "general", "text": f"visiteur {i}"})
                sid = (await v.recv("queued", timeout=10))["session"]
                break
            except Exception:  # refused, reset mid-handshake (InvalidMessage), timed out: retry
                await asyncio.sleep(0.1)
        rec.visitor_sessions[i] = sid
        while not stop.is_set():
            try:
                frame = await v.recv(timeout=0.2)
                if frame["type"] == "closed":
                    rec.closed.add(sid)
                    return
                if rng.random() < 0.01:
                    await v.close()
                    raise Closed(None, "drop")
            except AssertionError:
                continue
            except Closed:
                while not stop.is_set():
                    try:
                        v = await make_visitor(rng.choice(alive()), token=token,
                                               resume={"session": sid, "after": 0})
                        if any(s["state"] == "closed" for s in v.welcome["sessions"]):  # type: ignore[attr-defined]
                            rec.closed.add(sid)  # closed while we were away
                            return
                        break
                    except Exception:
                        await asyncio.sleep(0.1)

    async def chaos() -> None:
        await asyncio.sleep(5)
        await a.kill()

    tasks = [asyncio.create_task(agent_life(i)) for i in range(AGENTS)]
    tasks += [asyncio.create_task(visitor_life(i)) for i in range(VISITORS)]
    tasks.append(asyncio.create_task(chaos()))
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and len(rec.closed) < VISITORS:
        await asyncio.sleep(0.5)
    stop.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert not [r for r in results if isinstance(r, BaseException)], "a simulated client died"

    print(f"served {len(rec.closed)} of {VISITORS} in {time.monotonic() - deadline + 90:.1f} s")
    # never two agents for one visitor
    doubles = {sid: agents for sid, agents in rec.assigned.items() if len(agents) > 1}
    assert not doubles
    # never over capacity
    over = {login: n for login, n in rec.max_held.items() if n > rec.capacity[login]}
    assert not over
    # everyone served or still waiting: none lost
    states = {}
    for sid in rec.visitor_sessions.values():
        states[sid] = await rds.hgetall(f"{prefix}:s:{{{sid}}}")
    lost = [sid for sid, h in states.items() if h.get("state") not in ("closed", "queued", "offered", "active")]
    assert not lost, {sid: states[sid] for sid in lost}
    assert len(rec.visitor_sessions) == VISITORS
    served = [sid for sid, h in states.items() if h.get("state") == "closed"]
    assert len(served) >= VISITORS * 0.9, f"only {len(served)} of {VISITORS} served"
    # first come, first served: a visitor never offered before cannot be passed over
    offered = sorted((int(h["created"]), int(h["offer_order"]), sid)
                     for sid, h in states.items() if h.get("offer_order"))
    inversions = [(x, y) for x, y in zip(offered, offered[1:])
                  if x[0] < y[0] and x[1] > y[1]]
    assert not inversions
