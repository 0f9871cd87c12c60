"""Operations in one call (start.lua, accept_offer.lua, close.lua) where one Redis holds every
key: each must leave exactly what the step-by-step path leaves (the one a Cluster runs),
refuse what it refuses, and count what it counts. Real Redis, two deployments (prefixes) side
by side."""

from __future__ import annotations

from typing import Any

from chatd.config import Settings
from chatd.store import Store, open_store

from harness import RedisServer, new_prefix

TIMES = {"created", "changed", "vsince", "qscore", "assigned_at", "answered_at", "closed_at",
         "deadline", "offered_at", "first_reply_at", "ts"}


def _same(record: dict[str, Any] | None) -> dict[str, Any]:
    """A record with what differs between two runs (times, the process's id) taken out."""
    out = {k: v for k, v in (record or {}).items() if k not in TIMES}
    if "vp" in out:
        out["vp"] = len(out["vp"])
    return out


async def _state(store: Store, sid: str, vid: str) -> dict[str, Any]:
    k, r = store.keys, store.redis
    hour = store.now_ms() // 3_600_000
    return {
        "session": _same(await store.session(sid)),
        "route": _same((await store.routes([sid]))[0]),
        "history": [(e.seq, e.sender, e.text, e.cid) for e in await store.history(sid)],
        "queued": await r.zrange(k.queue("general"), 0, -1),
        "pending": await r.zcard(k.pending), "open": await r.zcard(k.open),
        "present": await r.zcard(k.present),
        "visitor": await r.hgetall(k.visitor(vid)),
        "visitor_sessions": await r.smembers(k.visitor_sessions(vid)),
        "token_count": await r.get(k.token_counter(vid, hour)),
        "reports": [await r.hgetall(key) for key in store.report_keys(store.now_ms())],
    }


async def _both(url: str, run: Any) -> list[dict[str, Any]]:
    states = []
    for composed in (True, False):
        store = open_store(url, Settings(key_prefix=new_prefix()))
        store.composed = composed
        try:
            states.append(await run(store))
        finally:
            await store.aclose()
    return states


async def test_a_start_in_one_call_leaves_what_its_steps_leave(redis_server: RedisServer
                                                                ) -> None:
    async def run(store: Store) -> dict[str, Any]:
        general = store.topics["general"]
        assert await store.create_session("s1", "v1", general, "fr", "Bonjour", "10.0.0.1", 5,
                                          50) == ("ok", 1, "", "")
        # the same start again (its answer lost): the same chat, counted once
        assert await store.create_session("s1", "v1", general, "fr", "Bonjour", "10.0.0.1", 5,
                                          50) == ("ok", 1, "", "")
        assert await store.create_session("s2", "v2", general, "en", "", "10.0.0.1", 5,
                                          50) == ("ok", 2, "", "")
        # a second chat while the first is open: the first is theirs
        assert await store.create_session("s3", "v1", general, "fr", "Encore", "10.0.0.1", 5,
                                          50) == ("conflict", 0, "s1", "general")
        return {"s1": await _state(store, "s1", "v1"), "s2": await _state(store, "s2", "v2")}

    composed, steps = await _both(redis_server.url, run)
    assert composed == steps
    assert composed["s1"]["session"]["state"] == "queued"
    assert composed["s1"]["history"] == [(1, "visitor", "Bonjour", "")]
    assert composed["s1"]["reports"][3]["req"] == "2"  # the hour's total: two chats


async def test_a_start_over_its_address_allowance_leaves_the_visitor_free(
        redis_server: RedisServer) -> None:
    async def run(store: Store) -> dict[str, Any]:
        general = store.topics["general"]
        assert (await store.create_session("a1", "w1", general, "fr", "", "10.0.0.2", 5, 1)
                )[0] == "ok"
        assert await store.create_session("a2", "w2", general, "fr", "x", "10.0.0.2", 5,
                                          1) == ("rate_ip", 0, "", "")
        state = await _state(store, "a2", "w2")
        # free: from another address, the same visitor starts a chat
        assert (await store.create_session("a3", "w2", general, "fr", "", "10.0.0.3", 5, 1)
                )[0] == "ok"
        return state

    composed, steps = await _both(redis_server.url, run)
    assert composed == steps
    assert composed["visitor"].get("open", "") == "" and composed["visitor_sessions"] == set()
    assert composed["session"] == {} and composed["route"] == {}


