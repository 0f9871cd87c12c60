"""`idle`: C visitors connect, say hello and stay silent. Measures what an idle connection costs
the server (RSS per connection) and that every one is held for the whole run. Clients are
spread over several generator processes (file-descriptor limit) and 127.0.0.x source
addresses (ephemeral ports)."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import time
from typing import Any

from .cluster import Target
from .report import Sampler

PER_PROCESS = 4000


def _hold(url: str, n: int, source: str, hold_until: float, release: Any, out: Any) -> None:
    import resource

    import uvloop

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    uvloop.run(_hold_async(url, n, source, hold_until, release, out))


async def _hold_async(url: str, n: int, source: str, hold_until: float, release: Any,
                      out: Any) -> None:
    from .client import Conn

    welcomed = 0
    failed = 0
    sem = asyncio.Semaphore(64)

    def on_frame(conn: Conn, f: dict[str, Any]) -> None:
        nonlocal welcomed
        if f.get("type") == "welcome":
            welcomed += 1

    async def one() -> Conn | None:
        nonlocal failed
        async with sem:
            for _ in range(3):
                try:
                    c = await Conn.open(url, "visitor", on_frame, local_addr=(source, 0))
                    await c.send({"type": "hello"})
                    return c
                except OSError:
                    await asyncio.sleep(0.2)
            failed += 1
            return None

    conns = [c for c in await asyncio.gather(*[one() for _ in range(n)]) if c is not None]
    deadline = time.time() + 30
    while welcomed < len(conns) and time.time() < deadline:
        await asyncio.sleep(0.1)
    out.put(("connected", len(conns), failed))
    while not release.is_set() and time.time() < hold_until:  # the deadline is a backstop
        await asyncio.sleep(0.2)
    held = sum(1 for c in conns if not c.closed)
    out.put(("held", held, failed + (len(conns) - held)))
    for c in conns:
        c.abort()


async def run(target: Target, connections: int, duration: float) -> tuple[dict[str, Any], dict[str, Any]]:
    sampler = Sampler(target.server_pids, target.redis_pid)
    sampler.start()
    await asyncio.sleep(1.5)
    base_rss = sampler.server_rss()
    procs = []
    ctx = mp.get_context("spawn")
    out: Any = ctx.Queue()
    release = ctx.Event()  # set once the held connections have been weighed for `duration`
    nproc = max(1, -(-connections // PER_PROCESS))
    setup_budget = 20 + connections / 400  # seconds to connect everyone
    hold_until = time.time() + setup_budget + duration
    t0 = time.monotonic()
    for i in range(nproc):
        n = connections // nproc + (1 if i < connections % nproc else 0)
        url = target.urls[i % len(target.urls)]
        p = ctx.Process(target=_hold, args=(url, n, f"127.0.0.{2 + i}", hold_until, release, out))
        p.start()
        procs.append(p)
    connected = failed = 0
    for _ in procs:
        _, ok, bad = await asyncio.to_thread(out.get, True, setup_budget + 60)
        connected += ok
        failed += bad
    connect_s = time.monotonic() - t0
    await asyncio.sleep(2.0)  # let the server settle, then weigh it
    loaded_rss = sampler.server_rss()
    await asyncio.sleep(max(0.0, duration - 2.0))  # held for the run's duration, then let go
    release.set()
    held = 0
    failed = 0
    for _ in procs:
        _, ok, bad = await asyncio.to_thread(out.get, True, setup_budget + duration + 60)
        held += ok
        failed += bad
    for p in procs:
        p.join(30)
    await sampler.stop()
    report = {
        "scenario": "idle", "connections": connections, "held": held,
        "connect_s": round(connect_s, 1), "generator_processes": nproc,
        "server_rss_bytes": loaded_rss, "server_rss_base_bytes": base_rss,
        "rss_per_connection_bytes": int((loaded_rss - base_rss) / max(1, connected)),
        "failed": failed + (connections - held), **sampler.summary(),
    }
    series = {"server RSS MiB": [(s["t"], s["server_rss"] / 2**20) for s in sampler.samples]}
    return report, series
