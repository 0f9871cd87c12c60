"""Redis without a single point of failure: Sentinel by URL, acks that wait for replicas, a
failover during a chat, a silent link, a Redis that comes back empty, and a process whose clock
is off (docs/operations.md, "Redis"). Real topologies of Debian's redis-server 7 (primary,
replica, three Sentinels), real chatd processes, a real freezable TCP proxy."""

from __future__ import annotations

import asyncio
import glob
import os
import sys
import time
from typing import Any, AsyncIterator

import httpx
import pytest
import redis.exceptions
import websockets

from chatd.config import Settings
from chatd.store import open_store
from chatd.store.connect import command_client
from conftest import PASSWORD, create_account, make_agent, make_visitor, start_chat
from harness import Chatd, Client, Closed, RedisServer, eventually, new_prefix, run
from loadtest.topology import Sentinels, Single

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]


@pytest.fixture
async def sentinels() -> AsyncIterator[Sentinels]:
    async with Sentinels() as topo:
        yield topo  # type: ignore[misc]


@pytest.fixture
async def single() -> AsyncIterator[Single]:
    async with Single() as topo:
        yield topo  # type: ignore[misc]


@pytest.fixture
async def servers() -> AsyncIterator[list[Chatd]]:
    started: list[Chatd] = []
    yield started
    await asyncio.gather(*(s.stop() for s in started))


async def serve(started: list[Chatd], url: str, prefix: str, **kw: Any) -> Chatd:
    server = Chatd(redis_url=url, prefix=prefix, **kw)
    started.append(server)
    return await server.start()


class Side:
    """One party of a chat that keeps talking whatever happens: it resends a message until it
    is acknowledged (same cid), reconnects and resumes from the last seq it saw, and records
    everything, so that the test can check the guarantees afterwards."""

    def __init__(self, role: str, server: Chatd, client: Client, sid: str, token: str) -> None:
        self.role, self.server, self.client, self.sid, self.token = role, server, client, sid, token
        self.acked: dict[str, int] = {}  # cid -> seq
        self.seen: dict[int, tuple[str, str]] = {}  # seq -> (from, text), as first shown
        self.order: list[int] = []  # seqs in the order they arrived
        self.changed: list[int] = []  # a seq shown again with other content: taken back

    def record(self) -> None:
        for f in self.client.frames:
            if f.get("type") == "msg" and f.get("session") == self.sid:
                self._saw(f["seq"], f["from"], f["text"])
            elif f.get("type") == "assigned" and self.role == "agent":
                for h in f.get("history", ()):
                    self._saw(h["seq"], h["from"], h["text"])
        self.client.forget()

    def _saw(self, seq: int, sender: str, text: str) -> None:
        self.order.append(seq)
        first = self.seen.setdefault(seq, (sender, text))
        if first != (sender, text):
            self.changed.append(seq)

    async def caught_up(self, seq: int, timeout: float) -> None:
        self.record()
        if seq not in self.seen:
            await self.client.recv("msg", session=self.sid, seq=seq, timeout=timeout)
            self.record()

    async def reconnect(self) -> None:
        self.record()
        after = max(self.seen, default=0)
        while True:
            try:
                self.client = await Client.connect(self.server.ws, self.role)
                if self.role == "visitor":
                    await self.client.send({"type": "hello", "token": self.token,
                                            "resume": {"session": self.sid, "after": after}})
                else:
                    await self.client.send({"type": "hello", "token": self.token,
                                            "resume": [{"session": self.sid, "after": after}]})
                await self.client.recv("welcome", timeout=10)
                return
            except (OSError, Closed, AssertionError, websockets.WebSocketException):
                await asyncio.sleep(0.2)

    async def say(self, cid: str, text: str, deadline: float) -> None:
        """Sends until acknowledged: after `unavailable`, or no answer, the same cid again;
        after a lost connection, on a new one that resumes."""
        while time.monotonic() < deadline:
            try:
                await self.client.send({"type": "send", "session": self.sid, "cid": cid,
                                        "text": text})
                while True:
                    frame = await self.client.recv(timeout=8)
                    if frame["type"] == "ack" and frame["cid"] == cid:
                        self.acked[cid] = frame["seq"]
                        return
                    if frame["type"] == "error" and frame.get("ref") == cid:
                        assert frame["code"] == "unavailable", frame
                        await asyncio.sleep(0.2)
                        break
            except AssertionError as exc:
                if "within" not in str(exc):  # not a timeout: a wrong answer
                    raise
            except (Closed, OSError, websockets.ConnectionClosed):
                await self.reconnect()
        raise AssertionError(f"{self.role}: {cid} never acknowledged")


