"""`relay`: P visitor-agent pairs chat at R messages/s in total; every message is timed from
send to arrival at the peer, and every seq is checked for loss, duplicates and order.

The chats are set up once (``Relay.setup``) and can carry several steps of load one after the
other (``Relay.step``): the ladder of ``relay --against baseline`` (loadtest/against.py)."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable

from .client import Conn, create_agents
from .cluster import Target
from .report import Sampler, percentile

PER_AGENT = 10  # each agent answers up to 10 of the pairs' chats (fewer sign-ins to set up)


class Relay:
    def __init__(self, target: Target, pairs: int) -> None:
        self.target = target
        self.pairs = pairs
        # the baseline numbers each sender's messages, not the chat's: order is checked per
        # sender there, per chat on chatd
        self.per_sender = target.server == "baseline"
        self.sent_at: dict[str, float] = {}  # cid -> perf_counter at send
        self.step_of: dict[str, int] = {}  # cid -> the step it was sent in
        self.where: dict[str, tuple[Conn, str]] = {}  # cid -> (connection, session), for retries
        self.errors: dict[str, int] = {}
        self.acked: set[str] = set()
        self.delivered: dict[str, float] = {}  # cid -> latency ms (first arrival at the peer)
        self.duplicates = 0
        self.out_of_order = 0
        self.last_seq: dict[tuple[str, ...], int] = {}
        self.timeline: list[tuple[float, float]] = []  # this step's (t, latency ms)
        self.t0 = time.perf_counter()
        self.step_no = 0
        self.assigned: dict[str, asyncio.Event] = {}
        self.sessions: dict[str, str] = {}  # visitor conn name -> session
        self.visitors: list[Conn] = []
        self.agents: list[Conn] = []
        self.senders: list[tuple[Conn, str]] = []
        self.counters: dict[str, int] = {}
        self.k = 0
        self.mem: list[int | None] = [target.used_memory()]

    def on_frame(self, conn: Conn, f: dict[str, Any]) -> None:
        kind = f.get("type")
        if kind == "msg":
            sid = f["session"]
            key = (conn.name, sid, f["from"]) if self.per_sender else (conn.name, sid)
            prev = self.last_seq.get(key, 0)
            seq = f["seq"]
            if seq == prev:
                self.duplicates += 1
                return
            if seq < prev:
                self.out_of_order += 1
            self.last_seq[key] = max(prev, seq)
            cid = f.get("cid")
            if cid and cid in self.sent_at and not cid.startswith(conn.name + "-"):
                now = time.perf_counter()
                if cid in self.delivered:
                    self.duplicates += 1
                else:
                    ms = (now - self.sent_at[cid]) * 1000
                    self.delivered[cid] = ms
                    if self.step_of[cid] == self.step_no:
                        self.timeline.append((now - self.t0, ms))
        elif kind == "ack":
            self.acked.add(f["cid"])
        elif kind == "error":
            code = f.get("code", "?")
            self.errors[code] = self.errors.get(code, 0) + 1
            cid = f.get("ref")
            if code in ("unavailable", "rate_limited") and cid in self.where:
                # what a real client does: send the same cid again, a little later
                c, sid = self.where[cid]
                asyncio.get_running_loop().call_later(0.05, c.send_now, {
                    "type": "send", "session": sid, "cid": cid, "text": "x" * 40})
        elif kind == "queued":
            self.sessions[conn.name] = f["session"]
        elif kind == "assigned":
            if conn.name in self.assigned:
                self.assigned[conn.name].set()
            if "history" in f:  # the agent side
                conn.state.setdefault("sessions", []).append(f["session"])
                if f["history"]:
                    self.last_seq[(conn.name, f["session"])] = f["history"][-1]["seq"]

    async def setup(self) -> None:
        target = self.target
        n_agents = -(-self.pairs // PER_AGENT)
        if target.server == "baseline":  # no accounts there
            agents_info = [(f"rel{i}", "-") for i in range(n_agents)]
        else:
            agents_info = await create_agents(target, n_agents, capacity=PER_AGENT, tag="rel")
        n = len(target.urls)
        for i, (_, token) in enumerate(agents_info):
            c = await Conn.open(target.urls[i % n], "agent", self.on_frame, name=f"a{i}")
            await c.send({"type": "hello", "token": token})
            await c.send({"type": "status", "status": "available"})
            self.agents.append(c)
        for i in range(self.pairs):
            c = await Conn.open(target.urls[(i + 1) % n], "visitor", self.on_frame, name=f"v{i}")
            self.assigned[c.name] = asyncio.Event()
            await c.send({"type": "hello"})
            await c.send({"type": "start", "topic": "general"})
            self.visitors.append(c)
        await asyncio.wait_for(asyncio.gather(*[e.wait() for e in self.assigned.values()]), 120)
        while sum(len(a.state.get("sessions", ())) for a in self.agents) < self.pairs:
            await asyncio.sleep(0.05)
        for v in self.visitors:
            v.state["session"] = self.sessions[v.name]
        # one sender per side of each chat: (connection, session)
        senders = [(v, v.state["session"]) for v in self.visitors]
        senders += [(a, sid) for a in self.agents for sid in a.state["sessions"]]
        self.senders = [s for pair in zip(senders[:self.pairs], senders[self.pairs:]) for s in pair]
        self.counters = {sid + c.name: 0 for c, sid in self.senders}
        self.mem.append(self.target.used_memory())

    async def step(self, rate: float, duration: float,
                   during: Callable[[], Awaitable[Any]] | None = None
                   ) -> tuple[dict[str, Any], dict[str, Any]]:
        """``during``: another load, started once the messages have gone on alone for
        ``duration`` seconds; the messages go on until it is done. Its result is the report's
        ``during``, and the latencies are given for each phase (``*_before``, ``*_during``)."""
        self.step_no += 1
        self.timeline = []
        mine: list[str] = []
        dup0, ooo0, err0 = self.duplicates, self.out_of_order, dict(self.errors)
        target = self.target
        sampler = Sampler(target.server_pids, target.redis_pid, target.shards)
        sampler.start()
        t0 = self.t0 = time.perf_counter()
        tick = 0.005
        offered = 0
        end = t0 + duration
        beside: asyncio.Future[Any] | None = None
        phase = (0.0, 0.0)  # when the other load ran, in seconds since t0
        senders, counters = self.senders, self.counters
        while (now := time.perf_counter()) < end or (beside is not None and not beside.done()) \
                or (during is not None and beside is None):
            if during is not None and beside is None and now >= end:
                beside = asyncio.ensure_future(during())
                phase = (now - t0, 0.0)
            due = int((now - t0) * rate)  # paced on the clock, not on sleeps that run late
            for _ in range(due - offered):
                c, sid = senders[self.k % len(senders)]
                self.k += 1
                counters[sid + c.name] += 1
                cid = f"{c.name}-{sid[:6]}{counters[sid + c.name]}"
                self.sent_at[cid] = now
                self.step_of[cid] = self.step_no
                self.where[cid] = (c, sid)
                mine.append(cid)
                c.send_now({"type": "send", "session": sid, "cid": cid, "text": "x" * 40})
                offered += 1
            await asyncio.sleep(tick)
        send_time = time.perf_counter() - t0
        during_result = await beside if beside is not None else None
        if beside is not None:
            phase = (phase[0], send_time)
        # drain: wait until everything acknowledged has arrived, or 30 s
        acked, delivered = self.acked, self.delivered
        deadline = time.perf_counter() + 30
        while time.perf_counter() < deadline and not all(
                c in acked and c in delivered for c in mine):
            await asyncio.sleep(0.1)
        await sampler.stop()
        lat = [delivered[c] for c in mine if c in delivered]
        in_window = [ms for t, ms in self.timeline if t <= send_time]
        step_acked = sum(1 for c in mine if c in acked)
        lost = sum(1 for c in mine if c in acked and c not in delivered)
        report: dict[str, Any] = {
            "scenario": "relay", "server": target.server, "processes": len(target.urls),
            "pairs": self.pairs,
            "offered_per_s": round(offered / send_time, 1),
            "delivered_per_s": round(len(in_window) / send_time, 1),
            "acked": step_acked, "sent": offered,
            "p50_ms": round(percentile(lat, 50), 2), "p99_ms": round(percentile(lat, 99), 2),
            "max_ms": round(max(lat) if lat else 0.0, 2),
            "lost": lost, "duplicates": self.duplicates - dup0,
            "out_of_order": self.out_of_order - ooo0,
            "unacked": offered - step_acked,
            # connections the server dropped as too slow (an overloaded generator): not resumed
            "disconnected": sum(1 for c in self.visitors + self.agents if c.closed),
            **{f"errors_{code}": n - err0.get(code, 0) for code, n in self.errors.items()
               if n > err0.get(code, 0)},
            **sampler.summary(),
        }
        if during_result is not None:
            report["during"] = during_result
            for name, lo, hi in (("before", 0.0, phase[0]), ("during", phase[0], phase[1])):
                window = [ms for t, ms in self.timeline if lo <= t < hi]
                report[f"p50_ms_{name}"] = round(percentile(window, 50), 2)
                report[f"p99_ms_{name}"] = round(percentile(window, 99), 2)
                report[f"max_ms_{name}"] = round(max(window) if window else 0.0, 2)
                report[f"messages_{name}"] = len(window)
        relayed = max(1, len(in_window))
        for name, seconds in sampler.cpu_seconds().items():  # what one relayed message costs
            report[f"{name}_cpu_us_per_msg"] = round(seconds * 1e6 / relayed, 1)
        mem0, mem1 = self.mem[0], self.mem[-1]
        mem2 = target.used_memory()
        if self.step_no == 1 and None not in (mem0, mem1, mem2):
            # Redis memory of an open chat (its records, a gendarme's share, first message), and
            # of each message kept in its transcript: the figures for sizing a deployment
            report["redis_bytes_per_open_chat"] = round((mem1 - mem0) / self.pairs)  # type: ignore[operator]
            report["redis_bytes_per_message"] = round((mem2 - mem1) / max(1, step_acked))  # type: ignore[operator]
        # latency over time, as 100 ms buckets of p99
        buckets: dict[int, list[float]] = {}
        for t, ms in self.timeline:
            buckets.setdefault(int(t * 10), []).append(ms)
        series = {"p50 ms": [(b / 10, percentile(v, 50)) for b, v in sorted(buckets.items())],
                  "p99 ms": [(b / 10, percentile(v, 99)) for b, v in sorted(buckets.items())]}
        for cid in mine:  # what a later step needs of this one: nothing
            self.where.pop(cid, None)
        return report, series

    async def close(self) -> None:
        for c in self.visitors + self.agents:
            await c.close()


async def run(target: Target, pairs: int, rate: float, duration: float,
              during: Callable[[], Awaitable[Any]] | None = None
              ) -> tuple[dict[str, Any], dict[str, Any]]:
    """One step of load on freshly set-up chats (``Relay.step`` says what ``during`` does)."""
    relay = Relay(target, pairs)
    try:
        await relay.setup()
        return await relay.step(rate, duration, during)
    finally:
        await relay.close()
