"""Supervision that acts (docs/protocol.md, "Supervision"): a supervisor takes a chat over or
reassigns it, atomically, audited, and follows a chat live over HTTP without flooding the
audit trail. Real chatd, real Redis."""

from __future__ import annotations

import asyncio
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


def bearer(client: Client) -> dict[str, str]:
    return {"Authorization": f"Bearer {client.token}"}  # type: ignore[attr-defined]


async def named_agent(server: Chatd, redis_url: str, name: str, **kw: Any) -> Client:
    login = await create_account(server, redis_url, name=name, capacity=kw.pop("capacity", 3),
                                 topics=kw.pop("topics", ()), role=kw.pop("role", "agent"))
    return await make_agent(server, redis_url, login, create=False, **kw)


async def held_chat(server: Chatd, agent: Client, topic: str = "general",
                    lang: str | None = None) -> tuple[Client, str]:
    visitor = await make_visitor(server)
    sid = await start_chat(visitor, topic, lang=lang)
    await agent.recv("offer", session=sid, timeout=5)
    await agent.send({"type": "accept", "session": sid})
    await agent.recv("assigned", session=sid)
    await visitor.recv("assigned", session=sid)
    return visitor, sid


async def loads(server: Chatd, sup: Client) -> dict[str, tuple[str, int, int]]:
    async with httpx.AsyncClient(base_url=server.http) as http:
        stats = (await http.get("/api/stats", headers=bearer(sup))).json()
    return {a["login"]: (a["status"], a["load"], a["capacity"]) for a in stats["agents"]}


async def audit(server: Chatd, sup: Client, sid: str) -> list[tuple[str, str]]:
    async with httpx.AsyncClient(base_url=server.http) as http:
        r = await http.get("/api/audit", params={"session": sid}, headers=bearer(sup))
    return [(e["who"], e["how"]) for e in r.json()["entries"]]


async def test_plain_agents_may_neither_take_over_nor_reassign(fast: Chatd, redis_server: Any) -> None:
    agent = await make_agent(fast, redis_server.url)
    other = await make_agent(fast, redis_server.url, available=False)
    _, sid = await held_chat(fast, agent)
    for frame in ({"type": "take_over", "session": sid},
                  {"type": "reassign", "session": sid, "to_topic": "scam"},
                  {"type": "reassign", "session": sid, "to_agent": other.login}):
        await other.send(frame)
        err = await other.recv("error")
        assert (err["code"], err["ref"]) == ("forbidden", frame["type"])
    await agent.send({"type": "send", "session": sid, "cid": "m1", "text": "toujours là"})
    await agent.recv("ack", cid="m1")  # nothing moved


async def test_a_supervisor_takes_a_chat_over(fast: Chatd, redis_server: Any) -> None:
    agent = await make_agent(fast, redis_server.url, capacity=1, langs=("fr", "en"))
    chief = await named_agent(fast, redis_server.url, "Capitaine Girard", role="supervisor",
                              capacity=1, available=False)
    visitor, sid = await held_chat(fast, agent, lang="en")
    await agent.send({"type": "note", "session": sid, "cid": "n1", "text": "propos confus"})
    await agent.recv("ack", cid="n1")
    # the supervisor already holds a chat of their own: the take-over goes beyond capacity
    other_visitor = await make_visitor(fast)
    mine = await start_chat(other_visitor)
    await chief.send({"type": "status", "status": "available"})
    await chief.recv("offer", session=mine, timeout=5)
    await chief.send({"type": "accept", "session": mine})
    await chief.recv("assigned", session=mine)
    await chief.send({"type": "take_over", "session": sid})
    assert (await agent.recv("released", session=sid))["reason"] == "taken_over"
    assigned = await chief.recv("assigned", session=sid)
    assert assigned["history"][0]["text"] == "Bonjour"
    assert [n["text"] for n in assigned["notes"]] == ["propos confus"]
    system = await visitor.recv("msg", session=sid, **{"from": "system"})
    assert "taking over" in system["text"]  # in the chat's language
    assert (await visitor.recv("assigned", session=sid))["agent_name"] == "Capitaine Girard"
    # the chat is the supervisor's now, and the former holder's no more
    await chief.send({"type": "send", "session": sid, "cid": "c1", "text": "I am here"})
    await chief.recv("ack", cid="c1")
    await visitor.recv("msg", session=sid, text="I am here")
    await agent.send({"type": "send", "session": sid, "cid": "a2", "text": "encore moi"})
    assert (await agent.recv("error"))["code"] == "not_found"
    await agent.send({"type": "close", "session": sid, "disposition": "answered"})
    assert (await agent.recv("error"))["code"] == "not_found"
    seen = await loads(fast, chief)
    assert seen[agent.login][1] == 0 and seen[chief.login][1:] == (2, 1)  # over capacity
    assert (chief.login, "take_over") in await audit(fast, chief, sid)
    # taking it again: theirs already
    await chief.send({"type": "take_over", "session": sid})
    assert (await chief.recv("error"))["code"] == "conflict"
    await chief.send({"type": "take_over", "session": "no-such-chat"})
    assert (await chief.recv("error"))["code"] == "not_found"