async def transcript(url: str, prefix: str, sid: str) -> list[tuple[int, str, str, str]]:
    store = open_store(url, Settings(key_prefix=prefix))
    try:
        return [(e.seq, e.sender, e.cid, e.text)
                async for page in store.history_pages(sid) for e in page]
    finally:
        await store.aclose()


def check(sides: list[Side], final: list[tuple[int, str, str, str]]) -> None:
    """Nothing acknowledged lost, nothing twice, nothing out of order, no seq taken back."""
    by_seq = {seq: (sender, cid, text) for seq, sender, cid, text in final}
    assert [s for s, *_ in final] == list(range(1, len(final) + 1)), "gaps in the transcript"
    for side in sides:
        side.record()
        for cid, seq in side.acked.items():
            assert seq in by_seq and by_seq[seq][1] == cid, f"acknowledged {cid}@{seq} lost"
        cids = [cid for _, sender, cid, _ in final if cid and sender == side.role]
        assert len(cids) == len(set(cids)), f"{side.role}: a message stored twice"
        assert not side.changed, f"{side.role}: seqs shown with other content {side.changed}"
        for seq, (sender, text) in side.seen.items():
            assert by_seq[seq][0] == sender and by_seq[seq][2] == text, f"seq {seq} taken back"
        # in order and once, across reconnects too (each resumes after the last seq seen)
        assert side.order == sorted(set(side.order)), f"{side.role}: out of order or twice"


async def test_sentinel_url_serves_and_the_admin_commands_use_it(sentinels: Sentinels,
                                                                 servers: list[Chatd]) -> None:
    prefix = new_prefix()
    server = await serve(servers, sentinels.url, prefix)
    env = {**os.environ, "CHATD_KEY_PREFIX": prefix, "CHATD_REDIS_URL": sentinels.url}
    r = await run([sys.executable, "-m", "chatd", "agents", "add", "leroy",
                   "--name", "Maréchal des logis Leroy", "--password-stdin"],
                  stdin=PASSWORD + "\n", env=env)
    assert r.returncode == 0, r.stderr
    agent = await make_agent(server, sentinels.url, login="leroy", create=False)
    visitor = await make_visitor(server)
    sid = await start_chat(visitor, text="Bonjour")
    await agent.recv("offer", session=sid)
    await agent.send({"type": "accept", "session": sid})
    assigned = await visitor.recv("assigned", session=sid)
    assert assigned["agent_name"] == "Maréchal des logis Leroy"
    await agent.send({"type": "close", "session": sid, "disposition": "answered"})
    await visitor.recv("closed", session=sid)
    listed = await run([sys.executable, "-m", "chatd", "agents", "list"], env=env)
    assert listed.stdout.startswith("leroy\tMaréchal des logis Leroy")
    exported = await run([sys.executable, "-m", "chatd", "export"], env=env)
    assert sid in exported.stdout and "Bonjour" in exported.stdout
    purged = await run([sys.executable, "-m", "chatd", "purge", "--older-than", "0"], env=env)
    assert "purged 1" in purged.stdout, purged.stderr
    async with httpx.AsyncClient() as http:
        assert (await http.get(server.http + "/readyz")).status_code == 200


