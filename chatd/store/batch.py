"""Auto-pipelining: script calls made by many coroutines go to Redis together as one pipeline,
so a burst of messages costs one write and one read instead of one round trip each (measured in
docs/benchmarks.md; the same idea as Centrifugo's)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from ..supervised import spawn

log = logging.getLogger("chatd.store")

MAX_BATCH = 512
SENDERS = 2  # pipelines in flight at once: while they are, the next batch grows


class Batcher:
    """Commands queue up; a few long-lived sender tasks each take everything queued and send it
    as one pipeline. No task per batch, and under load the batches grow by themselves while
    the previous ones are in flight (one write and one read for many commands)."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._queue: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = []
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def call(self, *args: Any) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # first use in this event loop (the CLI runs several)
            self._loop = loop
            self._wake = asyncio.Event()
            for _ in range(SENDERS):
                spawn("pipeline", self._sender)
        fut: asyncio.Future[Any] = loop.create_future()
        self._queue.append((args, fut))
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

    async def _send(self, batch: list[tuple[tuple[Any, ...], asyncio.Future[Any]]]) -> None:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for args, _ in batch:
                    pipe.execute_command(*args)
                results = await pipe.execute(raise_on_error=False)
        except (RedisError, OSError) as exc:
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        except BaseException as exc:  # cancelled at shutdown
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(RedisError(f"batch aborted: {type(exc).__name__}"))
            raise
        for (_, fut), result in zip(batch, results):
            if fut.done():
                continue
            if isinstance(result, Exception):
                fut.set_exception(result)
            else:
                fut.set_result(result)

