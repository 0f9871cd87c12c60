"""`chaos`: chats under faults, and a checker that counts what went wrong.

``python -m loadtest chaos --topology single|sentinel|cluster [--faults kill-chatd,freeze,…]``
starts the Redis topology (``topology.py``: Debian's redis-server 7, a proxy in front of each
data node), N chatd processes and traffic: citizens arrive, write, are answered, sometimes
transferred, and the gendarme closes; every client resends what was not acknowledged (same
cid), reconnects to a live process and resumes. Faults come on a schedule:

- ``kill-chatd``: SIGKILL of a chatd process (its clients move to another); it restarts 2 s later
- ``kill-primary``: SIGKILL of the Redis primary; Sentinel fails over; the node comes back as a
  replica 3 s later (single: the Redis is killed and restarted from its AOF)
- ``freeze``: every link from chatd to Redis goes silent without closing (a stale NAT entry)
- ``restart-redis``: a clean restart of the Redis primary (single) or of a replica (sentinel)

Every client records what it sent, what was acknowledged (cid → seq) and every message shown to
it. Afterwards the checker reads each chat's transcript from Redis and counts: acknowledged
messages lost; messages stored twice; messages shown out of order or twice; seqs shown and then
taken back (another message under the same number); chats held by two gendarmes at once
(their acknowledged messages interleave); gendarmes over capacity; citizens stranded (a chat
still open, or never started, when the traffic has drained). All must be 0.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import msgpack
import websockets

from chatd.auth import Auth
from chatd.config import Settings
from chatd.store import open_store

from .cluster import BENCH_ENV, free_port
from .report import percentile
from .topology import Single, Topology, make

PASSWORD = "chaos password"
FAULTS = ("kill-chatd", "kill-primary", "freeze", "restart-redis")
CAPACITY = 3
VISITOR_MESSAGES = 4  # each citizen writes this many (plus the first, with `start`)
AGENT_REPLIES = 3  # a gendarme answers this many times, then closes (or transfers)
TRANSFER_SHARE = 0.15  # chats the gendarme hands on to the topic's queue instead


class Lost(Exception):
    """The connection is gone: reconnect and resume."""


class Servers:
    """N chatd processes on fixed ports, each killable and restartable."""

    def __init__(self, n: int, url: str, env: dict[str, str], workdir: Path) -> None:
        self.url = url
        self.env = env
        self.dir = workdir
        self.ports = [free_port() for _ in range(n)]
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    def ws(self, port: int) -> str:
        return f"ws://127.0.0.1:{port}"

    def start(self, port: int) -> None:
        log = open(self.dir / f"chatd-{port}.log", "ab")
        self.procs[port] = subprocess.Popen(
            [sys.executable, "-m", "chatd", "serve", "--port", str(port), "--redis-url", self.url],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def alive(self) -> list[int]:
        return [p for p, proc in self.procs.items() if proc.poll() is None]

    def kill(self, port: int) -> None:
        proc = self.procs[port]
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    async def ready(self, port: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient() as http:
            while time.monotonic() < deadline:
                try:
                    if (await http.get(f"http://127.0.0.1:{port}/readyz", timeout=1)).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        raise SystemExit(f"loadtest: chatd on port {port} did not get ready")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)

    def errors(self) -> list[str]:
        out = []
        for log in sorted(self.dir.glob("chatd-*.log")):
            out += [f"{log.stem}: {ln}" for ln in log.read_text(errors="replace").splitlines()
                    if "Traceback" in ln or " ERROR " in ln and "background task" in ln]
        return out


class World:
    """What every simulated client shares: where to connect, the clock, and the records."""

    def __init__(self, servers: Servers, rng: random.Random) -> None:
        self.servers = servers
        self.rng = rng
        self.t0 = time.monotonic()
        self.acks: list[tuple[float, float]] = []  # (t, latency s)
        self.unavailable: list[float] = []
        self.reconnects = 0
        self.agent_acks: dict[str, list[tuple[int, str]]] = defaultdict(list)  # sid -> (seq, login)
        self.over_capacity = 0
        self.draining = False

    def now(self) -> float:
        return time.monotonic() - self.t0

    async def connect(self, role: str, hello: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """A connection to a live process and its `welcome` (trying others until one answers)."""
        while True:
            alive = self.servers.alive()
            if alive:
                port = self.rng.choice(alive)
                try:
                    ws = await websockets.connect(
                        f"{self.servers.ws(port)}/ws/{role}", subprotocols=["chatd.v1.msgpack"],  # type: ignore[list-item]
                        open_timeout=5, close_timeout=1, ping_interval=None, max_size=2**22,
                        compression=None)
                    await ws.send(msgpack.packb(hello))
                    while True:
                        frame = msgpack.unpackb(await asyncio.wait_for(ws.recv(), 10))
                        if frame.get("type") == "welcome":
                            return ws, frame
                        if frame.get("type") == "error" and frame.get("ref") == "hello" and \
                                frame.get("code") == "unavailable":
                            raise Lost()
                except (OSError, Lost, asyncio.TimeoutError, websockets.WebSocketException):
                    pass
            await asyncio.sleep(0.2)


async def recv(ws: Any, timeout: float) -> dict[str, Any] | None:
    try:
        return msgpack.unpackb(await asyncio.wait_for(ws.recv(), timeout))  # type: ignore[no-any-return]
    except asyncio.TimeoutError:
        return None
    except websockets.ConnectionClosed:
        raise Lost() from None


async def send(ws: Any, frame: dict[str, Any]) -> None:
    try:
        await ws.send(msgpack.packb(frame))
    except (websockets.ConnectionClosed, OSError):
        raise Lost() from None


class Outbox:
    """Messages not yet acknowledged: resent (same cid) on `unavailable`, on a new connection,
    or when no answer came within 8 s."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.items: dict[str, dict[str, Any]] = {}  # cid -> {frame, sent, due}
        self.acked: dict[str, int] = {}

    def add(self, cid: str, frame: dict[str, Any]) -> None:
        self.items[cid] = {"frame": frame, "first": time.monotonic(), "due": 0.0}

    async def flush(self, ws: Any, force: bool = False) -> None:
        now = time.monotonic()
        for item in self.items.values():
            if force or now >= item["due"]:
                item["due"] = now + 8
                await send(ws, item["frame"])

    def answered(self, frame: dict[str, Any]) -> str | None:
        """An `ack` or an `error` about one of ours: the cid acknowledged, if so."""
        cid = frame.get("cid") if frame["type"] == "ack" else frame.get("ref")
        item = self.items.get(cid or "")
        if item is None:
            return None
        if frame["type"] == "ack":
            del self.items[cid]
            self.acked[cid] = frame.get("seq", frame.get("nseq", 0))
            self.world.acks.append((self.world.now(), time.monotonic() - item["first"]))
            return cid
        if frame.get("code") == "unavailable":
            self.world.unavailable.append(self.world.now())
            item["due"] = time.monotonic() + 0.3
        else:  # refused for good (the chat closed meanwhile): nothing more to send
            del self.items[cid]
        return None


