"""The visitor's presence: the gendarme sees whether the citizen is still connected, and since
when (`presence`, `assigned.visitor.presence`); matching passes over a queued visitor gone
longer than CHATD_ABSENT_SKIP_S and offers them from the same place once back
(docs/protocol.md, "Presence")."""

from __future__ import annotations

import time

import pytest

from conftest import make_agent, make_visitor, start_chat
from chatd.config import ConfigError, Settings, load
from chatd.store import Store
from harness import Client, eventually

pytestmark = pytest.mark.asyncio

FAST = {"CHATD_TICK": "0.2"}


async def taken(agent: Client, visitor: Client, sid: str) -> dict:  # type: ignore[type-arg]
    """The agent accepts the chat's offer: their `assigned`."""
    await agent.recv("offer", session=sid)
    await agent.send({"type": "accept", "session": sid})
    assigned = await agent.recv("assigned", session=sid)
    await visitor.recv("assigned", session=sid)
    return assigned


async def redis_now_ms(rds) -> int:  # type: ignore[no-untyped-def]
    seconds, micros = await rds.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def test_the_agent_sees_the_visitor_go_and_come_back(chatd_factory, redis_server) -> None:
    server = await chatd_factory(env=FAST)
    agent = await make_agent(server, redis_server.url)
    visitor = await make_visitor(server)
    sid = await start_chat(visitor)
    assigned = await taken(agent, visitor, sid)
    first = assigned["visitor"]["presence"]
    assert first["state"] == "connected" and first["since"] <= assigned["visitor"]["started"] + 5000

    # a second tab (same token): closing one of the two says nothing
    tab = await make_visitor(server, token=visitor.token)
    await visitor.close()
    await agent.no_frame("presence", within=1.0, session=sid)

    await tab.close()
    gone = await agent.recv("presence", session=sid, timeout=3)
    assert gone["state"] == "gone" and gone["since"] >= first["since"]

    # an agent's new connection learns it at once: from `assigned`, or, on resume, `presence`
    again = await make_agent(server, redis_server.url, login=agent.login, create=False,
                             available=False)
    assert (await again.recv("assigned", session=sid))["visitor"]["presence"] == {
        "state": "gone", "since": gone["since"]}
    resumed = await Client.connect(server.ws, "agent")
    await resumed.send({"type": "hello", "token": agent.token,
                        "resume": [{"session": sid, "after": 1}]})
    told = await resumed.recv("presence", session=sid)
    assert (told["state"], told["since"]) == ("gone", gone["since"])

    back = await make_visitor(server, token=visitor.token, resume={"session": sid, "after": 1})
    for conn in (agent, again, resumed):
        connected = await conn.recv("presence", session=sid, timeout=3)
        assert connected["state"] == "connected" and connected["since"] > gone["since"]
    await back.send({"type": "send", "session": sid, "cid": "p1", "text": "je suis revenu"})
    await agent.recv("msg", session=sid, text="je suis revenu")


async def test_a_visitor_whose_process_is_killed_is_gone_within_the_heartbeat_ttl(
        chatd_factory, redis_server) -> None:
    """SIGKILL leaves no goodbye: the heartbeat lapses and the reaper says it (TTL + a tick)."""
    env = {**FAST, "CHATD_HEARTBEAT_TTL": "1"}
    agents_side = await chatd_factory(env=env)
    visitors_side = await chatd_factory(env=env)
    agent = await make_agent(agents_side, redis_server.url)
    visitor = await make_visitor(visitors_side)
    sid = await start_chat(visitor)
    await taken(agent, visitor, sid)
    killed = time.time()
    await visitors_side.kill()
    gone = await agent.recv("presence", session=sid, timeout=5)
    took = time.time() - killed
    assert gone["state"] == "gone"
    assert took <= 1 + 0.2 + 1.0, took  # TTL + one tick, with room for a busy machine
    assert gone["since"] <= killed * 1000 + 50  # since the last heartbeat heard


async def test_an_absent_visitor_keeps_their_place_but_is_offered_only_once_back(
        chatd_factory, redis_server, rds, prefix) -> None:
    server = await chatd_factory(env={**FAST, "CHATD_ABSENT_SKIP_S": "2"})
    store = Store(rds, Settings(key_prefix=prefix))
    a = await make_visitor(server)
    sid_a = await start_chat(a, text="premier arrivé")
    b = await make_visitor(server)
    sid_b = await start_chat(b, text="deuxième")
    await a.close()

    async def away_past_the_skip() -> bool:
        (p,) = await store.presence_of([sid_a])
        return p is not None and p["state"] == "gone" and \
            await redis_now_ms(rds) - p["since"] > 2500
    assert await eventually(away_past_the_skip, 10)
    # still ahead of B: an absent visitor keeps their place (and counts in B's position)
    assert await store.queue_positions([("general", sid_a), ("general", sid_b)]) == [1, 2]

    first = await make_agent(server, redis_server.url, capacity=1)
    assert (await first.recv("offer", timeout=3))["session"] == sid_b

    c = await make_visitor(server)
    sid_c = await start_chat(c, text="arrivé après")
    again = await make_visitor(server, token=a.token, resume={"session": sid_a, "after": 1})
    assert again.welcome["sessions"][0]["state"] == "queued"
    second = await make_agent(server, redis_server.url, capacity=1)
    offer = await second.recv("offer", timeout=3)
    assert offer["session"] == sid_a and offer["preview"] == "premier arrivé"
    await second.no_frame("offer", within=0.5, session=sid_c)


async def test_a_visitor_away_less_than_the_skip_is_still_offered(
        chatd_factory, redis_server, rds, prefix) -> None:
    server = await chatd_factory(env={**FAST, "CHATD_ABSENT_SKIP_S": "30"})
    store = Store(rds, Settings(key_prefix=prefix))
    a = await make_visitor(server)
    sid_a = await start_chat(a)
    await a.close()

    async def gone() -> bool:
        (p,) = await store.presence_of([sid_a])
        return p is not None and p["state"] == "gone"
    assert await eventually(gone, 5)
    agent = await make_agent(server, redis_server.url)
    assert (await agent.recv("offer", timeout=3))["session"] == sid_a


async def test_the_absent_skip_setting_is_checked_once_with_one_clear_line() -> None:
    assert load({}).absent_skip_s == 30.0
    assert load({"CHATD_ABSENT_SKIP_S": "2.5"}).absent_skip_s == 2.5
    for bad in ("soon", "0", "-3", "nan"):
        with pytest.raises(ConfigError) as info:
            load({"CHATD_ABSENT_SKIP_S": bad})
        assert str(info.value).startswith("CHATD_ABSENT_SKIP_S: expected a number")
        assert "\n" not in str(info.value)
