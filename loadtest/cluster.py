"""`--spawn N`: a private redis-server and N chatd processes on free loopback ports, stopped
afterwards; or `--url`: a running deployment. Either way, a `Target` to aim clients at."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from chatd.embedded import find_redis_server

BENCH_ENV = {
    # benchmarks raise the abuse limits: one generator is thousands of clients on one address
    "CHATD_FRAME_RATE": "100000", "CHATD_FRAME_BURST": "100000",
    "CHATD_MAX_CONN_PER_IP": "1000000", "CHATD_SESSIONS_PER_IP_HOUR": "10000000",
    "CHATD_SESSIONS_PER_TOKEN_HOUR": "10000000",
    "CHATD_IDLE_TIMEOUT": "3600", "CHATD_HELLO_TIMEOUT": "60", "CHATD_OUTBOX_SIZE": "4096",
    "CHATD_LOG_LEVEL": "warning", "CHATD_TICK": "0.5",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Target:
    urls: list[str]  # ws://127.0.0.1:port
    redis_url: str
    prefix: str
    server_pids: list[int] = field(default_factory=list)  # supervisors; workers are children
    redis_pid: int | None = None
    shards: dict[str, int] = field(default_factory=dict)  # a Redis Cluster's nodes: name -> pid
    data_ports: list[int] = field(default_factory=list)  # spawned Redis primaries, for INFO
    server: str = "chatd"  # or "baseline": the yardstick of `relay --against baseline`

    def used_memory(self) -> int | None:
        """Bytes of data the spawned Redis primaries hold (INFO's used_memory summed), or None
        when the deployment is not ours to ask."""
        if not self.data_ports:
            return None
        import redis

        total = 0
        for port in self.data_ports:
            with redis.Redis(host="127.0.0.1", port=port) as r:
                total += int(r.info("memory")["used_memory"])
        return total

    def http(self, i: int = 0) -> str:
        return self.urls[i % len(self.urls)].replace("ws://", "http://")


class Cluster:
    """``redis``: 'single' (one redis-server) or 'cluster' (a Redis Cluster of three primaries
    and their replicas, topology.py)."""

    def __init__(self, n: int, env: dict[str, str] | None = None, redis: str = "single",
                 server: str = "chatd") -> None:
        """``server``: 'chatd', or 'baseline' (loadtest/baseline.py, the yardstick)."""
        self.n = n
        self.server = server
        self.env = {**BENCH_ENV, **(env or {})}
        self.dir = Path(tempfile.mkdtemp(prefix="chatd-loadtest-"))
        self.procs: list[subprocess.Popen[bytes]] = []
        self.redis: subprocess.Popen[bytes] | None = None
        self.kind = redis
        self.topology: Any = None

    def __enter__(self) -> Target:
        try:
            return self._start()
        except BaseException:  # a server that never got ready: stop what did start
            self.__exit__()
            raise

    def _start(self) -> Target:
        shards: dict[str, int] = {}
        data_ports: list[int] = []
        if self.kind == "cluster":
            import asyncio

            from .topology import Cluster as RedisCluster

            self.topology = RedisCluster(proxied=False)
            asyncio.run(self.topology.start())
            redis_url = self.topology.url
            shards = {n.name: n.proc.pid for n in self.topology.primary_nodes()}
            data_ports = [n.port for n in self.topology.primary_nodes()]
        else:
            port = free_port()
            self.redis = subprocess.Popen(
                [find_redis_server(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(self.dir), "--maxclients", "20000"],
                stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
            redis_url = f"redis://127.0.0.1:{port}/0"
            _wait(lambda: _tcp_answers(port), 10, "redis-server")
            data_ports = [port]
        prefix = "lt" + uuid.uuid4().hex[:8]
        env = {**os.environ, **self.env, "CHATD_KEY_PREFIX": prefix,
               "CHATD_SECRET": "loadtest-secret-" + prefix}
        urls = []
        for _ in range(self.n):
            p = free_port()
            log = open(self.dir / f"chatd-{p}.log", "ab")
            command = (["chatd", "serve"] if self.server == "chatd" else
                       ["loadtest.baseline", "--prefix", prefix])
            self.procs.append(subprocess.Popen(
                [sys.executable, "-m", *command, "--port", str(p), "--redis-url", redis_url],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                cwd=Path(__file__).resolve().parent.parent))
            urls.append(f"ws://127.0.0.1:{p}")
        for url, proc in zip(urls, self.procs):
            http = url.replace("ws://", "http://")
            log_path = self.dir / f"chatd-{url.rsplit(':', 1)[1]}.log"
            _wait(lambda: _ready(http), 20, f"{self.server} at {http}", proc, log_path)
        return Target(urls, redis_url, prefix, [p.pid for p in self.procs],
                      self.redis.pid if self.redis else None, shards, data_ports,
                      server=self.server)

    def __exit__(self, *exc: object) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        if self.redis is not None:
            self.redis.terminate()
            self.redis.wait(10)
        if self.topology is not None:
            import asyncio

            asyncio.run(self.topology.stop())
        for log in sorted(self.dir.glob("chatd-*.log")):  # what went wrong, for the operator
            lines = [ln for ln in log.read_text(errors="replace").splitlines()
                     if "ERROR" in ln or "WARNING" in ln or "Traceback" in ln]
            for ln in lines[:20]:
                print(f"loadtest: {log.stem}: {ln}", file=sys.stderr)
        shutil.rmtree(self.dir, ignore_errors=True)


def _tcp_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), 0.2):
            return True
    except OSError:
        return False


def _ready(http: str) -> bool:
    try:
        return httpx.get(http + "/readyz", timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


def _wait(pred, timeout: float, what: str,  # type: ignore[no-untyped-def]
          proc: subprocess.Popen[bytes] | None = None, log: Path | None = None) -> None:
    """Until ``pred()``; a server process that exits meanwhile is said at once, with the last
    line of its log (a bad setting says which)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        if proc is not None and proc.poll() is not None:
            lines = log.read_text(errors="replace").split("\n") if log is not None else []
            lines = [ln.strip() for ln in lines if ln.strip()]
            last = f": {lines[-1]}" if lines else ""
            raise SystemExit(f"loadtest: {what} exited with status {proc.returncode}{last}")
        time.sleep(0.05)
    raise SystemExit(f"loadtest: {what} did not start within {timeout:g} s")