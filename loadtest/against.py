"""`relay --against baseline`: the same ladder of rates on chatd and on the baseline
(loadtest/baseline.py), back to back, and how far chatd is from its stack's own ceiling.

Each server gets its own Redis and processes, and its chats are set up once; then each rate of
the ladder runs for ``--duration`` seconds, a short pause between steps, until two steps in a
row are not OK (one spike of a shared machine does not end the climb). OK is what a user would accept: p99 ≤ 50 ms, nothing lost, duplicated, out of
order or unacknowledged, and the offered rate delivered (97 %). For each server the report
gives the highest OK rate, the peak delivered rate, and the server's and Redis's CPU per
relayed message at its highest OK step; then the ratios chatd / baseline, the CPU ones at the
highest rate both held (the same load on both)."""

from __future__ import annotations

import asyncio
from typing import Any

from .cluster import Target
from .relay import Relay

P99_OK_MS = 50.0
PAUSE_S = 2.0  # between steps: what was in flight arrives, the servers settle


def ok(step: dict[str, Any]) -> bool:
    return (step["p99_ms"] <= P99_OK_MS and step["lost"] == step["duplicates"]
            == step["out_of_order"] == step["unacked"] == step["disconnected"] == 0
            and step["delivered_per_s"] >= 0.97 * step["offered_per_s"])


async def ladder(target: Target, pairs: int, rates: list[float], duration: float,
                 log: Any = None) -> list[dict[str, Any]]:
    """Each step's report, up to two steps in a row that are not OK."""
    relay = Relay(target, pairs)
    steps = []
    try:
        await relay.setup()
        for rate in rates:
            report, _ = await relay.step(rate, duration)
            report["rate"] = rate
            report["ok"] = ok(report)
            steps.append(report)
            if log is not None:
                log(f"{target.server:8} {rate:7g} msg/s offered: {report['delivered_per_s']:8.1f} "
                    f"delivered, p99 {report['p99_ms']:7.1f} ms, server "
                    f"{report.get('server_cpu_us_per_msg', 0):6.1f} µs/msg, Redis "
                    f"{report.get('redis_cpu_us_per_msg', 0):5.1f} µs/msg"
                    f"{'' if report['ok'] else '  NOT OK'}")
            if len(steps) >= 2 and not steps[-1]["ok"] and not steps[-2]["ok"]:
                break
            await asyncio.sleep(PAUSE_S)
    finally:
        await relay.close()
    return steps


def compare(runs: dict[str, list[dict[str, Any]]], pairs: int, duration: float
            ) -> dict[str, Any]:
    """A flat report: per server and per step, then the summary and the ratios."""
    out: dict[str, Any] = {"scenario": "relay-against-baseline", "pairs": pairs,
                           "step_duration_s": duration}
    best: dict[str, dict[str, Any] | None] = {}
    for name, steps in runs.items():
        for s in steps:
            tag = f"{name}_{s['rate']:g}"
            for field in ("delivered_per_s", "p99_ms", "server_cpu_us_per_msg",
                          "redis_cpu_us_per_msg", "lost", "ok"):
                out[f"{tag}_{field}"] = s.get(field)
        good = [s for s in steps if s["ok"]]
        best[name] = good[-1] if good else None
        out[f"{name}_highest_ok_rate"] = good[-1]["rate"] if good else 0
        out[f"{name}_peak_delivered_per_s"] = max((s["delivered_per_s"] for s in steps),
                                                  default=0)
        for field in ("server_cpu_us_per_msg", "redis_cpu_us_per_msg", "p99_ms"):
            out[f"{name}_{field}"] = good[-1].get(field) if good else None
    c, b = out["chatd_highest_ok_rate"], out["baseline_highest_ok_rate"]
    out["ratio_highest_ok_rate"] = round(c / b, 3) if b else None
    out["ratio_peak_delivered"] = round(out["chatd_peak_delivered_per_s"]
                                        / max(1.0, out["baseline_peak_delivered_per_s"]), 3)
    common = [s["rate"] for s in runs["chatd"] if s["ok"]]
    common = [r for r in common if any(s["rate"] == r and s["ok"] for s in runs["baseline"])]
    if common:
        rate = max(common)
        cs = next(s for s in runs["chatd"] if s["rate"] == rate)
        bs = next(s for s in runs["baseline"] if s["rate"] == rate)
        out["common_rate"] = rate
        for field in ("server_cpu_us_per_msg", "redis_cpu_us_per_msg"):
            if bs.get(field):
                out[f"ratio_{field}"] = round(cs[field] / bs[field], 2)
    return out
