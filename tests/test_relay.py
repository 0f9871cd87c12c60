"""Relay: messages are durable, numbered without gaps, delivered exactly once and in order,
across processes, disconnects, crashes and Redis restarts (docs/protocol.md, "Delivery")."""

from __future__ import annotations

import asyncio
import random
import sys
import time
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from chatd.store.keys import Keys
from conftest import connect_pair, make_agent, make_visitor, start_chat
from harness import Chatd, Client, RedisServer, eventually, get_once_listening, run

pytestmark = pytest.mark.asyncio


def seqs(client: Client, sid: str) -> list[int]:
    return [f["seq"] for f in client.frames if f.get("type") == "msg" and f.get("session") == sid]


async def test_relay_across_two_processes_in_both_directions(chatd_factory, redis_server) -> None:
    a = await chatd_factory()
    b = await chatd_factory()
    visitor, agent, sid = await connect_pair(a, redis_server.url, agent_server=b)
    for i in range(10):
        await visitor.send({"type": "send", "session": sid, "cid": f"v{i}", "text": f"visiteur {i}"})
        ack = await visitor.recv("ack", cid=f"v{i}")
        assert ack["session"] == sid
        await agent.send({"type": "send", "session": sid, "cid": f"a{i}", "text": f"gendarme {i}"})
        await agent.recv("ack", cid=f"a{i}")
    await agent.recv("msg", session=sid, cid="a9")  # the sender's own echo comes last
    await visitor.recv("msg", session=sid, cid="a9")
    assert seqs(visitor, sid) == list(range(1, 22))
    assert seqs(agent, sid)[-20:] == list(range(2, 22))  # seq 1 came in history
    texts = [f["text"] for f in visitor.frames if f.get("type") == "msg"]
    assert texts[1:3] == ["visiteur 0", "gendarme 0"]


async def test_resending_a_cid_never_creates_a_second_message(server: Chatd, redis_server) -> None:
    visitor, agent, sid = await connect_pair(server, redis_server.url)
    for _ in range(3):
        await visitor.send({"type": "send", "session": sid, "cid": "same", "text": "une fois"})
    acks = [await visitor.recv("ack", cid="same") for _ in range(3)]
    assert {a["seq"] for a in acks} == {2}
    await agent.recv("msg", cid="same")
    await agent.no_frame("msg", within=0.5, cid="same")
    await agent.send({"type": "send", "session": sid, "cid": "next", "text": "suite"})
    assert (await agent.recv("ack", cid="next"))["seq"] == 3


async def test_a_refused_message_does_not_use_up_its_cid_and_a_resend_after_the_close_is_acknowledged(
        server: Chatd, redis_server) -> None:
    """A message refused (a photo that is not this chat's) leaves its cid free: sent again
    without it, it is written. A resend of a message written before the chat closed is
    acknowledged with its seq (its first ack was lost); a new one is refused."""
    visitor, agent, sid = await connect_pair(server, redis_server.url)
    await visitor.send({"type": "send", "session": sid, "cid": "p1", "text": "voici",
                        "attachment": "no-such-photo"})
    assert (await visitor.recv("error", ref="p1"))["code"] == "not_found"
    await visitor.send({"type": "send", "session": sid, "cid": "p1", "text": "voici"})
    assert (await visitor.recv("ack", cid="p1"))["seq"] == 2
    assert (await agent.recv("msg", cid="p1"))["text"] == "voici"
    await agent.send({"type": "close", "session": sid, "disposition": "answered"})
    await visitor.recv("closed", session=sid)
    await visitor.send({"type": "send", "session": sid, "cid": "p1", "text": "voici"})
    assert (await visitor.recv("ack", cid="p1"))["seq"] == 2
    await visitor.send({"type": "send", "session": sid, "cid": "p2", "text": "encore"})
    assert (await visitor.recv("error", ref="p2"))["code"] == "conflict"


