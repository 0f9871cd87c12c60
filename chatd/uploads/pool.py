"""Where photos are decoded and re-encoded: a bounded pool beside the event loop.

A 4 MB photo takes a few hundred milliseconds of CPU to decode, turn, scale and encode; on the
event loop that would hold up every chat of the process. Workers are processes by default
(``CHATD_IMAGE_POOL=process``): a decoder that crashes on a hostile file takes a worker down,
not chatd, and the relay keeps its CPU time (docs/benchmarks.md, "Photos", compares both).
The pool takes at most ``workers + queue`` photos at once; past that an upload is answered
``unavailable`` at once rather than queued without bound.

Workers run at a lower CPU priority (nice ``WORKER_NICENESS``): when the machine is busy, the
event loops that relay messages come first and a photo waits a little longer. Seconds for a
photo matter less than milliseconds for every chat of the process.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from .. import lifeline
from . import images

log = logging.getLogger("chatd.uploads")

WORKER_NICENESS = 10


def _start_worker() -> None:
    """In each worker: a lower priority (on Linux a thread has its own), the decoders, and an
    end with the parent."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WORKER_NICENESS)
    except (OSError, AttributeError):  # not permitted, or not Linux: the default priority
        pass
    images.set_up()
    if multiprocessing.parent_process() is not None:  # a process worker, not a thread
        # a chatd killed with SIGKILL cannot stop its workers, which would wait for work
        # forever under init (tens of MB each): they go with it
        lifeline.die_with_parent(os.getppid())


class PoolFull(Exception):
    """Every worker is busy and the queue is full: the sender retries later."""


class ImagePool:
    def __init__(self, kind: str, workers: int, queue: int) -> None:
        self.kind = kind  # 'process' or 'thread'
        self.workers = workers
        self.limit = workers + queue
        self.busy = 0  # photos running or waiting
        self._executor: Executor | None = None

    def _pool(self) -> Executor:
        """Started at the first photo: a chatd that never receives one spawns nothing."""
        if self._executor is None:
            if self.kind == "thread":
                self._executor = ThreadPoolExecutor(self.workers, "chatd-image",
                                                    initializer=_start_worker)
            else:  # spawned, not forked: the parent runs threads and an event loop
                self._executor = ProcessPoolExecutor(
                    self.workers, multiprocessing.get_context("spawn"),
                    initializer=_start_worker)
        return self._executor

    async def process(self, data: bytes, mime: str) -> images.Processed:
        """Raises PoolFull, images.BadImage."""
        if self.busy >= self.limit:
            raise PoolFull()
        self.busy += 1
        try:
            pool = self._pool()
            return await asyncio.get_running_loop().run_in_executor(
                pool, images.process, data, mime)
        except BrokenProcessPool:
            # a worker died (killed, or a decoder crashed on this file): a new pool for the
            # next photos; this one is refused as the image it may well be
            log.warning("an image worker died; the pool is started again")
            self._drop()
            raise images.BadImage("the image could not be decoded") from None
        finally:
            self.busy -= 1

    def _drop(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def close(self) -> None:
        self._drop()
