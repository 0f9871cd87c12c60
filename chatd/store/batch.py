"""Auto-pipelining: script calls made by many coroutines go to Redis together as one pipeline,
so a burst of messages costs one write and one read instead of one round trip each (measured in
docs/benchmarks.md; the same idea as Centrifugo's).

With acks that wait for replicas (``ack_replicas`` ≥ 1) a pipeline ends with ``WAIT N T``: it
covers every script of the batch (they ran on that connection). Only if N replicas answered in
time are the scripts' held-back events published and their messages marked durable, in one
``confirm.lua``, and the callers answered; otherwise each caller gets ``NotReplicated`` (a
transient error: the client is told `unavailable` and resends, which is idempotent).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

from ..supervised import spawn
from .errors import NotReplicated

log = logging.getLogger("chatd.store")

MAX_BATCH = 512
SENDERS = 2  # pipelines in flight at once: while they are, the next batch grows

_Call = tuple[tuple[Any, ...], "asyncio.Future[Any]", bool]


class Batcher:
    """Commands queue up; a few long-lived sender tasks each take everything queued and send it
    as one pipeline. No task per batch, and under load the batches grow by themselves while
    the previous ones are in flight (one write and one read for many commands)."""

    def __init__(self, redis: Redis, confirm: tuple[Any, ...] = (), replicas: int = 0,
                 timeout_ms: int = 500,
                 reload: Callable[[], Awaitable[None]] | None = None) -> None:
        self._redis = redis
        self._confirm = confirm  # EVALSHA confirm.lua 0 prefix mode
        self._replicas = replicas
        self._timeout_ms = timeout_ms
        self._reload = reload
        self._queue: list[_Call] = []
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def call(self, *args: Any, durable: bool = False) -> asyncio.Future[Any]:
        """``durable``: a script run in deferred mode, whose reply is {result, pubs, marks}."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # first use in this event loop (the CLI runs several)
            self._loop = loop
            self._wake = asyncio.Event()
            for _ in range(SENDERS):
                spawn("pipeline", self._sender)
        fut: asyncio.Future[Any] = loop.create_future()
        self._queue.append((args, fut, durable))
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
        waits = self._replicas > 0 and any(durable for _, _, durable in batch)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for args, _, _ in batch:
                    pipe.execute_command(*args)
                if waits:
                    pipe.execute_command("WAIT", self._replicas, self._timeout_ms)
                results = await pipe.execute(raise_on_error=False)
        except (RedisError, OSError) as exc:
            _fail(batch, exc)
            return
        except BaseException as exc:  # cancelled at shutdown
            _fail(batch, RedisError(f"batch aborted: {type(exc).__name__}"))
            raise
        if waits:
            acked = results.pop()
            if isinstance(acked, Exception) or int(acked) < self._replicas:
                why = acked if isinstance(acked, Exception) else (
                    f"{acked} of {self._replicas} replica(s) within {self._timeout_ms} ms")
                _fail([c for c in batch if c[2]], NotReplicated(f"not replicated: {why}"))
                kept = [(c, r) for c, r in zip(batch, results) if not c[2]]
                batch, results = [c for c, _ in kept], [r for _, r in kept]
            else:
                results = await self._publish(batch, results)
        for (_, fut, _), result in zip(batch, results):
            if fut.done():
                continue
            if isinstance(result, Exception):
                fut.set_exception(result)
            else:
                fut.set_result(result)

    async def _publish(self, batch: list[_Call], results: list[Any]) -> list[Any]:
        """The batch is on the replicas: mark its messages durable and publish its events (one
        call), then hand each script its own result."""
        marks: list[Any] = []
        pubs: list[Any] = []
        out: list[Any] = []
        for (_, _, durable), result in zip(batch, results):
            if durable and not isinstance(result, Exception):
                value, script_pubs, script_marks = result
                pubs += script_pubs
                marks += script_marks
                out.append(value)
            else:
                out.append(result)
        if marks or pubs:
            args = (*self._confirm, len(marks) // 3, *marks, *pubs)
            try:
                try:
                    await self._redis.execute_command(*args)
                except NoScriptError:
                    if self._reload is None:
                        raise
                    await self._reload()
                    await self._redis.execute_command(*args)
            except (RedisError, OSError) as exc:  # not shown: the clients resend, then it is
                return [exc if durable else r for (_, _, durable), r in zip(batch, out)]
        return out


def _fail(calls: list[_Call], exc: BaseException) -> None:
    for _, fut, _ in calls:
        if not fut.done():
            fut.set_exception(exc)
