"""`relay`: P visitor-agent pairs chat at R messages/s in total; every message is timed from
send to arrival at the peer, and every seq is checked for loss, duplicates and order."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable

from .client import Conn, create_agents
from .cluster import Target
from .report import Sampler, percentile


async def run(target: Target, pairs: int, rate: float, duration: float,
              during: Callable[[], Awaitable[Any]] | None = None
              ) -> tuple[dict[str, Any], dict[str, Any]]:
    """``during``: another load, started once the messages have gone on alone for
    ``duration`` seconds; the messages go on until it is done. Its result is the report's
    ``during``, and the latencies are given for each phase (``*_before``, ``*_during``)."""
    mem0 = target.used_memory()
    per_agent = 10  # each agent answers up to 10 of the pairs' chats (fewer sign-ins to set up)
    agents_info = await create_agents(target, -(-pairs // per_agent), capacity=per_agent, tag="rel")
    sent_at: dict[str, float] = {}  # cid -> perf_counter at send
    where: dict[str, tuple[Conn, str]] = {}  # cid -> (connection, session), for retries
    errors: dict[str, int] = {}
    acked: set[str] = set()
    delivered: dict[str, float] = {}  # cid -> latency ms (first arrival at the peer)
    duplicates = 0
    out_of_order = 0
    last_seq: dict[tuple[str, str], int] = {}
    timeline: list[tuple[float, float]] = []
    t0 = time.perf_counter()
    assigned: dict[str, asyncio.Event] = {}
    sessions: dict[str, str] = {}  # visitor conn name -> session

    def on_frame(conn: Conn, f: dict[str, Any]) -> None:
        nonlocal duplicates, out_of_order
        kind = f.get("type")
        if kind == "msg":
            sid = f["session"]
            key = (conn.name, sid)
            prev = last_seq.get(key, 0)
            seq = f["seq"]
            if seq == prev:
                duplicates += 1
                return
            if seq < prev:
                out_of_order += 1
            last_seq[key] = max(prev, seq)
            cid = f.get("cid")
            if cid and cid in sent_at and not cid.startswith(conn.name + "-"):
                now = time.perf_counter()
                if cid in delivered:
                    duplicates += 1
                else:
                    ms = (now - sent_at[cid]) * 1000
                    delivered[cid] = ms
                    timeline.append((now - t0, ms))
        elif kind == "ack":
            acked.add(f["cid"])
        elif kind == "error":
            errors[f.get("code", "?")] = errors.get(f.get("code", "?"), 0) + 1
            cid = f.get("ref")
            if f.get("code") in ("unavailable", "rate_limited") and cid in where:
                # what a real client does: send the same cid again, a little later
                c, sid = where[cid]
                asyncio.get_running_loop().call_later(0.05, c.send_now, {
                    "type": "send", "session": sid, "cid": cid, "text": "x" * 40})
        elif kind == "queued":
            sessions[conn.name] = f["session"]
        elif kind == "assigned":
            if conn.name in assigned:
                assigned[conn.name].set()
            if "history" in f:  # the agent side
                conn.state.setdefault("sessions", []).append(f["session"])
                if f["history"]:
                    last_seq[(conn.name, f["session"])] = f["history"][-1]["seq"]

    n = len(target.urls)
    agents = []
    for i, (login, token) in enumerate(agents_info):
        c = await Conn.open(target.urls[i % n], "agent", on_frame, name=f"a{i}")
        await c.send({"type": "hello", "token": token})
        await c.send({"type": "status", "status": "available"})
        agents.append(c)
    visitors = []
    for i in range(pairs):
        c = await Conn.open(target.urls[(i + 1) % n], "visitor", on_frame, name=f"v{i}")
        assigned[c.name] = asyncio.Event()
        await c.send({"type": "hello"})
        await c.send({"type": "start", "topic": "general"})
        visitors.append(c)
    await asyncio.wait_for(asyncio.gather(*[e.wait() for e in assigned.values()]), 60)
    while sum(len(a.state.get("sessions", ())) for a in agents) < pairs:
        await asyncio.sleep(0.05)
    for v in visitors:
        v.state["session"] = sessions[v.name]
    # one sender per side of each chat: (connection, session)
    senders = [(v, v.state["session"]) for v in visitors]
    senders += [(a, sid) for a in agents for sid in a.state["sessions"]]
    senders = [s for pair in zip(senders[:pairs], senders[pairs:]) for s in pair]

    mem1 = target.used_memory()
    sampler = Sampler(target.server_pids, target.redis_pid, target.shards)
    sampler.start()
    t0 = time.perf_counter()
    tick = 0.005
    offered = 0
    counters = {sid + c.name: 0 for c, sid in senders}
    k = 0
    end = t0 + duration
    beside: asyncio.Future[Any] | None = None
    phase = (0.0, 0.0)  # when the other load ran, in seconds since t0
    while (now := time.perf_counter()) < end or (beside is not None and not beside.done()) \
            or (during is not None and beside is None):
        if during is not None and beside is None and now >= end:
            beside = asyncio.ensure_future(during())
            phase = (now - t0, 0.0)
        due = int((now - t0) * rate)  # paced on the clock, not on sleeps that run late
        for _ in range(due - offered):
            c, sid = senders[k % len(senders)]
            k += 1
            counters[sid + c.name] += 1
            cid = f"{c.name}-{sid[:6]}{counters[sid + c.name]}"
            sent_at[cid] = now
            where[cid] = (c, sid)
            c.send_now({"type": "send", "session": sid, "cid": cid, "text": "x" * 40})
            offered += 1
        await asyncio.sleep(tick)
    send_time = time.perf_counter() - t0
    during_result = await beside if beside is not None else None
    if beside is not None:
        phase = (phase[0], send_time)
    # drain: wait until everything acknowledged has arrived, or 30 s
    deadline = time.perf_counter() + 30
    while time.perf_counter() < deadline and not (len(acked) >= offered and acked <= delivered.keys()):
        await asyncio.sleep(0.1)
    await sampler.stop()
    lat = list(delivered.values())
    in_window = [ms for t, ms in timeline if t <= send_time]
    lost = len([c for c in acked if c not in delivered])
    report = {
        "scenario": "relay", "processes": n, "pairs": pairs,
        "offered_per_s": round(offered / send_time, 1),
        "delivered_per_s": round(len(in_window) / send_time, 1),
        "acked": len(acked), "sent": offered,
        "p50_ms": round(percentile(lat, 50), 2), "p99_ms": round(percentile(lat, 99), 2),
        "max_ms": round(max(lat) if lat else 0.0, 2),
        "lost": lost, "duplicates": duplicates, "out_of_order": out_of_order,
        "unacked": offered - len(acked),
        # connections the server dropped as too slow (an overloaded generator): not resumed here
        "disconnected": sum(1 for c in visitors + agents if c.closed),
        **{f"errors_{code}": n for code, n in errors.items()}, **sampler.summary(),
    }
    if during_result is not None:
        report["during"] = during_result
        for name, lo, hi in (("before", 0.0, phase[0]), ("during", phase[0], phase[1])):
            window = [ms for t, ms in timeline if lo <= t < hi]
            report[f"p50_ms_{name}"] = round(percentile(window, 50), 2)
            report[f"p99_ms_{name}"] = round(percentile(window, 99), 2)
            report[f"max_ms_{name}"] = round(max(window) if window else 0.0, 2)
            report[f"messages_{name}"] = len(window)
    relayed = max(1, len(in_window))
    for name, seconds in sampler.cpu_seconds().items():  # what one relayed message costs
        report[f"{name}_cpu_us_per_msg"] = round(seconds * 1e6 / relayed, 1)
    mem2 = target.used_memory()
    if mem0 is not None and mem1 is not None and mem2 is not None:
        # Redis memory of an open chat (its records, a gendarme's share, first message), and of
        # each message kept in its transcript: the figures for sizing a deployment
        report["redis_bytes_per_open_chat"] = round((mem1 - mem0) / pairs)
        report["redis_bytes_per_message"] = round((mem2 - mem1) / max(1, len(acked)))
    for c in visitors + agents:
        await c.close()
    # latency over time, as 100 ms buckets of p99
    buckets: dict[int, list[float]] = {}
    for t, ms in timeline:
        buckets.setdefault(int(t * 10), []).append(ms)
    series = {"p50 ms": [(b / 10, percentile(v, 50)) for b, v in sorted(buckets.items())],
              "p99 ms": [(b / 10, percentile(v, 99)) for b, v in sorted(buckets.items())]}
    return report, series
