"""Redis Cluster: chats sharded over every primary, sharded pub/sub, a primary's SIGKILL during
a conversation, and operations cut short between their steps (docs/operations.md, "Redis
Cluster", "Interrupted operations"). A real cluster of Debian's redis-server 7: three
primaries with one replica each, made with ``redis-cli --cluster create``."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any, AsyncIterator

import pytest

from chatd.config import Settings
from chatd.store import open_store
from conftest import PASSWORD, make_agent, make_visitor, start_chat
from harness import Chatd, Client, RedisServer, eventually, new_prefix, run
from loadtest.topology import Cluster
from test_faults import Side, check, serve, transcript
from test_matching import positions_agree_with_zrank

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    async with Cluster() as topo:
        yield topo  # type: ignore[misc]


@pytest.fixture
async def servers() -> AsyncIterator[list[Chatd]]:
    started: list[Chatd] = []
    yield started
    await asyncio.gather(*(s.stop() for s in started))


def node_keys(node_port: int, pattern: str) -> list[str]:
    import redis

    r = redis.Redis(port=node_port, decode_responses=True)
    try:
        return list(r.scan_iter(pattern, count=1000))
    finally:
        r.close()


async def test_chats_spread_over_every_primary_and_the_admin_commands_work(
        cluster: Cluster, servers: list[Chatd]) -> None:
    prefix = new_prefix()
    server = await serve(servers, cluster.url, prefix, env={"CHATD_TICK": "0.2"})
    env = {**os.environ, "CHATD_KEY_PREFIX": prefix, "CHATD_REDIS_URL": cluster.url}
    r = await run([sys.executable, "-m", "chatd", "agents", "add", "leroy",
                   "--name", "Maréchal des logis Leroy", "--capacity", "20",
                   "--password-stdin"], stdin=PASSWORD + "\n", env=env)
    assert r.returncode == 0, r.stderr
    agent = await make_agent(server, cluster.url, login="leroy", create=False)
    sids = []
    for i in range(12):
        v = await make_visitor(server)
        sid = await start_chat(v, text=f"citoyen {i}")
        await agent.recv("offer", session=sid, timeout=10)
        await agent.send({"type": "accept", "session": sid})
        await agent.recv("assigned", session=sid)
        await v.recv("assigned", session=sid)
        await v.send({"type": "send", "session": sid, "cid": "1", "text": "merci"})
        await agent.recv("msg", session=sid, cid="1")  # sharded pub/sub, whichever shard
        sids.append(sid)
    holders = {n.name: [s for s in sids if node_keys(n.port, f"{prefix}:s:{{{s}}}")]
               for n in cluster.primary_nodes()}
    assert len(holders) == 3 and all(holders.values()), holders  # every primary holds chats
    assert sum(len(v) for v in holders.values()) == 12
    await agent.send({"type": "close", "session": sids[0], "disposition": "answered"})
    await agent.recv("closed", session=sids[0])
    exported = await run([sys.executable, "-m", "chatd", "export"], env=env)
    assert sids[0] in exported.stdout and "citoyen 0" in exported.stdout


async def chat_across(servers: list[Chatd], url: str, prefix: str, env: dict[str, str]
                      ) -> tuple[Chatd, Chatd, Client, Client, str]:
    """Two processes, a citizen on the first and a gendarme on the second, in one chat."""
    a = await serve(servers, url, prefix, env=env)
    b = await serve(servers, url, prefix, env=env)
    agent = await make_agent(b, url)
    v = await make_visitor(a)
    sid = await start_chat(v, text="Bonjour")
    await agent.recv("offer", session=sid, timeout=10)
    await agent.send({"type": "accept", "session": sid})
    await agent.recv("assigned", session=sid)
    return a, b, v, agent, sid


async def test_a_chat_goes_on_across_a_primarys_sigkill_and_nothing_acknowledged_is_lost(
        cluster: Cluster, servers: list[Chatd]) -> None:
    """CHATD_ACK_REPLICAS=1 on a cluster: the primary that serves the chat is killed in the
    middle of a conversation, with replication stalled so that writes pile up on it alone;
    its replica takes over its slots; the old primary comes back as a replica."""
    prefix = new_prefix()
    env = {"CHATD_ACK_REPLICAS": "1", "CHATD_TICK": "0.2", "CHATD_HEARTBEAT_TTL": "6"}
    a, b, v, agent, sid = await chat_across(servers, cluster.url, prefix, env)
    visitor = Side("visitor", a, v, sid, v.token)  # type: ignore[attr-defined]
    gendarme = Side("agent", b, agent, sid, agent.token)  # type: ignore[attr-defined]
    deadline = time.monotonic() + 120
    store = open_store(cluster.url, Settings(key_prefix=prefix))
    await store.redis.initialize()
    victim_port = store.redis.get_node_from_key(store.keys.session(sid)).port
    await store.aclose()
    victim = next(n for n in cluster.nodes if cluster.front.get(n.port) == victim_port)

    async def talk(side: Side, n: int) -> None:
        for i in range(n):
            await side.say(f"{side.role[0]}{i}", f"{side.role} {i}", deadline)
            await asyncio.sleep(0.05)

    async def fault() -> None:
        await asyncio.sleep(1.5)
        cluster.freeze(internal=True)  # replication stalls: acks that did not wait would be lost
        await asyncio.sleep(0.5)
        victim.kill()
        await victim.wait_exit()
        await eventually(cluster._covered, 30)
        await cluster.restart(victim)

    await asyncio.gather(talk(visitor, 50), talk(gendarme, 50), fault())
    last = max(max(visitor.acked.values()), max(gendarme.acked.values()))
    for side in (visitor, gendarme):
        await side.caught_up(last, 30)
    check([visitor, gendarme], await transcript(cluster.url, prefix, sid))
    assert len(visitor.acked) == len(gendarme.acked) == 50


def owner(r: Any, slot: int) -> str:
    """The id of the node that ``r`` says serves ``slot`` (CLUSTER NODES, parsed by redis-py:
    slot ranges apart from the importing and migrating marks)."""
    for node in r.execute_command("CLUSTER NODES").values():
        if any(int(s[0]) <= slot <= int(s[-1]) for s in node["slots"]):
            return str(node["node_id"])
    return ""


def move_slot(cluster: Cluster, slot: int, src_front: int, dst_front: int,
              finish: bool = True) -> None:
    """A resharding of one slot, as `redis-cli --cluster reshard` does it: importing on the
    target, migrating on the source, its keys moved with MIGRATE, then (``finish``) every
    primary told; until then the source answers ASK for it."""
    import redis

    real = {front: port for port, front in cluster.front.items()}
    src_port, dst_port = real.get(src_front, src_front), real.get(dst_front, dst_front)
    src, dst = redis.Redis(port=src_port), redis.Redis(port=dst_port)
    others = [redis.Redis(port=n.port) for n in cluster.primary_nodes()
              if n.port not in (src_port, dst_port)]
    try:
        src_id, dst_id = src.execute_command("CLUSTER MYID"), dst.execute_command("CLUSTER MYID")
        if owner(src, slot) == src_id.decode():  # not half-moved already
            dst.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", src_id)
            src.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", dst_id)
        while keys := src.execute_command("CLUSTER GETKEYSINSLOT", slot, 100):
            src.execute_command("MIGRATE", "127.0.0.1", dst_port, "", 0, 5000, "KEYS", *keys)
        if finish:
            for r in (dst, src, *others):
                r.execute_command("CLUSTER SETSLOT", slot, "NODE", dst_id)
            deadline = time.monotonic() + 20  # until every node says so, replicas too: a
            for node in [n for n in cluster.nodes if n.alive()]:  # client may ask any of them
                r = redis.Redis(port=node.port)
                try:
                    while owner(r, slot) != dst_id.decode():
                        assert time.monotonic() < deadline, f"{node.name} never learnt the move"
                        time.sleep(0.05)
                finally:
                    r.close()
    finally:
        for r in (src, dst, *others):
            r.close()


async def test_a_resharding_moves_a_chat_and_a_beat_and_the_chat_goes_on(
        cluster: Cluster, servers: list[Chatd]) -> None:
    """An operator moves slots between primaries (docs/operations.md, "Redis Cluster"): the
    slot of a chat in the middle of a conversation, keys and channel, and the slot of the
    channel one node's listeners beat on. Each process follows its chat to the new node
    (Redis unsubscribes the channel where it was; nothing published meanwhile is missed: the
    resync reads the stream), and its listener on the old node beats on a channel that node
    still serves, rather than giving its link up every few seconds because its own beats no
    longer come back. The periodic resync is kept out of the way (a long heartbeat): what
    moves the chat is the resharding's own handling."""
    prefix = new_prefix()
    env = {"CHATD_TICK": "0.2", "CHATD_HEARTBEAT_TTL": "120"}
    a, b, v, agent, sid = await chat_across(servers, cluster.url, prefix, env)
    await v.recv("assigned", session=sid)
    await v.send({"type": "send", "session": sid, "cid": "v0", "text": "avant"})
    await agent.recv("msg", session=sid, cid="v0")
    store = open_store(cluster.url, Settings(key_prefix=prefix))
    try:
        await store.redis.initialize()
        chat_slot = store.redis.keyslot(store.keys.session(sid))
        home = store.redis.get_node_from_key(store.keys.session(sid))
        other = next(n for n in store.redis.get_primaries() if n.name != home.name)
        beat = store.beat_channel(store.redis, home)
        move_slot(cluster, chat_slot, home.port, other.port, finish=False)
        # half-moved: its keys are on the new node, the old one answers ASK; a message sent
        # now is refused as an outage (not a bug), and nothing of it is kept
        await v.send({"type": "send", "session": sid, "cid": "v1", "text": "citoyen 1"})
        refused = await v.recv("error", timeout=10)
        assert refused["code"] == "unavailable", refused
        move_slot(cluster, chat_slot, home.port, other.port)
        move_slot(cluster, store.redis.keyslot(beat), home.port, other.port)
        await store.redis.nodes_manager.initialize()
        assert store.redis.get_node_from_key(store.keys.session(sid)).name == other.name
    finally:
        await store.aclose()

    for i in range(1, 4):  # the chat on its new node, both ways, within seconds; the first
        # write of each process goes to the old node (MOVED) and is sent again where it lives:
        # acknowledged, not refused
        await v.send({"type": "send", "session": sid, "cid": f"v{i}", "text": f"citoyen {i}"})
        await v.recv("ack", cid=f"v{i}", timeout=3)
        await agent.recv("msg", session=sid, cid=f"v{i}", timeout=3)
        await agent.send({"type": "send", "session": sid, "cid": f"g{i}", "text": f"gendarme {i}"})
        await agent.recv("ack", cid=f"g{i}", timeout=3)
        await v.recv("msg", session=sid, cid=f"g{i}", timeout=3)
    await asyncio.sleep(10)  # longer than a listener waits for its own beat (6 s) before
    for i in range(4, 6):  # giving its link up: nobody does, and the chat still flows
        await v.send({"type": "send", "session": sid, "cid": f"v{i}", "text": f"citoyen {i}"})
        await agent.recv("msg", session=sid, cid=f"v{i}", timeout=3)
        await agent.send({"type": "send", "session": sid, "cid": f"g{i}", "text": f"gendarme {i}"})
        await v.recv("msg", session=sid, cid=f"g{i}", timeout=3)
    assert "Redis unavailable while handling send (TryAgainError" in a.output()
    assert [f for f in v.frames if f["type"] == "error"] == [refused]  # the half-moved slot's
    assert not [f for f in agent.frames if f["type"] == "error"]
    for server in (a, b):
        out = server.output()
        assert "went silent" not in out and "silent for" not in out and "Traceback" not in out
        assert f"the listener on {home.name} beats on" in out  # and no other was renewed
        assert "cluster slots moved: 1 channel(s) followed to their node; resyncing" in out
    seqs = [f["seq"] for f in v.frames if f.get("type") == "msg" and f.get("session") == sid]
    assert seqs == sorted(set(seqs)) and len(seqs) == 12  # Bonjour, v0..v5, g1..g5: once each


