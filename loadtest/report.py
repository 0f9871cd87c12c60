"""Measurements and reports: percentiles from every sample, server CPU and RSS sampled during the
run, a flat JSON object, and a PNG plot next to it."""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Sequence

import psutil


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile over every sample (not an average of averages)."""
    if not samples:
        return 0.0
    ordered = sorted(samples)
    k = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return float(ordered[k])


def tree(pids: Sequence[int]) -> list[psutil.Process]:
    procs = []
    for pid in pids:
        try:
            p = psutil.Process(pid)
            procs.append(p)
            procs.extend(p.children(recursive=True))
        except psutil.NoSuchProcess:
            pass
    return procs


class Sampler:
    """Samples CPU% and RSS of the server processes, Redis, and this generator, every second;
    and counts the CPU seconds each used from start to stop (``cpu_seconds``: per message,
    the figure that compares stacks)."""

    def __init__(self, server_pids: Sequence[int], redis_pid: int | None,
                 shards: dict[str, int] | None = None) -> None:
        """``shards``: a cluster's nodes (name -> pid), counted one by one."""
        self.servers = [p for p in tree(server_pids) if "redis-server" not in _name(p)]
        self.shards = {name: psutil.Process(pid) for name, pid in (shards or {}).items()}
        self.redis = ([psutil.Process(redis_pid)] if redis_pid else []) + list(self.shards.values())
        self.me = psutil.Process(os.getpid())
        self.samples: list[dict[str, float]] = []
        self._task: asyncio.Task[None] | None = None
        self._cpu0: dict[int, float] = {}
        self._cpu1: dict[int, float] = {}
        for p in self.servers + self.redis + [self.me]:
            p.cpu_percent(None)

    def server_rss(self) -> int:
        return sum(_rss(p) for p in self.servers if _is_worker(p))

    def start(self) -> None:
        self._cpu0 = {p.pid: _cpu_seconds(p) for p in self.servers + self.redis}
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self._cpu1 = {p.pid: _cpu_seconds(p) for p in self.servers + self.redis}
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds used between start and stop: ``server``, ``redis`` (all of it), and
        each shard's (``redis_<name>``)."""
        def used(procs: list[psutil.Process]) -> float:
            return sum(max(0.0, self._cpu1.get(p.pid, 0.0) - self._cpu0.get(p.pid, 0.0))
                       for p in procs)
        out = {"server": used(self.servers), "redis": used(self.redis)}
        for name, proc in self.shards.items():
            out[f"redis_{name}"] = used([proc])
        return out

    async def _run(self) -> None:
        t0 = time.monotonic()
        while True:
            await asyncio.sleep(1.0)
            self.samples.append({
                "t": time.monotonic() - t0,
                "server_cpu": sum(_cpu(p) for p in self.servers),
                "server_rss": self.server_rss(),
                "redis_cpu": sum(_cpu(p) for p in self.redis),
                "generator_cpu": _cpu(self.me),
            })

    def summary(self) -> dict[str, float]:
        if not self.samples:
            return {}
        keys = ("server_cpu", "redis_cpu", "generator_cpu")
        out = {f"{k}_pct_mean": round(sum(s[k] for s in self.samples) / len(self.samples), 1)
               for k in keys}
        out["server_rss_max_bytes"] = max(s["server_rss"] for s in self.samples)
        return out


def _name(p: psutil.Process) -> str:
    try:
        return p.name()
    except psutil.Error:
        return ""


def _is_worker(p: psutil.Process) -> bool:
    """Workers are chatd processes with no chatd children (the supervisor forks them)."""
    try:
        return not p.children()
    except psutil.Error:
        return False


def _rss(p: psutil.Process) -> int:
    try:
        return int(p.memory_info().rss)
    except psutil.Error:
        return 0


def _cpu_seconds(p: psutil.Process) -> float:
    try:
        t = p.cpu_times()
        return float(t.user + t.system)
    except psutil.Error:
        return 0.0


def _cpu(p: psutil.Process) -> float:
    try:
        return float(p.cpu_percent(None))
    except psutil.Error:
        return 0.0


def write(report: dict[str, Any], path: str | None, series: dict[str, list[tuple[float, float]]],
          title: str, ylabel: str, marks: Sequence[tuple[float, str]] = (),
          right: dict[str, list[tuple[float, float]]] | None = None,
          right_label: str = "", xlabel: str = "seconds") -> None:
    """Prints the flat JSON report, writes it to ``path`` and a PNG plot beside it."""
    text = json.dumps(report, indent=2, sort_keys=True)
    print(text)
    if not path:
        return
    Path(path).write_text(text + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=100)
    for name, points in series.items():
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys, label=name, linewidth=1)
    for t, label in marks:  # e.g. the faults of a chaos run, when they struck
        ax.axvline(t, color="red", alpha=0.5, linewidth=1, linestyle="--")
        ax.annotate(label, (t, 1), xycoords=("data", "axes fraction"), rotation=90,
                    va="top", ha="right", fontsize=7, color="red")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if right:  # another unit (e.g. latency beside a rate), on its own axis
        ax2 = ax.twinx()
        for name, points in right.items():
            if points:
                xs, ys = zip(*points)
                ax2.plot(xs, ys, label=name, linewidth=1, marker=".", color="tab:purple")
        ax2.set_ylabel(right_label)
        more = ax2.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    ax.legend(handles, labels, loc="upper left")
    fig.tight_layout()
    fig.savefig(str(Path(path).with_suffix(".png")))
    plt.close(fig)