class Seen:
    """What one client was shown of one chat: each seq once, in order, never changed."""

    def __init__(self) -> None:
        self.content: dict[int, tuple[str, str]] = {}
        self.order: list[int] = []
        self.changed = 0

    def saw(self, seq: int, sender: str, text: str) -> None:
        self.order.append(seq)
        first = self.content.setdefault(seq, (sender, text))
        if first != (sender, text):
            self.changed += 1

    def last(self) -> int:
        return max(self.content, default=0)


class Visitor:
    def __init__(self, world: World, i: int) -> None:
        self.world, self.i = world, i
        self.token: str | None = None
        self.sid: str | None = None
        self.seen = Seen()
        self.out = Outbox(world)
        self.written = 0
        self.next_at = 0.0
        self.assigned = False
        self.closed = False

    async def run(self) -> None:
        while not self.closed:
            try:
                await self._connected()
            except Lost:
                self.world.reconnects += 1
                await asyncio.sleep(0.1)

    async def _connected(self) -> None:
        hello: dict[str, Any] = {"type": "hello"}
        if self.token:
            hello["token"] = self.token
        if self.sid:
            hello["resume"] = {"session": self.sid, "after": self.seen.last()}
        ws, welcome = await self.world.connect("visitor", hello)
        try:
            self.token = welcome["token"]
            for s in welcome.get("sessions", ()):
                if s["session"] == self.sid and s["state"] == "closed":
                    self.closed = True
            while self.sid is None:  # a start whose answer is lost is sent again: same chat
                await send(ws, {"type": "start", "topic": "general", "text": f"v{self.i} bonjour"})
                frame = await recv(ws, 8)
                while frame is not None and frame["type"] != "queued":
                    self._frame(frame)  # what comes first (an `assigned`, an error) counts too
                    frame = await recv(ws, 8)
                if frame is not None:
                    self.sid = frame["session"]
            await self.out.flush(ws, force=True)
            while not self.closed:
                frame = await recv(ws, 0.25)
                if frame is not None:
                    self._frame(frame)
                if self.assigned and self.written < VISITOR_MESSAGES and \
                        time.monotonic() >= self.next_at and not self.out.items:
                    cid = f"v{self.i}.{self.written}"
                    self.out.add(cid, {"type": "send", "session": self.sid, "cid": cid,
                                       "text": f"citoyen {self.i} message {self.written}"})
                    self.written += 1
                    self.next_at = time.monotonic() + self.world.rng.uniform(0.3, 1.2)
                await self.out.flush(ws)
        finally:
            await ws.close()

    def _frame(self, f: dict[str, Any]) -> None:
        kind = f["type"]
        if kind == "msg" and f["session"] == self.sid:
            self.seen.saw(f["seq"], f["from"], f["text"])
        elif kind == "assigned":
            self.assigned = True
        elif kind == "closed" and f["session"] == self.sid:
            self.closed = True
        elif kind in ("ack", "error"):
            self.out.answered(f)


