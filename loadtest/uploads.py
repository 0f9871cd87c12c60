"""`uploads`: N photos of about 4 MB sent at a given concurrency while other chats relay text
at a moderate rate. Reports the uploads' latency (p50/p99) and the relay's p99 with and without
them: whether processing photos (off the event loop, chatd/uploads/pool.py) holds up the
chats of the same processes. The issue's target: 100 photos of 4 MB, relay p99 under 50 ms.

The photo is made once, of noise over a gradient, so that it neither compresses to nothing nor
decodes faster than a phone's photo of the same size. The photos are sent from a process of
their own: building and sending 4 MB bodies on the generator's event loop would delay its own
reading of the relayed messages, and count as the server's latency. One photo goes first,
before anything is measured: a chatd starts its image workers at its first photo.
"""

from __future__ import annotations

import asyncio
import io
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from . import relay
from .client import Conn
from .cluster import Target
from .report import percentile

PER_CHAT = 20  # CHATD_UPLOADS_PER_SESSION's default: one chat per 20 photos


def make_photo(megabytes: float) -> bytes:
    """A JPEG of about ``megabytes``: 12 MP (4000 × 3000) for 4 MB, as a phone takes, with
    enough noise to weigh what a photo weighs."""
    from PIL import Image

    pixels = max(0.05, megabytes / 4) * 12e6
    width = int((pixels * 4 / 3) ** 0.5)
    height = int(width * 3 / 4)
    gradient = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    noise = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    im = Image.blend(gradient, noise, 0.35)
    best = b""
    for quality in (60, 70, 80, 88, 94):  # the first at or past the size wanted
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=quality)
        best = buf.getvalue()
        if len(best) >= megabytes * 1e6:
            break
    return best


@dataclass(frozen=True)
class _Where:
    """What the photos' process needs of the target (a Target holds live objects)."""

    urls: list[str]

    def http(self, i: int = 0) -> str:
        return self.urls[i % len(self.urls)].replace("ws://", "http://")


def _send_in_process(urls: list[str], photo: bytes, n: int, concurrency: int,
                     t0: float) -> dict[str, Any]:
    return asyncio.run(send_photos(_Where(urls), photo, n, concurrency, t0))


async def _visitor_chat(url: str) -> tuple[str, str, Conn]:
    """A visitor with an open chat: (token, session, connection)."""
    got: dict[str, Any] = {}
    done = asyncio.Event()

    def on_frame(conn: Conn, f: dict[str, Any]) -> None:
        if f.get("type") == "welcome":
            got["token"] = f["token"]
        elif f.get("type") == "queued":
            got["session"] = f["session"]
            done.set()
    c = await Conn.open(url, "visitor", on_frame)
    await c.send({"type": "hello"})
    await c.send({"type": "start", "topic": "general"})
    await asyncio.wait_for(done.wait(), 30)
    return got["token"], got["session"], c


async def send_photos(target: Target | _Where, photo: bytes, n: int, concurrency: int,
                      t0: float) -> dict[str, Any]:
    chats = [await _visitor_chat(target.urls[i % len(target.urls)])
             for i in range(-(-n // PER_CHAT))]
    sem = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    points: list[tuple[float, float]] = []
    codes: dict[str, int] = {}

    async def one(i: int, http: httpx.AsyncClient) -> None:
        token, sid, _ = chats[i // PER_CHAT]
        async with sem:
            start = time.perf_counter()
            try:
                r = await http.post(target.http(i) + "/api/uploads",
                                    headers={"Authorization": f"Bearer {token}"},
                                    data={"session": sid},
                                    files={"file": ("photo.jpg", photo, "image/jpeg")})
                key = str(r.status_code) if r.status_code != 201 else "ok"
            except httpx.HTTPError as exc:
                key = type(exc).__name__
            now = time.perf_counter()
            ms = (now - start) * 1000
            codes[key] = codes.get(key, 0) + 1
            if key == "ok":
                latencies.append(ms)
                points.append((now - t0, ms))

    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=120) as http:
        await asyncio.gather(*(one(i, http) for i in range(n)))
    took = time.perf_counter() - started
    # closed: the relay's gendarmes must not find these chats among theirs
    for _, sid, conn in chats:
        await conn.send({"type": "close", "session": sid})
    await asyncio.sleep(0.2)
    for _, _, conn in chats:
        await conn.close()
    return {"latencies": latencies, "points": points, "codes": codes, "seconds": took}


async def run(target: Target, n: int, concurrency: int, megabytes: float, pairs: int,
              rate: float, duration: float) -> tuple[dict[str, Any], dict[str, Any]]:
    photo = await asyncio.to_thread(make_photo, megabytes)
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(1, multiprocessing.get_context("spawn")) as sender:
        warm = await loop.run_in_executor(sender, _send_in_process, target.urls, photo,
                                          len(target.urls), 1, time.perf_counter())
        if warm["codes"].get("ok", 0) != len(target.urls):
            raise RuntimeError(f"the first photo was refused: {warm['codes']}")
        # the relay alone for ``duration``, then on while the photos go in; perf_counter is
        # the system's monotonic clock: the photos' times are on the relay's
        t0 = time.perf_counter()
        r, series = await relay.run(
            target, pairs, rate, duration,
            during=lambda: loop.run_in_executor(sender, _send_in_process, target.urls, photo,
                                                n, concurrency, t0))
    sent = r.pop("during")
    lat = sent["latencies"]
    report: dict[str, Any] = {
        "scenario": "uploads", "processes": len(target.urls), "uploads": n,
        "concurrency": concurrency, "photo_bytes": len(photo),
        "uploads_ok": sent["codes"].get("ok", 0),
        **{f"uploads_failed_{k}": v for k, v in sent["codes"].items() if k != "ok"},
        "uploads_seconds": round(sent["seconds"], 2),
        "uploads_per_s": round(len(lat) / sent["seconds"], 2) if sent["seconds"] else 0,
        "upload_p50_ms": round(percentile(lat, 50), 1),
        "upload_p99_ms": round(percentile(lat, 99), 1),
        "upload_max_ms": round(max(lat) if lat else 0.0, 1),
        "relay_rate": rate, "relay_pairs": pairs,
        "relay_offered_per_s": r["offered_per_s"],
        "relay_p50_ms_without": r["p50_ms_before"], "relay_p99_ms_without": r["p99_ms_before"],
        "relay_max_ms_without": r["max_ms_before"],
        "relay_p50_ms_during": r["p50_ms_during"], "relay_p99_ms_during": r["p99_ms_during"],
        "relay_max_ms_during": r["max_ms_during"],
        "relay_messages_without": r["messages_before"],
        "relay_messages_during": r["messages_during"],
        "lost": r["lost"], "duplicates": r["duplicates"], "out_of_order": r["out_of_order"],
        "unacked": r["unacked"], "disconnected": r["disconnected"],
        **{k: v for k, v in r.items() if k.startswith("errors_")},
        "server_cpu_pct_mean": r.get("server_cpu_pct_mean", 0),
    }
    # the photos' points are on the relay's clock (t0 is taken just before its setup)
    series["upload ms"] = sent["points"]
    return report, series