async def test_a_cid_belongs_to_its_sender(server: Chatd, redis_server) -> None:
    """The citizen's cid "1" and the gendarme's cid "1" are two messages; each side's resend
    of its own "1" is acknowledged with its own seq and creates nothing."""
    visitor, agent, sid = await connect_pair(server, redis_server.url)
    await visitor.send({"type": "send", "session": sid, "cid": "1", "text": "du citoyen"})
    assert (await visitor.recv("ack", cid="1"))["seq"] == 2
    await agent.send({"type": "send", "session": sid, "cid": "1", "text": "du gendarme"})
    assert (await agent.recv("ack", cid="1"))["seq"] == 3
    got = await visitor.recv("msg", session=sid, seq=3)
    assert got["text"] == "du gendarme" and got["from"] == "agent"
    await agent.send({"type": "send", "session": sid, "cid": "1", "text": "du gendarme"})
    assert (await agent.recv("ack", cid="1"))["seq"] == 3
    await visitor.send({"type": "send", "session": sid, "cid": "1", "text": "du citoyen"})
    assert (await visitor.recv("ack", cid="1"))["seq"] == 2
    await agent.send({"type": "note", "session": sid, "cid": "1", "text": "une note"})
    assert (await agent.recv("ack", cid="1"))["nseq"] == 1
    again = await make_visitor(server, token=visitor.token, resume={"session": sid, "after": 0})
    await again.recv("msg", session=sid, seq=3)
    assert [(f["from"], f["text"]) for f in again.frames if f["type"] == "msg"] == [
        ("visitor", "Bonjour"), ("visitor", "du citoyen"), ("agent", "du gendarme")]


async def test_notes_reach_agents_only(server: Chatd, redis_server) -> None:
    visitor, agent, sid = await connect_pair(server, redis_server.url)
    await agent.send({"type": "note", "session": sid, "cid": "n1", "text": "victime mineure ?"})
    ack = await agent.recv("ack", cid="n1")
    assert ack == {"type": "ack", "cid": "n1", "session": sid, "nseq": 1}
    note = await agent.recv("note", session=sid)
    assert note["from_agent"] == agent.login and note["nseq"] == 1
    await agent.send({"type": "send", "session": sid, "cid": "m1", "text": "visible"})
    assert (await visitor.recv("msg", cid="m1"))["seq"] == 2  # notes take no seq
    assert not [f for f in visitor.frames if f.get("type") == "note" or f.get("text") == "victime mineure ?"]
    await visitor.send({"type": "note", "session": sid, "text": "x"})
    assert (await visitor.recv("error"))["code"] == "bad_message"


async def test_typing_and_read_reach_the_other_side(server: Chatd, redis_server) -> None:
    visitor, agent, sid = await connect_pair(server, redis_server.url)
    await visitor.send({"type": "typing", "session": sid, "on": True})
    assert await agent.recv("typing", session=sid) == {
        "type": "typing", "session": sid, "from": "visitor", "on": True}
    await agent.send({"type": "read", "session": sid, "seq": 1})
    assert (await visitor.recv("read", session=sid))["from"] == "agent"
    await visitor.no_frame("typing", within=0.3)  # not echoed to the sender


async def test_visitor_resume_replays_exactly_what_was_missed(server: Chatd, redis_server) -> None:
    visitor, agent, sid = await connect_pair(server, redis_server.url)
    token = visitor.token
    await visitor.close()
    for i in range(30):
        await agent.send({"type": "send", "session": sid, "cid": f"a{i}", "text": f"m{i}"})
    await agent.recv("ack", cid="a29")
    back = await make_visitor(server, token=token, resume={"session": sid, "after": 10})
    await back.recv("msg", cid="a29")
    assert seqs(back, sid) == list(range(11, 32))
    await agent.send({"type": "send", "session": sid, "cid": "live", "text": "en direct"})
    assert (await back.recv("msg", cid="live"))["seq"] == 32


async def test_agent_resume_replays_each_session_and_its_notes(server: Chatd, redis_server) -> None:
    visitor, agent, sid = await connect_pair(server, redis_server.url)
    await agent.send({"type": "note", "session": sid, "cid": "n1", "text": "note"})
    await agent.recv("ack", cid="n1")
    await agent.close()
    for i in range(5):
        await visitor.send({"type": "send", "session": sid, "cid": f"v{i}", "text": f"v{i}"})
        await visitor.recv("ack", cid=f"v{i}")
    again = await Client.connect(server.ws, "agent")
    await again.send({"type": "hello", "token": agent.token, "resume": [{"session": sid, "after": 3}]})
    welcome = await again.recv("welcome")
    assert welcome["sessions"][0]["last_seq"] == 6
    await again.recv("msg", cid="v4")
    assert seqs(again, sid) == [4, 5, 6]
    await again.recv("note", session=sid, nseq=1)