class Agent:
    def __init__(self, world: World, login: str, token: str) -> None:
        self.world, self.login, self.token = world, login, token
        self.chats: dict[str, dict[str, Any]] = {}  # sid -> {replies, due, heard}
        self.seen: dict[str, Seen] = {}  # sid -> what this holding of the chat showed
        self.views: list[tuple[str, Seen]] = []  # every holding, past ones too
        self.out = Outbox(world)
        self.ending: dict[str, dict[str, Any]] = {}  # sid -> close or transfer not yet confirmed
        self.stop = False

    async def run(self) -> None:
        while not self.stop:
            try:
                await self._connected()
            except Lost:
                self.world.reconnects += 1
                await asyncio.sleep(0.1)

    async def _connected(self) -> None:
        resume = [{"session": sid, "after": self.seen[sid].last()} for sid in self.chats
                  if sid in self.seen]
        hello: dict[str, Any] = {"type": "hello", "token": self.token}
        if resume:
            hello["resume"] = resume
        ws, welcome = await self.world.connect("agent", hello)
        try:
            mine = {s["session"] for s in welcome.get("sessions", ())}
            for sid in list(self.chats):
                if sid not in mine:  # no longer ours (closed, or given to someone else)
                    del self.chats[sid]
            await send(ws, {"type": "status", "status": "available"})
            await self.out.flush(ws, force=True)
            while not self.stop:
                frame = await recv(ws, 0.25)
                if frame is not None:
                    await self._frame(ws, frame)
                await self._act(ws)
                await self.out.flush(ws)
        finally:
            await ws.close()

    async def _frame(self, ws: Any, f: dict[str, Any]) -> None:
        kind = f["type"]
        sid = f.get("session", "")
        if kind == "offer":
            await send(ws, {"type": "accept", "session": sid})
        elif kind == "assigned":
            self.ending.pop(sid, None)  # ours again: whatever ended it before is done
            self.chats.setdefault(sid, {"replies": 0, "due": None, "heard": 0})
            if len(self.chats) > CAPACITY:
                self.world.over_capacity += 1
            self.seen[sid] = Seen()  # a new holding (a chat can come back after a transfer)
            self.views.append((sid, self.seen[sid]))
            for h in f.get("history", ()):
                self._saw(sid, h)
        elif kind == "msg":
            self._saw(sid, f)
        elif kind in ("closed", "released"):
            self.chats.pop(sid, None)
            self.ending.pop(sid, None)
        elif kind in ("ack", "error"):
            cid = self.out.answered(f)
            if cid and f["type"] == "ack":
                self.world.agent_acks[f["session"]].append((f["seq"], self.login))

    def _saw(self, sid: str, m: dict[str, Any]) -> None:
        seen = self.seen.get(sid)
        if seen is None:
            return
        seen.saw(m["seq"], m["from"], m["text"])
        chat = self.chats.get(sid)
        if chat is not None and m["from"] == "visitor":
            chat["heard"] += 1
            if chat["due"] is None:
                chat["due"] = time.monotonic() + self.world.rng.uniform(0.2, 0.8)

    async def _act(self, ws: Any) -> None:
        now = time.monotonic()
        for sid, end in list(self.ending.items()):  # `unavailable`, or lost with a connection
            if now >= end["due"]:
                end["tries"] += 1
                if end["tries"] > 10:  # done long ago, its `closed` missed: nothing to redo
                    del self.ending[sid]
                    continue
                end["due"] = now + 3
                await send(ws, end["frame"])
        for sid, chat in list(self.chats.items()):
            if chat["due"] is None or now < chat["due"] or any(
                    i["frame"].get("session") == sid for i in self.out.items.values()):
                continue
            chat["due"] = None
            if chat["replies"] < AGENT_REPLIES:
                cid = f"{self.login}.{sid}.{chat['replies']}"
                self.out.add(cid, {"type": "send", "session": sid, "cid": cid,
                                   "text": f"gendarme {self.login} réponse {chat['replies']}"})
                chat["replies"] += 1
                if chat["heard"] > chat["replies"]:
                    chat["due"] = now + 0.3
            elif chat["heard"] >= VISITOR_MESSAGES + 1 or self.world.draining:
                del self.chats[sid]  # ended by us: the slot is free as far as we count
                if self.world.rng.random() < TRANSFER_SHARE and not self.world.draining:
                    frame = {"type": "transfer", "session": sid, "to_topic": "general"}
                else:
                    frame = {"type": "close", "session": sid, "disposition": "answered"}
                self.ending[sid] = {"frame": frame, "due": now + 3, "tries": 0}
                await send(ws, frame)
            else:
                chat["due"] = now + 0.5


