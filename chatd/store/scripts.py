"""Loads the Lua scripts of ``lua/``: each is ``lib.lua`` plus the key functions of ``keys.py``
plus the script itself, registered once and run by SHA (redis-py reloads on NOSCRIPT, e.g. after
a Redis restart without persistence of the script cache)."""

from __future__ import annotations

from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from .batch import Batcher
from .keys import lua_functions

NAMES = (
    "create", "append", "match", "accept", "decline", "expire_offers", "heartbeat",
    "agent_online", "reap", "close", "rate", "status", "transfer",
    "open_chat",
)


def source(name: str) -> str:
    lua = resources.files(__package__).joinpath("lua")
    lib = lua.joinpath("lib.lua").read_text(encoding="utf-8")
    body = lua.joinpath(f"{name}.lua").read_text(encoding="utf-8")
    # ARGV[1] (the prefix) must be bound before the key functions refer to it.
    return "local P = ARGV[1]\n" + lua_functions() + lib.replace("local P = ARGV[1]\n", "") + body


class Scripts:
    def __init__(self, redis: Redis, batch_redis: Redis) -> None:
        self._scripts: dict[str, AsyncScript] = {
            name: redis.register_script(source(name)) for name in NAMES
        }
        self._batch = Batcher(batch_redis)

    async def command(self, *args: Any) -> Any:
        """A plain command, in the same pipeline as the scripts of this turn of the loop."""
        return await self._batch.call(*args)

    async def run(self, name: str, *argv: Any) -> Any:
        script = self._scripts[name]
        try:
            return await self._batch.call("EVALSHA", script.sha, 0, *argv)
        except NoScriptError:  # a Redis restarted without its script cache: load, run again
            return await script(keys=[], args=argv)