async def test_a_call_to_a_node_that_gave_its_slot_away_runs_once_where_the_slot_is_now(
        cluster: Cluster) -> None:
    """The pipelines' slot map is older than a resharding: a call answered MOVED did not run;
    it is sent again to the node that serves the slot now and its caller gets its reply (not
    an outage, and not run twice). A slot half-moved (ASK) is an outage for that call, until
    the operator finishes it."""
    from redis.exceptions import TryAgainError

    prefix = new_prefix()
    store = open_store(cluster.url, Settings(key_prefix=prefix))
    try:
        await store.redis.initialize()
        moved, half = f"{prefix}:t:{{moved}}", f"{prefix}:t:{{half}}"
        assert await store.scripts.command("INCR", moved) == 1
        assert await store.scripts.command("INCR", half) == 1
        ports = {}
        for key, finish in ((moved, True), (half, False)):
            node = store.redis.get_node_from_key(key)
            other = next(n for n in store.redis.get_primaries() if n.name != node.name)
            ports[key] = (node.port, other.port)
            move_slot(cluster, store.redis.keyslot(key), *ports[key], finish=finish)
        assert await store.scripts.command("INCR", moved) == 2  # MOVED, then run once there
        with pytest.raises(TryAgainError):
            await store.scripts.command("INCR", half)  # ASK: not run
        move_slot(cluster, store.redis.keyslot(half), *ports[half])
        assert await store.scripts.command("INCR", half) == 2
    finally:
        await store.aclose()


