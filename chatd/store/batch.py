"""Auto-pipelining: commands and script calls made by many coroutines go to Redis together as
one pipeline per node, so a burst of messages costs one write and one read per node instead of
one round trip each (measured in docs/benchmarks.md; the same idea as Centrifugo's).

With Redis Cluster, each call goes to the node that serves its first key's slot (a script
declares its keys: keys.py, scripts.py); a call answered MOVED or ASK did not run, and is sent
again after the slot map is read anew. With acks that wait for replicas (``replicas`` ≥ 1)
each node's pipeline ends with ``WAIT N T``: it covers every script of that pipeline (they ran
on that connection). Only if N replicas answered in time are the chat scripts' held-back
events published and their messages marked durable (``confirm.lua``, on the same node), and
the callers answered; otherwise each script's caller gets ``NotReplicated`` (a transient
error: the client is told `unavailable` and resends, which is idempotent).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable

from redis.asyncio import Redis
from redis.exceptions import (AskError, DataError, MovedError, NoScriptError,
                              RedisClusterException, RedisError, TryAgainError)

from ..supervised import spawn
from .errors import NotReplicated
from .wire import Wire, pack

log = logging.getLogger("chatd.store")

MAX_BATCH = 512
SENDERS = 2  # pipelines in flight at once: while they are, the next batch grows
MAX_REDIRECTS = 5


class _Call:
    __slots__ = ("args", "fut", "script", "chat", "redirects")

    def __init__(self, args: tuple[Any, ...], fut: asyncio.Future[Any], script: bool,
                 chat: bool) -> None:
        self.args = args
        self.fut = fut
        self.script = script  # EVALSHA of one of ours: its reply is wrapped (scripts.py)
        self.chat = chat  # a chat script: its keys are a chat's, its events that chat's
        self.redirects = 0

    def key(self) -> Any:
        """The key that decides the node (a script's first key; a command's first argument)."""
        if self.script:
            return self.args[3]
        return self.args[1] if len(self.args) > 1 else ""


class Batcher:
    """Commands queue up; a few long-lived sender tasks each take everything queued and send it
    as one pipeline per node. No task per batch, and under load the batches grow by themselves
    while the previous ones are in flight (one write and one read for many commands)."""

    def __init__(self, redis: Any, node_client: Callable[[str, int], Redis] | None = None,
                 replicas: int = 0, timeout_ms: int = 500, confirm_mode: str = "") -> None:
        self._redis = redis  # a Redis, or a RedisCluster (then ``node_client`` makes clients)
        self._node_client = node_client
        self._clients: dict[str, Redis] = {}
        self._replicas = replicas
        self._timeout_ms = timeout_ms
        self._confirm_mode = confirm_mode
        self.confirm_sha = ""  # set by Scripts
        self.reload: Callable[[], Awaitable[None]] | None = None
        self._queue: list[_Call] = []
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wires: dict[int, Wire] = {}  # id of a client -> the link to its node (wire.py)
        self._opening: dict[int, asyncio.Future[Wire]] = {}

    @property
    def cluster(self) -> bool:
        return self._node_client is not None

    def call(self, *args: Any, chat: bool | None = None) -> asyncio.Future[Any]:
        """``chat`` is given for our scripts (True: a chat script): their future resolves to
        (result, later, syncs); a plain command's to its reply."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # first use in this event loop (the CLI runs several)
            self._loop = loop
            for wire in self._wires.values():  # links of a loop that has ended
                wire.close()
            self._wires.clear()
            self._opening.clear()
            self._wake = asyncio.Event()
            for _ in range(SENDERS):
                spawn("pipeline", self._sender)
        fut: asyncio.Future[Any] = loop.create_future()
        self._queue.append(_Call(args, fut, chat is not None, bool(chat)))
        self._wake.set()  # type: ignore[union-attr]
        return fut

    async def _sender(self) -> None:
        wake = self._wake
        assert wake is not None
        while True:
            if not self._queue:
                wake.clear()
                await wake.wait()
                continue
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            try:
                await self._send(batch)
            except Exception:  # its callers have their error; the sender must live on
                log.exception("a Redis pipeline failed")

    async def _send(self, batch: list[_Call]) -> None:
        if not self.cluster:
            await self._send_to(self._redis, batch)
            return
        groups: dict[str, tuple[Redis, list[_Call]]] = {}
        for call in batch:
            try:
                client, name = self._client_for(call.key())
            except Exception as exc:  # no node serves it now (the cluster is failing over)
                _fail([call], RedisError(f"no node for this key: {exc}"))
                continue
            groups.setdefault(name, (client, []))[1].append(call)
        await asyncio.gather(*(self._send_to(client, calls) for client, calls in groups.values()))

    def _client_for(self, key: Any) -> tuple[Redis, str]:
        cluster = self._redis
        node = cluster.nodes_manager.get_node_from_slot(cluster.keyslot(key))
        return self._client_for_node(node), node.name

    async def _send_to(self, client: Redis, calls: list[_Call]) -> None:
        packed: list[bytes] = []
        sent: list[_Call] = []
        for call in calls:
            try:
                packed.append(pack(call.args))
            except (TypeError, ValueError) as exc:  # an argument Redis cannot be sent
                _fail([call], DataError(f"{call.args[0]}: {exc}"))
                continue
            sent.append(call)
        calls = sent
        if not calls:
            return
        waits = self._replicas > 0 and any(c.script for c in calls)
        if waits:
            packed.append(pack(("WAIT", self._replicas, self._timeout_ms)))
        try:
            wire = await self._wire(client)
            results = await wire.batch(packed)
        except (RedisError, OSError) as exc:
            _fail(calls, exc)
            return
        except BaseException as exc:  # cancelled at shutdown
            _fail(calls, RedisError(f"batch aborted: {type(exc).__name__}"))
            raise
        try:
            await self._answer(client, calls, results, waits)
        except BaseException as exc:  # a bug here must not leave a caller waiting for ever
            _fail(calls, RedisError(f"batch aborted: {type(exc).__name__}"))
            raise

    async def _answer(self, client: Redis, calls: list[_Call], results: list[Any],
                      waits: bool) -> None:
        acked = results.pop() if waits else None
        pairs, moved = [], []
        for call, r in zip(calls, results):  # one pass: this is every reply's way
            if not isinstance(r, AskError):
                pairs.append((call, r))
            elif isinstance(r, MovedError):  # (a kind of ASK to redis-py)
                moved.append(call)
            else:  # ASK: the slot is half-moved (a resharding under way) and its keys may be
                # on either node until the operator finishes it; no new slot map can say more.
                # An outage for this call (TRYAGAIN: `unavailable`, resent), not a bug
                _fail([call], TryAgainError(f"the slot is being moved ({r})"))
        if moved:
            await self._redirect(moved)
        if waits and (isinstance(acked, Exception) or int(acked) < self._replicas):
            why = acked if isinstance(acked, Exception) else (
                f"{acked} of {self._replicas} replica(s) within {self._timeout_ms} ms")
            _fail([c for c, _ in pairs if c.script], NotReplicated(f"not replicated: {why}"))
            pairs = [(c, r) for c, r in pairs if not c.script]
        answers = await self._unwrap(client, pairs)
        for (call, _), answer in zip(pairs, answers):
            if call.fut.done():
                continue
            if isinstance(answer, BaseException):
                call.fut.set_exception(answer)
            else:
                call.fut.set_result(answer)

    async def _redirect(self, calls: list[_Call]) -> None:
        """MOVED: the slot is served elsewhere now (a failover, a finished resharding); these
        calls did not run. Read the slot map again and queue them once more."""
        try:
            await self._redis.nodes_manager.initialize()
        except (RedisError, OSError, RedisClusterException) as exc:  # a failover under way
            _fail(calls, exc if not isinstance(exc, RedisClusterException)
                  else TryAgainError(f"the cluster's slot map is unreadable now ({exc})"))
            return
        again = []
        for call in calls:
            call.redirects += 1
            if call.redirects > MAX_REDIRECTS:
                _fail([call], RedisError("too many redirections"))
            else:
                again.append(call)
        self._queue[:0] = again
        if again and self._wake is not None:
            self._wake.set()

    async def _unwrap(self, client: Redis, pairs: list[tuple[_Call, Any]]) -> list[Any]:
        """Scripts' replies: what chat scripts held back (with acks that wait for replicas) is
        published and marked durable now, per chat, in one pipeline on the same node; then each
        caller gets (result, later, syncs)."""
        out: list[Any] = []
        confirms: list[tuple[Any, ...]] = []
        for call, reply in pairs:
            if not call.script or isinstance(reply, Exception):
                out.append(reply)
                continue
            if len(reply) == 1:  # nothing held back, to publish later or to sync (scripts.py)
                out.append((reply[0], [], []))
                continue
            result, pubs, marks, later, syncs = reply
            out.append((result, later, syncs))
            if call.chat and (pubs or marks):
                keys = call.args[3:8]  # the chat's five keys
                payloads = pubs[1::2]  # (channel, payload) pairs: the channel is this chat's
                confirms.append(("EVALSHA", self.confirm_sha, 5, *keys, self._confirm_mode,
                                 len(marks) // 2, *marks, *payloads))
        if confirms:
            try:
                await self._confirm(client, confirms)
            except (RedisError, OSError) as exc:  # not shown: the clients resend, then it is
                return [exc if c.chat and c.script else r for (c, _), r in zip(pairs, out)]
        return out

    async def _confirm(self, client: Redis, confirms: list[tuple[Any, ...]]) -> None:
        for attempt in range(2):
            wire = await self._wire(client)
            results = await wire.batch([pack(args) for args in confirms])
            errors = [r for r in results if isinstance(r, Exception)]
            if not errors:
                return
            if attempt == 0 and all(isinstance(e, NoScriptError) for e in errors) and self.reload:
                await self.reload()
                continue
            raise errors[0]

    async def _wire(self, client: Redis) -> Wire:
        """The link to ``client``'s node, made on first use and again once it is lost (callers
        of one moment share one attempt)."""
        wire = self._wires.get(id(client))
        if wire is not None and not wire.closed:
            return wire
        opening = self._opening.get(id(client))
        if opening is None:
            opening = asyncio.ensure_future(Wire.open(client))
            self._opening[id(client)] = opening
            opening.add_done_callback(lambda done, key=id(client): self._opened(key, done))
        return await asyncio.shield(opening)

    def _opened(self, key: int, done: asyncio.Future[Wire]) -> None:
        """Kept whoever waited for it (a waiter cancelled meanwhile does not lose the link)."""
        self._opening.pop(key, None)
        if not done.cancelled() and done.exception() is None:
            self._wires[key] = done.result()

    async def load_scripts(self, sources: list[str]) -> None:
        """Every script into the cache of every node that may run it."""
        if self.cluster:
            await self._redis.nodes_manager.initialize()
            clients = [self._client_for_node(n) for n in self._redis.get_primaries()]
        else:
            clients = [self._redis]
        for client in clients:
            async with client.pipeline(transaction=False) as pipe:
                for src in sources:
                    pipe.script_load(src)
                await pipe.execute()

    def _client_for_node(self, node: Any) -> Redis:
        client = self._clients.get(node.name)
        if client is None:
            assert self._node_client is not None
            client = self._clients[node.name] = self._node_client(node.host, node.port)
        return client

    async def aclose(self) -> None:
        for wire in self._wires.values():
            wire.close()
        self._wires.clear()
        for client in self._clients.values():
            await client.aclose()


def _fail(calls: list[_Call], exc: BaseException) -> None:
    for call in calls:
        if not call.fut.done():
            call.fut.set_exception(exc)