async def test_a_take_over_and_the_holders_close_at_once_leave_one_winner(
        fast: Chatd, redis_server: Any) -> None:
    for round_ in range(6):
        agent = await make_agent(fast, redis_server.url, capacity=1)
        chief = await make_agent(fast, redis_server.url, role="supervisor", available=False)
        visitor, sid = await held_chat(fast, agent)
        take = chief.send({"type": "take_over", "session": sid})
        close = agent.send({"type": "close", "session": sid, "disposition": "answered"})
        await asyncio.gather(*((take, close) if round_ % 2 else (close, take)))
        took = await chief.recv(timeout=5)
        while took["type"] not in ("assigned", "error"):
            took = await chief.recv(timeout=5)
        seen = await loads(fast, chief)
        if took["type"] == "assigned":  # the take-over won: the holder's close was refused
            assert (await agent.recv("error"))["code"] == "not_found"
            assert seen[chief.login][1] == 1
            await chief.send({"type": "send", "session": sid, "cid": "w", "text": "là"})
            await chief.recv("ack", cid="w")
        else:  # the close won
            assert took["code"] == "conflict"
            await visitor.recv("closed", session=sid, reason="agent_closed")
            assert seen[chief.login][1] == 0
        assert seen[agent.login][1] == 0
        await agent.send({"type": "status", "status": "away"})  # the next round's are new
        await agent.recv("agent_status", status="away")


async def test_a_supervisor_reassigns_a_chat_to_a_colleague_with_a_note(
        fast: Chatd, redis_server: Any) -> None:
    agent = await make_agent(fast, redis_server.url, capacity=1)
    chief = await named_agent(fast, redis_server.url, "Capitaine Girard", role="supervisor",
                              available=False)
    colleague = await make_agent(fast, redis_server.url, capacity=1, available=False)
    visitor, sid = await held_chat(fast, agent)
    await chief.send({"type": "reassign", "session": sid, "to_agent": colleague.login,
                      "note": "Reprendre avec douceur"})
    assert (await agent.recv("released", session=sid))["reason"] == "reassigned"
    offer = await colleague.recv("offer", session=sid)
    assert (offer["from_agent"], offer["from_agent_name"], offer["note"]) == (
        chief.login, "Capitaine Girard", "Reprendre avec douceur")
    await colleague.send({"type": "accept", "session": sid})
    assigned = await colleague.recv("assigned", session=sid)
    assert [(n["from_agent_name"], n["text"]) for n in assigned["notes"]] == [
        ("Capitaine Girard", "Reprendre avec douceur")]
    await visitor.recv("assigned", session=sid, agent_name=colleague.login.title())
    assert (chief.login, "reassign") in await audit(fast, chief, sid)
    # not an active chat any more once closed: conflict
    await colleague.send({"type": "close", "session": sid, "disposition": "answered"})
    await visitor.recv("closed", session=sid)
    await chief.send({"type": "reassign", "session": sid, "to_topic": "scam"})
    assert (await chief.recv("error"))["code"] == "conflict"