async def test_resume_of_someone_elses_session_is_not_found(server: Chatd, redis_server) -> None:
    visitor, agent, sid = await connect_pair(server, redis_server.url)
    intruder = await make_visitor(server, resume={"session": sid, "after": 0})
    assert (await intruder.recv("error"))["code"] == "not_found"
    await intruder.send({"type": "send", "session": sid, "cid": "x", "text": "coucou"})
    assert (await intruder.recv("error"))["code"] == "not_found"
    await intruder.send({"type": "typing", "session": sid, "on": True})
    assert (await intruder.recv("error"))["code"] == "not_found"
    await agent.no_frame("msg", within=0.3, cid="x")
    assert not [f for f in intruder.frames if f.get("type") == "msg"]


async def test_messages_while_queued_reach_the_agent_in_history(server: Chatd, redis_server) -> None:
    visitor = await make_visitor(server)
    sid = await start_chat(visitor, text="premier")
    await visitor.send({"type": "send", "session": sid, "cid": "q1", "text": "deuxième"})
    assert (await visitor.recv("ack", cid="q1"))["seq"] == 2
    agent = await make_agent(server, redis_server.url)
    await agent.recv("offer", session=sid)
    await agent.send({"type": "accept", "session": sid})
    assigned = await agent.recv("assigned", session=sid)
    assert [(m["seq"], m["text"]) for m in assigned["history"]] == [(1, "premier"), (2, "deuxième")]


async def test_closed_chats_refuse_messages_and_accept_one_rating(server: Chatd, redis_server) -> None:
    visitor, agent, sid = await connect_pair(server, redis_server.url)
    await visitor.send({"type": "rate", "session": sid, "rating": 5})
    assert (await visitor.recv("error"))["code"] == "conflict"  # still open
    await agent.send({"type": "close", "session": sid, "disposition": "answered"})
    assert (await visitor.recv("closed"))["by"] == "agent"
    await visitor.send({"type": "send", "session": sid, "cid": "late", "text": "merci"})
    assert (await visitor.recv("error"))["code"] == "conflict"
    await visitor.send({"type": "rate", "session": sid, "rating": 5, "comment": "très bien"})
    await visitor.recv("rated", session=sid)
    await visitor.send({"type": "rate", "session": sid, "rating": 1})
    assert (await visitor.recv("error"))["code"] == "conflict"


async def test_a_slow_consumer_is_closed_and_resumes_without_loss(chatd_factory, redis_server) -> None:
    server = await chatd_factory(env={"CHATD_OUTBOX_SIZE": "16", "CHATD_SEND_TIMEOUT": "2"})
    agent = await make_agent(server, redis_server.url)
    visitor = await Client.connect(server.ws, "visitor", rcvbuf=4096)
    await visitor.send({"type": "hello"})
    token = (await visitor.recv("welcome"))["token"]
    sid = await start_chat(visitor)
    await agent.recv("offer", session=sid)
    await agent.send({"type": "accept", "session": sid})
    await agent.recv("assigned", session=sid)
    big = "x" * 4000
    n = 1500  # ~6 MB: more than the kernel buffers of the connection can hold
    for i in range(n):
        await agent.send({"type": "send", "session": sid, "cid": f"b{i}", "text": big})
    await agent.recv("ack", cid=f"b{n - 1}", timeout=20)
    # the visitor never read: the server gave up on it
    closed = await visitor.closed(timeout=10)
    assert closed.code in (4000, None)  # 4000 when the close frame got through, else aborted
    back = await make_visitor(server, token=token, resume={"session": sid, "after": 1})
    await back.recv("msg", cid=f"b{n - 1}", timeout=20)
    assert seqs(back, sid) == list(range(2, n + 2))


async def test_the_outbox_is_bounded_in_bytes_too(chatd_factory, redis_server) -> None:
    """Few frames but large ones (4,000 characters each): the byte bound closes the connection
    long before the frame bound (here out of reach) or the write deadline (a minute)."""
    server = await chatd_factory(env={"CHATD_OUTBOX_SIZE": "100000", "CHATD_OUTBOX_BYTES": "65536",
                                      "CHATD_SEND_TIMEOUT": "60"})
    agent = await make_agent(server, redis_server.url)
    visitor = await Client.connect(server.ws, "visitor", rcvbuf=4096)
    await visitor.send({"type": "hello"})
    await visitor.recv("welcome")
    sid = await start_chat(visitor)
    await agent.recv("offer", session=sid)
    await agent.send({"type": "accept", "session": sid})
    await agent.recv("assigned", session=sid)
    big = "é" * 4000
    for i in range(1500):  # 12 MB: more than the connection's kernel buffers hold
        await agent.send({"type": "send", "session": sid, "cid": f"b{i}", "text": big})
        await agent.recv("ack", cid=f"b{i}", timeout=30)  # the gendarme reads: only the
        agent.forget()  # citizen is slow (the gendarme's echoes are 12 MB too)
    await visitor.closed(timeout=15)  # never read, and closed well within the write deadline
    assert "outbox full (slow consumer)" in server.output()


