"""Loads the Lua scripts of ``lua/``: each is ``lib.lua`` plus the key functions of ``keys.py``
plus the script itself, registered once and run by SHA (redis-py reloads on NOSCRIPT, e.g. after
a Redis restart without persistence of the script cache)."""

from __future__ import annotations

from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from .keys import lua_functions

NAMES = (
    "create", "append", "match", "accept", "decline", "expire_offers", "heartbeat",
    "agent_online", "reap", "close", "rate", "status", "transfer",
)


def source(name: str) -> str:
    lua = resources.files(__package__).joinpath("lua")
    lib = lua.joinpath("lib.lua").read_text(encoding="utf-8")
    body = lua.joinpath(f"{name}.lua").read_text(encoding="utf-8")
    # ARGV[1] (the prefix) must be bound before the key functions refer to it.
    return "local P = ARGV[1]\n" + lua_functions() + lib.replace("local P = ARGV[1]\n", "") + body


class Scripts:
    def __init__(self, redis: Redis) -> None:
        self._scripts: dict[str, AsyncScript] = {
            name: redis.register_script(source(name)) for name in NAMES
        }

    async def run(self, name: str, *argv: Any, client: Any = None) -> Any:
        return await self._scripts[name](keys=[], args=argv, client=client)