async def transcripts(url: str, prefix: str, sids: list[str]
                      ) -> tuple[dict[str, list[Any]], dict[str, dict[str, str]]]:
    """Each chat's messages as stored, and its state, read back from Redis at the end."""
    store = open_store(url, Settings(key_prefix=prefix))
    try:
        found = {sid: [e async for page in store.history_pages(sid) for e in page]
                 for sid in sids}
        states = dict(zip(sids, await store.states(sids)))
    finally:
        await store.aclose()
    return found, states


def check(visitors: list[Visitor], agents: list[Agent], world: World,
          found: dict[str, list[Any]], states: dict[str, dict[str, str]]) -> dict[str, int]:
    lost = duplicated = disorder = taken_back = double = stranded = 0
    for v in visitors:
        if v.sid is None or states.get(v.sid, {}).get("state") != "closed":
            stranded += 1
            st = states.get(v.sid or "", {})
            holder = next((a for a in agents if a.login == st.get("agent")), None)
            print(f"loadtest: stranded: citizen {v.i}, chat {v.sid}, state {st.get('state')}, "
                  f"agent {st.get('agent') or '-'}, wrote {v.written}, saw {v.seen.last()}, "
                  f"assigned {v.assigned}, the agent's view "
                  f"{holder.chats.get(v.sid or '') if holder else None}", file=sys.stderr)
    for sid, entries in found.items():
        by_seq = {e.seq: e for e in entries}
        senders = defaultdict(list)
        for e in entries:
            if e.cid:
                senders[(e.sender, e.cid)].append(e.seq)
        duplicated += sum(len(seqs) - 1 for seqs in senders.values())
        spans: dict[str, list[int]] = defaultdict(list)
        for seq, login in world.agent_acks.get(sid, ()):
            spans[login].append(seq)
        ranges = sorted((min(s), max(s)) for s in spans.values())
        double += sum(1 for a, b in zip(ranges, ranges[1:]) if b[0] < a[1])
        views = [v.seen for v in visitors if v.sid == sid]
        views += [seen for a in agents for s, seen in a.views if s == sid]
        for seen in views:
            if seen.order != sorted(set(seen.order)):
                disorder += 1
            taken_back += seen.changed
            for seq, (sender, text) in seen.content.items():
                e = by_seq.get(seq)
                if e is None or e.sender != sender or e.text != text:
                    taken_back += 1
    stored = {sid: {e.seq: e for e in entries} for sid, entries in found.items()}
    for who in [*visitors, *agents]:
        for cid, seq in who.out.acked.items():
            sid = who.sid if isinstance(who, Visitor) else cid.split(".")[1]
            e = stored.get(sid or "", {}).get(seq)
            if e is None or e.cid != cid:
                lost += 1
    return {"lost": lost, "duplicated": duplicated, "reordered": disorder,
            "taken_back": taken_back, "double_assigned": double,
            "over_capacity": world.over_capacity, "stranded": stranded}