async def test_a_supervisor_reassigns_a_chat_to_the_front_of_a_topic(
        fast: Chatd, redis_server: Any) -> None:
    agent = await make_agent(fast, redis_server.url, capacity=1, topics=("general",))
    chief = await make_agent(fast, redis_server.url, role="supervisor", available=False)
    visitor, sid = await held_chat(fast, agent)
    waiting = await make_visitor(fast)
    earlier = await start_chat(waiting, "scam")
    await chief.send({"type": "reassign", "session": sid, "to_topic": "scam"})
    assert (await agent.recv("released", session=sid))["reason"] == "reassigned"
    await visitor.recv("msg", session=sid, **{"from": "system"})
    scam = await make_agent(fast, redis_server.url, capacity=1, topics=("scam",))
    offer = await scam.recv("offer", timeout=5)
    assert offer["session"] == sid and offer["from_agent"] == chief.login  # before `earlier`
    assert earlier != sid


async def test_a_supervisor_follows_a_chat_with_after_and_one_audit_entry(
        fast: Chatd, redis_server: Any) -> None:
    agent = await make_agent(fast, redis_server.url)
    chief = await make_agent(fast, redis_server.url, role="supervisor", available=False)
    visitor, sid = await held_chat(fast, agent)
    for i in range(3):
        await agent.send({"type": "send", "session": sid, "cid": f"a{i}", "text": f"réponse {i}"})
        await agent.recv("ack", cid=f"a{i}")
    await agent.send({"type": "note", "session": sid, "cid": "n1", "text": "note 1"})
    await agent.recv("ack", cid="n1")
    async with httpx.AsyncClient(base_url=fast.http, headers=bearer(chief)) as http:
        whole = (await http.get(f"/api/sessions/{sid}")).json()
        assert [m["seq"] for m in whole["messages"]] == [1, 2, 3, 4]
        r = await http.get(f"/api/sessions/{sid}", params={"after": 2, "notes_after": 1})
        assert [m["text"] for m in r.json()["messages"]] == ["réponse 1", "réponse 2"]
        assert r.json()["notes"] == []
        assert r.json()["state"] == "active"
        r = await http.get(f"/api/sessions/{sid}", params={"after": 4})
        assert r.json()["messages"] == [] and [n["nseq"] for n in r.json()["notes"]] == [1]
        await visitor.send({"type": "send", "session": sid, "cid": "v1", "text": "merci"})
        await visitor.recv("ack", cid="v1")
        r = await http.get(f"/api/sessions/{sid}", params={"after": 4})
        assert [m["text"] for m in r.json()["messages"]] == ["merci"]
        for bad in ("-1", "x", "1.5"):
            r = await http.get(f"/api/sessions/{sid}", params={"after": bad})
            assert (r.status_code, r.json()["error"]) == (400, "bad_message")
    # five reads by the supervisor within ten minutes: one entry; the agent's own reads and
    # the assignment are audited as before
    async with httpx.AsyncClient(base_url=fast.http, headers=bearer(agent)) as http:
        for _ in range(2):
            assert (await http.get(f"/api/sessions/{sid}", params={"after": 3})).status_code == 200
    entries = await audit(fast, chief, sid)
    assert entries.count((chief.login, "transcript")) == 1
    assert entries.count((agent.login, "transcript")) == 2
    assert entries.count((agent.login, "assigned")) == 1


async def test_offline_agents_show_as_offline_with_their_capacity(
        fast: Chatd, redis_server: Any) -> None:
    chief = await make_agent(fast, redis_server.url, role="supervisor", available=False)
    never = await create_account(fast, redis_server.url, capacity=4)  # never signed in
    online = await make_agent(fast, redis_server.url, capacity=2)
    seen = await loads(fast, chief)
    assert seen[never] == ("offline", 0, 4)
    assert seen[online.login] == ("available", 0, 2)
