"""`match`: V visitors ask for a gendarme as fast as they can; A agents of capacity C accept
every offer and close each chat as soon as it is assigned, so agents are always free. Measures
matches per second and time from `start` to `assigned`, and checks the guarantees on the
frames: no visitor assigned twice, no agent over capacity, nobody left unserved."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from typing import Any

from .client import Conn, create_agents
from .cluster import Target
from .report import Sampler, percentile


async def run(target: Target, visitors: int, agents: int, capacity: int,
              rate: float) -> tuple[dict[str, Any], dict[str, Any]]:
    infos = await create_agents(target, agents, capacity=capacity, tag="m")
    started: dict[str, float] = {}  # visitor name -> perf_counter at start
    session_of: dict[str, str] = {}
    assign_ms: dict[str, float] = {}
    timeline: list[tuple[float, float]] = []
    holders: dict[str, set[str]] = defaultdict(set)  # session -> agents told assigned
    held: dict[str, set[str]] = defaultdict(set)  # agent -> sessions open now
    max_held: dict[str, int] = defaultdict(int)
    done = asyncio.Event()
    t0 = time.perf_counter()

    def on_frame(conn: Conn, f: dict[str, Any]) -> None:
        kind = f.get("type")
        if conn.name.startswith("ag"):
            if kind == "offer":
                conn.send_now({"type": "accept", "session": f["session"]})
            elif kind == "assigned":
                sid = f["session"]
                holders[sid].add(conn.name)
                held[conn.name].add(sid)
                max_held[conn.name] = max(max_held[conn.name], len(held[conn.name]))
                held[conn.name].discard(sid)  # closing now: the slot frees when the server says
                conn.send_now({"type": "close", "session": sid, "disposition": "answered"})
            return
        if kind == "queued":
            session_of.setdefault(conn.name, f["session"])
        elif kind == "assigned" and conn.name not in assign_ms:
            now = time.perf_counter()
            ms = (now - started[conn.name]) * 1000
            assign_ms[conn.name] = ms
            timeline.append((now - t0, ms))
            if len(assign_ms) == visitors:
                done.set()

    n = len(target.urls)
    agent_conns = []
    for i, (_, token) in enumerate(infos):
        c = await Conn.open(target.urls[i % n], "agent", on_frame, name=f"ag{i}")
        await c.send({"type": "hello", "token": token})
        await c.send({"type": "status", "status": "available"})
        agent_conns.append(c)
    vconns = []
    sem = asyncio.Semaphore(200)

    async def open_visitor(i: int) -> Conn:
        async with sem:
            c = await Conn.open(target.urls[(i + 1) % n], "visitor", on_frame, name=f"v{i}")
            await c.send({"type": "hello"})
            return c

    vconns = await asyncio.gather(*[open_visitor(i) for i in range(visitors)])
    await asyncio.sleep(1.0)  # welcomes in, agents available
    sampler = Sampler(target.server_pids, target.redis_pid, target.shards)
    sampler.start()
    t0 = time.perf_counter()
    i = 0
    while i < len(vconns):  # arrivals paced on the clock at `rate` per second
        due = min(len(vconns), int((time.perf_counter() - t0) * rate) + 1)
        while i < due:
            c = vconns[i]
            started[c.name] = time.perf_counter()
            c.send_now({"type": "start", "topic": "general"})
            i += 1
        await asyncio.sleep(0.002)
    try:
        await asyncio.wait_for(done.wait(), 60)
    except asyncio.TimeoutError:
        pass
    elapsed = (max(t for t, _ in timeline) if timeline else 0.0) or 1e-9
    await sampler.stop()
    lat = list(assign_ms.values())
    # what became of anyone not served, from Redis: the report says it, not a debugger
    unserved_states: dict[str, int] = defaultdict(int)
    missing = [c.name for c in vconns if c.name not in assign_ms]
    if missing:
        from chatd.config import Settings
        from chatd.store import open_store

        store = open_store(target.redis_url, Settings(key_prefix=target.prefix))
        sids = [session_of.get(name) for name in missing]
        states = await store.states([s for s in sids if s])
        known = dict(zip([s for s in sids if s], states))
        for sid in sids:
            unserved_states[str(known[sid].get("state")) if sid else "no session"] += 1
        await store.aclose()
    report = {
        "scenario": "match", "processes": n, "visitors": visitors, "agents": agents,
        "capacity": capacity, "arrivals_per_s": rate,
        "matches_per_s": round(len(assign_ms) / elapsed, 1),
        "assign_p50_ms": round(percentile(lat, 50), 2),
        "assign_p99_ms": round(percentile(lat, 99), 2),
        "assign_max_ms": round(max(lat) if lat else 0.0, 2),
        "double_assignments": sum(1 for a in holders.values() if len(a) > 1),
        "over_capacity": sum(1 for m in max_held.values() if m > capacity),
        "unserved": visitors - len(assign_ms),
        **{f"unserved_{k}": v for k, v in unserved_states.items()},
        **sampler.summary(),
    }
    for name, seconds in sampler.cpu_seconds().items():  # what one match costs, per shard
        report[f"{name}_cpu_us_per_match"] = round(seconds * 1e6 / max(1, len(assign_ms)), 1)
    for c in list(vconns) + agent_conns:
        await c.close()
    return report, {"time to assigned (ms)": sorted(timeline)}