async def test_a_chat_goes_on_across_a_failover_and_no_acknowledged_message_is_lost(
        sentinels: Sentinels, servers: list[Chatd]) -> None:
    """CHATD_ACK_REPLICAS=1: an ack means the replica holds the message. The primary is killed
    in the middle of a conversation (the citizen on one process, the gendarme on another, both
    writing), the Sentinels promote the replica, the old primary comes back as a replica."""
    prefix = new_prefix()
    env = {"CHATD_ACK_REPLICAS": "1", "CHATD_TICK": "0.2", "CHATD_HEARTBEAT_TTL": "6"}
    a = await serve(servers, sentinels.url, prefix, env=env)
    b = await serve(servers, sentinels.url, prefix, env=env)
    agent = await make_agent(b, sentinels.url)
    v = await make_visitor(a)
    sid = await start_chat(v, text="Bonjour")
    await agent.recv("offer", session=sid)
    await agent.send({"type": "accept", "session": sid})
    await agent.recv("assigned", session=sid)
    visitor = Side("visitor", a, v, sid, v.token)  # type: ignore[attr-defined]
    gendarme = Side("agent", b, agent, sid, agent.token)  # type: ignore[attr-defined]
    deadline = time.monotonic() + 90

    async def talk(side: Side, n: int) -> None:
        for i in range(n):
            await side.say(f"{side.role[0]}{i}", f"{side.role} {i}", deadline)
            await asyncio.sleep(0.05)

    async def fault() -> None:
        await asyncio.sleep(1.5)
        sentinels.freeze(internal=True)  # replication stalls: writes pile up on the primary
        await asyncio.sleep(0.5)  # alone; an ack that did not wait would be lost with it
        old = await sentinels.kill_primary()
        await sentinels.restart(old)

    await asyncio.gather(talk(visitor, 60), talk(gendarme, 60), fault())
    last = max(max(visitor.acked.values()), max(gendarme.acked.values()))
    for side in (visitor, gendarme):  # each side ends up with everything, live or backfilled
        await side.caught_up(last, 20)
    check([visitor, gendarme], await transcript(sentinels.url, prefix, sid))
    assert len(visitor.acked) == len(gendarme.acked) == 60
    assert "NotReplicated" in a.output() + b.output() or "pub/sub lost" in a.output() + b.output()


async def test_a_frozen_link_is_detected_and_delivery_resumes(single: Single,
                                                             servers: list[Chatd]) -> None:
    """The links between chatd and Redis stop forwarding without closing (a stale NAT entry):
    within 10 s chatd gives them up, connects again and delivers what was written meanwhile."""
    prefix = new_prefix()
    server = await serve(servers, single.url, prefix, env={"CHATD_TICK": "0.2"})
    agent = await make_agent(server, single.url)
    v = await make_visitor(server)
    sid = await start_chat(v, text="Bonjour")
    await agent.recv("offer", session=sid)
    await agent.send({"type": "accept", "session": sid})
    await agent.recv("assigned", session=sid)
    frozen_at = time.monotonic()
    single.freeze()
    visitor = Side("visitor", server, v, sid, v.token)  # type: ignore[attr-defined]
    await visitor.say("after", "toujours là ?", time.monotonic() + 30)
    await agent.recv("msg", cid="after", timeout=20)
    healed = time.monotonic() - frozen_at
    assert healed < 20, f"delivery resumed only after {healed:.0f} s"
    assert await eventually(lambda: "pub/sub silent" in server.output(), 12 - healed), \
        "the silent link was never noticed"
    detected = [ln for ln in server.output().splitlines() if "pub/sub silent" in ln]
    assert float(detected[0].split("silent for ")[1].split(" s")[0]) <= 10
    for i in range(3):  # and live delivery is back (not only the periodic backfill)
        sent = time.monotonic()
        await visitor.say(f"live{i}", "et maintenant ?", time.monotonic() + 10)
        await agent.recv("msg", cid=f"live{i}", timeout=10)
        assert time.monotonic() - sent < 2.0, "delivered by the periodic check, not live"