async def test_a_chat_started_in_another_hour_than_expected_is_counted_in_its_own(
        redis_server: RedisServer) -> None:
    """The reports' keys are named before the script runs, from this process's idea of
    Redis's clock; a chat that Redis starts in another hour (a start at 10:59:59.999) is
    counted by the caller, in the hour Redis gave it."""
    store = open_store(redis_server.url, Settings(key_prefix=new_prefix()))
    try:
        hour = store.now_ms() // 3_600_000
        store._hour = lambda: hour - 1  # type: ignore[method-assign]
        general = store.topics["general"]
        assert (await store.create_session("h1", "u1", general, "fr", "", "10.0.0.4", 5, 5)
                )[0] == "ok"
        created = int((await store.session("h1"))["created"])
        right, wrong = store.report_keys(created), store.report_keys((hour - 1) * 3_600_000)
        assert await store.redis.hget(right[3], "req") == "1"
        assert await store.redis.exists(wrong[0], wrong[3]) == 0
        assert (await store.session("h1"))["counted_q"] == "1"
    finally:
        await store.aclose()


async def test_a_close_in_one_call_leaves_what_its_steps_leave(redis_server: RedisServer
                                                               ) -> None:
    """accept_offer.lua and close.lua: a chat accepted, then closed by its gendarme (held: their capacity comes back, the chat's
    length is learnt), one closed by its citizen while waiting (the line moved), one closed
    twice; the reports count each once, the visitor's record says how the last one ended."""
    async def run(store: Store) -> dict[str, Any]:
        k, r = store.keys, store.redis
        general = store.topics["general"]
        await store.publish_topics(store.topics.values())
        await store.agent_online("g1", 2, ["fr"], [], "Gendarme Un")
        await store.set_status("g1", "available", 2, ["fr"], [], "Gendarme Un")
        for sid, vid in (("c1", "x1"), ("c2", "x2")):
            assert (await store.create_session(sid, vid, general, "fr", "Bonjour", "10.0.1.1",
                                               5, 50))[0] == "ok"
        assert await store.match() >= 1
        offered = [s for s in ("c1", "c2") if ((await store.routes([s]))[0] or {}).get("st")
                   == "offered"]
        assert offered, "matching offered nothing"
        held = offered[0]
        assert await store.accept(held, "g1", "Gendarme Un") == "ok"
        waiting = "c2" if held == "c1" else "c1"
        ended = await store.close_chat(held, "agent", "g1", "agent_closed", "answered")
        assert (ended.status, ended.by, ended.reason) == ("ok", "agent", "agent_closed")
        assert await store.close(waiting, "visitor", "x2" if waiting == "c2" else "x1",
                                 "visitor_left", rating=4, comment="merci") == "ok"
        assert await store.close(held, "agent", "g1", "agent_closed") == "closed"
        return {
            "held": _same(await store.session(held)), "waiting": _same(await store.session(waiting)),
            "routes": await store.routes(["c1", "c2"]),
            "closed": sorted(await r.zrange(k.closed, 0, -1)),
            "agent": {f: v for f, v in ((await store.agents(["g1"]))[0] or {}).items()
                      if f in ("load", "held", "status")},
            "visitors": [{f: v for f, v in (await r.hgetall(k.visitor(x))).items()
                          if f != "prev"} for x in ("x1", "x2")],
            "prev": [(await r.hget(k.visitor(x), "prev") or "").split("|")[1:]
                     for x in ("x1", "x2")],
            "ttl": [await r.pttl(k.visitor(x)) > 0 for x in ("x1", "x2")],
            "handling": await r.hexists(k.handling, "general"),
            "reports": [{f: v for f, v in (await r.hgetall(key)).items()
                         if not f.endswith("abd_ms")}  # how long the citizen waited: a time
                        for key in store.report_keys(store.now_ms())],
            "open": await r.zcard(k.open), "queued": await r.zcard(k.queue("general")),
        }

    composed, steps = await _both(redis_server.url, run)
    assert composed == steps
    assert composed["routes"] == [None, None] and composed["closed"] == ["c1", "c2"]
    assert composed["agent"]["load"] == 0 and composed["agent"]["held"] in ([], {})
    totals = composed["reports"][3]
    assert (totals["ans"], totals["abd"], totals["disp:answered"], totals["rate_n"]) == (
        "1", "1", "1", "1") and composed["handling"]
    assert composed["ttl"] == [True, True] and composed["queued"] == 0


