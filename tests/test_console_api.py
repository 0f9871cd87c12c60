"""The HTTP API behind the console: who may read which transcript, the audit trail, canned
answers, CSRF on writes. Real chatd, real Redis, plain HTTP."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from conftest import connect_pair, make_agent, make_visitor, start_chat
from harness import Chatd

pytestmark = pytest.mark.asyncio


def bearer(client: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {client.token}"}


async def test_a_transcript_is_for_its_agent_and_supervisors_and_every_read_is_audited(
        server: Chatd, redis_server: Any) -> None:
    visitor, agent, sid = await connect_pair(server, redis_server.url)
    other = await make_agent(server, redis_server.url, available=False)
    sup = await make_agent(server, redis_server.url, role="supervisor", available=False)
    await agent.send({"type": "send", "session": sid, "cid": "a1", "text": "Je vous écoute"})
    await agent.send({"type": "note", "session": sid, "cid": "n1", "text": "semble inquiet"})
    await agent.recv("ack", cid="n1")
    async with httpx.AsyncClient(base_url=server.http) as http:
        r = await http.get(f"/api/sessions/{sid}", headers=bearer(agent))
        assert r.status_code == 200
        t = r.json()
        assert [m["text"] for m in t["messages"]] == ["Bonjour", "Je vous écoute"]
        assert [n["text"] for n in t["notes"]] == ["semble inquiet"]
        # another agent: the same answer as for a chat that does not exist
        r = await http.get(f"/api/sessions/{sid}", headers=bearer(other))
        assert (r.status_code, r.json()["error"]) == (404, "not_found")
        r = await http.get("/api/sessions/doesnotexist", headers=bearer(other))
        assert (r.status_code, r.json()["error"]) == (404, "not_found")
        assert (await http.get(f"/api/sessions/{sid}")).status_code == 401
        r = await http.get(f"/api/sessions/{sid}", headers=bearer(sup))
        assert r.status_code == 200 and len(r.json()["messages"]) == 2
        # audit: the agent was shown it on assignment, then read it twice over HTTP; the
        # supervisor once; the refused read left nothing
        assert (await http.get("/api/audit", headers=bearer(agent))).status_code == 403
        r = await http.get("/api/audit", params={"session": sid}, headers=bearer(sup))
        entries = r.json()["entries"]
        seen = sorted((e["who"], e["how"]) for e in entries)
        assert seen == sorted([(agent.login, "assigned"), (agent.login, "transcript"),
                               (sup.login, "transcript")])
        assert all(e["session"] == sid and e["ts"] > 0 for e in entries)
        assert entries[0]["who"] == sup.login  # newest first
        # open chats, for supervisors only
        assert (await http.get("/api/sessions", headers=bearer(agent))).status_code == 403
        r = await http.get("/api/sessions", headers=bearer(sup))
        mine = [s for s in r.json()["sessions"] if s["session"] == sid]
        assert mine and mine[0]["state"] == "active" and mine[0]["agent"] == agent.login


async def test_canned_answers_shared_and_personal(server: Chatd, redis_server: Any) -> None:
    agent = await make_agent(server, redis_server.url, available=False)
    other = await make_agent(server, redis_server.url, available=False)
    async with httpx.AsyncClient(base_url=server.http) as http:
        r = await http.get("/api/canned", headers=bearer(agent))
        shared = r.json()["shared"]
        assert any("3919" in c["text"] for c in shared) and r.json()["mine"] == []
        r = await http.post("/api/canned", headers=bearer(agent),
                            json={"title": "Horaires", "text": "La brigade ouvre à 8 h."})
        assert r.status_code == 201
        made = r.json()
        mine = (await http.get("/api/canned", headers=bearer(agent))).json()["mine"]
        assert mine == [made]
        # personal means personal
        assert (await http.get("/api/canned", headers=bearer(other))).json()["mine"] == []
        r = await http.delete(f"/api/canned/{made['id']}", headers={**bearer(other),
                                                                    "Content-Type": "application/json"})
        assert r.status_code == 404
        # bad input: one clear error, nothing stored
        r = await http.post("/api/canned", headers=bearer(agent), json={"title": "", "text": "x"})
        assert (r.status_code, r.json()["error"]) == (400, "bad_message")
        r = await http.post("/api/canned", headers=bearer(agent), json={"title": "t", "text": "x" * 4001})
        assert r.status_code == 400
        r = await http.post("/api/canned", headers={**bearer(agent), "Content-Type": "application/json"},
                            content=b"{not json")
        assert (r.status_code, r.json()["error"]) == (400, "bad_message")
        r = await http.delete(f"/api/canned/{made['id']}", headers={**bearer(agent),
                                                                    "Content-Type": "application/json"})
        assert r.status_code == 200
        assert (await http.get("/api/canned", headers=bearer(agent))).json()["mine"] == []


async def test_writes_from_another_site_are_refused(server: Chatd, redis_server: Any) -> None:
    agent = await make_agent(server, redis_server.url, available=False)
    async with httpx.AsyncClient(base_url=server.http, cookies={"chatd_session": agent.token}) as http:
        r = await http.post("/api/canned", json={"title": "a", "text": "b"},
                            headers={"Origin": "https://evil.example"})
        assert (r.status_code, r.json()["error"]) == (403, "forbidden")
        # a form post (no JSON content type) is refused even from our own origin
        r = await http.post("/api/canned", data={"title": "a", "text": "b"},
                            headers={"Origin": server.http})
        assert (r.status_code, r.json()["error"]) == (400, "bad_message")
        r = await http.post("/api/canned", json={"title": "a", "text": "b"},
                            headers={"Origin": server.http})
        assert r.status_code == 201
        r = await http.post("/api/logout", headers={"Origin": "https://evil.example"})
        assert r.status_code == 403
        assert (await http.get("/api/me")).status_code == 200  # still signed in


async def test_the_agent_learns_how_the_visitors_last_chat_ended(server: Chatd, redis_server: Any) -> None:
    agent = await make_agent(server, redis_server.url)
    visitor = await make_visitor(server)
    sid = await start_chat(visitor, "scam")
    await agent.send({"type": "accept", "session": (await agent.recv("offer"))["session"]})
    first = await agent.recv("assigned", session=sid)
    assert first["visitor"]["earlier_chats"] == 0 and "previous" not in first["visitor"]
    await agent.send({"type": "close", "session": sid, "disposition": "redirected_17"})
    await visitor.recv("closed", session=sid)
    again = await start_chat(visitor, "general")
    await agent.send({"type": "accept", "session": (await agent.recv("offer", session=again))["session"]})
    second = await agent.recv("assigned", session=again)
    assert second["visitor"]["earlier_chats"] == 1
    prev = second["visitor"]["previous"]
    assert (prev["topic"], prev["reason"], prev["disposition"]) == ("scam", "agent_closed", "redirected_17")


async def test_supervisor_stats_list_agents_with_their_load(server: Chatd, redis_server: Any) -> None:
    visitor, agent, sid = await connect_pair(server, redis_server.url)
    sup = await make_agent(server, redis_server.url, role="supervisor", available=False)
    waiting = await make_visitor(server)
    violence = await start_chat(waiting, "violence")
    await agent.recv("offer", session=violence)  # an offer holds the topic's weight (2 slots)
    async with httpx.AsyncClient(base_url=server.http) as http:
        stats = (await http.get("/api/stats", headers=bearer(sup))).json()
    row = [a for a in stats["agents"] if a["login"] == agent.login][0]
    assert (row["status"], row["load"], row["capacity"]) == ("available", 3, 3)
    assert stats["queues"]["violence"]["waiting"] == 0 and stats["offers_pending"] == 1
    assert stats["agents_by_status"]["away"] >= 1


async def test_the_operator_maintains_the_shared_answers_in_a_file(chatd_factory: Any, redis_server: Any,
                                                                   tmp_path: Any) -> None:
    faq = tmp_path / "faq.toml"
    faq.write_text('[[answer]]\nid = "horaires"\ntitle = "Horaires"\n'
                   'text = "La brigade de Vannes ouvre à 8 h."\ntopics = ["general"]\n', encoding="utf-8")
    server = await chatd_factory(env={"CHATD_CANNED_FILE": str(faq)})
    agent = await make_agent(server, redis_server.url, available=False)
    async with httpx.AsyncClient(base_url=server.http) as http:
        shared = (await http.get("/api/canned", headers=bearer(agent))).json()["shared"]
    assert shared == [{"id": "horaires", "title": "Horaires", "text": "La brigade de Vannes ouvre à 8 h.",
                       "topics": ["general"]}]
