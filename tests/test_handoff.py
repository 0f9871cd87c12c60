"""Handing a chat on and ending it well (docs/protocol.md, "Agent → server"): a transfer's note
reaches whoever takes the chat, offers and notes name people by their display name, a gendarme
records how a chat ended after the citizen has gone, and may bar an abusive citizen who has
already left. Real chatd, real Redis."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from conftest import create_account, make_agent, make_visitor, start_chat
from harness import Chatd, Client

pytestmark = pytest.mark.asyncio

FAST = {"CHATD_TICK": "0.2"}


@pytest.fixture
async def fast(chatd_factory: Any) -> Chatd:
    return await chatd_factory(env=FAST)


async def named_agent(server: Chatd, redis_url: str, name: str, **kw: Any) -> Client:
    login = await create_account(server, redis_url, name=name, capacity=kw.pop("capacity", 3),
                                 topics=kw.pop("topics", ()), role=kw.pop("role", "agent"))
    return await make_agent(server, redis_url, login, create=False, **kw)


async def held_chat(server: Chatd, agent: Client, topic: str = "general") -> tuple[Client, str]:
    visitor = await make_visitor(server)
    sid = await start_chat(visitor, topic)
    await agent.recv("offer", session=sid, timeout=5)
    await agent.send({"type": "accept", "session": sid})
    await agent.recv("assigned", session=sid)
    await visitor.recv("assigned", session=sid)
    return visitor, sid


async def test_a_transfer_to_a_colleague_carries_its_note_and_the_senders_name(
        fast: Chatd, redis_server: Any) -> None:
    leroy = await named_agent(fast, redis_server.url, "Maréchal des logis Leroy", capacity=1)
    _, sid = await held_chat(fast, leroy)
    morel = await named_agent(fast, redis_server.url, "Adjudant Morel", capacity=1,
                              available=False)
    note = "Victime de violences, a déjà appelé le 17 hier soir."
    await leroy.send({"type": "transfer", "session": sid, "to_agent": morel.login,
                      "note": note})
    assert (await leroy.recv("released", session=sid))["reason"] == "transferred"
    offer = await morel.recv("offer", session=sid)
    assert (offer["from_agent"], offer["from_agent_name"], offer["note"]) == (
        leroy.login, "Maréchal des logis Leroy", note)
    await morel.send({"type": "accept", "session": sid})
    assigned = await morel.recv("assigned", session=sid)
    assert [(n["from_agent"], n["from_agent_name"], n["text"]) for n in assigned["notes"]] == [
        (leroy.login, "Maréchal des logis Leroy", note)]
    # an ordinary note is signed by name too, live and in the transcript
    await morel.send({"type": "note", "session": sid, "cid": "n1", "text": "Rappel prévu"})
    live = await morel.recv("note", cid="n1")
    assert (live["from_agent"], live["from_agent_name"]) == (morel.login, "Adjudant Morel")
    async with httpx.AsyncClient(base_url=fast.http) as http:
        r = await http.get(f"/api/sessions/{sid}",
                           headers={"Authorization": f"Bearer {morel.token}"})
    assert [n["from_agent_name"] for n in r.json()["notes"]] == [
        "Maréchal des logis Leroy", "Adjudant Morel"]


async def test_a_transfer_to_a_topic_gives_its_note_to_the_next_offer_whoever_gets_it(
        fast: Chatd, redis_server: Any) -> None:
    leroy = await named_agent(fast, redis_server.url, "Maréchal des logis Leroy", capacity=1,
                              topics=("general",))
    _, sid = await held_chat(fast, leroy)
    await leroy.send({"type": "transfer", "session": sid, "to_topic": "scam",
                      "note": "Escroquerie au faux conseiller"})
    await leroy.recv("released", session=sid)
    first = await named_agent(fast, redis_server.url, "Gendarme Durand", capacity=1,
                              topics=("scam",))
    offer = await first.recv("offer", session=sid, timeout=5)
    assert (offer["note"], offer["from_agent"], offer["from_agent_name"]) == (
        "Escroquerie au faux conseiller", leroy.login, "Maréchal des logis Leroy")
    # declined: the next offer, to someone else, still carries it
    await first.send({"type": "decline", "session": sid})
    second = await named_agent(fast, redis_server.url, "Gendarme Petit", capacity=1,
                               topics=("scam",))
    offer = await second.recv("offer", session=sid, timeout=5)
    assert offer["note"] == "Escroquerie au faux conseiller"
    await second.send({"type": "accept", "session": sid})
    assigned = await second.recv("assigned", session=sid)
    assert [n["text"] for n in assigned["notes"]] == ["Escroquerie au faux conseiller"]


async def test_an_ordinary_offer_names_nobody_and_carries_no_note(
        fast: Chatd, redis_server: Any) -> None:
    agent = await make_agent(fast, redis_server.url)
    visitor = await make_visitor(fast)
    sid = await start_chat(visitor)
    offer = await agent.recv("offer", session=sid)
    assert "note" not in offer and "from_agent" not in offer and "from_agent_name" not in offer


async def test_a_transfer_note_over_1000_characters_is_too_large_and_moves_nothing(
        fast: Chatd, redis_server: Any) -> None:
    agent = await make_agent(fast, redis_server.url, capacity=1)
    _, sid = await held_chat(fast, agent)
    await agent.send({"type": "transfer", "session": sid, "to_topic": "scam",
                      "note": "é" * 1001})
    err = await agent.recv("error")
    assert (err["code"], err["ref"]) == ("too_large", "transfer")
    await agent.send({"type": "send", "session": sid, "cid": "m1", "text": "toujours là"})
    await agent.recv("ack", cid="m1")  # still theirs


async def today_dispositions(server: Chatd, supervisor: Client) -> dict[str, int]:
    today = datetime.now(UTC).date().isoformat()
    async with httpx.AsyncClient(base_url=server.http) as http:
        r = await http.get("/api/reports", params={"from": today, "to": today, "by": "day"},
                           headers={"Authorization": f"Bearer {supervisor.token}"})
    assert r.status_code == 200, r.text
    return dict(r.json()["rows"][0]["dispositions"])


async def test_after_a_quick_exit_the_gendarme_records_the_disposition_once(
        fast: Chatd, redis_server: Any) -> None:
    from harness import eventually

    agent = await make_agent(fast, redis_server.url)
    chief = await make_agent(fast, redis_server.url, role="supervisor", available=False)
    stranger = await make_agent(fast, redis_server.url, available=False)
    visitor, sid = await held_chat(fast, agent)
    await visitor.send({"type": "close", "session": sid, "reason": "quick_exit"})
    await agent.recv("closed", session=sid, reason="quick_exit")

    async def counted_without_one() -> bool:
        return await today_dispositions(fast, chief) == {"none": 1}
    assert await eventually(counted_without_one, 5)  # the close is in the reports already
    await stranger.send({"type": "close", "session": sid, "disposition": "answered"})
    assert (await stranger.recv("error"))["code"] == "not_found"
    await agent.send({"type": "close", "session": sid, "disposition": "redirected_17"})
    done = await agent.recv("closed", session=sid, disposition="redirected_17")
    assert (done["by"], done["reason"]) == ("visitor", "quick_exit")
    assert await today_dispositions(fast, chief) == {"redirected_17": 1}  # moved, not added
    await agent.send({"type": "close", "session": sid, "disposition": "answered"})
    assert (await agent.recv("error"))["code"] == "conflict"
    assert await today_dispositions(fast, chief) == {"redirected_17": 1}
    # the citizen's next chat tells the next gendarme how this one ended
    again = await start_chat(visitor)
    await agent.send({"type": "accept", "session": (await agent.recv("offer", session=again))["session"]})
    prev = (await agent.recv("assigned", session=again))["visitor"]["previous"]
    assert (prev["reason"], prev["disposition"]) == ("quick_exit", "redirected_17")


async def test_a_visitor_who_left_can_still_be_blocked_with_a_reason(
        fast: Chatd, redis_server: Any) -> None:
    agent = await make_agent(fast, redis_server.url)
    chief = await make_agent(fast, redis_server.url, role="supervisor", available=False)
    other = await make_agent(fast, redis_server.url, available=False)
    visitor, sid = await held_chat(fast, agent)
    await visitor.send({"type": "close", "session": sid, "reason": "quick_exit"})
    await agent.recv("closed", session=sid)
    await other.send({"type": "block", "session": sid})  # not theirs, even closed
    assert (await other.recv("error"))["code"] == "not_found"
    await agent.send({"type": "block", "session": sid, "hours": 3, "reason": "x" * 201})
    assert (await agent.recv("error"))["code"] == "too_large"
    await agent.send({"type": "block", "session": sid, "hours": 3,
                      "reason": "Insultes et menaces"})
    assert (await agent.recv("blocked", session=sid))["hours"] == 3
    again = await Client.connect(fast.ws, "visitor")
    await again.send({"type": "hello", "token": visitor.token})
    assert (await again.recv("error"))["code"] == "forbidden"
    async with httpx.AsyncClient(base_url=fast.http) as http:
        r = await http.get("/api/audit", params={"session": sid},
                           headers={"Authorization": f"Bearer {chief.token}"})
    blocks = [e for e in r.json()["entries"] if e["how"] == "block"]
    assert [(e["who"], e["reason"]) for e in blocks] == [(agent.login, "Insultes et menaces")]
    assert await today_dispositions(fast, chief) == {"abusive": 1}