async def test_crash_of_a_process_loses_and_duplicates_nothing(chatd_factory, redis_server) -> None:
    a = await chatd_factory()
    b = await chatd_factory()
    visitor, agent, sid = await connect_pair(a, redis_server.url, agent_server=b)
    clients = {"visitor": visitor, "agent": agent}
    sent: dict[str, list[str]] = {"visitor": [], "agent": []}
    acked: dict[str, set[str]] = {"visitor": set(), "agent": set()}
    total = 300
    crash_at = 120

    async def talk(role: str) -> None:
        i = 0
        while i < total:
            client = clients[role]
            cid = f"{role[0]}{i}"
            try:
                await client.send({"type": "send", "session": sid, "cid": cid, "text": f"{role} {i}"})
                if cid not in sent[role]:
                    sent[role].append(cid)
                await client.recv("ack", cid=cid, timeout=2)
                acked[role].add(cid)
                i += 1
            except Exception:
                if role == "visitor" and client is visitor:
                    await reconnect_visitor()
                else:
                    await asyncio.sleep(0.05)
            if role == "visitor" and i == crash_at and a.proc and a.proc.poll() is None:
                await a.kill()
            await asyncio.sleep(random.random() * 0.002)

    async def reconnect_visitor() -> None:
        """Like the widget: read what is left, then resume from the last seq shown."""
        try:
            await visitor.closed(timeout=5)
        except AssertionError:
            pass
        last = max(seqs(visitor, sid) or [0])
        clients["visitor"] = await make_visitor(b, token=visitor.token,
                                                resume={"session": sid, "after": last})

    await asyncio.gather(talk("visitor"), talk("agent"))
    v2 = clients["visitor"]
    for client in (v2, agent):
        for last in (f"a{total - 1}", f"v{total - 1}"):
            await client.recv("msg", cid=last, timeout=10)
    # the visitor's view, across both connections: every seq once, in order, no gaps
    v_seqs = seqs(visitor, sid) + seqs(v2, sid)
    assert v_seqs == list(range(1, 2 * total + 2))
    a_seqs = seqs(agent, sid)
    assert a_seqs == list(range(2, 2 * total + 2))
    cids = [f.get("cid") for f in agent.frames if f.get("type") == "msg"]
    assert sorted(c for c in cids if c) == sorted(sent["visitor"] + sent["agent"])
    assert len(acked["visitor"]) == len(acked["agent"]) == total


async def test_redis_outage_gives_unavailable_then_recovers(chatd_factory) -> None:
    own = RedisServer()
    await own.start()
    try:
        server = await chatd_factory(redis_url=own.url, env={"CHATD_TICK": "0.2"})
        visitor, agent, sid = await connect_pair(server, own.url)
        await own.stop(kill=True)
        await visitor.send({"type": "send", "session": sid, "cid": "o1", "text": "pendant la panne"})
        err = await visitor.recv("error", timeout=10)
        assert err["code"] == "unavailable" and err["ref"] == "o1"
        async with httpx.AsyncClient() as http:
            assert (await http.get(server.http + "/readyz")).status_code == 503
            assert (await http.get(server.http + "/healthz")).status_code == 200
            await own.start()  # same port, same AOF
            assert await eventually(server.ready, 30)

        async def resent_and_acknowledged() -> bool:  # as a client does after `unavailable`
            await visitor.send({"type": "send", "session": sid, "cid": "o1",
                                "text": "pendant la panne"})
            try:
                answer = await visitor.recv(timeout=2)
            except AssertionError:
                return False
            return answer["type"] == "ack" and answer["seq"] == 2
        assert await eventually(resent_and_acknowledged, 10)
        await agent.recv("msg", cid="o1", timeout=10)  # the listener came back by itself
    finally:
        await own.stop()


