"""« À traiter »: the chats left for later that a gendarme may take out of their turn
(`GET /api/async`, agent frame `take`; docs/protocol.md, "Answers later")."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from conftest import make_agent, make_visitor, start_chat
from harness import Chatd, Client

pytestmark = pytest.mark.asyncio

FAST = {"CHATD_TICK": "0.2"}


async def left_chat(server: Chatd, topic: str, text: str) -> tuple[Client, str]:
    """A visitor starts a chat and leaves it to be answered later."""
    visitor = await make_visitor(server)
    sid = await start_chat(visitor, topic, text)
    await visitor.send({"type": "leave", "session": sid})
    await visitor.recv("left", session=sid)
    return visitor, sid


async def listed(server: Chatd, agent: Client) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as http:
        r = await http.get(server.http + "/api/async",
                           headers={"Authorization": f"Bearer {agent.token}"})  # type: ignore[attr-defined]
    assert r.status_code == 200, r.text
    return r.json()["chats"]  # type: ignore[no-any-return]


async def refused(agent: Client, sid: str) -> dict[str, Any]:
    await agent.send({"type": "take", "session": sid})
    err = await agent.recv("error", ref="take")
    return err


async def test_the_list_shows_the_chats_left_for_later_of_my_topics_the_first_left_first(
        chatd_factory, redis_server) -> None:
    server = await chatd_factory(env=FAST)
    _, scam = await left_chat(server, "scam", "On m'a escroqué sur un site")
    _, general = await left_chat(server, "general", "Une question pour plus tard")
    live = await make_visitor(server)
    await start_chat(live, "general", "Je reste là")  # waiting live: not in the list
    scams = await make_agent(server, redis_server.url, topics=("scam",), available=False)
    boss = await make_agent(server, redis_server.url, role="supervisor", available=False)

    (only,) = await listed(server, scams)
    assert only["session"] == scam and only["topic"] == "scam" and only["lang"] == "fr"
    assert only["preview"] == "On m'a escroqué sur un site"
    assert only["created"] <= only["left_at"] and only["waited_s"] >= 0
    assert set(only) == {"session", "topic", "lang", "left_at", "created", "waited_s", "preview"}
    assert [c["session"] for c in await listed(server, boss)] == [scam, general]

    async with httpx.AsyncClient() as http:
        assert (await http.get(server.http + "/api/async")).status_code == 401

    # taken (offered) chats are no longer waiting; declined, they are listed again
    await boss.send({"type": "take", "session": scam})
    await boss.recv("offer", session=scam)
    assert [c["session"] for c in await listed(server, boss)] == [general]
    await boss.send({"type": "decline", "session": scam})
    await boss.recv("offer_revoked", session=scam)
    assert [c["session"] for c in await listed(server, boss)] == [scam, general]


async def test_take_offers_the_chat_to_this_gendarme_who_then_answers_it(
        chatd_factory, redis_server) -> None:
    server = await chatd_factory(env=FAST)
    visitor, sid = await left_chat(server, "general", "Pouvez-vous me rappeler la procédure ?")
    agent = await make_agent(server, redis_server.url, available=False)
    await agent.send({"type": "take", "session": sid})
    offer = await agent.recv("offer", session=sid)
    assert offer["async"] is True and offer["expires_in_s"] == 30
    assert offer["preview"] == "Pouvez-vous me rappeler la procédure ?"
    await agent.send({"type": "accept", "session": sid})
    assigned = await agent.recv("assigned", session=sid)
    assert assigned["history"][0]["text"] == "Pouvez-vous me rappeler la procédure ?"
    await agent.send({"type": "send", "session": sid, "cid": "r1", "text": "Voici la procédure."})
    await agent.recv("ack", cid="r1")
    # answered now: taking it again is a conflict, for this gendarme as for another
    assert (await refused(agent, sid))["code"] == "conflict"
    other = await make_agent(server, redis_server.url, available=False)
    assert (await refused(other, sid))["code"] == "conflict"
    await agent.send({"type": "close", "session": sid, "disposition": "answered"})
    await agent.recv("closed", session=sid)
    err = await refused(other, sid)
    assert err["code"] == "conflict" and "closed" in err["message"]


async def test_take_refusals(chatd_factory, redis_server) -> None:
    server = await chatd_factory(env=FAST)
    _, scam = await left_chat(server, "scam", "Arnaque")
    _, general = await left_chat(server, "general", "Question")
    live = await make_visitor(server)
    live_sid = await start_chat(live, "general", "Je suis là")
    scams = await make_agent(server, redis_server.url, topics=("scam",), available=False,
                             capacity=1)
    for sid in ("no-such-chat", live_sid, general):  # none, not left for later, not my topic
        err = await refused(scams, sid)
        assert err["code"] == "not_found", (sid, err)
    # a gendarme with no room left: conflict, saying so
    busy = await make_agent(server, redis_server.url, available=False, capacity=1)
    await busy.send({"type": "take", "session": general})
    await busy.send({"type": "accept", "session": (await busy.recv("offer"))["session"]})
    await busy.recv("assigned", session=general)
    err = await refused(busy, scam)
    assert err["code"] == "conflict" and "room" in err["message"]
    # the chat did not move: still waiting, still takeable by someone with room
    await scams.send({"type": "take", "session": scam})
    await scams.recv("offer", session=scam)


async def test_two_gendarmes_taking_the_same_chat_at_once_get_one_offer_and_one_conflict(
        chatd_factory, redis_server) -> None:
    first_server = await chatd_factory(env=FAST)
    second_server = await chatd_factory(env=FAST)
    for _ in range(3):  # a few rounds, each a real race between two processes
        _, sid = await left_chat(first_server, "general", "Premier arrivé ?")
        one = await make_agent(first_server, redis_server.url, available=False)
        two = await make_agent(second_server, redis_server.url, available=False)
        await asyncio.gather(one.send({"type": "take", "session": sid}),
                             two.send({"type": "take", "session": sid}))

        async def answer(agent: Client) -> str:
            """The answer to the `take`: the offer, or the error's code."""
            while True:
                frame = await agent.recv(timeout=5)
                if frame["type"] == "offer" and frame["session"] == sid:
                    return "offer"
                if frame["type"] == "error" and frame.get("ref") == "take":
                    return str(frame["code"])
        answers = sorted([await answer(one), await answer(two)])
        assert answers == ["conflict", "offer"]
        for agent in (one, two):
            await agent.close()
