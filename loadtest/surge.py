"""`surge` (and `soak`): realistic traffic. Citizens arrive as a Poisson process, wait, write,
get answers, and leave when the gendarme closes the chat; agents accept offers, answer after a
think time and close after a handling time. `surge` multiplies arrivals by `--factor` for the
middle third of the run; `soak` keeps the base rate for the whole `--duration`.

The report compares the queue with what a simple fluid model predicts: during the surge the
queue grows at (arrival rate - service capacity) per second, and drains afterwards at
(capacity - base rate).

Topics are mixed: a quarter of the citizens write about violence (a priority topic, which
always queues live and takes two slots), the others about low-priority topics. Surge mode is
scaled with the chats (3-s chats instead of about 300 s: `CHATD_ASYNC_AFTER_S` 6 instead of
600): a low-priority citizen told `suggest_leave` leaves the question (`leave`) and goes; the
gendarmes answer those chats once the live ones are served, and the transcripts are read back
to check that every answer is there; half of them (drawn at arrival) stay live whatever they
are told, as some citizens would. Each estimate a citizen is given (`eta_s`) is compared with
the wait that followed it, for the citizens who stay: judging estimates on those who left when
told to would keep only the chats whose estimate was low, and miss the waits of the others."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from chatd.config import Settings
from chatd.store import open_store

from .client import Conn, create_agents
from .cluster import Target
from .report import Sampler, percentile

AGENTS = 10
CAPACITY = 3
HANDLING_S = 3.0  # mean time an agent keeps a chat
THINK_S = 0.3  # before the agent answers a message
ASYNC_AFTER_S = 6.0  # surge mode, scaled like the chats (600 s for 300-s chats)
PRIORITY_SHARE = 0.25  # citizens writing about violence
LOW_TOPICS = ("general", "road", "scam")
STAYERS = 0.5  # low-priority citizens who stay live whatever they are told
SLOTS_PER_CHAT = PRIORITY_SHARE * 2 + (1 - PRIORITY_SHARE) * 1  # violence chats weigh 2


async def run(target: Target, base: float, factor: float, duration: float,
              soak: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    rng = random.Random(8)
    infos = await create_agents(target, AGENTS, capacity=CAPACITY, tag="sg")
    waits: list[tuple[float, float, str]] = []  # (t assigned, wait s, phase)
    by_priority: dict[bool, list[float]] = {True: [], False: []}  # waits of live chats
    went_async: dict[bool, list[str]] = {True: [], False: []}  # sessions left for later
    etas: list[tuple[float, float, str, bool]] = []  # (an estimate s, the wait that followed it
    # s, the phase it was given in, priority topic)
    first_etas: list[tuple[float, float]] = []  # (the first estimate s, the whole wait s)
    errors: list[dict[str, Any]] = []
    expected: dict[str, str] = {}  # cid -> who must receive it
    received: set[str] = set()
    acked: set[str] = set()
    arrivals: dict[str, int] = {"before": 0, "during": 0, "after": 0}
    served = 0
    t0 = time.monotonic()
    third = duration / 3

    def phase(t: float) -> str:
        if soak:
            return "before"
        return "before" if t < third else "during" if t < 2 * third else "after"

    def agent_frame(conn: Conn, f: dict[str, Any]) -> None:
        kind = f.get("type")
        if kind == "offer":
            if f.get("async"):  # left for later: nobody will write more, answer at once
                conn.state.setdefault("inbox", {}).setdefault(f["session"], asyncio.Event()).set()
            asyncio.ensure_future(conn.send({"type": "accept", "session": f["session"]}))
        elif kind == "assigned":
            for m in f.get("history", ()):  # what the visitor wrote before we took the chat
                if m.get("from") == "visitor" and m.get("cid"):
                    received.add(m["cid"])
                    conn.state.setdefault("inbox", {}).setdefault(f["session"], asyncio.Event()).set()
            asyncio.ensure_future(handle_chat(conn, f["session"]))
        elif kind == "msg" and f.get("from") == "visitor" and f.get("cid"):
            received.add(f["cid"])
            conn.state.setdefault("inbox", {}).setdefault(f["session"], asyncio.Event()).set()
        elif kind == "ack":
            acked.add(f["cid"])
        elif kind == "error":
            errors.append(f)

    async def handle_chat(conn: Conn, sid: str) -> None:
        nonlocal served
        inbox = conn.state.setdefault("inbox", {}).setdefault(sid, asyncio.Event())
        try:
            await asyncio.wait_for(inbox.wait(), 10)
        except asyncio.TimeoutError:
            pass
        await asyncio.sleep(min(4 * THINK_S, rng.expovariate(1 / THINK_S)))
        cid = f"r-{sid}"
        expected[cid] = "visitor"
        await conn.send({"type": "send", "session": sid, "cid": cid, "text": "Bonjour, je vous écoute."})
        # exponential, cut at 4x the mean: one chat of 20 s must not outlast the drain
        await asyncio.sleep(min(4 * HANDLING_S, rng.expovariate(1 / HANDLING_S)))
        await conn.send({"type": "close", "session": sid, "disposition": "answered"})
        served += 1

    def visitor_frame(conn: Conn, f: dict[str, Any]) -> None:
        kind = f.get("type")
        st = conn.state
        if kind == "queued":
            st["session"] = f["session"]
            st.setdefault("eta", f.get("eta_s"))
            if f.get("eta_s") is not None:  # every estimate, with when it was given
                st.setdefault("etas", []).append((time.monotonic(), float(f["eta_s"]),
                                                  phase(time.monotonic() - t0)))
            if f.get("suggest_leave") and not st.get("leaving") and not st["stays"]:
                st["leaving"] = True  # as a citizen would: an answer later beats a long wait
                asyncio.ensure_future(conn.send({"type": "leave", "session": f["session"]}))
        elif kind == "left":
            went_async[st["priority"]].append(f["session"])
            st["done"] = True
            asyncio.ensure_future(conn.close())
        elif kind == "assigned":
            now = time.monotonic()
            wait = now - st["started"]
            waits.append((now - t0, wait, st["phase"]))
            by_priority[st["priority"]].append(wait)
            if st["stays"]:  # estimates are judged on those who stay whatever they are told
                if st.get("eta") is not None:
                    first_etas.append((float(st["eta"]), wait))
                for at, eta, ph in st.get("etas", ()):
                    etas.append((eta, now - at, ph, st["priority"]))
            cid = f"q-{conn.name}"
            expected[cid] = "agent"
            asyncio.ensure_future(conn.send({"type": "send", "session": f["session"], "cid": cid,
                                             "text": "On m'a volé mon vélo"}))
        elif kind == "msg" and f.get("from") == "agent" and f.get("cid"):
            received.add(f["cid"])
        elif kind == "ack":
            acked.add(f["cid"])
        elif kind == "closed":
            st["done"] = True
            asyncio.ensure_future(conn.close())
        elif kind == "error":
            errors.append(f)

    n = len(target.urls)
    agent_conns = []
    for i, (_, token) in enumerate(infos):
        c = await Conn.open(target.urls[i % n], "agent", agent_frame, name=f"sa{i}")
        await c.send({"type": "hello", "token": token})
        await c.send({"type": "status", "status": "available"})
        agent_conns.append(c)
    store = open_store(target.redis_url, Settings(key_prefix=target.prefix))
    queue_series: list[tuple[float, float]] = []

    async def watch_queue() -> None:
        while True:
            waiting, _, _, _ = await store.queue_stats(["violence", *LOW_TOPICS])
            queue_series.append((time.monotonic() - t0, float(sum(waiting.values()))))
            await asyncio.sleep(0.5)

    async def arrive(i: int, t: float) -> None:
        try:
            c = await Conn.open(target.urls[i % n], "visitor", visitor_frame, name=f"sv{i}")
            priority = rng.random() < PRIORITY_SHARE
            topic = "violence" if priority else rng.choice(LOW_TOPICS)
            # half the low-priority citizens stay in the queue even when told the wait is long
            stays = priority or rng.random() < STAYERS
            c.state.update(started=time.monotonic(), phase=phase(t), priority=priority, stays=stays)
            await c.send({"type": "hello"})
            await c.send({"type": "start", "topic": topic, "text": "Bonjour"})
        except OSError as exc:
            errors.append({"code": "connect", "message": str(exc)})

    sampler = Sampler(target.server_pids, target.redis_pid)
    sampler.start()
    watcher = asyncio.create_task(watch_queue())
    t0 = time.monotonic()
    i = 0
    tasks = []
    while (t := time.monotonic() - t0) < duration:
        rate = base * (factor if phase(t) == "during" else 1.0)
        await asyncio.sleep(rng.expovariate(rate))
        if time.monotonic() - t0 >= duration:
            break
        arrivals[phase(time.monotonic() - t0)] += 1
        tasks.append(asyncio.create_task(arrive(i, time.monotonic() - t0)))
        i += 1
    # let the queue drain (bounded: the longest chat is 4 x HANDLING_S, plus waits), then count
    drain_until = time.monotonic() + max(25.0, duration)
    while time.monotonic() < drain_until and served < i:
        await asyncio.sleep(0.5)
    await asyncio.sleep(1.0)
    watcher.cancel()
    await sampler.stop()
    # the answers to questions left for later: in their transcripts (nobody was there to get them)
    left_sids = {sid for sids in went_async.values() for sid in sids}
    for sid in left_sids:
        cid = f"r-{sid}"
        if cid in expected:
            texts = {e.cid async for page in store.history_pages(sid) for e in page}
            if cid in texts:
                received.add(cid)
    await store.aclose()
    lost = sum(1 for cid in expected if cid in acked and cid not in received)
    capacity_per_s = AGENTS * CAPACITY / SLOTS_PER_CHAT / (HANDLING_S + THINK_S)
    during_rate = arrivals["during"] / third if not soak else 0.0
    report: dict[str, Any] = {
        "scenario": "soak" if soak else "surge", "processes": n, "factor": factor,
        "arrivals_per_s_before": round(arrivals["before"] / (duration if soak else third), 2),
        "arrivals_per_s_during": round(during_rate, 2),
        "arrivals": i, "served": served,
        "service_capacity_per_s": round(capacity_per_s, 2),
        "predicted_queue_growth_per_s": round(max(0.0, during_rate - capacity_per_s), 2),
        "observed_queue_growth_per_s": _growth(queue_series, third, 2 * third) if not soak else 0.0,
        "queue_max": int(max((q for _, q in queue_series), default=0)),
        "queue_end": int(queue_series[-1][1]) if queue_series else 0,
        "errors": len(errors), "error_codes": " | ".join(sorted({f"{e.get('code')}: {e.get('message')}"
                                                             for e in errors})),
        "lost": lost,
        "wait_p50_s": round(percentile([w for _, w, _ in waits], 50), 2),
        "wait_p99_s": round(percentile([w for _, w, _ in waits], 99), 2),
        **sampler.summary(),
    }
    for prio, name in ((True, "priority"), (False, "other")):
        report[f"wait_p50_s_{name}"] = round(percentile(by_priority[prio], 50), 2)
        report[f"wait_p90_s_{name}"] = round(percentile(by_priority[prio], 90), 2)
        report[f"async_{name}"] = len(went_async[prio])
    # how honest the estimates were: each one against the wait that followed it (a wait under
    # 2 s is a match, not a queue); and the first ones alone, made before the surge is known
    ratios = [eta / wait for eta, wait, _, _ in etas if wait >= 2.0]
    firsts = [eta / wait for eta, wait in first_etas if wait >= 2.0]
    report["eta_samples"] = len(ratios)
    report["eta_ratio_p50"] = round(percentile(ratios, 50), 2) if ratios else None
    report["eta_within_2x_pct"] = (round(100 * sum(1 for r in ratios if 0.5 <= r <= 2) / len(ratios))
                                   if ratios else None)
    report["eta_first_ratio_p50"] = round(percentile(firsts, 50), 2) if firsts else None
    for key, keep in (("before", lambda ph, pr: ph == "before"), ("during", lambda ph, pr: ph == "during"),
                      ("after", lambda ph, pr: ph == "after"), ("priority", lambda ph, pr: pr),
                      ("other", lambda ph, pr: not pr)):
        some = [eta / wait for eta, wait, ph, pr in etas if wait >= 2.0 and keep(ph, pr)]
        report[f"eta_ratio_p50_{key}"] = round(percentile(some, 50), 2) if some else None
    for ph in ("before", "during", "after"):
        ws = [w for _, w, p in waits if p == ph]
        report[f"wait_p50_s_{ph}"] = round(percentile(ws, 50), 2)
        report[f"wait_p99_s_{ph}"] = round(percentile(ws, 99), 2)
    for c in agent_conns:
        await c.close()
    series = {"queue length": queue_series, "wait (s) at assignment": [(t, w) for t, w, _ in waits]}
    return report, series


def _growth(series: list[tuple[float, float]], start: float, end: float) -> float:
    inside = [(t, q) for t, q in series if start <= t <= end]
    if len(inside) < 2:
        return 0.0
    (t1, q1), (t2, q2) = inside[0], max(inside, key=lambda p: p[1])
    return round((q2 - q1) / max(t2 - t1, 1e-9), 2)