async def test_a_pubsub_link_cut_as_soon_as_made_is_retried_ever_more_slowly(chatd_factory) -> None:
    """Redis cuts the listener as soon as it subscribes (as it does a subscriber over its
    output buffer limit in a surge): each reconnection resyncs every chat, so they come
    further and further apart instead of ten a second; once the cuts stop, live delivery is
    back within the longest wait (2 s); once a link has held 10 s, a loss is retried at once."""
    own = RedisServer()
    await own.start()
    killer = aioredis.Redis.from_url(own.url)
    try:
        server = await chatd_factory(redis_url=own.url, env={"CHATD_TICK": "0.2"})
        visitor, agent, sid = await connect_pair(server, own.url)

        def reconnections() -> int:
            return server.output().count("pub/sub reconnected")

        before = reconnections()
        cut_until = time.monotonic() + 4
        while time.monotonic() < cut_until:
            await killer.client_kill_filter(_type="pubsub")
            await asyncio.sleep(0.02)
        cut = reconnections() - before  # one listener (one worker)
        assert 1 <= cut <= 6, cut  # at 0.1, 0.3, 0.7, 1.5, 3.1 s: five, not forty
        await visitor.send({"type": "send", "session": sid, "cid": "c", "text": "allô ?"})
        await agent.recv("msg", cid="c", timeout=5)  # the listener's last wait: 2 s
        assert time.monotonic() - cut_until < 3.5
        for i in range(3):  # live again, not by the periodic resync (every 5 s)
            sent = time.monotonic()
            await visitor.send({"type": "send", "session": sid, "cid": f"c{i}", "text": "là ?"})
            await agent.recv("msg", cid=f"c{i}", timeout=5)
            assert time.monotonic() - sent < 1.5, "delivered by the periodic check, not live"

        await asyncio.sleep(10.5)  # the link held: the next loss is a new outage
        before = reconnections()
        lost = time.monotonic()
        await killer.client_kill_filter(_type="pubsub")
        assert await eventually(lambda: reconnections() > before, 5)
        assert time.monotonic() - lost < 1.5, "retried after the longest wait, not at once"
    finally:
        await killer.aclose()
        await own.stop()


async def test_chatd_starts_while_redis_is_down_and_recovers(chatd_factory) -> None:
    own = RedisServer()
    try:
        server = await chatd_factory(redis_url=own.url, start=False, env={"CHATD_TICK": "0.2"})
        await server.start(wait_ready=False)
        async with httpx.AsyncClient() as http:
            r = await get_once_listening(http, server.http + "/healthz", 100)
            assert r.status_code == 200
            assert (await http.get(server.http + "/readyz")).status_code == 503
            assert await eventually(lambda: "Redis unreachable at start-up" in server.output(), 10)
            await own.start()
            assert await eventually(server.ready, 15)
        visitor = await make_visitor(server)
        await start_chat(visitor)
    finally:
        await own.stop()


async def test_a_message_whose_live_delivery_was_lost_is_backfilled_by_the_periodic_check(
        chatd_factory, redis_server, rds, prefix) -> None:
    """A message in the stream that pub/sub never delivered (written here without PUBLISH)
    reaches both sides by the periodic check, once, a moment after it was found missing."""
    server = await chatd_factory(env={"CHATD_HEARTBEAT_TTL": "3"})  # a check every second
    visitor, agent, sid = await connect_pair(server, redis_server.url)
    keys = Keys(prefix)
    seq = await rds.hincrby(keys.session(sid), "seq", 1)
    await rds.xadd(keys.messages(sid), {"from": "agent", "text": "lost on the way",
                                        "ts": int(time.time() * 1000)}, id=f"0-{seq}")
    await rds.hset(keys.session(sid), "dseq", seq)  # as a script does: it may be shown
    for side in (visitor, agent):
        got = await side.recv("msg", session=sid, seq=seq, timeout=6)
        assert got["text"] == "lost on the way"
    await asyncio.sleep(2.5)  # more checks pass: nothing is delivered twice
    for side in (visitor, agent):
        assert [f["seq"] for f in side.frames if f["type"] == "msg"].count(seq) == 1


async def seed_messages(rds: Any, keys: Keys, sid: str, n: int, text: str) -> None:
    """``n`` more visitor messages in a chat's stream, written directly (no live delivery)."""
    last = int(await rds.hget(keys.session(sid), "seq"))
    for start in range(last + 1, last + n + 1, 10_000):
        async with rds.pipeline(transaction=False) as pipe:
            for seq in range(start, min(start + 10_000, last + n + 1)):
                pipe.xadd(keys.messages(sid), {"from": "visitor", "text": text, "ts": 1},
                          id=f"0-{seq}")
            await pipe.execute()
    await rds.hset(keys.session(sid), mapping={"seq": last + n, "dseq": last + n})