async def test_a_held_chat_opened_in_one_call_is_what_its_steps_show(redis_server: RedisServer
                                                                     ) -> None:
    """open_held.lua: the gendarme who holds a chat reads it, its audit entry is written and
    its visitor's presence read, as open_chat.lua, the audit and the routing record do one by
    one; someone who does not hold it reads nothing and leaves no entry."""
    async def run(store: Store) -> dict[str, Any]:
        general = store.topics["general"]
        await store.publish_topics(store.topics.values())
        await store.agent_online("g1", 1, ["fr"], [], "Gendarme Un")
        await store.set_status("g1", "available", 1, ["fr"], [], "Gendarme Un")
        assert (await store.create_session("o1", "y1", general, "fr", "Bonjour", "10.0.2.1", 5,
                                           50))[0] == "ok"
        assert await store.match() == 1
        assert await store.open_held("o1", "g1", "agent", "assigned") is None  # only offered
        assert await store.accept("o1", "g1", "Gendarme Un") == "ok"
        await store.append("o1", "msg", "agent", "g1", "Bonjour, gendarmerie.", "c1")
        assert await store.open_held("o1", "g2", "agent", "assigned") is None  # not theirs
        opened = await store.open_held("o1", "g1", "agent", "assigned")
        assert opened is not None
        info, history, notes, route = opened
        entries = await store.audit_entries(10)
        return {"info": _same(info), "history": [(e.seq, e.sender, e.text) for e in history],
                "notes": notes, "route": _same(route),
                "audit": [{k: v for k, v in e.items() if k != "ts"} for e in entries],
                "audit_ts": [abs(e["ts"] - store.now_ms()) < 60_000 for e in entries]}

    composed, steps = await _both(redis_server.url, run)
    assert composed == steps
    assert composed["audit"] == [{"who": "g1", "role": "agent", "session": "o1",
                                  "how": "assigned"}] and composed["audit_ts"] == [True]
    assert composed["history"] == [(1, "visitor", "Bonjour"), (2, "agent", "Bonjour, gendarmerie.")]
    assert composed["route"]["st"] == "active" and composed["route"]["vst"] == "c"


async def test_a_close_sent_again_after_its_answer_was_lost_is_counted_once(
        redis_server: RedisServer) -> None:
    """close.lua's writes done but its answer lost (a reply cut, acks that did not reach the
    replicas): the close sent again still counts the chat in the reports, once; and a close
    after the chat ended leaves the visitor's record saying how it ended first."""
    store = open_store(redis_server.url, Settings(key_prefix=new_prefix()))
    try:
        general = store.topics["general"]
        assert (await store.create_session("l1", "z1", general, "fr", "Allô", "10.0.3.1", 5,
                                           50))[0] == "ok"
        retention = str(store.retention_ms)
        reply = await store.scripts.run(  # what a close cut after its script leaves
            "close", [*store.keys.chat("l1"), store.keys.closed, *store.routing_keys], "l1",
            "visitor", "z1", "visitor_left", "", retention, "", "", store.topic_list)
        assert reply.result[0][0] == "ok"
        assert await store.close("l1", "visitor", "z1", "visitor_left") == "closed"
        assert await store.close("l1", "visitor", "z1", "quick_exit") == "closed"  # a late one
        totals = store.report_keys(int((await store.session("l1"))["created"]))[3]
        assert await store.redis.hget(totals, "abd") == "1"
        assert (await store.redis.hget(store.keys.visitor("z1"), "prev")).split("|")[2] == \
            "visitor_left"
        assert await store.redis.hget(store.keys.visitor("z1"), "open") == ""
    finally:
        await store.aclose()
