"""Auto-pipelining: script calls made by many coroutines during one turn of the event loop go
to Redis as one pipeline, so a burst of messages costs one write and one read instead of one
round trip each (measured in docs/benchmarks.md; the same idea as Centrifugo's)."""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

MAX_BATCH = 512


class Batcher:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._queue: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = []
        self._scheduled = False
        self._inflight = 0

    def call(self, *args: Any) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((args, fut))
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        return fut

    def _flush(self) -> None:
        self._scheduled = False
        while self._queue:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            asyncio.ensure_future(self._send(batch))

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