async def run(topology: str, faults: list[str], duration: float, every: float, processes: int,
              arrivals_per_s: float, agents_n: int, ack_replicas: int, seed: int = 7
              ) -> tuple[dict[str, Any], dict[str, Any], list[tuple[float, str]]]:
    rng = random.Random(seed)
    workdir = Path(tempfile.mkdtemp(prefix="chatd-chaos-"))
    prefix = "cx" + uuid.uuid4().hex[:8]
    topo: Topology = make(topology)
    await topo.start()
    env = {**os.environ, **BENCH_ENV, "CHATD_KEY_PREFIX": prefix, "CHATD_LOG_LEVEL": "info",
           "CHATD_SECRET": "chaos-secret-" + prefix, "CHATD_TICK": "0.5",
           "CHATD_ACK_REPLICAS": str(ack_replicas), "CHATD_HEARTBEAT_TTL": "6",
           "CHATD_AGENT_GRACE": "10", "CHATD_OFFER_TIMEOUT": "10"}
    servers = Servers(processes, topo.url, env, workdir)
    marks: list[tuple[float, str]] = []
    try:
        for port in servers.ports:
            servers.start(port)
        for port in servers.ports:
            await servers.ready(port)
        world = World(servers, rng)
        agents = [Agent(world, login, token)
                  for login, token in await _accounts(topo.url, prefix, servers, agents_n)]
        agent_tasks = [asyncio.ensure_future(a.run()) for a in agents]
        visitors: list[Visitor] = []
        visitor_tasks = []
        fault_kinds = itertools.cycle(faults)

        async def inject() -> None:
            await asyncio.sleep(every / 2)
            while world.now() < duration:
                kind = next(fault_kinds)
                marks.append((world.now(), kind))
                print(f"loadtest: {world.now():5.1f} s  fault: {kind}", file=sys.stderr)
                await _fault(kind, topo, servers, rng)
                await asyncio.sleep(every)

        injector = asyncio.ensure_future(inject())
        while world.now() < duration:
            await asyncio.sleep(rng.expovariate(arrivals_per_s))
            v = Visitor(world, len(visitors))
            visitors.append(v)
            visitor_tasks.append(asyncio.ensure_future(v.run()))
        await injector
        for port in servers.ports:  # whatever the last fault did, every process is back
            if port not in servers.alive():
                servers.start(port)
        world.draining = True
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(v.closed for v in visitors):
            await asyncio.sleep(0.5)
        for a in agents:
            a.stop = True
        for task in visitor_tasks:
            task.cancel()
        ends = await asyncio.gather(*agent_tasks, *visitor_tasks, return_exceptions=True)
        died = [r for r in ends
                if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError)]
        for exc in died[:5]:
            print(f"loadtest: a simulated client died: {exc!r}", file=sys.stderr)
        found, states = await transcripts(topo.url, prefix, [v.sid for v in visitors if v.sid])
        counts = check(visitors, agents, world, found, states)
        report: dict[str, Any] = {
            "scenario": "chaos", "topology": topology, "processes": processes,
            "ack_replicas": ack_replicas, "duration_s": duration,
            "faults": ",".join(faults), "faults_injected": len(marks),
            "visitors": len(visitors), "messages_acknowledged": len(world.acks),
            "ack_p50_ms": round(percentile([x for _, x in world.acks], 50) * 1000, 1),
            "ack_p99_ms": round(percentile([x for _, x in world.acks], 99) * 1000, 1),
            "unavailable_answers": len(world.unavailable), "reconnects": world.reconnects,
            "client_errors": len(died), **counts,
        }
        for kind in FAULTS:
            report["fault_" + kind.replace("-", "_")] = sum(1 for _, k in marks if k == kind)
        series = {"acknowledged messages / s": _per_second(world.acks),
                  "`unavailable` answers / s": _per_second([(t, 0) for t in world.unavailable])}
        right = {"ack p99 (s, from first send)": _p99_per_second(world.acks)}
        for line in servers.errors()[:20]:
            print(f"loadtest: {line}", file=sys.stderr)
        return report, {"left": series, "right": right}, marks
    finally:
        servers.stop()
        await topo.stop()


