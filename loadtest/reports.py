"""`reports`: how fast a year of figures answers. Seeds `--days` days (400) of figures for every
topic (a busy desk's: a few hundred chats a day, their waits, first responses and lengths in
the report's buckets, dispositions, ratings) straight into the store, then times
`GET /api/reports` over the whole range by day and by topic, and a month by hour, from outside
as a supervisor would (`--requests` each, 20). The figures are seeded for days that end
yesterday; it writes over what is there, so it runs only on a Redis of its own (`--spawn`)."""

from __future__ import annotations

import random
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx

from chatd import reports
from chatd.auth import Auth
from chatd.config import Settings
from chatd.store import open_store

from .client import PASSWORD
from .cluster import Target
from .report import percentile

LANGS = ("fr", "en", "es")


async def run(target: Target, days: int, requests: int) -> tuple[dict[str, Any], dict[str, Any]]:
    rng = random.Random(19)
    settings = Settings(key_prefix=target.prefix)
    store = open_store(target.redis_url, settings)
    topics = [t.id for t in settings.topics]
    last = datetime.now(timezone.utc).date() - timedelta(days=1)
    first = last - timedelta(days=days - 1)
    t0 = time.monotonic()
    k = store.keys
    # a week of distinct days drawn once, repeated over the range: the query's cost is in the
    # number of keys and fields it reads, which this keeps, and seeding takes a second
    week = [_day(rng, topics) for _ in range(7)]
    seeded = 0
    months: dict[int, dict[str, int]] = {}
    for d in range(days):
        day = reports.epoch_day(first + timedelta(days=d))
        month = reports.month_of(first + timedelta(days=d))
        hours, hours_all, by_topic, total, req = week[d % 7]
        seeded += req
        like = reports.epoch_day(first + timedelta(days=d % 7))  # the first week is written
        async with store.redis.pipeline(transaction=False) as pipe:
            for h in range(24):  # a Redis of its own (--spawn): nothing to add to
                if not hours[h]:
                    continue
                for key in (k.report_hour, k.report_hour_all):
                    if d < 7:
                        pipe.hset(key(day * 24 + h), mapping=(hours if key == k.report_hour
                                                               else hours_all)[h])
                    else:  # and copied inside Redis for the other days
                        pipe.copy(key(like * 24 + h), key(day * 24 + h), replace=True)
            pipe.hset(k.report_day(day), mapping=by_topic)
            pipe.hset(k.report_day_all(day), mapping=total)
            await pipe.execute()
        m = months.setdefault(month, {})
        for field, n in by_topic.items():
            m[field] = m.get(field, 0) + n
    async with store.redis.pipeline(transaction=False) as pipe:
        for month, mapping in months.items():
            pipe.hset(k.report_month(month), mapping=mapping)
        await pipe.execute()
    seed_s = time.monotonic() - t0
    auth = Auth(store, "unused-for-accounts", 86400)
    await auth.add_account("lt-chief", "Chef", "supervisor", ["fr"], [], 1, PASSWORD)
    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.post(target.http(0) + "/api/login",
                            json={"login": "lt-chief", "password": PASSWORD})
        r.raise_for_status()
        http.headers["Authorization"] = f"Bearer {r.json()['token']}"
        timings: dict[str, list[float]] = {}
        month = max(first, last - timedelta(days=30))
        asks = {"year_by_day": f"from={first}&to={last}&by=day",
                "year_by_topic": f"from={first}&to={last}&by=topic",
                "year_by_day_csv": f"from={first}&to={last}&by=day&format=csv",
                "month_by_hour": f"from={month}&to={last}&by=hour"}
        rows = 0
        for _ in range(requests):
            for name, query in asks.items():
                t = time.perf_counter()
                r = await http.get(target.http(0) + "/api/reports?" + query)
                timings.setdefault(name, []).append((time.perf_counter() - t) * 1000)
                r.raise_for_status()
                if name == "year_by_day":
                    rows = len(r.json()["rows"])
    await store.aclose()
    result: dict[str, Any] = {"scenario": "reports", "days": days, "rows": rows,
                              "chats_seeded": seeded, "seed_s": round(seed_s, 1)}
    for name, ms in timings.items():
        result[f"{name}_p50_ms"] = round(percentile(ms, 50), 1)
        result[f"{name}_max_ms"] = round(max(ms), 1)
    series = {name: list(enumerate(ms)) for name, ms in timings.items()}
    return result, series


Day = tuple[list[dict[str, int]], list[dict[str, int]], dict[str, int], dict[str, int], int]


def _day(rng: random.Random, topics: list[str]) -> Day:
    """One day's hashes: per hour by topic and language and in all, the day by topic and in
    all, and how many chats it holds."""
    hours: list[dict[str, int]] = [{} for _ in range(24)]
    hours_all: list[dict[str, int]] = [{} for _ in range(24)]
    by_topic: dict[str, int] = {}
    total: dict[str, int] = {}
    req = 0

    def add(h: dict[str, int], field: str, n: int) -> None:
        h[field] = h.get(field, 0) + n
    for hour in range(24):
        for topic in topics:
            for lang in LANGS[:1 + rng.randrange(len(LANGS))]:
                figures = _figures(rng)
                req += figures["req"]
                for name, n in figures.items():
                    add(hours[hour], f"{topic}|{lang}|{name}", n)
                    add(hours_all[hour], name, n)
                    add(by_topic, f"{topic}|{name}", n)
                    add(total, name, n)
    return hours, hours_all, by_topic, total, req


def _figures(rng: random.Random) -> dict[str, int]:
    """An hour of one topic in one language: a few chats and their figures."""
    n = rng.randrange(0, 4)
    out: dict[str, int] = {"req": n}
    for _ in range(n):
        fate = rng.random()
        if fate < 0.75:
            out["ans"] = out.get("ans", 0) + 1
            for kind, mean in (("wait", 90), ("first", 120), ("dur", 900)):
                b = f"{kind}:{reports.bucket(rng.expovariate(1 / mean))}"
                out[b] = out.get(b, 0) + 1
            d = f"disp:{rng.choice(('answered', 'redirected', 'complaint_advised'))}"
            out[d] = out.get(d, 0) + 1
            if rng.random() < 0.3:
                out["rate_n"] = out.get("rate_n", 0) + 1
                out["rate_sum"] = out.get("rate_sum", 0) + rng.randint(3, 5)
        elif fate < 0.9:
            out["abd"] = out.get("abd", 0) + 1
            out["abd_ms"] = out.get("abd_ms", 0) + int(rng.expovariate(1 / 60) * 1000)
            out["disp:none"] = out.get("disp:none", 0) + 1
        else:
            out["async"] = out.get("async", 0) + 1
    return out