async def test_a_channel_refused_by_a_node_that_no_longer_serves_it_goes_back_to_its_owner(
        cluster: Cluster) -> None:
    """A listener asked on a stale slot map (a resharding just moved the slot) to subscribe a
    channel its node does not serve: Redis refuses it (MOVED), which ends that link. The
    channel is handed back to be subscribed where it lives, and the listener connects again
    with the rest: a stale map is not a bug that kills the process's pub/sub."""
    import redis
    from redis.asyncio import Redis
    from redis.crc import key_slot

    from chatd.fanout import Fanout

    node = cluster.primary_nodes()[0]
    sync = redis.Redis(port=node.port)
    try:
        me = sync.execute_command("CLUSTER MYID").decode()
        names = [f"t:{{c{i}}}:ch" for i in range(200)]
        here = [n for n in names if owner(sync, key_slot(n.encode())) == me]
        elsewhere = [n for n in names if owner(sync, key_slot(n.encode())) != me]
    finally:
        sync.close()

    async def resync() -> None:
        pass

    handed_back: list[str] = []
    listener = Fanout(Redis(port=node.port), here[0], lambda channel, event: None, resync,
                      sharded=True, on_moved=handed_back.append)
    await listener.start()
    try:
        assert await eventually(listener.connected.is_set, 10)
        await listener.subscribe(here[1])
        assert listener.live(here[1])
        await listener.subscribe(elsewhere[0])  # refused: MOVED
        assert await eventually(lambda: elsewhere[0] in handed_back, 10)
        assert await eventually(lambda: listener.live(here[1]), 10)  # connected again, with it
        assert elsewhere[0] not in listener.channels and here[1] not in handed_back
        assert listener._task is not None and not listener._task.done()
    finally:
        await listener.stop()


