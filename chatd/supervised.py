"""This process's long-lived tasks, supervised: none may end silently.

Matching, the housekeeping tick, heartbeats, the pub/sub listener and the Redis pipelines run
for the life of the process. If one raised and ended, the process would go on answering
``/readyz`` 200 while it no longer matched or delivered anything. So each runs under
``spawn``: an exception is logged with its traceback (the full one the first time, one line
when the same error repeats), the task is restarted after a backoff (0.1 s doubling to 30 s),
``chatd_task_restarts_total{task}`` counts it, and the task counts as failing — ``/readyz``
answers 503 and names it — until it has run a while without a new failure.

Redis being unreachable is not a failure of a task: loops handle that themselves (one log line
when it goes, one when it comes back) and ``/readyz`` reports it on its own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Awaitable, Callable

from . import metrics

log = logging.getLogger("chatd.tasks")

FIRST_DELAY = 0.1  # seconds before the first restart
MAX_DELAY = 30.0
HEALTHY_AFTER = 10.0  # seconds without a failure (beyond the backoff) before a task is well again


class _State:
    __slots__ = ("failed_at", "delay", "error", "repeats")

    def __init__(self) -> None:
        self.failed_at = 0.0  # monotonic time of the last failure (0: never)
        self.delay = FIRST_DELAY
        self.error = ""
        self.repeats = 0


_states: dict[str, _State] = {}


def spawn(name: str, factory: Callable[[], Awaitable[Any]], forever: bool = True
          ) -> asyncio.Task[None]:
    """Run ``factory()`` under supervision, restarting it whenever it raises, and (when
    ``forever``, for the life of the process) when it returns. Cancel the task to stop it."""
    _states.setdefault(name, _State())
    metrics.TASK_RESTARTS.labels(name)  # the series exists (at 0) from the start
    return asyncio.ensure_future(_supervise(name, factory, forever))


async def _supervise(name: str, factory: Callable[[], Awaitable[Any]], forever: bool) -> None:
    state = _states[name]
    while True:
        started = time.monotonic()
        try:
            await factory()
            if not forever:
                return
            raise RuntimeError(f"the task {name!r} returned; it should run until stopped")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            _failed(name, state, exc, started)
        await asyncio.sleep(state.delay)


def _failed(name: str, state: _State, exc: Exception, started: float) -> None:
    now = time.monotonic()
    if now - started > HEALTHY_AFTER + state.delay:  # it had recovered: start the backoff over
        state.delay = FIRST_DELAY
    else:
        state.delay = min(state.delay * 2, MAX_DELAY) if state.failed_at else FIRST_DELAY
    error = f"{type(exc).__name__}: {exc}"
    if error == state.error and state.failed_at and now - state.failed_at < 3600:
        state.repeats += 1
        log.error("background task %r failed again (%d times): %s; restarting in %.1f s",
                  name, state.repeats + 1, error, state.delay)
    else:
        state.error, state.repeats = error, 0
        log.error("background task %r failed; restarting in %.1f s", name, state.delay,
                  exc_info=exc)
    state.failed_at = now
    metrics.TASK_RESTARTS.labels(name).inc()


def failing() -> list[str]:
    """Tasks that failed recently and have not run well since: ``/readyz`` names them."""
    now = time.monotonic()
    return sorted(name for name, s in _states.items()
                  if s.failed_at and now - s.failed_at < HEALTHY_AFTER + 2 * s.delay)
