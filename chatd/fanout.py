"""This process's pub/sub: Redis channels in, decoded events out to the hub.

One connection (``Fanout``), or with Redis Cluster one per primary (``ShardedFanout``: sharded
pub/sub, SSUBSCRIBE on the node that serves each channel's slot). Pub/sub is only the fast
path: the streams are the truth. When a listener loses Redis it reconnects with backoff,
subscribes again to every channel it held, and asks the hub to resync, which backfills each
live session from its stream (docs/protocol.md, "Delivery").
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any, Awaitable, Callable

import msgpack
from redis.asyncio import Redis
from redis.crc import key_slot
from redis.exceptions import (ConnectionError, MovedError, RedisClusterException, RedisError,
                              SlotNotCoveredError)

from .store import transient
from .store.pushes import Pushes
from .supervised import spawn

log = logging.getLogger("chatd.fanout")

OnEvent = Callable[[str, dict[str, Any]], None]


BEAT_EVERY = 2.0  # seconds between this process's beats on the broadcast channel
SILENT_AFTER = 6.0  # seconds without hearing its own beat: the link is dead, reconnect
# Reconnecting waits RECONNECT_FIRST, then twice as long each time up to RECONNECT_MAX, and
# starts again from the first only once a link held STABLE_S: a link that is cut as soon as
# it is made (Redis killing a subscriber over its output buffer limit in a surge, a proxy)
# must not cost a resync of every chat ten times a second. A channel refused MOVED (a slot
# map older than a resharding) is not an outage: it goes to its node, the link comes back
# after the first wait.
RECONNECT_FIRST, RECONNECT_MAX, STABLE_S = 0.1, 2.0, 10.0


class Fanout:
    def __init__(self, redis: Redis, always: str, on_event: OnEvent,
                 on_resync: Callable[[], Awaitable[None]],
                 publish: Callable[[str, bytes], Awaitable[Any]] | None = None,
                 sharded: bool = False, name: str = "fanout",
                 on_moved: Callable[[str], None] | None = None) -> None:
        """``always``: the channel this listener beats on (subscribed for its life);
        ``sharded``: SSUBSCRIBE (one node of a cluster); ``on_moved``: told of a channel that
        the node gave up (its slot moved: a failover, a resharding)."""
        self._redis = redis  # a client with decode_responses=False: payloads are msgpack
        self._always = always
        self._sharded = sharded
        self._name = name
        self._on_moved = on_moved
        self._kinds = (b"smessage", b"ssubscribe", b"sunsubscribe") if sharded else (
            b"message", b"subscribe", b"unsubscribe")
        self._publish = publish  # through the command client: the way events travel
        self._me = secrets.token_bytes(8)
        self._beat = msgpack.packb({"e": "beat", "from": self._me})
        self._heard = 0.0  # loop time this process last heard its own beat
        self._on_event = on_event
        self._on_resync = on_resync
        self.channels: set[str] = {always}
        self._pending: dict[str, asyncio.Future[None]] = {}
        self._unconfirmed: set[str] = set()  # subscribed, but Redis never said so
        self._ops: list[tuple[str, str]] = []  # (un)subscriptions not sent yet
        self._sender: asyncio.Future[None] | None = None
        self._link: Pushes | None = None
        self._task: asyncio.Task[None] | None = None
        self._was_connected = False  # a (re)connection after the first must resync
        self._leaving: set[str] = set()  # unsubscriptions asked for, not yet confirmed
        self.connected = asyncio.Event()

    async def start(self) -> None:
        self._task = spawn(self._name, self._run)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._close_link()
        try:
            await self._redis.aclose()
        except Exception:  # closing a dead connection: nothing to do
            pass

    async def subscribe(self, channel: str) -> None:
        """Subscribe and wait until Redis confirms, so no publish after this returns is missed;
        ``live`` says whether that could be promised."""
        if channel in self.channels:
            return
        self.channels.add(channel)
        if not self.connected.is_set():
            return  # the reconnect subscribes it, then resyncs
        fut = asyncio.get_running_loop().create_future()
        self._pending[channel] = fut
        self._queue("subscribe", channel)
        try:
            await asyncio.wait_for(asyncio.shield(fut), 2.0)
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            log.warning("subscribe not confirmed (%s: %s); the periodic resync covers it",
                        type(exc).__name__, exc)
            self._unconfirmed.add(channel)
        finally:
            self._pending.pop(channel, None)

    @property
    def beat(self) -> str:
        """The channel this listener beats on."""
        return self._always

    def rebeat(self, channel: str) -> None:
        """Beat on ``channel`` from now on, on the same link: the slot of the old one moved to
        another node (a resharding), where this link would never hear it. The old one is gone
        already (Redis unsubscribed it); if the new one cannot be asked for now, the silence
        ends the link and the reconnection subscribes every channel, this one included."""
        self.channels.discard(self._always)
        self._always = channel
        self.channels.add(channel)
        self._heard = asyncio.get_running_loop().time()
        if self.connected.is_set():
            try:
                self._subscribe(channel)
            except (RedisError, OSError):
                pass

    def live(self, channel: str) -> bool:
        """Whether every publish on ``channel`` from now on reaches this process."""
        return (channel in self.channels and channel not in self._pending
                and channel not in self._unconfirmed and self.connected.is_set())

    def unsubscribe(self, channel: str) -> None:
        if channel not in self.channels or channel == self._always:
            return
        self.channels.discard(channel)
        self._unconfirmed.discard(channel)
        if self.connected.is_set():
            self._queue("unsubscribe", channel)

    def _queue(self, op: str, channel: str) -> None:
        """(Un)subscriptions asked for meanwhile leave together, one command per run of the
        same kind, in the order they were asked for (one write instead of one each)."""
        self._ops.append((op, channel))
        if self._sender is None:
            self._sender = asyncio.ensure_future(self._send_ops())

    async def _send_ops(self) -> None:
        try:
            while self._ops:
                ops, self._ops = self._ops, []
                runs: list[tuple[str, list[str]]] = []
                for op, channel in ops:
                    if runs and runs[-1][0] == op:
                        runs[-1][1].append(channel)
                    else:
                        runs.append((op, [channel]))
                for op, channels in runs:
                    try:
                        if op == "subscribe":
                            self._subscribe(*channels)
                        else:
                            self._leaving.update(channels)
                            self._send("SUNSUBSCRIBE" if self._sharded else "UNSUBSCRIBE",
                                       channels)
                    except (RedisError, OSError) as exc:  # the reconnect subscribes again
                        for channel in channels:
                            fut = self._pending.get(channel)
                            if fut is not None and not fut.done():
                                fut.set_exception(exc)
        finally:
            self._sender = None

    async def _run(self) -> None:
        """Connect, subscribe, listen; after any loss (or a restart of this task by its
        supervisor), subscribe again and resync: events may have been missed meanwhile."""
        loop = asyncio.get_running_loop()
        delay = RECONNECT_FIRST
        while True:
            up_at: float | None = None
            try:
                self._link = await Pushes.open(self._redis, self._push)
                up_at = loop.time()
                self._unconfirmed = set(self.channels)  # until Redis confirms each again
                self._leaving.clear()  # asked of the link before: this one has none to confirm
                self._subscribe(*self.channels)
                self.connected.set()
                if self._was_connected:
                    log.warning("pub/sub reconnected; resyncing live sessions from their streams")
                    await self._on_resync()
                self._was_connected = True
                await self._listen_and_watch()
            except (RedisError, OSError) as exc:
                moved = isinstance(exc, MovedError) and self._sharded
                if moved:
                    self._gave_up(exc.slot_id)  # asked on a stale slot map: not an outage
                elif not transient(exc):
                    raise
                if self.connected.is_set():
                    log.warning("pub/sub lost (%s: %s); reconnecting", type(exc).__name__, exc)
                if up_at is not None and loop.time() - up_at >= STABLE_S:
                    delay = RECONNECT_FIRST  # it held: this loss is a new outage
                # a refused channel is gone from this link: the next one is not refused for it
                await asyncio.sleep(RECONNECT_FIRST if moved else delay)
                if not moved:
                    delay = min(delay * 2, RECONNECT_MAX)
            finally:
                self.connected.clear()
                self._close_link()

    def _gave_up(self, slot: int) -> None:
        """Redis refused a channel of ``slot`` here (MOVED: the slot map this was asked on was
        older than a resharding): its channels are this listener's no longer, and the owner
        subscribes them on the node that serves them now (the beat: it beats elsewhere)."""
        for channel in [c for c in self.channels
                        if key_slot(c.encode("utf-8", "surrogateescape")) == slot]:
            self._unconfirmed.discard(channel)
            self._handed_back(channel)

    def _handed_back(self, channel: str) -> None:
        """``channel`` is no longer this node's: its owner subscribes it where it lives now; the
        beat stays this listener's until it is given another one (rebeat)."""
        if channel != self._always:
            self.channels.discard(channel)
        if self._on_moved is not None:
            self._on_moved(channel)

    def _subscribe(self, *channels: str) -> None:
        self._send("SSUBSCRIBE" if self._sharded else "SUBSCRIBE", channels)

    def _send(self, command: str, channels: tuple[str, ...] | list[str]) -> None:
        """Written now, confirmed later by a push per channel. Sharded pub/sub takes one
        channel per command (one slot each)."""
        if self._link is None:
            raise ConnectionError("no pub/sub connection")
        if self._sharded:
            for channel in channels:
                self._link.send(command, channel)
        elif channels:
            self._link.send(command, *channels)

    def _close_link(self) -> None:
        if self._link is not None:
            self._link.close()
            self._link = None
        for fut in self._pending.values():  # their callers are told now, not after 2 s
            if not fut.done():
                fut.set_exception(ConnectionError("the pub/sub link was closed"))

    async def _listen_and_watch(self) -> None:
        """Listens until the connection fails, or until it has gone silent: a link that stops
        forwarding without closing (a stale NAT entry, a frozen peer) raises nothing, so this
        process publishes a beat every BEAT_EVERY seconds, the way events travel, and gives the
        connection up when it has not heard its own for SILENT_AFTER seconds; so does a
        connection left on a primary that Sentinel demoted (docs/operations.md)."""
        self._heard = asyncio.get_running_loop().time()
        tasks = [asyncio.ensure_future(self._listen())]
        if self._publish is not None:
            tasks.append(asyncio.ensure_future(self._watch()))
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # its exception, if any, ends this connection
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _watch(self) -> None:
        assert self._publish is not None
        loop = asyncio.get_running_loop()
        beats: set[asyncio.Future[Any]] = set()
        while True:
            beat = asyncio.ensure_future(self._publish(self._always, self._beat))
            beats.add(beat)
            beat.add_done_callback(_ignore_result(beats))
            await asyncio.sleep(BEAT_EVERY)
            silent = loop.time() - self._heard
            if silent > SILENT_AFTER:
                log.warning("pub/sub silent for %.0f s (its own beats do not come back); "
                            "reconnecting", silent)
                raise ConnectionError("the pub/sub link went silent")

    async def _listen(self) -> None:
        """Until the link is lost: its pushes are handled as they come (``_push``)."""
        assert self._link is not None
        await asyncio.shield(self._link.lost)

    def _push(self, kind: bytes, raw_channel: bytes, data: Any) -> None:
        channel = raw_channel.decode("utf-8", "surrogateescape")
        data_kind, subscribed, unsubscribed = self._kinds
        if kind == data_kind:
            try:
                event = msgpack.unpackb(data, raw=False, unicode_errors="replace")
            except Exception:  # not ours: ignore rather than die
                log.error("undecodable event on %s", channel)
                return
            if channel == self._always and type(event) is dict and event.get("e") == "beat":
                if event.get("from") == self._me:
                    self._heard = asyncio.get_running_loop().time()
                return
            try:
                self._on_event(channel, event)
            except Exception:
                log.exception("event handler failed on %s", channel)
        elif kind == subscribed:
            self._unconfirmed.discard(channel)
            fut = self._pending.get(channel)
            if fut is not None and not fut.done():
                fut.set_result(None)
        elif kind == unsubscribed and channel not in self._leaving:
            self._handed_back(channel)  # not asked for: the node gave its slot up (sharded)
        elif kind == unsubscribed:
            self._leaving.discard(channel)