async def test_queue_positions_of_a_long_line_on_a_cluster(cluster: Cluster) -> None:
    store = open_store(cluster.url, Settings(key_prefix=new_prefix()))
    try:
        await positions_agree_with_zrank(store)
    finally:
        await store.aclose()


async def test_a_death_between_two_steps_is_finished_by_the_repair(
        redis_server: RedisServer, servers: list[Chatd], prefix: str) -> None:
    """What a process that dies between two steps leaves: a new chat only pending in the
    routing state; a close done in the chat's hash only; an acceptance the chat's hash never
    heard of. Each is made here with the store's own steps, as the dead process made it; a
    running chatd finishes each by itself."""
    server = await serve(servers, redis_server.url, prefix, env={"CHATD_TICK": "0.2"})
    agent = await make_agent(server, redis_server.url, capacity=5)
    store = open_store(redis_server.url, Settings(key_prefix=prefix))
    try:
        general = store.topics["general"]
        # every situation is made first, then each is seen repaired: the repair takes a step
        # as cut short once it is 10 s old (STALE_MS), so they are repaired together
        # 1. a new chat cut short after its routing record and its hash: never queued
        await store._route("route_create", "cut1", "vcut1", "general", "fr", general.priority,
                           general.weight)
        route = (await store.routes(["cut1"]))[0]
        await store._chat("session_create", "cut1", "vcut1", "general", "fr", route["created"],
                          0, "", "coupé")
        # 2. a new chat cut short before its hash: dropped, and its visitor freed
        await store._admit("cut2", "vcut2", 10)
        await store._route("route_create", "cut2", "vcut2", "general", "fr", general.priority,
                           general.weight)
        # 2b. the same, and its visitor comes back before the repair: a chat without its first
        # message is not theirs yet (the welcome does not list it); their start, sent again,
        # finishes it with its text
        v3 = await make_visitor(server)
        vid3 = v3.token.split(".")[1]  # type: ignore[attr-defined]
        await v3.close()
        await store._admit("cut3", vid3, 10)
        await store._route("route_create", "cut3", vid3, "general", "fr", general.priority,
                           general.weight)
        v3 = await make_visitor(server, token=v3.token)  # type: ignore[attr-defined]
        assert v3.welcome["sessions"] == []  # type: ignore[attr-defined]
        assert await start_chat(v3, text="coupé aussi") == "cut3"
        # 3. a close that reached the chat's hash only: its gendarme's slot is given back
        v = await make_visitor(server)
        sid = await start_chat(v)
        await agent.recv("offer", session=sid, timeout=10)
        await agent.send({"type": "accept", "session": sid})
        await agent.recv("assigned", session=sid)
        await store._chat("session_close", sid, "system", "", "visitor_left", "",
                          str(store.retention_ms), "", "")
        # 4. an acceptance whose chat's hash was never told: the gendarme could not write
        v2 = await make_visitor(server)
        sid2 = await start_chat(v2)
        await agent.recv("offer", session=sid2, timeout=10)
        reply = await store.scripts.run("accept", store.routing_keys, store.topic_list, sid2,
                                        agent.login, "Gendarme")  # type: ignore[attr-defined]
        assert reply.result == "ok" and reply.syncs  # ... and the process died here
        # a few seconds on, the repair (every 2 s) has not taken the close for cut short: a
        # live process can be that slow between its steps under load
        await asyncio.sleep(4)
        assert (await store.routes([sid]))[0] is not None
        assert "interrupted operation" not in server.output()

        offer = await agent.recv("offer", session="cut1", timeout=20)  # the repair queued it
        assert offer.get("preview") in (None, "coupé")

        async def dropped() -> bool:
            return (await store.routes(["cut2"]))[0] is None
        assert await eventually(dropped, 20)
        assert await store.redis.hget(store.keys.visitor("vcut2"), "open") in (None, "")
        offer = await agent.recv("offer", session="cut3", timeout=20)
        assert offer.get("preview") in (None, "coupé aussi")
        await v3.recv("msg", session="cut3", text="coupé aussi", timeout=5)

        async def released() -> bool:  # the chat gone from the gendarme's slots too
            record = (await store.agents([agent.login]))[0] or {}  # type: ignore[attr-defined]
            return (await store.routes([sid]))[0] is None and sid not in (record.get("held")
                                                                          or ())
        assert await eventually(released, 20)
        assert await store.redis.zscore(store.keys.closed, sid) is not None

        async def told() -> bool:
            return (await store.session(sid2)).get("agent") == agent.login  # type: ignore[attr-defined]
        assert await eventually(told, 25)
        await v2.recv("assigned", session=sid2, timeout=5)
        assert "interrupted operation" in server.output()
    finally:
        await store.aclose()
