"""Reports: scripted chats across two processes (answered and rated, abandoned, left for later,
transferred), then every figure of the JSON and the CSV checked against what happened, the
metrics scraped, and bad requests refused."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest

from chatd import reports
from chatd.config import Settings
from chatd.store import open_store
from conftest import login_token, make_agent, make_visitor, start_chat
from harness import Chatd


FAST = {"CHATD_TICK": "0.2", "CHATD_OFFER_TIMEOUT": "5"}


async def test_scripted_chats_give_exact_figures_in_json_csv_and_metrics(
        chatd_factory: Any, redis_server: Any) -> None:
    a = await chatd_factory(env=FAST)
    b = await chatd_factory(env=FAST)
    store = open_store(redis_server.url, Settings(key_prefix=a.prefix))
    g1 = await make_agent(b, redis_server.url, capacity=2, topics=("general",))
    g2 = await make_agent(a, redis_server.url, capacity=2, topics=("general",), available=False)
    chief = await make_agent(a, redis_server.url, role="supervisor", available=False)
    try:
        # 1. answered on the other process, a first message, closed "answered", rated 4
        v1 = await make_visitor(a)
        s1 = await start_chat(v1, "general", "Bonjour")
        await g1.recv("offer", session=s1, timeout=5)
        await g1.send({"type": "accept", "session": s1})
        await g1.recv("assigned", session=s1)
        await asyncio.sleep(0.3)
        await g1.send({"type": "send", "session": s1, "cid": "r1", "text": "Je vous écoute."})
        await g1.recv("ack", cid="r1")
        await g1.send({"type": "close", "session": s1, "disposition": "answered"})
        await v1.recv("closed", session=s1)
        await v1.send({"type": "rate", "session": s1, "rating": 4})
        await v1.recv("rated", session=s1)
        # 2. abandoned: nobody takes scams; the citizen gives up after 20 s
        v2 = await make_visitor(b)
        s2 = await start_chat(v2, "scam", "Un SMS bizarre")
        await asyncio.sleep(20)
        await v2.send({"type": "close", "session": s2})
        await v2.recv("closed", session=s2)
        # 3. left for later: nobody takes road questions now
        v3 = await make_visitor(a)
        s3 = await start_chat(v3, "road", "Un panneau")
        await v3.send({"type": "leave", "session": s3})
        await v3.recv("left", session=s3)
        # 4. transferred to a colleague, who answers and closes
        v4 = await make_visitor(b)
        s4 = await start_chat(v4, "general", "Bonsoir")
        await g1.recv("offer", session=s4, timeout=5)
        await g1.send({"type": "accept", "session": s4})
        await g1.recv("assigned", session=s4)
        await g2.send({"type": "status", "status": "available"})
        await g1.send({"type": "transfer", "session": s4, "to_agent": g2.login})  # type: ignore[attr-defined]
        await g2.recv("offer", session=s4, timeout=5)
        await g2.send({"type": "accept", "session": s4})
        await g2.recv("assigned", session=s4)
        await g2.send({"type": "send", "session": s4, "cid": "r4", "text": "Bonsoir."})
        await g2.recv("ack", cid="r4")
        await g2.send({"type": "close", "session": s4, "disposition": "redirected"})
        await v4.recv("closed", session=s4)

        # what each chat's own record says, to compute the expected figures from
        h = {sid: await store.session(sid) for sid in (s1, s2, s3, s4)}
        today = datetime.fromtimestamp(int(h[s1]["created"]) / 1000, timezone.utc).date()

        def secs(sid: str, end: str, start: str = "created") -> float:
            return (int(h[sid][end]) - int(h[sid][start])) / 1000

        def pct(values: list[float], q: float) -> float | None:
            counts: dict[int, int] = {}
            for v in values:
                counts[reports.bucket(v)] = counts.get(reports.bucket(v), 0) + 1
            return reports.percentile(counts, q)

        assert int(h[s4]["transfers"]) == 1 and h[s3].get("async") == "1"
        waits = [secs(s1, "answered_at"), secs(s4, "answered_at")]
        expected_day = {
            "key": today.isoformat(), "requests": 4, "answered": 2, "abandoned": 1, "async": 1,
            "transferred": 1, "wait_p50_s": pct(waits, 50), "wait_p90_s": pct(waits, 90),
            "first_response_p50_s": pct([secs(s1, "first_reply_at"), secs(s4, "first_reply_at")], 50),
            "duration_p50_s": pct([secs(s1, "closed_at"), secs(s4, "closed_at")], 50),
            "rating_avg": 4.0, "rating_count": 1,
            "abandoned_wait_avg_s": round(secs(s2, "closed_at") * 1000 / 1000, 1),
            "dispositions": {"answered": 1, "none": 1, "redirected": 1},
        }
        assert 20 <= expected_day["abandoned_wait_avg_s"] <= 30  # type: ignore[operator]
        chief_token = await login_token(a, chief.login)  # type: ignore[attr-defined]
        auth = {"Authorization": f"Bearer {chief_token}"}
        async with httpx.AsyncClient(headers=auth) as http:
            day = f"from={today}&to={today}"
            r = await http.get(f"{b.http}/api/reports?{day}&by=day")  # any process answers
            assert r.status_code == 200, r.text
            (row,) = r.json()["rows"]
            assert row == expected_day
            # the hours add up to the day; the topics split it
            hours = (await http.get(f"{a.http}/api/reports?{day}&by=hour")).json()["rows"]
            assert len(hours) == 24 and hours[0]["key"] == f"{today}T00:00Z"
            assert sum(x["requests"] for x in hours) == 4
            assert sum(x["answered"] for x in hours) == 2
            topics = {x["key"]: x for x in
                      (await http.get(f"{a.http}/api/reports?{day}&by=topic")).json()["rows"]}
            assert (topics["general"]["requests"], topics["general"]["answered"]) == (2, 2)
            assert (topics["scam"]["requests"], topics["scam"]["abandoned"]) == (1, 1)
            assert (topics["road"]["requests"], topics["road"]["async"]) == (1, 1)
            assert topics["violence"]["requests"] == 0 and topics["violence"]["wait_p50_s"] is None
            # CSV: the same figures
            r = await http.get(f"{a.http}/api/reports?{day}&by=day&format=csv")
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
            assert "attachment" in r.headers["content-disposition"]
            (line,) = list(csv.DictReader(io.StringIO(r.text)))
            for name in reports.FIELDS:
                value = expected_day[name]
                assert line[name] == ("" if value is None else str(value)), name
            assert line["disposition_redirected"] == "1" and line["disposition_none"] == "1"
            # nothing that names a visitor, an address or a text
            text = r.text + str(row) + str(hours)
            for secret in (s1, s2, s3, s4, "Bonjour", "127.0.0.1", v1.token):  # type: ignore[attr-defined]
                assert secret not in text
            # Prometheus: each chat observed once, by the process that counted it
            scraped = [(await http.get(f"{s.http}/metrics")).text for s in (a, b)]

            def total(name: str, topic: str) -> float:
                pat = re.compile(rf'^{name}{{topic="{topic}"}} (\S+)$', re.M)
                return sum(float(m) for t in scraped for m in pat.findall(t))
            assert total("chatd_wait_seconds_count", "general") == 2
            assert total("chatd_first_response_seconds_count", "general") == 2
            assert total("chatd_chat_duration_seconds_count", "general") == 2
            assert abs(total("chatd_wait_seconds_sum", "general") - sum(waits)) < 0.01
            assert total("chatd_abandoned_total", "scam") == 1
            assert total("chatd_abandoned_total", "general") == 0
            # bad requests: a clear message, no traceback
            for query, words in (("from=2026-13-01", "from: a date"), ("to=yesterday", "to: a date"),
                                 ("from=2026-12-02&to=2026-12-01", "after"),
                                 ("by=week", "by: one of"), ("format=xml", "format"),
                                 ("from=2024-01-01&to=2026-01-01", "at most"),
                                 ("from=2026-01-01&to=2026-06-01&by=hour", "by=hour")):
                r = await http.get(f"{a.http}/api/reports?{query}")
                assert r.status_code == 400 and words in r.json()["message"], (query, r.text)
        async with httpx.AsyncClient() as http:
            agent_token = await login_token(a, g1.login)  # type: ignore[attr-defined]
            r = await http.get(f"{a.http}/api/reports", headers={"Authorization": f"Bearer {agent_token}"})
            assert r.status_code == 403
            assert (await http.get(f"{a.http}/api/reports")).status_code == 401
    finally:
        await store.aclose()


async def test_a_close_finished_twice_counts_once(server: Chatd, redis_server: Any) -> None:
    """The repair may finish a close its process had finished: the figures do not double."""
    store = open_store(redis_server.url, Settings(key_prefix=server.prefix))
    try:
        v = await make_visitor(server)
        sid = await start_chat(v, "scam")
        await v.send({"type": "close", "session": sid})
        await v.recv("closed", session=sid)
        info = await store.session(sid)
        await store.finish_close(sid, info["visitor"], "scam", int(info["closed_at"]), "", "")
        today = datetime.fromtimestamp(int(info["created"]) / 1000, timezone.utc).date()
        (row,) = await store.report(today, today, "day")
        assert (row["requests"], row["abandoned"]) == (1, 1)
    finally:
        await store.aclose()


def test_percentiles_from_buckets_are_exact_at_the_edges_and_close_inside() -> None:
    counts: dict[int, int] = {}
    for v in (1, 2, 3, 5, 8):  # one in each of the first five buckets, each at its upper edge
        counts[reports.bucket(v)] = counts.get(reports.bucket(v), 0) + 1
    assert reports.percentile(counts, 100) == 8
    assert reports.percentile(counts, 60) == 3
    assert reports.percentile({}, 50) is None
    # any value: the percentile of many copies of it lies within its bucket (±25 % or so)
    for v in (0.4, 7, 44, 100, 333, 1000, 4000, 86000):
        got = reports.percentile({reports.bucket(v): 1000}, 50)
        assert got is not None and 0.6 * v <= got <= 1.5 * v + 0.5, (v, got)
