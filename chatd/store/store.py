"""The Redis store: every read and write of chatd's state goes through here.

Methods are small and named for what they mean to chatd (``create_session``, ``accept``…); the
atomic ones run one Lua script each. ``now`` is the caller's clock in ms, passed so that one
event uses one time everywhere.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Iterable

from redis.asyncio import Redis

from ..config import Settings, Topic
from .keys import Keys
from .scripts import Scripts

COUNTER_WINDOW_S = 3700  # an hourly counter lives a little over its hour
READ_PAGE = 500  # entries per read: no single Redis call works through a whole long list
HISTORY_PAGE = 200  # messages an `assigned` carries; later ones follow as `msg` frames


@dataclass(frozen=True, slots=True)
class Entry:
    """One message of a session's stream, as stored."""

    seq: int
    sender: str
    text: str
    ts: int
    cid: str


@dataclass(frozen=True, slots=True)
class NoteEntry:
    nseq: int
    agent: str
    text: str
    ts: int
    cid: str


class Store:
    def __init__(self, redis: Redis, settings: Settings, script_redis: Redis | None = None
                 ) -> None:
        """``redis`` for reads and commands whose replay is harmless; ``script_redis`` (a
        client that never retries by itself) for the scripts (``runtime.redis_client``)."""
        self.redis = redis
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self.scripts = Scripts(redis, script_redis or redis, settings.key_prefix,
                               settings.ack_replicas, settings.ack_timeout_ms)
        self.prefix = settings.key_prefix
        self.retention_ms = int(settings.retention_days * 86_400_000)
        self.clock_offset_ms = 0.0  # Redis's clock minus this host's (sync_clock)

    async def _run(self, name: str, *args: Any) -> Any:
        return await self.scripts.run(name, *args)

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

    # -- sessions and messages ----------------------------------------------------------------

    async def create_session(self, sid: str, vid: str, topic: Topic, lang: str,
                             text: str | None, cid: str | None, counters: tuple[str, str],
                             per_token: int, per_ip: int) -> tuple[str, int, str, str]:
        """Admission and creation in one call. Returns ('ok', queue position, '', ''), or
        ('blocked' | 'rate_token' | 'rate_ip', 0, '', ''), or ('conflict', 0, the open chat's
        id, its topic); ``counters`` name the hourly counters of the visitor's token and
        address (``limits.chat_counters``)."""
        status, position, *open_chat = await self._run(
            "create", sid, vid, topic.id, lang, topic.priority, topic.weight, text or "",
            cid or "", counters[0], counters[1], COUNTER_WINDOW_S, per_token, per_ip)
        other, other_topic = (open_chat + ["", ""])[:2]
        return str(status), int(position), str(other), str(other_topic)

    async def append(self, sid: str, kind: str, sender: str, actor: str, text: str,
                     cid: str | None) -> tuple[str, int]:
        status, seq = await self._run("append", sid, kind, sender, actor, text, cid or "", "")
        return str(status), int(seq)

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

    async def open_chat(self, sid: str, login: str, role: str, how: str, any_chat: bool = False
                        ) -> tuple[dict[str, str], list[Entry], list[NoteEntry]] | None:
        """A chat's hash and the first ``HISTORY_PAGE`` messages and notes, audited in the same
        call: for the agent who holds it, or (``any_chat``) a supervisor. None when there is no
        such chat or it is not theirs. A longer transcript is read on with ``history_pages``."""
        res = await self._run("open_chat", sid, login, role, how, "1" if any_chat else "0",
                              HISTORY_PAGE)
        if not res:
            return None
        flat, rows, notes = res
        return dict(zip(flat[::2], flat[1::2])), _entries(_pairs(rows)), _notes(_pairs(notes))

    async def states(self, sids: list[str]) -> list[dict[str, str]]:
        """What a connection must agree with: state, owner, last seq shown, how it ended."""
        names = ("state", "seq", "agent", "agent_name", "topic", "by", "reason", "dseq")
        async with self.redis.pipeline(transaction=False) as pipe:
            for sid in sids:
                pipe.hmget(self.keys.session(sid), *names)
            rows = await pipe.execute()
        out = []
        for row in rows:
            st = {k: v for k, v in zip(names, row) if v is not None}
            if "seq" in st:
                st["seq"] = str(_visible(st["seq"], st.pop("dseq", None)))
            out.append(st)
        return out

    async def last_seqs(self, sids: list[str]) -> list[int]:
        """The last seq of each chat that may be shown."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for sid in sids:
                pipe.hmget(self.keys.session(sid), "seq", "dseq")
            return [_visible(seq, dseq) for seq, dseq in await pipe.execute()]

    async def visitor_sessions(self, vid: str) -> list[dict[str, Any]]:
        sids = sorted(await self.redis.smembers(self.keys.visitor_sessions(vid)))
        if not sids:
            return []
        out = []
        async with self.redis.pipeline(transaction=False) as pipe:
            for sid in sids:
                pipe.hmget(self.keys.session(sid), "state", "topic", "seq", "dseq")
            rows = await pipe.execute()
        for sid, (state, topic, seq, dseq) in zip(sids, rows):
            if state is None:  # expired after retention
                continue
            out.append({"session": sid, "state": state, "topic": topic,
                        "last_seq": _visible(seq, dseq)})
        return out

    async def close(self, sid: str, by: str, actor: str, reason: str, disposition: str = "",
                    rating: int | None = None, comment: str | None = None) -> str:
        return str(await self._run("close", sid, by, actor, reason, disposition,
                                   self.retention_ms, rating or "", comment or ""))

    async def rate(self, sid: str, vid: str, rating: int, comment: str | None) -> str:
        return str(await self._run("rate", sid, vid, rating, comment or ""))

    async def block(self, vid: str, hours: int) -> None:
        """A gendarme bars a visitor (every process: ``create.lua`` and hello check it)."""
        await self.redis.set(self.keys.blocked(vid), 1, ex=hours * 3600)

    async def is_blocked(self, vid: str) -> bool:
        """Asked at each returning visitor's hello, in the pipeline of that loop turn."""
        return bool(await self.scripts.command("EXISTS", self.keys.blocked(vid)))

    # -- matching -----------------------------------------------------------------------------

    async def match(self, max_matches: int = 200) -> int:
        s = self.settings
        return int(await self._run(
            "match", int(s.offer_timeout * 1000), 1 if s.assign_mode == "direct" else 0,
            int(s.lang_fallback * 1000), int(s.offer_timeout * 1000), max_matches))

    async def accept(self, sid: str, login: str, name: str) -> str:
        return str(await self._run("accept", sid, login, name))

    async def decline(self, sid: str, login: str) -> str:
        return str(await self._run("decline", sid, login))

    async def expire_offers(self) -> int:
        return int(await self._run("expire_offers"))

    async def heartbeat(self, logins: list[str], visitor_sids: list[str]) -> list[str]:
        """Agents first, then the visitors' sessions, at most READ_PAGE names per call."""
        back: list[str] = []
        for i in range(0, max(1, len(logins)), READ_PAGE):
            back += await self._run("heartbeat", len(logins[i:i + READ_PAGE]),
                                    *logins[i:i + READ_PAGE])
        for i in range(0, len(visitor_sids), READ_PAGE):
            await self._run("heartbeat", 0, *visitor_sids[i:i + READ_PAGE])
        return back

    async def agent_online(self, login: str, capacity: int, langs: Iterable[str],
                           topics: Iterable[str], name: str) -> tuple[str, list[dict[str, Any]]]:
        status, flat = await self._run("agent_online", login, capacity, " ".join(langs),
                                       " ".join(topics), name)
        sessions = [{"session": flat[i], "state": flat[i + 1], "topic": flat[i + 2],
                     "last_seq": int(flat[i + 3] or 0), "assigned_at": int(flat[i + 4] or 0)}
                    for i in range(0, len(flat), 5)]
        return str(status), sessions

    async def reap(self, text_fr: str, text_en: str) -> list[int]:
        s = self.settings
        return list(await self._run(
            "reap", int(s.heartbeat_ttl * 1000), int(s.agent_grace * 1000),
            int(s.visitor_grace * 1000), self.retention_ms, text_fr, text_en))

    async def set_status(self, login: str, status: str, capacity: int, langs: Iterable[str],
                         topics: Iterable[str], name: str) -> tuple[str, int, int]:
        st, load, cap = await self._run("status", login, status, capacity, " ".join(langs),
                                        " ".join(topics), name)
        return str(st), int(load), int(cap)

    async def transfer(self, sid: str, login: str, to_agent: str | None, to_topic: Topic | None,
                       text_fr: str, text_en: str) -> str:
        return str(await self._run(
            "transfer", sid, login, to_agent or "", to_topic.id if to_topic else "",
            to_topic.priority if to_topic else 0, to_topic.weight if to_topic else 1,
            int(self.settings.offer_timeout * 1000), text_fr, text_en))

    async def queue_positions(self, entries: list[tuple[str, str]]) -> list[int | None]:
        """1-based positions of (topic, sid) pairs among waiting visitors of their topic: a
        ZRANK each (O(log n): no read of the whole line, however long it is), pipelined in
        batches."""
        out: list[int | None] = []
        for i in range(0, len(entries), READ_PAGE):
            async with self.redis.pipeline(transaction=False) as pipe:
                for topic, sid in entries[i:i + READ_PAGE]:
                    pipe.zrank(self.keys.queue(topic), sid)
                ranks = await pipe.execute()
            out += [None if r is None else int(r) + 1 for r in ranks]
        return out

    async def queue_stats(self, topics: list[str]
                          ) -> tuple[dict[str, int], dict[str, int], int, int]:
        """For the supervisors' page: visitors waiting per topic, when the first in each line
        arrived (epoch ms, topics with someone waiting), open chats, offers pending."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for t in topics:
                pipe.zcard(self.keys.queue(t))
                pipe.zrange(self.keys.queue(t), 0, 0)
            pipe.zcard(self.keys.open)
            pipe.zcard(self.keys.offers)
            res = await pipe.execute()
        waiting = {t: int(res[2 * i]) for i, t in enumerate(topics)}
        heads = {t: res[2 * i + 1][0] for i, t in enumerate(topics) if res[2 * i + 1]}
        async with self.redis.pipeline(transaction=False) as pipe:
            for sid in heads.values():
                pipe.hget(self.keys.session(sid), "created")
            created = await pipe.execute()
        oldest = {t: int(c) for t, c in zip(heads, created) if c}
        return waiting, oldest, int(res[-2]), int(res[-1])

    async def handling_ms(self) -> dict[str, int]:
        raw = await self.redis.hgetall(self.keys.handling)
        return {k: int(v) for k, v in raw.items()}

    async def capacity_online(self) -> int:
        """Total capacity of available agents: the denominator of queue ETAs."""
        logins = await self.redis.zrange(self.keys.available, 0, -1)
        if not logins:
            return 0
        async with self.redis.pipeline(transaction=False) as pipe:
            for login in logins:
                pipe.hget(self.keys.agent(login), "cap")
            return sum(int(c or 0) for c in await pipe.execute())

    # -- retention ----------------------------------------------------------------------------

    async def closed_sessions(self, since_ms: int = 0) -> AsyncIterator[str]:
        """Chats closed at or after ``since_ms``, oldest first, read page by page."""
        start = 0
        while True:
            page = await self.redis.zrangebyscore(self.keys.closed, since_ms, "+inf",
                                                  start=start, num=READ_PAGE)
            for sid in page:
                yield sid
            if len(page) < READ_PAGE:
                return
            start += len(page)

    async def transcript(self, sid: str) -> dict[str, Any] | None:
        """For an export (not audited: the operator's command, not someone's reading)."""
        info = await self.session(sid)
        if not info:
            return None
        out = transcript_head(sid, info)
        out["messages"] = [message_of(e) async for page in self.history_pages(sid) for e in page]
        out["notes"] = [note_of(n) async for page in self.notes_pages(sid) for n in page]
        return out

    # -- console: audit trail, open chats, agents, personal canned answers --------------------

    async def audit_entries(self, count: int = 100, session: str | None = None) -> list[dict[str, Any]]:
        """The newest entries first (``session``: only those about that chat, among the last
        10,000), read page by page."""
        out: list[dict[str, Any]] = []
        top, scanned = "+", 0
        while len(out) < count and scanned < 10_000:
            rows = await self.redis.xrevrange(self.keys.audit, top, "-", count=READ_PAGE)
            for entry_id, f in rows:
                if session and f.get("session") != session:
                    continue
                out.append({"who": f.get("who"), "role": f.get("role"),
                            "session": f.get("session"), "how": f.get("how"),
                            "ts": int(f.get("ts", 0))})
                if len(out) >= count:
                    break
            if len(rows) < READ_PAGE:
                break
            scanned += len(rows)
            top = "(" + rows[-1][0]
        return out

    async def open_sessions(self, limit: int = 500) -> list[dict[str, Any]]:
        """Chats not closed yet, oldest first: queued, offered or active."""
        sids = await self.redis.zrange(self.keys.open, 0, limit - 1)
        names = ("state", "topic", "lang", "agent", "agent_name", "created", "assigned_at", "seq")
        async with self.redis.pipeline(transaction=False) as pipe:
            for sid in sids:
                pipe.hmget(self.keys.session(sid), *names)
            rows = await pipe.execute()
        out = []
        for sid, row in zip(sids, rows):
            info = dict(zip(names, row))
            if info["state"] in (None, "closed"):
                continue
            out.append({"session": sid, "state": info["state"], "topic": info["topic"],
                        "lang": info["lang"], "agent": info["agent"] or None,
                        "agent_name": info["agent_name"] or None,
                        "created": int(info["created"] or 0),
                        "assigned_at": int(info["assigned_at"] or 0) or None,
                        "messages": int(info["seq"] or 0)})
        return out

    async def agent_view(self, logins: list[str], credentials: list[str]
                         ) -> tuple[dict[str, list[dict[str, Any]]], list[bool]]:
        """Each agent's chats as the state says (offered to them, or theirs), and whether each
        credential (a login token's digest; '' for none) is still valid."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for login in logins:
                pipe.smembers(self.keys.agent_sessions(login))
            for digest in credentials:
                if digest:
                    pipe.exists(self.keys.token(digest))
            res = await pipe.execute()
        sets, found = res[:len(logins)], iter(res[len(logins):])
        valid = [bool(next(found)) if digest else True for digest in credentials]
        pairs = [(login, sid) for login, sids in zip(logins, sets) for sid in sids]
        names = ("state", "offer_agent", "agent", "topic", "lang", "created", "offer_deadline",
                 "assigned_at")
        async with self.redis.pipeline(transaction=False) as pipe:
            for _, sid in pairs:
                pipe.hmget(self.keys.session(sid), *names)
            rows = await pipe.execute() if pairs else []
        views: dict[str, list[dict[str, Any]]] = {}
        for (login, sid), row in zip(pairs, rows):
            v = dict(zip(names, row))
            views.setdefault(login, []).append({
                "session": sid, "state": v["state"], "offer_agent": v["offer_agent"],
                "agent": v["agent"], "topic": v["topic"], "lang": v["lang"],
                "created": int(v["created"] or 0), "deadline": int(v["offer_deadline"] or 0),
                "assigned_at": int(v["assigned_at"] or 0)})
        return views, valid

    async def agent_states(self, logins: list[str]) -> list[tuple[str, int, int]]:
        """Live (status, load, capacity) of each login; ``offline`` when never seen."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for login in logins:
                pipe.hmget(self.keys.agent(login), "status", "load", "cap")
            rows = await pipe.execute()
        return [(status or "offline", int(load or 0), int(cap or 0)) for status, load, cap in rows]

    async def personal_canned(self, login: str) -> list[dict[str, Any]]:
        raw = await self.redis.hgetall(self.keys.canned(login))
        items = [json.loads(v) for v in raw.values()]
        return sorted(items, key=lambda c: c["title"].lower())

    async def add_canned(self, login: str, answer: dict[str, Any], limit: int) -> bool:
        """False when the agent already has ``limit`` answers."""
        key = self.keys.canned(login)
        if await self.redis.hlen(key) >= limit:
            return False
        await self.redis.hset(key, answer["id"], json.dumps(answer))
        return True

    async def delete_canned(self, login: str, answer_id: str) -> bool:
        return bool(await self.redis.hdel(self.keys.canned(login), answer_id))

    async def purge(self, older_than_ms: int) -> int:
        """Deletes the chats closed before ``older_than_ms`` (epoch ms), transcripts too
        (``chatd purge``). Returns how many."""
        return await self._delete_closed(older_than_ms, lambda info: True)

    async def sweep(self) -> int:
        """Deletes the chats past their retention (the deployment's, or their topic's): the
        automatic purge. Their keys also carry a TTL; this removes them from the closed index
        and the visitors' lists, and deletes any key whose TTL was lost."""
        now = self.now_ms()
        retention = {t.id: int(t.retention_days * 86_400_000) for t in self.settings.topics
                     if t.retention_days}

        def due(info: dict[str, Any]) -> bool:
            kept = retention.get(info["topic"] or "", self.retention_ms)
            return int(info["closed_at"] or 0) + kept <= now
        shortest = min([self.retention_ms, *retention.values()])
        return await self._delete_closed(now - shortest, due)

    async def claim_sweep(self, period_s: float) -> bool:
        """One process per period sweeps: whoever sets the mark first."""
        return bool(await self.redis.set(self.keys.sweep, os.getpid(), nx=True,
                                         px=max(1, int(period_s * 1000))))

    async def _delete_closed(self, closed_before_ms: int, due: Any, page: int = 500) -> int:
        """Pages through the closed index (oldest first) up to ``closed_before_ms``, deleting
        each chat for which ``due(info)`` holds, and index entries whose chat is gone."""
        deleted = 0
        start = 0
        while True:
            sids = await self.redis.zrangebyscore(self.keys.closed, "-inf", closed_before_ms,
                                                  start=start, num=page)
            if not sids:
                return deleted
            fields = ("visitor", "topic", "closed_at")
            async with self.redis.pipeline(transaction=False) as pipe:
                for sid in sids:
                    pipe.hmget(self.keys.session(sid), *fields)
                rows = await pipe.execute()
            kept = 0
            async with self.redis.pipeline(transaction=False) as pipe:
                for sid, row in zip(sids, rows):
                    info = dict(zip(fields, row))
                    if info["closed_at"] is not None and not due(info):
                        kept += 1
                        continue
                    pipe.delete(self.keys.session(sid), self.keys.messages(sid),
                                self.keys.notes(sid), self.keys.cids(sid))
                    if info["visitor"]:
                        pipe.srem(self.keys.visitor_sessions(info["visitor"]), sid)
                    pipe.zrem(self.keys.closed, sid)
                    deleted += 1
                await pipe.execute()
            start += kept  # what stays is skipped; what was deleted left the index
            if len(sids) < page:
                return deleted


def transcript_head(sid: str, info: dict[str, str]) -> dict[str, Any]:
    """A chat's facts as exported and as shown read-only (``messages`` and ``notes`` follow,
    read page by page)."""
    out: dict[str, Any] = {"session": sid}
    for field in ("state", "topic", "lang", "created", "assigned_at", "closed_at", "by",
                  "reason", "disposition", "rating", "comment", "agent", "prev_agent"):
        value = info.get(field)
        if value not in (None, ""):
            out[field] = int(value) if field in ("created", "assigned_at", "closed_at",
                                                 "rating") else value
    return out


def message_of(e: Entry) -> dict[str, Any]:
    return {"seq": e.seq, "from": e.sender, "text": e.text, "ts": e.ts}


def note_of(n: NoteEntry) -> dict[str, Any]:
    return {"nseq": n.nseq, "from_agent": n.agent, "text": n.text, "ts": n.ts}


def _visible(seq: Any, durable: Any) -> int:
    """The last number that may be shown: what reached the replicas (``dseq``, kept by the
    scripts; a chat from before it existed has only ``seq``)."""
    return int(durable if durable is not None else (seq or 0))


def _pairs(rows: list[Any]) -> list[Any]:
    """Stream entries as a script returns them ([id, [field, value, ...]]) as XRANGE gives them."""
    return [(i, dict(zip(f[::2], f[1::2]))) for i, f in rows]


def _entries(rows: list[Any]) -> list[Entry]:
    return [Entry(int(i.split("-", 1)[1]), f["from"], f["text"], int(f["ts"]), f.get("cid", ""))
            for i, f in rows]


def _notes(rows: list[Any]) -> list[NoteEntry]:
    return [NoteEntry(int(i.split("-", 1)[1]), f["agent"], f["text"], int(f["ts"]), f.get("cid", ""))
            for i, f in rows]
