"""The batcher's link to Redis (chatd/store/wire.py) against a real redis-server: replies in
order with errors in their place, bytes that are not UTF-8 kept, and a link that is lost or
goes silent replaced by a new one, its waiting callers failed rather than left hanging."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.exceptions import ConnectionError, ResponseError, TimeoutError

from chatd.store.batch import Batcher
from chatd.store.connect import SOCKET_TIMEOUT, command_client
from chatd.store.wire import Wire, pack
from harness import RedisServer, free_port
from loadtest.proxy import Proxy


async def test_replies_come_in_order_with_errors_in_place_and_bytes_kept(
        redis_server: RedisServer) -> None:
    client = command_client(redis_server.url, retries=0)
    wire = await Wire.open(client)
    try:
        odd = b"\x80\xffmsgpack".decode("utf-8", "surrogateescape")  # as a reply decodes it
        replies = await wire.batch([
            pack(("SET", "wire:k", "v")), pack(("INCR", "wire:k")), pack(("GET", "wire:k")),
            pack(("SET", "wire:odd", odd)), pack(("STRLEN", "wire:odd")),
            pack(("GET", "wire:odd")), pack(("HSET", "wire:h", "a", 1, "b", 2)),
            pack(("HMGET", "wire:h", "a", "zz"))])
        assert replies[0] == "OK"
        assert isinstance(replies[1], ResponseError)  # in its place, not raised
        assert replies[2:] == ["v", "OK", 9, odd, 2, ["1", None]]
        # a RESP3 false is a reply like any other, and a push (here: a key this connection
        # read, changed by another) is not one
        assert await wire.batch([pack(("EVAL", "redis.setresp(3); return false", 0)),
                                 pack(("CLIENT", "TRACKING", "on")),
                                 pack(("GET", "wire:k"))]) == [False, "OK", "v"]
        other = command_client(redis_server.url)
        await other.set("wire:k", "w")
        await other.aclose()
        await asyncio.sleep(0.1)  # the invalidation arrives
        assert await wire.batch([pack(("PING",)), pack(("GET", "wire:k"))]) == ["PONG", "w"]
    finally:
        wire.close()
        await client.aclose()


async def test_a_lost_link_is_made_again_for_the_next_calls(redis_server: RedisServer) -> None:
    client = command_client(redis_server.url, retries=0)
    batcher = Batcher(client)
    admin = command_client(redis_server.url)
    try:
        assert await batcher.call("SET", "wire:a", "1") == "OK"
        killed = await admin.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
        assert killed >= 1
        await asyncio.sleep(0.2)  # the close reaches the link
        assert await batcher.call("GET", "wire:a") == "1"  # a new link, nothing failed
    finally:
        await batcher.aclose()
        await client.aclose()
        await admin.aclose()


async def test_a_silent_link_fails_its_callers_in_time_then_a_new_one_works(
        redis_server: RedisServer) -> None:
    """A link frozen without being closed (a stale NAT entry): the calls waiting on it fail
    after SOCKET_TIMEOUT, and the next call goes through a new connection."""
    proxy = Proxy()
    port = free_port()
    server = await proxy.listen(port, redis_server.port)
    client = command_client(f"redis://127.0.0.1:{port}/0", retries=0)
    batcher = Batcher(client)
    try:
        assert await batcher.call("SET", "wire:b", "2") == "OK"
        assert proxy.freeze("127.0.0.1") >= 1
        started = time.monotonic()
        waiting = [batcher.call("GET", "wire:b"), batcher.call("INCR", "wire:c")]
        for call in waiting:
            with pytest.raises(TimeoutError):
                await call
        assert SOCKET_TIMEOUT - 0.1 <= time.monotonic() - started < SOCKET_TIMEOUT + 2
        assert await batcher.call("GET", "wire:b") == "2"
        with pytest.raises(ConnectionError):  # a link that is gone says so at once
            wire = next(iter(batcher._wires.values()))
            wire.close()
            await wire.batch([pack(("PING",))])
    finally:
        await batcher.aclose()
        await client.aclose()
        server.close()
