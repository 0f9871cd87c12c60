"""The pub/sub listener's own link (chatd/store/pushes.py) and the listener on it
(chatd/fanout.py), against a real redis-server: pushes in order with their payloads byte for
byte, in RESP2 and RESP3; a lost link says so at once; the listener then connects afresh,
subscribes again, resyncs, and relays again; what is not ours is ignored, not fatal."""

from __future__ import annotations

import asyncio
from typing import Any

import msgpack
import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError, ResponseError

from chatd.fanout import Fanout
from chatd.store import transient
from chatd.store.connect import command_client, pubsub_client
from chatd.store.pushes import Pushes
from harness import RedisServer, eventually


@pytest.mark.parametrize("protocol", [2, 3])
async def test_pushes_come_in_order_with_payloads_kept_and_a_loss_is_told(
        redis_server: RedisServer, protocol: int) -> None:
    client = Redis(port=redis_server.port, protocol=protocol)
    admin = command_client(redis_server.url)
    got: list[tuple[bytes, bytes, Any]] = []
    link = await Pushes.open(client, lambda kind, channel, data: got.append((kind, channel, data)))
    try:
        link.send("SUBSCRIBE", "p:a", "p:é")
        assert await eventually(lambda: len(got) == 2, 5)
        assert got == [(b"subscribe", b"p:a", 1), (b"subscribe", "p:é".encode(), 2)]
        payloads = [msgpack.packb({"e": "msg", "seq": n, "text": "\udcff" if n == 0 else "x"},
                                  unicode_errors="surrogateescape") for n in range(50)]
        payloads.append(b"\x80\xff not msgpack")
        for payload in payloads:
            await admin.publish("p:a", payload)
        await admin.publish("p:other", b"nobody listens")
        await admin.publish("p:é", b"last")
        assert await eventually(lambda: len(got) == 2 + len(payloads) + 1, 5)
        assert [d for k, c, d in got[2:-1]] == payloads  # in order, byte for byte
        assert got[-1] == (b"message", "p:é".encode(), b"last")
        link.send("UNSUBSCRIBE", "p:a")
        assert await eventually(lambda: got[-1] == (b"unsubscribe", b"p:a", 1), 5)

        assert not link.lost.done()
        assert await admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub") == 1
        with pytest.raises(ConnectionError):
            await asyncio.wait_for(asyncio.shield(link.lost), 5)
        with pytest.raises(ConnectionError):
            link.send("SUBSCRIBE", "p:b")
    finally:
        link.close()
        await admin.aclose()
        await client.aclose()


async def test_a_refused_subscription_ends_the_link_with_its_error_and_a_failing_handler_does_not(
        redis_server: RedisServer) -> None:
    """A refusal is Redis's answer, not an outage: the listener must see the error itself (the
    supervisor restarts it with backoff) rather than reconnect in a loop; a handler that fails
    on one push loses that push only."""
    admin = command_client(redis_server.url)
    await admin.execute_command("ACL", "SETUSER", "pushes-nochan", "on", ">pw", "~*", "+@all",
                                "resetchannels", "&p:allowed")
    client = Redis(port=redis_server.port, username="pushes-nochan", password="pw")
    got: list[bytes] = []

    def on_push(kind: bytes, channel: bytes, data: Any) -> None:
        if data == b"boom":
            raise RuntimeError("a bug in the handler")
        got.append(data)

    link = await Pushes.open(client, on_push)
    try:
        link.send("SUBSCRIBE", "p:allowed")
        assert await eventually(lambda: got == [1], 5)
        for payload in (b"boom", b"after"):
            await admin.publish("p:allowed", payload)
        assert await eventually(lambda: got == [1, b"after"], 5)
        assert not link.lost.done()

        link.send("SUBSCRIBE", "p:forbidden")
        with pytest.raises(ResponseError, match="no permissions"):
            await asyncio.wait_for(asyncio.shield(link.lost), 5)
        assert not transient(link.lost.exception())
    finally:
        link.close()
        await client.aclose()
        await admin.execute_command("ACL", "DELUSER", "pushes-nochan")
        await admin.aclose()


async def test_the_listener_reconnects_resubscribes_resyncs_and_relays_again(
        redis_server: RedisServer) -> None:
    admin = command_client(redis_server.url, decode=False)
    events: list[tuple[str, Any]] = []
    resyncs: list[int] = []

    async def on_resync() -> None:
        resyncs.append(1)

    async def publish(channel: str, payload: bytes) -> Any:
        return await admin.publish(channel, payload)

    fanout = Fanout(pubsub_client(redis_server.url), "p:beat",
                    lambda channel, event: events.append((channel, event)), on_resync, publish)
    await fanout.start()
    try:
        assert await eventually(fanout.connected.is_set, 5)
        await fanout.subscribe("p:chat1")
        assert fanout.live("p:chat1")  # confirmed by Redis: no publish from now on is missed
        await admin.publish("p:chat1", msgpack.packb({"e": "msg", "seq": 1}))
        await admin.publish("p:chat1", b"\xc1 not msgpack")  # ignored, logged
        await admin.publish("p:chat1", msgpack.packb({"e": "msg", "seq": 2}))
        assert await eventually(lambda: len(events) == 2, 5)
        assert events == [("p:chat1", {"e": "msg", "seq": 1}), ("p:chat1", {"e": "msg", "seq": 2})]
        assert resyncs == []  # the first connection has nothing to catch up on

        await admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        assert await eventually(lambda: resyncs == [1] and fanout.live("p:chat1"), 10)
        await admin.publish("p:chat1", msgpack.packb({"e": "msg", "seq": 3}))
        assert await eventually(lambda: len(events) == 3, 5)
        assert events[-1] == ("p:chat1", {"e": "msg", "seq": 3})

        fanout.unsubscribe("p:chat1")
        assert not fanout.live("p:chat1")

        async def unsubscribed() -> bool:
            return (await admin.pubsub_numsub("p:chat1"))[0][1] == 0
        assert await eventually(unsubscribed, 5)
        assert (await admin.pubsub_numsub("p:beat"))[0][1] == 1  # its own channel stays
    finally:
        await fanout.stop()
        await admin.aclose()
