"""When nobody can answer now: an honest queue (`available`, `eta_s: null`), answers later
(`leave` → `left` with a code, `hello {code}`), surge mode (`suggest_leave`), and what
/api/topics tells the widget (docs/protocol.md, "Answers later")."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
import pytest

from chatd.config import Settings
from chatd.store import open_store
from conftest import make_agent, make_visitor, start_chat
from harness import Chatd, Client

pytestmark = pytest.mark.asyncio

FAST = {"CHATD_TICK": "0.2"}
CODE = re.compile(r"[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}\Z")


async def code_hello(server: Chatd, code: str) -> Client:
    visitor = await Client.connect(server.ws, "visitor", "chatd.v1.json")
    await visitor.send({"type": "hello", "code": code})
    return visitor


async def leave(visitor: Client, sid: str) -> dict:  # type: ignore[type-arg]
    await visitor.send({"type": "leave", "session": sid})
    return await visitor.recv("left", session=sid)


async def test_nobody_available_says_so_and_says_it_again_when_it_changes(
        chatd_factory, redis_server) -> None:
    server = await chatd_factory(env=FAST)
    # available, but only for violence: nobody for a scam
    await make_agent(server, redis_server.url, topics=("violence",))
    visitor = await make_visitor(server)
    await visitor.send({"type": "start", "topic": "scam", "text": "Arnaque"})
    queued = await visitor.recv("queued")
    assert queued["available"] is False and queued["eta_s"] is None
    await asyncio.sleep(1.0)
    assert all(f["available"] is False for f in visitor.frames if f["type"] == "queued")
    # someone for scams comes, busy with another citizen: the visitor waits, with an estimate
    scams = await make_agent(server, redis_server.url, topics=("scam",), capacity=1,
                             available=False)
    first = await make_visitor(server)
    sid1 = await start_chat(first, "scam")
    await scams.send({"type": "status", "status": "available"})
    offer = await scams.recv("offer", timeout=5)
    assert offer["session"] == queued["session"]  # the one who waited longest
    assert (await first.recv("queued", available=True, timeout=5))["session"] == sid1
    # and goes away: nobody again, said again
    await scams.send({"type": "status", "status": "away"})
    again = await first.recv("queued", available=False, timeout=5)
    assert again["eta_s"] is None


async def test_an_eta_counts_only_free_slots_first_then_the_service_rate(
        chatd_factory, redis_server) -> None:
    server = await chatd_factory(env=FAST)
    agent = await make_agent(server, redis_server.url, capacity=1)
    first = await make_visitor(server)
    sid1 = await start_chat(first)
    await agent.recv("offer", session=sid1)  # the one slot is taken
    second = await make_visitor(server)
    await second.send({"type": "start", "topic": "general", "text": "Bonjour"})
    queued = await second.recv("queued")
    # one slot, busy; no chat has closed yet: the default chat length (300 s) per person ahead
    assert queued["available"] is True and queued["eta_s"] == 300


async def test_an_eta_follows_the_pace_of_the_line(chatd_factory, redis_server) -> None:
    server = await chatd_factory(env=FAST)
    agent = await make_agent(server, redis_server.url, capacity=1)
    visitors = [await make_visitor(server) for _ in range(5)]
    sids = [await start_chat(v) for v in visitors]
    last = visitors[4]
    first = [f for f in last.frames if f["type"] == "queued"][0]
    assert first["eta_s"] >= 300  # no line has moved yet: the model's 300 s a chat
    for sid in sids[:4]:  # the gendarme takes them in turn, quickly
        await agent.recv("offer", session=sid, timeout=5)
        await agent.send({"type": "accept", "session": sid})
        await agent.recv("assigned", session=sid)
        await asyncio.sleep(0.3)
        await agent.send({"type": "close", "session": sid, "disposition": "answered"})

    for _ in range(20):  # about a second a place, as the line moved
        queued = await last.recv("queued", session=sids[4], timeout=10)
        if queued["eta_s"] is not None and queued["eta_s"] <= 10:
            break
    else:
        raise AssertionError(f"still {queued}")


async def test_waits_kept_by_an_earlier_version_do_not_stop_the_estimates(
        chatd_factory, redis_server) -> None:
    """Before 2026-12 the ring of each line held waits per place ('waited,place,at'): after an
    upgrade those entries are passed over, and the queue is estimated as usual."""
    server = await chatd_factory(env=FAST)
    store = open_store(redis_server.url, Settings(key_prefix=server.prefix))
    try:
        await store.redis.hset(store.keys.served, mapping={
            f"general:{i}": f"4000,3,{store.now_ms() - 1000}" for i in range(5)})
    finally:
        await store.aclose()
    agent = await make_agent(server, redis_server.url, capacity=1)
    first = await make_visitor(server)
    await agent.recv("offer", session=await start_chat(first))
    second = await make_visitor(server)
    await second.send({"type": "start", "topic": "general", "text": "Bonjour"})
    queued = await second.recv("queued")
    assert queued["available"] is True and queued["eta_s"] == 300  # the model's, as before any
    await asyncio.sleep(0.5)  # a few ticks, each reading the lines again
    assert "Traceback" not in server.output() and "ValueError" not in server.output()


async def test_a_question_left_for_later_comes_back_with_its_answer_on_another_device(
        chatd_factory, redis_server) -> None:
    server = await chatd_factory(env={**FAST, "CHATD_VISITOR_GRACE": "0.5"})
    visitor = await make_visitor(server, subprotocol="chatd.v1.json")
    sid = await start_chat(visitor, "theft", "On a cambriolé ma cave")
    left = await leave(visitor, sid)
    assert CODE.match(left["code"]), left
    assert 72 * 3600 - 60 <= left["expires_in_s"] <= 72 * 3600
    await visitor.close()
    await asyncio.sleep(1.5)  # well past the visitor's grace: a chat left for later stays
    agent = await make_agent(server, redis_server.url)
    offer = await agent.recv("offer", session=sid, timeout=5)
    assert offer["async"] is True
    await agent.send({"type": "accept", "session": sid})
    await agent.recv("assigned", session=sid)
    await agent.send({"type": "send", "session": sid, "cid": "a1",
                      "text": "Déposez plainte en ligne, voici comment."})
    await agent.recv("ack", cid="a1")
    # the code as someone types it from paper: lower case, no dashes
    back = await code_hello(server, left["code"].replace("-", "").lower())
    welcome = await back.recv("welcome")
    assert [s["session"] for s in welcome["sessions"]] == [sid]
    texts = [(await back.recv("msg", session=sid))["text"] for _ in range(2)]
    assert texts == ["On a cambriolé ma cave", "Déposez plainte en ligne, voici comment."]
    await back.send({"type": "send", "session": sid, "cid": "v2", "text": "Merci !"})
    await back.recv("ack", cid="v2")
    await agent.recv("msg", session=sid, text="Merci !")
    await agent.send({"type": "close", "session": sid, "disposition": "answered"})
    await back.recv("closed", session=sid)
    # closed meanwhile: coming back still shows the whole chat, then its end
    later = await code_hello(server, left["code"])
    welcome = await later.recv("welcome")
    assert welcome["sessions"][0]["state"] == "closed"
    assert len([await later.recv("msg", session=sid) for _ in range(3)]) == 3
    assert (await later.recv("closed", session=sid))["by"] == "agent"


async def test_chats_left_for_later_are_offered_after_the_live_ones(chatd_factory, redis_server) -> None:
    server = await chatd_factory(env=FAST)
    early = await make_visitor(server)
    sid_async = await start_chat(early, text="Question pour plus tard")
    await leave(early, sid_async)
    live = await make_visitor(server)
    sid_live = await start_chat(live, text="J'attends")
    agent = await make_agent(server, redis_server.url, capacity=1)
    offer = await agent.recv("offer", timeout=5)
    assert offer["session"] == sid_live and "async" not in offer
    await agent.send({"type": "accept", "session": sid_live})
    await agent.recv("assigned", session=sid_live)
    await agent.send({"type": "close", "session": sid_live, "disposition": "answered"})
    assert (await agent.recv("offer", timeout=5))["session"] == sid_async


async def test_wrong_codes_are_not_found_then_rate_limited(chatd_factory, redis_server) -> None:
    server = await chatd_factory(env={**FAST, "CHATD_CODE_TRIES": "3"})
    for code in ("nonsense", "AAAA-AAAA-AAAA", "CDEF-GHJK-MNPQ"):
        v = await code_hello(server, code)
        err = await v.recv("error")
        assert (err["code"], err["ref"]) == ("not_found", "hello")
        welcome = await v.recv("welcome")  # the page still gets a session of its own
        assert welcome["sessions"] == []
        await v.close()
    v = await code_hello(server, "CDEF-GHJK-MNPR")
    assert (await v.recv("error"))["code"] == "rate_limited"


async def test_a_chat_left_for_later_expires_with_its_code(chatd_factory, redis_server) -> None:
    server = await chatd_factory(env={**FAST, "CHATD_ASYNC_TTL_H": "0.0005"})  # 1.8 s
    visitor = await make_visitor(server)
    sid = await start_chat(visitor)
    left = await leave(visitor, sid)
    closed = await visitor.recv("closed", session=sid, timeout=6)
    assert closed["reason"] == "expired"
    v = await code_hello(server, left["code"])
    assert (await v.recv("error"))["code"] == "not_found"


async def test_leave_refuses_what_is_not_the_visitors_open_chat(chatd_factory) -> None:
    server = await chatd_factory(env=FAST)
    owner = await make_visitor(server)
    sid = await start_chat(owner)
    stranger = await make_visitor(server)
    await stranger.send({"type": "leave", "session": sid})
    err = await stranger.recv("error")
    assert (err["code"], err["ref"]) == ("not_found", "leave")
    await owner.send({"type": "close", "session": sid})
    await owner.recv("closed", session=sid)
    await owner.send({"type": "leave", "session": sid})
    assert (await owner.recv("error"))["code"] in ("not_found", "conflict")


async def test_in_a_surge_low_priority_chats_are_offered_to_leave_priority_ones_never(
        chatd_factory, redis_server) -> None:
    server = await chatd_factory(env={**FAST, "CHATD_ASYNC_AFTER_S": "60"})
    agent = await make_agent(server, redis_server.url, capacity=4)
    for _ in range(2):  # every slot busy (a violence chat takes two)
        v = await make_visitor(server)
        await agent.recv("offer", session=await start_chat(v, "violence"))
    road = await make_visitor(server)
    await road.send({"type": "start", "topic": "road", "text": "Permis"})
    q = await road.recv("queued")
    assert q["eta_s"] > 60 and q["suggest_leave"] is True
    violence = await make_visitor(server)
    await violence.send({"type": "start", "topic": "violence", "text": "Aidez-moi"})
    q = await violence.recv("queued")
    assert q["eta_s"] > 60 and "suggest_leave" not in q


async def test_easy_read_french_is_matched_with_french_speaking_gendarmes(
        chatd_factory, redis_server) -> None:
    server = await chatd_factory(env=FAST)
    agent = await make_agent(server, redis_server.url, langs=("fr",))
    visitor = await make_visitor(server)
    sid = await start_chat(visitor, lang="fr-falc")
    assert (await agent.recv("offer", session=sid, timeout=3))["lang"] == "fr"


async def test_topics_tell_retention_and_alternatives_to_allowed_origins_only(
        chatd_factory, tmp_path: Path) -> None:
    topics = tmp_path / "topics.toml"
    topics.write_text(
        '[[topic]]\nid = "violence"\nlabel_fr = "Violences"\npriority = 30\nretention_days = 365\n'
        '[[topic.alternatives]]\nlabel = {fr = "3919, Violences Femmes Info", en = "3919"}\n'
        'tel = "3919"\n'
        '[[topic]]\nid = "general"\nlabel_fr = "Autre"\n', encoding="utf-8")
    server = await chatd_factory(env={"CHATD_TOPICS_FILE": str(topics), "CHATD_RETENTION_DAYS": "30",
                                      "CHATD_ALLOWED_ORIGINS": "https://www.gendarmerie.example"})
    async with httpx.AsyncClient() as http:
        r = await http.get(server.http + "/api/topics",
                           headers={"Origin": "https://www.gendarmerie.example"})
        other = await http.get(server.http + "/api/topics", headers={"Origin": "https://evil.example"})
    assert r.headers["access-control-allow-origin"] == "https://www.gendarmerie.example"
    assert "access-control-allow-origin" not in other.headers
    by_id = {t["id"]: t for t in r.json()}
    assert by_id["violence"]["retention_days"] == 365 and by_id["general"]["retention_days"] == 30
    assert by_id["violence"]["alternatives"] == [
        {"label": {"fr": "3919, Violences Femmes Info", "en": "3919"}, "tel": "3919"}]
    assert "alternatives" not in by_id["general"]


async def test_a_bad_alternative_is_one_line_at_startup(tmp_path: Path) -> None:
    from chatd.config import ConfigError, load_topics

    topics = tmp_path / "topics.toml"
    topics.write_text('[[topic]]\nid = "scam"\n[[topic.alternatives]]\nlabel = "Site"\n'
                      'url = "http://pre-plainte.example"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="https://"):
        load_topics(topics)


async def test_a_waiting_citizen_gets_answers_that_may_help_at_once(chatd_factory) -> None:
    server = await chatd_factory(env=FAST)
    visitor = await make_visitor(server)
    sid = await start_chat(visitor, "scam", "On a utilisé ma CARTE bancaire, une escroquerie")
    found = await visitor.recv("suggestions", session=sid)
    ids = [i["id"] for i in found["items"]]
    assert 1 <= len(ids) <= 3 and ids[0] == "perceval", ids
    assert all(i["title"] and i["text"] for i in found["items"])
    # accents and case do not count; a greeting finds nothing and sends nothing
    await visitor.send({"type": "send", "session": sid, "cid": "c2", "text": "ESCROQUÉ sur Internet"})
    again = await visitor.recv("suggestions", session=sid)
    assert "thesee" in [i["id"] for i in again["items"]]
    await visitor.send({"type": "send", "session": sid, "cid": "c3", "text": "Bonjour ?"})
    await visitor.recv("ack", cid="c3")
    await visitor.no_frame("suggestions", within=0.5)


async def test_suggestions_match_the_topic_and_the_words_without_accents() -> None:
    from chatd.canned import DEFAULT_CANNED
    from chatd.suggest import suggest

    assert [a.id for a in suggest(DEFAULT_CANNED, "theft", "Ma maison a été CAMBRIOLÉE")] == ["cambriolage"]
    assert suggest(DEFAULT_CANNED, "road", "cambriolage") == []  # another topic's answer: no
    assert suggest(DEFAULT_CANNED, "general", "Bonjour merci") == []  # common words: nothing


async def test_a_line_moves_once_for_each_live_citizen_who_stops_waiting(
        chatd_factory, redis_server) -> None:
    """Estimates count the citizens who give up as well as those taken: leaving a question
    for later moves the line once, closing a chat while waiting moves it once, and closing a
    chat already left for later does not move it again (it was no longer in the live line)."""
    async def moves(closed: str = "") -> str | None:
        # a close finishes the routing record just after the chat's hash answers `closed`
        for _ in range(100):
            if not closed or not await store.redis.hexists(store.keys.routes, closed):
                break
            await asyncio.sleep(0.05)
        return await store.redis.hget(store.keys.served, "theft:n")  # type: ignore[no-any-return]

    server = await chatd_factory(env=FAST)
    store = open_store(redis_server.url, Settings(key_prefix=server.prefix))
    try:
        visitor = await make_visitor(server)
        left_sid = await start_chat(visitor, "theft", "On a cambriolé ma cave")
        await leave(visitor, left_sid)
        assert await moves() == "1"
        other = await make_visitor(server)
        sid = await start_chat(other, "theft", "Et mon garage aussi")
        await other.send({"type": "close", "session": sid})
        await other.recv("closed", session=sid)
        assert await moves(sid) == "2"
        await visitor.send({"type": "close", "session": left_sid})
        await visitor.recv("closed", session=left_sid)
        assert await moves(left_sid) == "2"
    finally:
        await store.aclose()