LONG_TEXT = "Je vous écris au sujet de la plainte déposée la semaine dernière à la brigade. " * 2
READ_TRANSCRIPT = """
import sys, httpx
size = 0
with httpx.stream("GET", sys.argv[1], headers={"Authorization": "Bearer " + sys.argv[2]},
                  timeout=60) as r:
    for chunk in r.iter_raw():
        size += len(chunk)
print(r.status_code, size)
"""


async def test_opening_a_huge_transcript_holds_up_no_other_chat(chatd_factory, redis_server, rds,
                                                                prefix) -> None:
    """A supervisor reads a chat of 100,000 messages (twice) while another chat on the same
    process relays: no single Redis call takes 50 ms, and the other chat's relay p95 stays
    under 50 ms and no message waits 250 ms (the transcript is read and sent page by
    page)."""
    server = await chatd_factory()
    visitor, agent, huge = await connect_pair(server, redis_server.url)
    await visitor.close()  # written below without live delivery: nobody is behind the stream
    await agent.close()
    n = 100_000
    await seed_messages(rds, Keys(prefix), huge, n, LONG_TEXT)
    v2, a2, sid2 = await connect_pair(server, redis_server.url)
    sup = await make_agent(server, redis_server.url, role="supervisor", available=False)
    await rds.config_set("slowlog-log-slower-than", 50_000)  # µs (a page takes ~1 ms; the whole read took 100s of ms)
    await rds.slowlog_reset()
    received = 0

    async def supervisor_reads() -> None:
        """In another process, so that reading 45 MB does not slow this test's own loop,
        which measures the relay."""
        nonlocal received
        for _ in range(2):
            r = await run([sys.executable, "-c", READ_TRANSCRIPT,
                           f"{server.http}/api/sessions/{huge}", sup.token])  # type: ignore[attr-defined]
            status, size = r.stdout.split()
            assert status == "200", r.stderr
            received += int(size)

    reading = asyncio.ensure_future(supervisor_reads())
    latencies = []
    try:
        for i in range(150):
            sent = time.perf_counter()
            await v2.send({"type": "send", "session": sid2, "cid": f"p{i}", "text": "toujours là ?"})
            await a2.recv("msg", cid=f"p{i}", timeout=10)
            latencies.append(time.perf_counter() - sent)
            await asyncio.sleep(0.01)
        await reading
        slow = await rds.slowlog_get(10)
    finally:
        await rds.config_set("slowlog-log-slower-than", 10_000)
    assert received > 2 * n * len(LONG_TEXT), "the supervisor got the whole transcript twice"
    assert not slow, [(e["duration"], e["command"][:60]) for e in slow]
    latencies.sort()
    # the page-by-page read keeps every stall small: most messages see none (p95), and none
    # waits for a whole transcript (each read, in one piece, held the loop for 100s of ms);
    # the 99th of 150 samples is the 3rd slowest, which a busy machine alone can push past
    # 50 ms (seen once in a full run: 81 ms)
    p95 = latencies[int(len(latencies) * 0.95) - 1]
    assert p95 < 0.050, f"relay p95 {p95 * 1000:.0f} ms while a huge transcript was opened"
    assert latencies[-1] < 0.250, f"a message waited {latencies[-1] * 1000:.0f} ms"


async def test_a_long_chat_reaches_a_new_tab_in_pages(server: Chatd, redis_server, rds,
                                                      prefix) -> None:
    """`assigned` carries the first 200 messages; the rest follow as `msg`, in order, once."""
    visitor, agent, sid = await connect_pair(server, redis_server.url)
    await visitor.close()
    await agent.close()
    await seed_messages(rds, Keys(prefix), sid, 3000, "message")
    tab = await Client.connect(server.ws, "agent")
    await tab.send({"type": "hello", "token": agent.token})  # type: ignore[attr-defined]
    first = await tab.recv("assigned", session=sid, timeout=10)
    assert [m["seq"] for m in first["history"]] == list(range(1, 201))
    await tab.recv("msg", session=sid, seq=3001, timeout=20)
    assert seqs(tab, sid) == list(range(201, 3002))