async def test_an_emptied_redis_is_seeded_again_and_matching_resumes(servers: list[Chatd]) -> None:
    """FLUSHALL under two processes with a generated secret: the open chat is closed with
    reason `lost` on both sides (not silence), topics are back, the gendarme (still connected)
    is available again and gets the next citizen, and both processes share one secret."""
    own = RedisServer()
    await own.start()
    try:
        prefix = new_prefix()
        env = {"CHATD_TICK": "0.2"}
        a = Chatd(redis_url=own.url, prefix=prefix, env=env)
        b = Chatd(redis_url=own.url, prefix=prefix, env=env)
        for server in (a, b):
            server.env.pop("CHATD_SECRET")  # generated, kept in Redis
            servers.append(server)
            await server.start()
        await create_account(a, own.url, "martin", capacity=2)
        agent = await make_agent(b, own.url, login="martin", create=False)
        visitor = await make_visitor(a)
        sid = await start_chat(visitor)
        await agent.recv("offer", session=sid)
        await agent.send({"type": "accept", "session": sid})
        await agent.recv("assigned", session=sid)
        client = command_client(own.url)
        try:
            await client.flushall()
        finally:
            await client.aclose()
        assert (await visitor.recv("closed", session=sid, timeout=10))["reason"] == "lost"
        assert (await agent.recv("closed", session=sid, timeout=10))["reason"] == "lost"
        assert await eventually(lambda: "seeding topics and settings again" in a.output() + b.output(), 10)
        newcomer = await make_visitor(a, token=visitor.token)  # the token signed before
        assert not [f for f in newcomer.frames if f["type"] == "error"], "one secret for all"
        other = await make_visitor(b, token=newcomer.token)
        assert not [f for f in other.frames if f["type"] == "error"]
        sid2 = await start_chat(newcomer, text="encore moi")
        await agent.recv("offer", session=sid2, timeout=10)  # matching works again
    finally:
        await own.stop()


async def test_a_clock_30_s_ahead_changes_nothing(redis_server: RedisServer, servers: list[Chatd],
                                                 rds: Any) -> None:
    """One process's clock runs 30 s ahead (faketime), beside one on time: its agents do not
    flap offline, citizens are served in the order they arrived whichever process took them,
    and waits are measured right."""
    prefix = new_prefix()
    env = {"CHATD_TICK": "0.2", "CHATD_HEARTBEAT_TTL": "3"}
    libs = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
    assert libs, "Debian's faketime is needed: ./scripts/test installs it"
    # the library itself (the faketime command would stand between the test and the server)
    ahead = await serve(servers, redis_server.url, prefix,
                        env={**env, "LD_PRELOAD": libs[0], "FAKETIME": "+30s"})
    on_time = await serve(servers, redis_server.url, prefix, env=env)
    agents = [await make_agent(ahead, redis_server.url, capacity=1, available=False),
              await make_agent(on_time, redis_server.url, capacity=1, available=False)]
    sids = []
    for i in range(6):  # arrivals alternate between the two processes
        v = await make_visitor(ahead if i % 2 else on_time)
        sids.append(await start_chat(v, text=f"visiteur {i}"))
        await asyncio.sleep(0.1)
    # one gendarme free at a time, in turn on each process (capacity 1: a close frees the
    # slot), so that which chat comes next is the queue's choice alone
    offered: list[str] = []
    holding: list[str] = ["", ""]

    async def take(i: int) -> None:
        agent = agents[i]
        if holding[i]:
            await agent.send({"type": "close", "session": holding[i],
                              "disposition": "answered"})
        else:
            await agent.send({"type": "status", "status": "available"})
        offer = await agent.recv("offer", timeout=10)
        assert offer["waited_s"] < 10, "a wait measured with the wrong clock"
        await agent.send({"type": "accept", "session": offer["session"]})
        await agent.recv("assigned", session=offer["session"])
        offered.append(offer["session"])
        holding[i] = offer["session"]
    for n in range(6):
        await take(n % 2)
    assert offered == sids, "first come, first served, whichever clock took them"
    await asyncio.sleep(4)  # more than a heartbeat TTL
    for server in (ahead, on_time):
        assert "agent(s) offline" not in server.output()


async def test_commands_retry_through_a_restart_but_scripts_never_replay() -> None:
    """A Redis restart under a pooled client: plain commands are sent again when their
    connection failed (the asyncio Retry, which awaits), scripts are not (their caller answers
    `unavailable` and the client resends the same cid: a blind replay could run one twice)."""
    own = RedisServer()
    await own.start()
    plain = command_client(own.url, retries=10)
    scripts = command_client(own.url, retries=0)
    try:
        await plain.set("k", "v")
        await scripts.ping()
        await own.stop()
        restart = asyncio.ensure_future(own.start())  # back within a fraction of a second
        assert await plain.get("k") == "v"  # AOF: the value survived; the command waited
        await restart
        await own.stop()
        with pytest.raises(redis.exceptions.ConnectionError):
            await scripts.ping()
    finally:
        await plain.aclose()
        await scripts.aclose()
        await own.stop()
