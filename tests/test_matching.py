"""Matching: each citizen goes to exactly one available gendarme, in order, within capacity;
offers, declines, expiry, transfer, close, liveness (docs/protocol.md, "Matching")."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Awaitable, Callable

import httpx
import pytest

from conftest import make_agent, make_visitor, start_chat
from chatd.config import Settings
from chatd.store import Keys, Store
from harness import Chatd, Client, eventually

pytestmark = pytest.mark.asyncio

FAST = {"CHATD_TICK": "0.2"}


def fast_store(rds, prefix: str) -> Store:  # type: ignore[no-untyped-def]
    """A store on the test Redis, to read what the server wrote (its records are msgpack)."""
    return Store(rds, Settings(key_prefix=prefix))


@pytest.fixture
async def fast(chatd_factory) -> Chatd:
    return await chatd_factory(env=FAST)


async def test_accept_assigns_the_chat_to_both_sides(fast: Chatd, redis_server) -> None:
    agent = await make_agent(fast, redis_server.url, login="gend.martin")
    visitor = await make_visitor(fast)
    sid = await start_chat(visitor, "scam", "On m'a volé ma carte bancaire")
    offer = await agent.recv("offer", session=sid)
    assert offer["topic"] == "scam" and offer["lang"] == "fr"
    assert offer["expires_in_s"] == 30 and offer["preview"] == "On m'a volé ma carte bancaire"
    await agent.send({"type": "accept", "session": sid})
    assigned = await agent.recv("assigned", session=sid)
    assert [m["text"] for m in assigned["history"]] == ["On m'a volé ma carte bancaire"]
    assert assigned["visitor"]["topic"] == "scam"
    v_assigned = await visitor.recv("assigned", session=sid)
    assert v_assigned["agent_name"] == "Gend.Martin"


async def test_agents_start_away_and_get_no_offer_until_available(fast: Chatd, redis_server) -> None:
    agent = await make_agent(fast, redis_server.url, available=False)
    visitor = await make_visitor(fast)
    sid = await start_chat(visitor)
    await agent.no_frame("offer", within=1.0)
    await agent.send({"type": "status", "status": "available"})
    await agent.recv("offer", session=sid)


async def test_away_agents_get_no_new_offers(fast: Chatd, redis_server) -> None:
    agent = await make_agent(fast, redis_server.url)
    await agent.send({"type": "status", "status": "away"})
    await agent.recv("agent_status", status="away")
    visitor = await make_visitor(fast)
    await start_chat(visitor)
    await agent.no_frame("offer", within=1.0)


async def test_decline_puts_the_visitor_back_and_offers_the_next_agent(fast: Chatd, redis_server) -> None:
    a1 = await make_agent(fast, redis_server.url, capacity=1)
    visitor = await make_visitor(fast)
    sid = await start_chat(visitor)
    await a1.recv("offer", session=sid)
    a2 = await make_agent(fast, redis_server.url, capacity=1)
    await a1.send({"type": "decline", "session": sid})
    assert (await a1.recv("offer_revoked", session=sid))["reason"] == "declined"
    await a2.recv("offer", session=sid, timeout=3)
    await a1.no_frame("offer", within=0.5)


async def test_an_offer_that_expires_goes_to_another_agent(chatd_factory, redis_server) -> None:
    server = await chatd_factory(env={**FAST, "CHATD_OFFER_TIMEOUT": "1"})
    a1 = await make_agent(server, redis_server.url)
    visitor = await make_visitor(server)
    sid = await start_chat(visitor)
    await a1.recv("offer", session=sid)
    a2 = await make_agent(server, redis_server.url)
    revoked = await a1.recv("offer_revoked", session=sid, timeout=4)
    assert revoked["reason"] == "expired"
    await a2.recv("offer", session=sid, timeout=4)
    # too late now
    await a1.send({"type": "accept", "session": sid})
    assert (await a1.recv("error"))["code"] == "conflict"


async def test_offer_answers_that_are_not_yours(fast: Chatd, redis_server) -> None:
    a1 = await make_agent(fast, redis_server.url, capacity=1)
    other = await make_agent(fast, redis_server.url, available=False)
    visitor = await make_visitor(fast)
    sid = await start_chat(visitor)
    await a1.recv("offer", session=sid)
    for kind in ("accept", "decline"):
        await other.send({"type": kind, "session": sid})
        err = await other.recv("error")
        assert err["code"] == "not_found" and err["ref"] == kind
        await other.send({"type": kind, "session": "no-such-session"})
        assert (await other.recv("error"))["code"] == "not_found"
    await a1.send({"type": "accept", "session": sid})
    await a1.recv("assigned", session=sid)
    await a1.send({"type": "accept", "session": sid})  # twice
    assert (await a1.recv("error"))["code"] == "conflict"
    await a1.send({"type": "decline", "session": sid})  # after accepting
    assert (await a1.recv("error"))["code"] == "conflict"
    # nothing changed: the chat is still a1's and works
    await visitor.send({"type": "send", "session": sid, "cid": "c1", "text": "toujours là ?"})
    await a1.recv("msg", session=sid, text="toujours là ?")


async def test_capacity_is_never_exceeded(fast: Chatd, redis_server) -> None:
    agent = await make_agent(fast, redis_server.url, capacity=2)
    visitors = [await make_visitor(fast) for _ in range(3)]
    sids = [await start_chat(v) for v in visitors]
    for sid in sids[:2]:
        await agent.recv("offer", session=sid)
        await agent.send({"type": "accept", "session": sid})
        await agent.recv("assigned", session=sid)
    await agent.no_frame("offer", within=1.0)
    # closing one frees a slot: the third visitor is offered
    await agent.send({"type": "close", "session": sids[0], "disposition": "answered"})
    await agent.recv("offer", session=sids[2], timeout=3)


async def test_status_capacity_lowers_the_ceiling_but_never_raises_it(fast: Chatd, redis_server) -> None:
    agent = await make_agent(fast, redis_server.url, capacity=2, available=False)
    await agent.send({"type": "status", "status": "available", "capacity": 9})
    assert (await agent.recv("agent_status"))["capacity"] == 2
    await agent.send({"type": "status", "status": "available", "capacity": 1})
    assert (await agent.recv("agent_status", capacity=1))["capacity"] == 1


async def test_first_come_first_served_within_a_topic(fast: Chatd, redis_server) -> None:
    visitors = [await make_visitor(fast) for _ in range(5)]
    sids = [await start_chat(v) for v in visitors]
    agent = await make_agent(fast, redis_server.url, capacity=1)
    for sid in sids:
        offer = await agent.recv("offer", timeout=3)
        assert offer["session"] == sid
        await agent.send({"type": "accept", "session": sid})
        await agent.recv("assigned", session=sid)
        await agent.send({"type": "close", "session": sid, "disposition": "answered"})


async def test_higher_priority_topics_are_served_first(fast: Chatd, redis_server) -> None:
    road = await make_visitor(fast)
    road_sid = await start_chat(road, "road")
    violence = await make_visitor(fast)
    violence_sid = await start_chat(violence, "violence")
    agent = await make_agent(fast, redis_server.url, capacity=2)  # violence weighs 2
    offer = await agent.recv("offer", timeout=3)
    assert offer["session"] == violence_sid
    await agent.no_frame("offer", within=0.5, session=road_sid)


async def test_a_single_free_slot_is_kept_for_a_waiting_chat_of_two(fast: Chatd, redis_server) -> None:
    """Under load slots free up one at a time: a free slot must wait for the next one beside
    it for the violence chat that needs two, not go to a road chat that came later (else
    violence chats wait as long as lower topics keep arriving)."""
    agent = await make_agent(fast, redis_server.url, capacity=2)
    first = await make_visitor(fast)
    first_sid = await start_chat(first, "road")
    await agent.recv("offer", session=first_sid, timeout=3)
    await agent.send({"type": "accept", "session": first_sid})
    await agent.recv("assigned", session=first_sid)
    violence = await make_visitor(fast)
    violence_sid = await start_chat(violence, "violence")
    later = await make_visitor(fast)
    later_sid = await start_chat(later, "road")
    await agent.no_frame("offer", within=1.0)  # one slot free: kept for the chat of two
    await agent.send({"type": "close", "session": first_sid, "disposition": "answered"})
    await agent.recv("offer", session=violence_sid, timeout=3)
    await agent.no_frame("offer", within=0.5, session=later_sid)


async def test_reserved_capacity_keeps_slots_for_urgent_topics(chatd_factory, redis_server, tmp_path: Path) -> None:
    topics = tmp_path / "topics.toml"
    topics.write_text(
        '[[topic]]\nid = "violence"\nlabel_fr = "Violences"\npriority = 30\nweight = 1\nreserved = 1\n'
        '[[topic]]\nid = "road"\nlabel_fr = "Route"\npriority = 0\n'
    )
    server = await chatd_factory(env={**FAST, "CHATD_TOPICS_FILE": str(topics)})
    agent = await make_agent(server, redis_server.url, capacity=2)
    road = [await make_visitor(server) for _ in range(2)]
    road_sids = [await start_chat(v, "road") for v in road]
    first = await agent.recv("offer", timeout=3)
    assert first["session"] == road_sids[0]
    await agent.no_frame("offer", within=1.0)  # the last slot is kept for violence
    victim = await make_visitor(server)
    sid = await start_chat(victim, "violence")
    await agent.recv("offer", session=sid, timeout=3)


async def test_slots_reserved_above_do_not_hold_back_a_lower_topic_that_fits(
        chatd_factory, redis_server, tmp_path: Path) -> None:
    """Two slots are kept for violence, nobody waits there; a theft chat of two cannot fit
    beside them on a gendarme of three, a road chat of one can: it is offered (the theft chat
    waiting for room must not keep the gendarme for itself: that room may never come)."""
    topics = tmp_path / "topics.toml"
    topics.write_text(
        '[[topic]]\nid = "violence"\nlabel_fr = "Violences"\npriority = 30\nweight = 1\nreserved = 2\n'
        '[[topic]]\nid = "theft"\nlabel_fr = "Vol"\npriority = 20\nweight = 2\n'
        '[[topic]]\nid = "road"\nlabel_fr = "Route"\npriority = 0\n'
    )
    server = await chatd_factory(env={**FAST, "CHATD_TOPICS_FILE": str(topics)})
    agent = await make_agent(server, redis_server.url, capacity=3)
    theft = await make_visitor(server)
    theft_sid = await start_chat(theft, "theft")
    await agent.no_frame("offer", within=1.0, session=theft_sid)
    road = await make_visitor(server)
    road_sid = await start_chat(road, "road")
    await agent.recv("offer", session=road_sid, timeout=3)


async def test_language_is_matched_then_falls_back(chatd_factory, redis_server) -> None:
    server = await chatd_factory(env={**FAST, "CHATD_LANG_FALLBACK": "2"})
    fr = await make_agent(server, redis_server.url, langs=("fr",))
    visitor = await make_visitor(server)
    sid = await start_chat(visitor, lang="en", text="Hello, my car was stolen")
    await fr.no_frame("offer", within=1.0)
    await fr.recv("offer", session=sid, timeout=4)  # nobody speaks English: fallback
    en = await make_agent(server, redis_server.url, langs=("en", "fr"))
    v2 = await make_visitor(server)
    sid2 = await start_chat(v2, lang="en", text="Hello")
    await en.recv("offer", session=sid2, timeout=3)


async def test_queue_positions_move_as_people_ahead_are_served(fast: Chatd, redis_server) -> None:
    visitors = [await make_visitor(fast) for _ in range(3)]
    sids = []
    for i, v in enumerate(visitors):
        sid = await start_chat(v)
        sids.append(sid)
    # each was told its place on arrival
    assert [f["position"] for v in visitors for f in v.frames if f["type"] == "queued"] == [1, 2, 3]
    agent = await make_agent(fast, redis_server.url, capacity=1)
    await agent.recv("offer", session=sids[0])
    # the first is being offered: the others move up
    q = await visitors[1].recv("queued", position=1, timeout=3)
    assert q["eta_s"] >= 1
    await visitors[2].recv("queued", position=2, timeout=3)


async def positions_agree_with_zrank(store: Store,
                                     zranks: Callable[[], Awaitable[int]] | None = None) -> None:
    """A process asking for many of a line's places reads the line (pages of 500); for a few
    of a long line, a ZRANK each. Both must give each its place, and None to one not there.
    ``zranks``: ZRANKs Redis has run so far (one Redis: which read ran is checked too).
    (test_cluster.py runs it on a Cluster.)"""
    line, other = store.keys.queue("general"), store.keys.queue("scam")
    sids = [f"s{i:05d}" for i in range(1234)]
    await store.redis.zadd(line, {sid: 1000 + i for i, sid in enumerate(sids)})
    await store.redis.zadd(other, {f"o{i}": i for i in range(3)})

    async def places(entries: list[tuple[str, str]], ranks: int) -> list[int | None]:
        before = await zranks() if zranks else 0
        out = await store.queue_positions(entries)
        if zranks:
            assert await zranks() - before == ranks
        return out

    asked = [("general", s) for s in sids[::2]]  # 617 of 1,234: read in three pages
    asked += [("general", "gone"), ("scam", "o2"), ("scam", "gone")]
    want = [sids.index(s) + 1 for _, s in asked[:-3]] + [None, 3, None]
    assert await places(asked, ranks=3) == want  # the page read finds none of the last three
    few = [("general", sids[i]) for i in (0, 499, 500, 1000, 1233)]  # a ZRANK each
    assert await places(few, ranks=5) == [1, 500, 501, 1001, 1234]
    again = [("general", s) for s in reversed(sids)] + [("general", sids[7])]  # twice: once
    assert await places(again, ranks=0) == list(range(1234, 0, -1)) + [8]


async def test_queue_positions_read_a_long_line_in_pages_and_agree_with_zrank(rds, prefix) -> None:
    async def zranks() -> int:
        return int((await rds.info("commandstats")).get("cmdstat_zrank", {}).get("calls", 0))

    await positions_agree_with_zrank(fast_store(rds, prefix), zranks)


async def test_queue_updates_come_at_most_once_a_second_even_with_fast_ticks(fast: Chatd) -> None:
    ahead = [await make_visitor(fast) for _ in range(5)]
    ahead_sids = [await start_chat(v) for v in ahead]
    watcher = await make_visitor(fast)
    await start_chat(watcher)
    await asyncio.sleep(1.1)  # the arrival's own update is past
    before = len([f for f in watcher.frames if f["type"] == "queued"])
    for v, sid in zip(ahead, ahead_sids):  # the line moves every 0.25 s, ticks come every 0.2 s
        await v.send({"type": "close", "session": sid})
        await asyncio.sleep(0.25)
    await watcher.recv("queued", position=1, timeout=3)  # it does learn where it stands
    updates = [f for f in watcher.frames if f["type"] == "queued"][before:]
    assert len(updates) <= 3, [u["position"] for u in updates]


async def test_transfer_to_a_topic_puts_the_chat_at_the_front(fast: Chatd, redis_server) -> None:
    a1 = await make_agent(fast, redis_server.url, capacity=1, topics=("general",))
    visitor = await make_visitor(fast)
    sid = await start_chat(visitor)
    await a1.recv("offer", session=sid)
    await a1.send({"type": "accept", "session": sid})
    await a1.recv("assigned", session=sid)
    waiting = await make_visitor(fast)
    other_sid = await start_chat(waiting, "scam")
    await a1.send({"type": "transfer", "session": sid, "to_topic": "scam"})
    released = await a1.recv("released", session=sid)
    assert released["reason"] == "transferred"
    system = await visitor.recv("msg", session=sid, **{"from": "system"})
    assert "gendarme" in system["text"]
    a2 = await make_agent(fast, redis_server.url, capacity=1, topics=("scam",))
    offer = await a2.recv("offer", timeout=3)
    assert offer["session"] == sid and offer["topic"] == "scam"  # ahead of other_sid
    await a2.send({"type": "accept", "session": sid})
    assigned = await a2.recv("assigned", session=sid)
    assert [m["from"] for m in assigned["history"]] == ["visitor", "system"]
    # the one who was already waiting for that topic comes next, not before
    await waiting.recv("queued", session=other_sid, position=1, timeout=3)
    a3 = await make_agent(fast, redis_server.url, capacity=1, topics=("scam",))
    assert (await a3.recv("offer", timeout=3))["session"] == other_sid


async def test_transfer_to_an_agent_offers_it_to_them(fast: Chatd, redis_server) -> None:
    a1 = await make_agent(fast, redis_server.url, capacity=1)
    visitor = await make_visitor(fast)
    sid = await start_chat(visitor)
    await a1.recv("offer", session=sid)
    await a1.send({"type": "accept", "session": sid})
    await a1.recv("assigned", session=sid)
    a2 = await make_agent(fast, redis_server.url, capacity=1, available=False)
    await a1.send({"type": "transfer", "session": sid, "to_agent": a2.login})
    await a1.recv("released", session=sid)
    offer = await a2.recv("offer", session=sid, timeout=3)
    assert offer["from_agent"] == a1.login
    await a2.send({"type": "accept", "session": sid})
    await a2.recv("assigned", session=sid)
    await visitor.recv("assigned", session=sid, agent_name=a2.login.title())
    # the first agent no longer holds it
    await a1.send({"type": "send", "session": sid, "cid": "x1", "text": "encore moi"})
    assert (await a1.recv("error"))["code"] == "not_found"


async def test_transfer_refusals(fast: Chatd, redis_server) -> None:
    a1 = await make_agent(fast, redis_server.url, capacity=1)
    visitor = await make_visitor(fast)
    sid = await start_chat(visitor)
    await a1.recv("offer", session=sid)
    await a1.send({"type": "accept", "session": sid})
    await a1.recv("assigned", session=sid)
    await a1.send({"type": "transfer", "session": sid, "to_agent": "nobody"})
    assert (await a1.recv("error"))["code"] == "conflict"
    await a1.send({"type": "transfer", "session": sid, "to_topic": "astrology"})
    assert (await a1.recv("error"))["code"] == "bad_message"
    await a1.send({"type": "transfer", "session": sid})
    assert (await a1.recv("error"))["code"] == "bad_message"
    await a1.send({"type": "transfer", "session": "not-mine", "to_topic": "road"})
    assert (await a1.recv("error"))["code"] == "not_found"


async def test_close_by_the_visitor_tells_the_agent_and_frees_the_slot(fast: Chatd, redis_server) -> None:
    agent = await make_agent(fast, redis_server.url, capacity=1)
    visitor = await make_visitor(fast)
    sid = await start_chat(visitor)
    await agent.recv("offer", session=sid)
    await agent.send({"type": "accept", "session": sid})
    await agent.recv("assigned", session=sid)
    nxt = await make_visitor(fast)
    nxt_sid = await start_chat(nxt)
    await visitor.send({"type": "close", "session": sid, "reason": "quick_exit"})
    closed = await agent.recv("closed", session=sid)
    assert closed == {"type": "closed", "session": sid, "by": "visitor", "reason": "quick_exit"}
    await visitor.recv("closed", session=sid)
    await agent.recv("offer", session=nxt_sid, timeout=3)


async def test_a_waiting_visitor_who_leaves_can_close_the_offer(fast: Chatd, redis_server) -> None:
    agent = await make_agent(fast, redis_server.url)
    visitor = await make_visitor(fast)
    sid = await start_chat(visitor)
    await agent.recv("offer", session=sid)
    await visitor.send({"type": "close", "session": sid})
    revoked = await agent.recv("offer_revoked", session=sid)
    assert revoked["reason"] == "visitor_left"


async def test_direct_assignment_mode_skips_the_offer(chatd_factory, redis_server) -> None:
    server = await chatd_factory(env={**FAST, "CHATD_ASSIGN_MODE": "direct"})
    agent = await make_agent(server, redis_server.url)
    visitor = await make_visitor(server)
    sid = await start_chat(visitor)
    await agent.recv("assigned", session=sid)
    await visitor.recv("assigned", session=sid)


async def test_the_system_notes_are_in_the_chats_language(fast: Chatd, redis_server) -> None:
    from chatd import texts
    for lang in ("es", "de", "it", "en"):
        agent = await make_agent(fast, redis_server.url, capacity=1, topics=("general",),
                                 langs=(lang,))
        visitor = await make_visitor(fast)
        sid = await start_chat(visitor, lang=lang)
        await agent.recv("offer", session=sid)
        await agent.send({"type": "accept", "session": sid})
        await agent.recv("assigned", session=sid)
        await agent.send({"type": "transfer", "session": sid, "to_topic": "scam"})
        note = await visitor.recv("msg", session=sid, **{"from": "system"})
        assert note["text"] == texts.TRANSFERRED[lang]
        await visitor.send({"type": "close", "session": sid})
        await agent.close()
    assert all(set(t) == set(texts.LANGUAGES) for t in (texts.TRANSFERRED, texts.AGENT_GONE))


async def test_a_vanished_agent_loses_offers_then_chats_after_grace(chatd_factory, redis_server) -> None:
    server = await chatd_factory(env={**FAST, "CHATD_HEARTBEAT_TTL": "1", "CHATD_AGENT_GRACE": "1.5"})
    a1 = await make_agent(server, redis_server.url, capacity=2)
    v1 = await make_visitor(server)
    sid1 = await start_chat(v1)
    await a1.recv("offer", session=sid1)
    await a1.send({"type": "accept", "session": sid1})
    await a1.recv("assigned", session=sid1)
    v2 = await make_visitor(server)
    sid2 = await start_chat(v2)
    await a1.recv("offer", session=sid2)
    a1.ws.transport.abort()  # the network dies: no close handshake
    a2 = await make_agent(server, redis_server.url, capacity=2)
    # the pending offer comes back quickly; the active chat after the grace period
    await a2.recv("offer", session=sid2, timeout=5)
    await a2.recv("offer", session=sid1, timeout=6)
    notice = await v1.recv("msg", session=sid1, **{"from": "system"})
    assert "déconnecté" in notice["text"]


async def test_an_agent_who_comes_back_in_time_keeps_their_chats(chatd_factory, redis_server, rds,
                                                                prefix) -> None:
    server = await chatd_factory(env={**FAST, "CHATD_HEARTBEAT_TTL": "1", "CHATD_AGENT_GRACE": "30"})
    a1 = await make_agent(server, redis_server.url, capacity=1)
    visitor = await make_visitor(server)
    sid = await start_chat(visitor)
    await a1.recv("offer", session=sid)
    await a1.send({"type": "accept", "session": sid})
    await a1.recv("assigned", session=sid)
    await a1.close()

    async def offline() -> bool:  # the heartbeat lapsed: the chat waits for them
        return (await fast_store(rds, prefix).agent_states([a1.login]))[0][0] == "offline"
    assert await eventually(offline, 5)
    await visitor.send({"type": "send", "session": sid, "cid": "w1", "text": "vous êtes là ?"})
    back = await make_agent(server, redis_server.url, login=a1.login, create=False, available=False)
    assert [s["session"] for s in back.frames[0]["sessions"]] == [sid]
    assigned = await back.recv("assigned", session=sid)
    assert assigned["history"][-1]["text"] == "vous êtes là ?"


async def test_a_waiting_visitor_who_reconnects_keeps_their_place(fast: Chatd, redis_server) -> None:
    first = await make_visitor(fast)
    sid1 = await start_chat(first)
    second = await make_visitor(fast)
    sid2 = await start_chat(second)
    token = second.token
    await second.close()
    again = await make_visitor(fast, token=token, resume={"session": sid2, "after": 1})
    assert again.welcome["sessions"] == [
        {"session": sid2, "state": "queued", "topic": "general", "last_seq": 1}]
    agent = await make_agent(fast, redis_server.url, capacity=1)
    assert (await agent.recv("offer"))["session"] == sid1
    await agent.send({"type": "accept", "session": sid1})
    await again.recv("queued", session=sid2, position=1, timeout=3)


async def test_a_visitor_gone_past_the_grace_period_is_closed(chatd_factory, redis_server) -> None:
    server = await chatd_factory(env={**FAST, "CHATD_VISITOR_GRACE": "1"})
    agent = await make_agent(server, redis_server.url)
    visitor = await make_visitor(server)
    sid = await start_chat(visitor)
    await agent.recv("offer", session=sid)
    await agent.send({"type": "accept", "session": sid})
    await agent.recv("assigned", session=sid)
    await visitor.close()
    closed = await agent.recv("closed", session=sid, timeout=6)
    assert closed["by"] == "system" and closed["reason"] == "visitor_left"


async def test_one_open_chat_per_visitor(fast: Chatd) -> None:
    visitor = await make_visitor(fast)
    await start_chat(visitor, "general")
    await visitor.send({"type": "start", "topic": "road"})
    assert (await visitor.recv("error"))["code"] == "conflict"
    await visitor.send({"type": "start", "topic": "astrology"})
    assert (await visitor.recv("error"))["code"] == "bad_message"


async def test_a_retried_start_returns_the_same_chat(fast: Chatd, redis_server) -> None:
    """A start whose answer was lost (the connection dropped) is sent again: the visitor gets
    the chat they already have, with what was written in it, not `conflict`."""
    visitor = await make_visitor(fast)
    sid = await start_chat(visitor, "theft", text="on m'a volé mon vélo")
    await visitor.send({"type": "start", "topic": "theft", "text": "on m'a volé mon vélo"})
    again = await visitor.recv("queued")
    assert again["session"] == sid and again["position"] == 1
    await visitor.no_frame("error")
    # from a new connection (the first one dropped before `queued` arrived)
    back = await make_visitor(fast, token=visitor.token)
    await back.send({"type": "start", "topic": "theft", "text": "on m'a volé mon vélo"})
    assert (await back.recv("queued"))["session"] == sid
    await back.send({"type": "send", "session": sid, "cid": "2", "text": "il est bleu"})
    await back.recv("ack", cid="2")
    again = await make_visitor(fast, token=visitor.token, resume={"session": sid, "after": 0})
    await again.recv("msg", session=sid, seq=2)
    assert [f["text"] for f in again.frames if f["type"] == "msg"] == [
        "on m'a volé mon vélo", "il est bleu"]  # the first text was stored once
    agent = await make_agent(fast, redis_server.url)
    await agent.recv("offer", session=sid)
    await agent.send({"type": "accept", "session": sid})
    await back.recv("assigned", session=sid)
    late = await make_visitor(fast, token=visitor.token)
    await late.send({"type": "start", "topic": "theft"})
    assert (await late.recv("queued"))["session"] == sid  # always first: it names the chat
    assert (await late.recv("assigned"))["session"] == sid  # then where it stands


async def test_queued_always_comes_before_assigned(chatd_factory, redis_server) -> None:
    """A visitor learns their session from `queued`; a gendarme fast enough to take the chat
    while the start is still being answered must not be announced first."""
    env = {"CHATD_TICK": "0.005", "CHATD_ASSIGN_MODE": "direct"}
    starts_here, matches_there = await chatd_factory(env=env), await chatd_factory(env=env)
    for _ in range(4):
        await make_agent(matches_there, redis_server.url, capacity=50)
    visitors = [await make_visitor(starts_here) for _ in range(150)]
    for v in visitors:  # all at once: the process answering them is busy, the other matches
        await v.send({"type": "start", "topic": "general", "text": "Bonjour"})
    wrong = 0
    for v in visitors:
        await v.recv("assigned", timeout=20)
        kinds = [f["type"] for f in v.frames if f["type"] in ("queued", "assigned")]
        wrong += kinds[0] != "queued"
    assert wrong == 0, f"{wrong} of {len(visitors)} visitors heard `assigned` before `queued`"


async def test_a_failing_matching_loop_is_logged_restarted_and_reported(
        chatd_factory, redis_server, rds, prefix) -> None:
    """A bug in matching (here: a topic table that the script cannot read) must not end
    matching silently: the traceback is logged, the loop restarts with backoff, /metrics counts
    it, /readyz says which task fails; once the cause is gone, matching resumes by itself."""
    server = await chatd_factory(env=FAST)
    agent = await make_agent(server, redis_server.url)
    topics = Keys(prefix).topics
    good = await rds.hget(topics, "general")
    await rds.hset(topics, "general", "not a topic")
    visitor = await make_visitor(server)
    sid = await start_chat(visitor)
    assert await eventually(lambda: "background task 'match' failed" in server.output(), 10)
    assert "Traceback" in server.output()
    async with httpx.AsyncClient() as http:
        r = await http.get(server.http + "/readyz")
        assert r.status_code == 503 and "match" in r.text
        metrics = (await http.get(server.http + "/metrics")).text
        restarts = [line for line in metrics.splitlines()
                    if line.startswith('chatd_task_restarts_total{task="match"}')]
        assert restarts and float(restarts[0].split()[-1]) >= 1
        await rds.hset(topics, "general", good)  # the operator repairs it
        await agent.recv("offer", session=sid, timeout=40)  # the next restart matches again

        async def ready() -> bool:
            return (await http.get(server.http + "/readyz")).status_code == 200
        assert await eventually(ready, 60)


async def test_a_chat_is_assigned_once_per_connection_even_when_two_paths_race(
        chatd_factory, redis_server) -> None:
    """A gendarme's second tab says hello while chats are being assigned to them: its hello
    (which lists their chats) and the live `assigned` events race. Each chat must reach that
    tab once, and each message once."""
    server = await chatd_factory(env={"CHATD_TICK": "0.05", "CHATD_ASSIGN_MODE": "direct"})
    first = await make_agent(server, redis_server.url, capacity=50)
    tabs = []
    visitors = []
    for round_ in range(5):
        for _ in range(6):
            v = await make_visitor(server)
            await v.send({"type": "start", "topic": "general", "text": "Bonjour"})
            visitors.append(v)
        tab = await Client.connect(server.ws, "agent")
        await tab.send({"type": "hello", "token": first.token})  # type: ignore[attr-defined]
        tabs.append(tab)
    for v in visitors:
        sid = (await v.recv("assigned", timeout=10))["session"]
        await v.send({"type": "send", "session": sid, "cid": "m", "text": "vous êtes là ?"})
    for tab in tabs:
        await tab.recv("welcome")
        while True:  # read until a second passes without a frame: everything has arrived
            try:
                await tab.recv(timeout=1.0)
            except AssertionError:
                break
        assigned = [f["session"] for f in tab.frames if f["type"] == "assigned"]
        assert len(assigned) == len(set(assigned)), "a chat was assigned twice to one tab"
        seen = [(f["session"], f["seq"]) for f in tab.frames if f["type"] == "msg"]
        seen += [(f["session"], h["seq"]) for f in tab.frames if f["type"] == "assigned"
                 for h in f["history"]]
        assert len(seen) == len(set(seen)), "a message reached one tab twice"


async def test_chats_waiting_in_a_topic_removed_at_a_restart_go_to_the_general_line(
        chatd_factory, redis_server, tmp_path: Path) -> None:
    """The operator removes a topic and restarts: those waiting in it are not stranded (its
    queue is no longer read) but offered as general questions, in their order of arrival,
    after those who came before them; the log says so once."""
    topics = tmp_path / "topics.toml"
    topics.write_text('[[topic]]\nid = "lostdog"\nlabel_fr = "Animal perdu"\npriority = 5\n')
    before = await chatd_factory(env={**FAST, "CHATD_TOPICS_FILE": str(topics)})
    early = await make_visitor(before)
    early_sid = await start_chat(early, "general", "Une question")
    lost = [await make_visitor(before) for _ in range(2)]
    lost_sids = [await start_chat(v, "lostdog", "Mon chien") for v in lost]
    await before.stop()
    after = await chatd_factory(env=FAST)  # the default topics: no lostdog
    agent = await make_agent(after, redis_server.url, capacity=3)
    offered = [(await agent.recv("offer", timeout=5))["session"] for _ in range(3)]
    assert offered == [early_sid, *lost_sids]
    assert after.output().count("no longer configured") == 1
    assert "Traceback" not in after.output()
