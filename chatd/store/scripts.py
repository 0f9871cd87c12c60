"""Loads the Lua scripts of ``lua/`` and runs them, batched (``batch.py``).

Each script is ``lib.lua`` plus the key functions of ``keys.py`` plus the script itself, its
body wrapped in a function so that, when acks wait for replicas (``CHATD_ACK_REPLICAS`` ≥ 1),
every script also returns what it would have published and which messages it wrote: the
batcher publishes them and marks them durable (``confirm.lua``) only after ``WAIT`` says the
replicas hold the writes (docs/operations.md, "What an ack means"). Scripts are registered
once and run by SHA; a Redis that lost its script cache (a restart, a failover to a node that
never ran them) gets them again.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from .batch import Batcher
from .keys import lua_functions

NAMES = (
    "create", "append", "match", "accept", "decline", "expire_offers", "heartbeat",
    "agent_online", "reap", "close", "rate", "status", "transfer",
    "open_chat", "confirm",
)


def source(name: str) -> str:
    lua = resources.files(__package__).joinpath("lua")
    lib = lua.joinpath("lib.lua").read_text(encoding="utf-8")
    body = lua.joinpath(f"{name}.lua").read_text(encoding="utf-8")
    # ARGV[1] (the prefix) must be bound before the key functions refer to it.
    return ("local P = ARGV[1]\n" + lua_functions() + lib.replace("local P = ARGV[1]\n", "")
            + "local function main()\n" + body + "\nend\n"
            + "local result = main()\n"
            + "if DEFER then return {result, PUBS, MARKS} end\n"
            + "return result\n")


class Scripts:
    def __init__(self, redis: Redis, batch_redis: Redis, prefix: str, ack_replicas: int = 0,
                 ack_timeout_ms: int = 500) -> None:
        self._redis = redis
        self._prefix = prefix
        self._sources = {name: source(name) for name in NAMES}
        self._shas = {name: redis.register_script(src).sha for name, src in self._sources.items()}
        self._mode = "d" if ack_replicas > 0 else ""
        confirm = ("EVALSHA", self._shas["confirm"], 0, prefix, "")
        self._batch = Batcher(batch_redis, confirm, ack_replicas, ack_timeout_ms, self.load)

    async def command(self, *args: Any) -> Any:
        """A plain command, in the same pipeline as the scripts of this turn of the loop."""
        return await self._batch.call(*args)

    async def run(self, name: str, *argv: Any) -> Any:
        try:
            return await self._run(name, argv)
        except NoScriptError:  # a Redis without them (restarted, failed over): load, run again
            await self.load()
            return await self._run(name, argv)

    async def _run(self, name: str, argv: tuple[Any, ...]) -> Any:
        return await self._batch.call("EVALSHA", self._shas[name], 0, self._prefix, self._mode,
                                      *argv, durable=bool(self._mode))

    async def load(self) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for src in self._sources.values():
                pipe.script_load(src)
            await pipe.execute()
