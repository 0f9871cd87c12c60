"""The Redis store: every read and write of chatd's state goes through here.

Methods are named for what they mean to chatd (``create_session``, ``accept``…). Each atomic
step is one Lua script in one slot (keys.py): a chat's, the routing state's, a visitor's. An
operation that spans slots is a sequence of such steps in a stated order, each idempotent, so
that a process that dies between two of them leaves something the repair can finish
(``retention.Retention.repair``; docs/operations.md, "Interrupted operations"):

- a new chat: the visitor's claim (admit.lua), the address's allowance (count.lua), a pending
  routing record, the chat's hash, then the queue;
- any routing change (offer, accept, transfer, liveness): the routing record first, then the
  chat's hash is told (session_sync.lua), then the events are published;
- a close: the chat's hash first (nobody writes any more), then the routing record, the
  visitor's record, the closed index.

The class is split by job: this module (deployment, chats and transcripts, the plumbing),
``routing.py`` (queues, offers, gendarmes), ``retention.py`` (purge, sweep, repair),
``console.py`` (what the console and supervisors read), ``uploads.py`` (the photos' records).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from typing import Any, AsyncIterator, Iterable

import msgpack
from redis.asyncio import Redis

from .. import texts
from ..config import Settings, Topic
from .batch import Batcher
from .console import Console
from .keys import Keys
from .records import (
    AUDIT_MAXLEN,
    HISTORY_PAGE,
    READ_PAGE,
    Entry,
    NoteEntry,
    _entries,
    _notes,
    _pairs,
    _visible,
    message_of,
    note_of,
    transcript_head,
    unpack,
)
from .reports import Reports
from .retention import Retention
from .routing import Routing, presence_view
from .scripts import Reply, Scripts
from .uploads import Uploads

__all__ = ["HISTORY_PAGE", "READ_PAGE", "Entry", "NoteEntry", "Store", "message_of", "note_of",
           "transcript_head", "unpack"]

_NOTES = {"transferred": texts.TRANSFERRED, "agent_gone": texts.AGENT_GONE,
          "taken_over": texts.TAKEN_OVER}


class Store(Routing, Retention, Console, Reports, Uploads):
    def __init__(self, redis: Redis, settings: Settings, script_redis: Any = None,
                 node_client: Any = None) -> None:
        """``redis`` for reads and commands whose replay is harmless (a RedisCluster for a
        cluster); ``script_redis`` (a client that never retries by itself) for the scripts;
        ``node_client``, for a cluster: makes a client to one node (the batcher's)."""
        self.redis = redis
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self.cluster = node_client is not None
        #: operations run as one composed script (start, accept_offer, close, open_held) where
        #: one Redis holds every key; a Cluster runs their steps one by one, each in its slot
        self.composed = not self.cluster
        mode = ("d" if settings.ack_replicas > 0 else "") + ("c" if self.cluster else "")
        self.batcher = Batcher(script_redis or redis, node_client, settings.ack_replicas,
                               settings.ack_timeout_ms, "c" if self.cluster else "")
        self.scripts = Scripts(redis, self.batcher, mode)
        self.prefix = settings.key_prefix
        self.retention_ms = int(settings.retention_days * 86_400_000)
        self.clock_offset_ms = 0.0  # Redis's clock minus this host's (sync_clock)
        self.topics = {t.id: t for t in settings.topics}
        #: told the figures of each chat as it is counted in the reports (the metrics)
        self.on_counted: Any = None
        topic_ids = [t.id for t in settings.topics]
        self.routing_keys = self.keys.routing(topic_ids)
        self.topic_list = " ".join(topic_ids)
        self._publish_command = "SPUBLISH" if self.cluster else "PUBLISH"
        self._repair_at = 0  # where the next repair reads the open chats
        #: where the chats' photos are kept (chatd.uploads.storage): the retention deletes
        #: them with their chat; None where no photo store is set up (then none is touched)
        self.files: Any = None
        #: names this process among those holding a visitor's connections (presence.lua)
        self.process_id = secrets.token_hex(8)

    # -- the plumbing of steps ------------------------------------------------------------------

    async def _chat(self, name: str, sid: str, *args: Any) -> Any:
        """A chat script: in the chat's slot."""
        reply = await self.scripts.run(name, self.keys.chat(sid), sid, *args)
        return reply.result

    async def _route(self, name: str, *args: Any) -> Any:
        """A routing script, then what it leaves to do: the chats' hashes are told, then its
        events are published (in that order: a gendarme told `assigned` must find the chat
        theirs when their connection reads it)."""
        reply = await self.scripts.run(name, self.routing_keys, self.topic_list, *args)
        await self._settle(reply)
        return reply.result

    async def _settle(self, reply: Reply) -> None:
        if reply.syncs:
            await self.tell_chats(reply.syncs)
        if reply.later:
            await self._publish_events(reply.later)

    async def tell_chats(self, syncs: list[Any]) -> list[str]:
        """session_sync.lua for each (sid, version, state, agent, name, assigned_at, topic,
        note, previous agent, handoff note, its author's login, their name) a routing script
        returned (or the repair found behind); what each answered ('ok', 'old', 'closed',
        'gone')."""
        return [str(r) for r in await asyncio.gather(*(
            self._chat("session_sync", sid, ver, state, agent, name, at, topic, note, prev,
                       ho_note, ho_from, ho_name,
                       *(texts.in_every_language(_NOTES[note]) if note else ()))
            for sid, ver, state, agent, name, at, topic, note, prev, ho_note, ho_from, ho_name
            in syncs))]

    async def _publish_events(self, later: list[Any]) -> None:
        await asyncio.gather(*(
            self.scripts.command(self._publish_command, self._channel(kind, target), payload)
            for kind, target, payload in zip(later[::3], later[1::3], later[2::3])))

    def _channel(self, kind: str, target: str) -> str:
        return self.keys.agent_channel(target) if kind == "a" else self.keys.session_channel(target)

    async def publish(self, kind: str, target: str, event: dict[str, Any]) -> None:
        """An event for a gendarme ('a', login) or a chat ('s', sid) that is not stored
        (typing, read marks, sign-outs): PUBLISH, or SPUBLISH on a cluster."""
        await self.scripts.command(self._publish_command, self._channel(kind, target),
                                   msgpack.packb(event))

    async def aclose(self) -> None:
        await self.redis.aclose()
        script_redis = self.batcher._redis
        if script_redis is not self.redis:
            await script_redis.aclose()
        await self.batcher.aclose()

    async def publish_raw(self, channel: str, payload: bytes) -> Any:
        return await self.scripts.command(self._publish_command, channel, payload)

    def beat_channel(self, cluster: Any = None, node: Any = None) -> str:
        """Where this process beats (fanout): one channel; on a cluster, one in a slot that
        ``node`` serves (a tag found by trying: slots are spread over the nodes)."""
        if cluster is None:
            return str(self.keys.beat("m"))
        for i in range(1_000_000):  # a node with one slot: 16,384 tries on average
            name = self.keys.beat(f"b{i}")
            if cluster.nodes_manager.get_node_from_slot(cluster.keyslot(name)).name == node.name:
                return str(name)
        raise RuntimeError(f"no slot served by {node.name}")

    # -- one clock ----------------------------------------------------------------------------

    def now_ms(self) -> int:
        """Redis's time, as near as this process knows it: what scripts write (their NOW) is
        Redis's, so what is compared with it (waits, retention, `server_time`) is too."""
        return int(time.time() * 1000 + self.clock_offset_ms)

    async def sync_clock(self) -> None:
        """Measures how far this host's clock is from Redis's (every tick: it drifts)."""
        before = time.time()
        seconds, micros = await self.redis.time()
        after = time.time()
        self.clock_offset_ms = seconds * 1000 + micros / 1000 - (before + after) * 500

    # -- deployment ---------------------------------------------------------------------------

    async def shared_secret(self, configured: str | None, proposed: str | None = None) -> str:
        """The configured secret, or one generated once and kept in Redis for every process
        (``proposed``: this process's, offered back to a Redis that lost it; whoever sets it
        first, every process ends on that one)."""
        if configured:
            return configured
        await self.redis.set(self.keys.secret, proposed or secrets.token_urlsafe(48), nx=True)
        value = await self.redis.get(self.keys.secret)
        return str(value)

    async def claim_epoch(self) -> str:
        """The mark of this Redis's generation of chatd data: set once, by the first process;
        if it vanishes or changes, the data this process knew is gone (``Runtime.guard``)."""
        await self.redis.set(self.keys.epoch, secrets.token_hex(8), nx=True)
        return str(await self.redis.get(self.keys.epoch))

    async def epoch(self) -> str | None:
        value = await self.redis.get(self.keys.epoch)
        return None if value is None else str(value)

    async def publish_topics(self, topics: Iterable[Topic]) -> None:
        mapping = {t.id: f"{t.priority},{t.weight},{t.reserved},"
                         f"{int((t.retention_days or 0) * 86_400_000)}" for t in topics}
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self.keys.topics)
            pipe.hset(self.keys.topics, mapping=mapping)
            await pipe.execute()

    def retention_of(self, topic: str | None) -> int:
        t = self.topics.get(topic or "")
        return int(t.retention_days * 86_400_000) if t and t.retention_days else self.retention_ms

    def longest_retention(self) -> int:
        return max([self.retention_ms, *(int(t.retention_days * 86_400_000)
                                         for t in self.topics.values() if t.retention_days)])

    # -- messages and transcripts -------------------------------------------------------------

    async def append(self, sid: str, kind: str, sender: str, actor: str, text: str,
                     cid: str | None, name: str = "", attachment: str | None = None
                     ) -> tuple[str, int, int]:
        """(status, seq, ts): ``ts`` is a new message's time (0 otherwise). ``name``: the
        agent's display name, which signs a note (notes show names); ``attachment``: the id of
        a photo this sender's side uploaded to this chat."""
        reply = await self._chat("append", sid, kind, sender, actor, text, cid or "", name,
                                 attachment or "")
        return str(reply[0]), int(reply[1]), int(reply[2]) if len(reply) > 2 else 0

    async def session(self, sid: str) -> dict[str, str]:
        return await self.redis.hgetall(self.keys.session(sid))  # type: ignore[no-any-return]

    async def history(self, sid: str, after: int = 0, count: int = READ_PAGE) -> list[Entry]:
        """Messages after seq ``after`` that may be shown, at most ``count``: one bounded read
        (Redis serves every other chat meanwhile; a long transcript is read page by page)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hmget(self.keys.session(sid), "seq", "dseq")
            pipe.xrange(self.keys.messages(sid), f"0-{after + 1}", "+", count=count)
            (seq, dseq), rows = await pipe.execute()
        last = _visible(seq, dseq)
        return [e for e in _entries(rows) if e.seq <= last]

    async def notes(self, sid: str, after: int = 0, count: int = READ_PAGE) -> list[NoteEntry]:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hmget(self.keys.session(sid), "nseq", "dnseq")
            pipe.xrange(self.keys.notes(sid), f"0-{after + 1}", "+", count=count)
            (nseq, dnseq), rows = await pipe.execute()
        last = _visible(nseq, dnseq)
        return [n for n in _notes(rows) if n.nseq <= last]

    async def history_pages(self, sid: str, after: int = 0) -> AsyncIterator[list[Entry]]:
        """A whole transcript after ``after``, page by page."""
        while True:
            page = await self.history(sid, after)
            if page:
                yield page
            if len(page) < READ_PAGE:
                return
            after = page[-1].seq

    async def notes_pages(self, sid: str, after: int = 0) -> AsyncIterator[list[NoteEntry]]:
        while True:
            page = await self.notes(sid, after)
            if page:
                yield page
            if len(page) < READ_PAGE:
                return
            after = page[-1].nseq

    async def open_chat(self, sid: str, login: str, role: str, how: str, any_chat: bool = False,
                        after: int = 0, notes_after: int = 0, once_per: int = 0
                        ) -> tuple[dict[str, str], list[Entry], list[NoteEntry]] | None:
        """A chat's hash and its first ``HISTORY_PAGE`` messages and notes (those after seq
        ``after`` and nseq ``notes_after``), for the agent who holds it, or (``any_chat``) a
        supervisor; None when there is no such chat or it is not theirs. The read is written
        to the audit trail before it is returned: nothing is shown without its entry, and a
        refused read leaves none. ``once_per`` (seconds): reads of this chat by this person
        within that long of the entry share it (a console that follows a chat polls it every
        few seconds: one entry, not one per poll). A longer transcript is read on with
        ``history_pages``."""
        res = await self._chat("open_chat", sid, login, "1" if any_chat else "0", HISTORY_PAGE,
                               after, notes_after)
        if not res:
            return None
        if not once_per:
            await self.audit(login, role, sid, how)
        elif not await self.redis.exists(self.keys.audit_seen(login, sid)):
            # the entry first, then the mark: a failure in between writes an entry twice,
            # never shows a read without one
            await self.audit(login, role, sid, how)
            await self.redis.set(self.keys.audit_seen(login, sid), 1, ex=once_per)
        return _opened(res)

    async def open_held(self, sid: str, login: str, role: str, how: str
                        ) -> tuple[dict[str, str], list[Entry], list[NoteEntry],
                                   dict[str, Any] | None] | None:
        """``open_chat`` for the gendarme who holds the chat, with its routing record read
        after (the visitor's presence; None: closed meanwhile): on one Redis in one call
        (open_held.lua), the read, its audit entry and the record; on a Cluster, one each."""
        if not self.composed:
            opened = await self.open_chat(sid, login, role, how)
            if opened is None:
                return None
            return (*opened, (await self.routes([sid]))[0])
        res = (await self.scripts.run(
            "open_held", [*self.keys.chat(sid), self.keys.audit, self.keys.routes], sid, login,
            role, how, HISTORY_PAGE, AUDIT_MAXLEN)).result
        if not res:
            return None
        return (*_opened(res[:3]), unpack(res[3]) if res[3] else None)

    async def states(self, sids: list[str]) -> list[dict[str, str]]:
        """What a connection must agree with: state, holder, last seq shown, how it ended,
        the visitor's presence (``presence``, ``presence_since``) while open.
        While a chat is open its routing record says where it stands; once closed, its hash.
        A chat whose hash never came (its creator died before its first message was kept) has
        no state: it is nobody's chat yet; the visitor's start, sent again, finishes it."""
        if not sids:
            return []
        names = ("state", "seq", "dseq", "agent", "agent_name", "topic", "by", "reason")
        async with self.redis.pipeline(transaction=False) as pipe:
            for sid in sids:
                pipe.hmget(self.keys.session(sid), *names)
            rows = await pipe.execute()
        routes = await self.routes(sids)
        out = []
        for row, route in zip(rows, routes):
            st = {k: v for k, v in zip(names, row) if v is not None}
            if "seq" in st:
                st["seq"] = str(_visible(st["seq"], st.pop("dseq", None)))
            if route is not None and route["st"] == "pending" and "state" not in st:
                out.append({})
                continue
            if route is not None and st.get("state") != "closed":
                st["state"] = "queued" if route["st"] == "pending" else route["st"]
                st["agent"] = route.get("agent") or ""
                st["agent_name"] = route.get("name") or ""
                st["topic"] = route["topic"]
                presence = presence_view(route)
                st["presence"], st["presence_since"] = presence["state"], str(presence["since"])
            out.append(st)
        return out

    async def routes(self, sids: list[str]) -> list[dict[str, Any] | None]:
        """The routing records of these chats (None: closed, or none)."""
        if not sids:
            return []
        raws = await self.redis.hmget(self.keys.routes, sids)
        return [None if raw is None else unpack(raw) for raw in raws]

    async def last_seqs(self, sids: list[str]) -> list[int]:
        """The last seq of each chat that may be shown."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for sid in sids:
                pipe.hmget(self.keys.session(sid), "seq", "dseq")
            return [_visible(seq, dseq) for seq, dseq in await pipe.execute()]

    async def visitor_sessions(self, vid: str) -> list[dict[str, Any]]:
        sids = sorted(await self.redis.smembers(self.keys.visitor_sessions(vid)))
        out = []
        for sid, st in zip(sids, await self.states(sids)):
            if st.get("state") is None:  # expired after retention
                continue
            out.append({"session": sid, "state": st["state"], "topic": st.get("topic"),
                        "last_seq": int(st.get("seq", 0))})
        return out

    async def rate(self, sid: str, vid: str, rating: int, comment: str | None) -> str:
        status = str(await self._chat("rate", sid, vid, rating, comment or ""))
        if status == "ok":
            await self._count_safely(self.count_rating(sid, rating))
        return status

    async def block(self, vid: str, hours: int, login: str = "", sid: str = "",
                    reason: str = "") -> None:
        """A gendarme bars a visitor (every process: admit.lua and hello check that the bar
        exists). Its value says who barred them, from which chat, when and why (for a
        supervisor; no visitor id or text of theirs in it)."""
        record = json.dumps({"by": login, "session": sid, "reason": reason,
                             "at": self.now_ms(), "hours": hours}, ensure_ascii=False)
        await self.redis.set(self.keys.blocked(vid), record, ex=hours * 3600)

    async def is_blocked(self, vid: str) -> bool:
        """Asked at each returning visitor's hello, in the pipeline of that loop turn."""
        return bool(await self.scripts.command("EXISTS", self.keys.blocked(vid)))

    async def transcript(self, sid: str) -> dict[str, Any] | None:
        """For an export (not audited: the operator's command, not someone's reading)."""
        info = await self.session(sid)
        if not info:
            return None
        out = transcript_head(sid, info)
        out["messages"] = [message_of(e) async for page in self.history_pages(sid) for e in page]
        out["notes"] = [note_of(n) async for page in self.notes_pages(sid) for n in page]
        return out


def _opened(res: list[Any]) -> tuple[dict[str, str], list[Entry], list[NoteEntry]]:
    """open_chat.lua's reply: the chat's hash, its first messages, its first notes."""
    flat, rows, notes = res
    return dict(zip(flat[::2], flat[1::2])), _entries(_pairs(rows)), _notes(_pairs(notes))