async def _accounts(url: str, prefix: str, servers: Servers, n: int) -> list[tuple[str, str]]:
    store = open_store(url, Settings(key_prefix=prefix))
    auth = Auth(store, "unused-for-accounts", 86400)
    out = []
    try:
        for i in range(n):
            login = f"gend{i}"
            await auth.add_account(login, f"Gendarme {i}", "agent", ["fr"], [], CAPACITY,
                                   PASSWORD)
            async with httpx.AsyncClient(timeout=30) as http:
                r = await http.post(f"http://127.0.0.1:{servers.ports[i % len(servers.ports)]}"
                                    "/api/login", json={"login": login, "password": PASSWORD})
                r.raise_for_status()
                out.append((login, str(r.json()["token"])))
    finally:
        await store.aclose()
    return out


async def _fault(kind: str, topo: Topology, servers: Servers, rng: random.Random) -> None:
    if kind == "kill-chatd":
        alive = servers.alive()
        if len(alive) > 1:
            port = rng.choice(alive)
            servers.kill(port)
            await asyncio.sleep(2)
            servers.start(port)
    elif kind == "kill-primary":
        node = await topo.kill_primary()  # type: ignore[attr-defined]
        await asyncio.sleep(3)
        if isinstance(topo, Single):
            node.start()
        else:
            await topo.restart(node)  # type: ignore[attr-defined]
    elif kind == "freeze":
        topo.freeze()
    elif kind == "restart-redis":
        if isinstance(topo, Single):
            await topo.restart()
        else:
            await topo.restart_replica()  # type: ignore[attr-defined]
    else:
        raise SystemExit(f"loadtest: unknown fault {kind!r} (known: {', '.join(FAULTS)})")


def _per_second(samples: list[tuple[float, float]]) -> list[tuple[float, float]]:
    counts: dict[int, int] = defaultdict(int)
    for t, _ in samples:
        counts[int(t)] += 1
    return [(float(s), float(counts.get(s, 0))) for s in range(0, max(counts, default=0) + 1)]


def _p99_per_second(samples: list[tuple[float, float]]) -> list[tuple[float, float]]:
    buckets: dict[int, list[float]] = defaultdict(list)
    for t, latency in samples:
        buckets[int(t)].append(latency)
    return [(float(s), percentile(v, 99)) for s, v in sorted(buckets.items())]