def _ignore_result(pending: set[asyncio.Future[Any]]) -> Callable[[asyncio.Future[Any]], None]:
    """A beat that fails (Redis away) says nothing the watch does not see for itself."""
    def done(fut: asyncio.Future[Any]) -> None:
        pending.discard(fut)
        if not fut.cancelled():
            fut.exception()
    return done


class ShardedFanout:
    """Sharded pub/sub on a Redis Cluster: one listener (a ``Fanout`` with SSUBSCRIBE) per
    primary, each channel on the node that serves its slot, each listener beating on a channel
    of its own node. After a failover or a resharding (a listener's node gone, or a slot given
    up: Redis says ``sunsubscribe``), the slot map is read again, every channel goes to its
    node now, and the hub resyncs: events published meanwhile are recovered from state."""

    def __init__(self, cluster: Any, node_client: Callable[[str, int], Redis], beat: Any,
                 on_event: OnEvent, on_resync: Callable[[], Awaitable[None]],
                 publish: Callable[[str, bytes], Awaitable[Any]] | None) -> None:
        self._cluster = cluster  # a RedisCluster: its slot map says which node serves what
        self._node_client = node_client
        self._beat = beat  # shard tag -> its beat channel name
        self._on_event = on_event
        self._on_resync = on_resync
        self._publish = publish
        self._listeners: dict[str, Fanout] = {}  # node name -> its listener
        self._home: dict[str, str] = {}  # channel -> node name
        self._adrift: set[str] = set()  # channels a node gave up, not yet on their new one
        self._moved = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = spawn("fanout-routes", self._watch)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await asyncio.gather(*(f.stop() for f in self._listeners.values()))

    def _owner(self, channel: str) -> str:
        try:
            node = self._cluster.nodes_manager.get_node_from_slot(self._cluster.keyslot(channel))
        except KeyError as exc:  # a slot missing from redis-py's map: the cluster reconfigures
            raise SlotNotCoveredError(f"no node serves the slot of {channel}") from exc
        return str(node.name)

    async def subscribe(self, channel: str) -> None:
        if channel in self._home:
            return
        try:
            name = self._owner(channel)
        except Exception:  # no slot map yet, or the cluster is failing over: the watch will
            self._home[channel] = ""
            self._moved.set()
            return
        listener = self._listeners.get(name)
        self._home[channel] = name if listener is not None else ""
        if listener is None:
            self._moved.set()
            return
        await listener.subscribe(channel)

    def unsubscribe(self, channel: str) -> None:
        name = self._home.pop(channel, None)
        listener = self._listeners.get(name or "")
        if listener is not None:
            listener.unsubscribe(channel)

    def live(self, channel: str) -> bool:
        listener = self._listeners.get(self._home.get(channel, ""))
        return listener is not None and listener.live(channel)

    @property
    def connected(self) -> asyncio.Event:
        """Set while every listener is connected."""
        event = asyncio.Event()
        if self._listeners and all(f.connected.is_set() for f in self._listeners.values()):
            event.set()
        return event

    def _channel_moved(self, channel: str) -> None:
        if channel in self._home:
            self._home[channel] = ""
            self._adrift.add(channel)
        self._moved.set()

    async def _watch(self) -> None:
        """Keeps one listener per primary, and each channel with its node: at start, when a
        slot moved, and every few seconds (a node that died says nothing)."""
        while True:
            try:
                await self._route()
            except (RedisError, OSError, RedisClusterException) as exc:
                # RedisClusterException: slots not covered (a failover under way)
                if not isinstance(exc, RedisClusterException) and not transient(exc):
                    raise
                log.warning("cluster slot map unreadable (%s: %s); retrying", type(exc).__name__,
                            exc)
            try:
                await asyncio.wait_for(self._moved.wait(), 3.0)
            except asyncio.TimeoutError:
                pass
            self._moved.clear()

    async def _route(self) -> None:
        await self._cluster.nodes_manager.initialize()
        primaries = {n.name: n for n in self._cluster.get_primaries()}
        changed = False
        gone: list[str] = []
        for name, listener in list(self._listeners.items()):
            if name in primaries and self._owner(listener.beat) == name:
                continue
            beat = self._beat_for(primaries[name]) if name in primaries else None
            if beat is None:  # failed over, removed, or left with no slot: channels go elsewhere
                del self._listeners[name]
                await listener.stop()
                gone.append(name)
                changed = True
            else:
                # the slot of its beat moved (a resharding): it would not hear itself there and
                # would give its link up every few seconds; its other channels are not touched
                log.info("cluster slots moved: the listener on %s beats on %s now", name, beat)
                listener.rebeat(beat)
        for name, node in primaries.items():
            beat = self._beat_for(node) if name not in self._listeners else None
            if beat is not None:
                listener = Fanout(self._node_client(node.host, node.port), beat,
                                  self._on_event, self._resync_soon, self._publish,
                                  sharded=True, name="fanout", on_moved=self._channel_moved)
                self._listeners[name] = listener
                await listener.start()
                changed = True
        owners = {channel: self._owner(channel) for channel in self._home}  # all, or none
        adrift, self._adrift = self._adrift, set()  # given up by their node (no await below)
        moves, followed = [], 0
        for channel, home in list(self._home.items()):
            owner = owners[channel]
            listener = self._listeners.get(owner)
            if owner == home and listener is not None:
                continue
            if listener is None:  # a node the map learnt of during this pass: the next pass
                self._home[channel] = ""
                if home or channel in adrift:
                    self._adrift.add(channel)
                continue
            followed += bool(home) or channel in adrift
            old = self._listeners.get(home)
            if old is not None:
                old.unsubscribe(channel)
            self._home[channel] = owner
            moves.append(listener.subscribe(channel))
        if moves:
            await asyncio.gather(*moves)
            changed = True
        if gone or followed:  # not the first subscriptions of a process starting
            log.info("cluster slots moved: %d channel(s) followed to their node%s; resyncing",
                     followed, f" ({' '.join(gone)} no longer a primary with slots)" if gone
                     else "")
        if changed:
            await self._on_resync()

    def _beat_for(self, node: Any) -> str | None:
        """A channel in a slot ``node`` serves (None: it serves none, so holds no channel)."""
        slots = self._cluster.nodes_manager.slots_cache.values()
        if not any(nodes and nodes[0].name == node.name for nodes in slots):
            return None
        try:
            return str(self._beat(self._cluster, node))
        except RuntimeError:
            return None

    async def _resync_soon(self) -> None:
        await self._on_resync()
