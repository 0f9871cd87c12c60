"""Queues, offers and gendarmes: the chat's way from `start` to a gendarme and to its end.

Part of ``Store`` (store.py says how an operation that spans slots is ordered). Each routing
change is one routing script (the ``{m}`` slot), then the chats' hashes, then the events.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

import msgpack

from ..config import Topic
from .records import COUNTER_WINDOW_S, PACE_RING, QUEUE_SHIFT, READ_PAGE, unpack

BEAT_PAGE = 100  # names per heartbeat call
LINE_READ_MIN = 32  # sids of one line asked at once from which reading the line may pay
LINE_READ_SHARE = 8  # ...when it is at most this many times longer than what is asked
PAGES_PER_TRIP = 10  # pages of a line read in one pipeline

if TYPE_CHECKING:
    from .store import Store

log = logging.getLogger("chatd.store")

PENDING_GRACE_MS = 10_000  # a chat still pending after this was cut short: the repair acts


@dataclass(frozen=True, slots=True)
class Closing:
    """What a close did (``status``: see ``Routing.close``) and how the chat ended."""

    status: str
    by: str = ""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Figures:
    """What waiting times are estimated from (``Routing.figures``)."""

    agents: list[dict[str, Any]]  # the records of the gendarmes available now
    queued: dict[str, int]  # topic -> how many wait in its queue
    handling: dict[str, int]  # topic -> its average chat length, ms
    lines: dict[str, tuple[list[tuple[int, int]], int | None]]  # topic -> how its line moved
    # lately (its last PACE_RING moves: epoch ms, ms of the time since the move before in
    # which someone waited; none older than an hour) and since when its first live chat waits


def _ended(closed_at: int, topic: str, reason: str, disposition: str) -> str:
    """How a chat ended, as the visitor's record keeps it for their next gendarme
    (visitor_release.lua's summary)."""
    return f"{closed_at}|{topic}|{reason}|{disposition}"


def presence_view(route: dict[str, Any]) -> dict[str, Any]:
    """The visitor's presence as clients see it, from a routing record (presence.lua)."""
    gone = route.get("vst") == "g"
    return {"state": "gone" if gone else "connected",
            "since": int(route.get("vsince") or route.get("created") or 0)}


class Routing:
    # -- a new chat -----------------------------------------------------------------------------

    async def create_session(self: Store, sid: str, vid: str, topic: Topic, lang: str,
                             text: str | None, ip: str, per_token: int, per_ip: int
                             ) -> tuple[str, int, str, str]:
        """Admission and creation. Returns ('ok', queue position, '', ''), or
        ('blocked' | 'rate_token' | 'rate_ip', 0, '', ''), or ('conflict', 0, the open chat's
        id, its topic): the visitor's chat (a retried `start` whose answer was lost)."""
        if self.composed:
            started = await self._start(sid, vid, topic, lang, text, ip, per_token, per_ip)
            if started is not None:
                return started
        for _ in range(2):
            verdict = await self._admit(sid, vid, per_token)
            if verdict[0] != "conflict":
                break
            other = str(verdict[1])
            state, topic_now, closed_at, reason, disposition = await self.redis.hmget(
                self.keys.session(other), "state", "topic", "closed_at", "reason", "disposition")
            if state == "closed":
                # over, but its close not finished yet (its `closed` can reach the visitor
                # first) or cut short: finish it (harmless if done twice), so that the new chat
                # is admitted and its gendarme learns how this one ended
                await self.finish_close(other, vid, str(topic_now), int(closed_at or 0),
                                        str(reason or ""), str(disposition or ""))
                continue
            route = (await self.routes([other]))[0]
            if route is not None:
                if route["st"] == "pending":  # cut short by a process's death: finish it
                    await self._finish(other, route, text or "")
                return "conflict", 0, other, str(route["topic"])
            if state is not None:
                return "conflict", 0, other, str(topic_now)
            await self._release_visitor(vid, other, "-")  # a stale claim: the chat is gone
        else:
            return "conflict", 0, "", ""
        if verdict[0] != "ok":
            return str(verdict[0]), 0, "", ""
        earlier, prev = verdict[1], verdict[2]
        n = (await self.scripts.run("count", [self._address_counter(ip)],
                                    COUNTER_WINDOW_S)).result
        if int(n) > per_ip:
            await self._release_visitor(vid, sid, "")
            return "rate_ip", 0, "", ""
        status, created = await self._route("route_create", sid, vid, topic.id, lang,
                                            topic.priority, topic.weight)
        status, preview = await self._chat("session_create", sid, vid, topic.id, lang, created,
                                           earlier, prev, text or "")
        position = await self._route("route_enqueue", sid, preview, self.process_id)
        await self._count_safely(self.count_request(sid, int(created), topic.id, lang))
        return "ok", int(position), "", ""

    async def _start(self: Store, sid: str, vid: str, topic: Topic, lang: str,
                     text: str | None, ip: str, per_token: int, per_ip: int
                     ) -> tuple[str, int, str, str] | None:
        """``create_session``'s steps in one call (start.lua), where one Redis holds every
        key; None when the visitor has an open chat already: the steps sort that out."""
        hour = self._hour()
        keys = [*self.keys.chat(sid), *self._visitor_keys(vid), self._address_counter(ip),
                *self.report_keys(hour * 3_600_000), *self.routing_keys]
        reply = await self.scripts.run(
            "start", keys, sid, vid, self.topic_list, topic.id, lang, topic.priority,
            topic.weight, text or "", self.process_id, per_token, per_ip, COUNTER_WINDOW_S,
            self.longest_retention(), hour, self.reports_keep_s())
        await self._settle(reply)
        status = str(reply.result[0])
        if status == "conflict":
            return None
        if status != "ok":
            return status, 0, "", ""
        _, position, created, counted = reply.result
        if not int(counted):  # started in another hour than the keys' (or counted already)
            await self._count_safely(self.count_request(sid, int(created), topic.id, lang))
        return "ok", int(position), "", ""

    def _address_counter(self: Store, ip: str) -> str:
        return self.keys.ip_counter(hashlib.sha256(ip.encode()).hexdigest()[:20], self._hour())

    def _hour(self: Store) -> int:
        return self.now_ms() // 3_600_000

    async def adopt_removed_topics(self: Store) -> dict[str, int]:
        """Chats waiting in the queue of a topic no longer configured (a restart with fewer
        topics) go to the general line (retopic.lua): matching reads only the configured
        queues, and they would wait for ever. Returns how many moved, per removed topic; run
        at start-up (harmless on several processes at once: a chat moves once)."""
        stranded: dict[str, list[str]] = {}
        cursor = 0
        while True:
            cursor, page = await self.redis.hscan(self.keys.routes, cursor, count=500)
            for sid, raw in page.items():
                route = unpack(raw)
                topic = str(route.get("topic", ""))
                if route.get("st") == "queued" and topic not in self.topics:
                    stranded.setdefault(topic, []).append(str(sid))
            if not cursor:
                break
        moved: dict[str, int] = {}
        for topic, sids in stranded.items():
            keys = self.routing_keys + [self.keys.queue(topic)]
            topics = f"{self.topic_list} {topic}"
            for sid in sids:
                n = int((await self.scripts.run("retopic", keys, topics, sid, topic)).result)
                moved[topic] = moved.get(topic, 0) + n
        return moved

    async def _admit(self: Store, sid: str, vid: str, per_token: int) -> list[Any]:
        keys = self._visitor_keys(vid)
        return list((await self.scripts.run("admit", keys, sid, per_token,
                                            COUNTER_WINDOW_S)).result)

    def _visitor_keys(self: Store, vid: str) -> list[str]:
        k = self.keys
        return [k.visitor(vid), k.visitor_sessions(vid), k.blocked(vid),
                k.token_counter(vid, self._hour())]

    async def _release_visitor(self: Store, vid: str, sid: str, summary: str) -> None:
        """visitor_release.lua: ``summary`` '' undoes a claim, '-' only frees the visitor's
        open chat, else records how it ended."""
        await self.scripts.run("visitor_release", self._visitor_keys(vid), sid, summary,
                               self.longest_retention())

    async def _finish(self: Store, sid: str, route: dict[str, Any], text: str) -> int:
        """Steps 2 and 3 of a new chat, for one that a dead process left pending."""
        _, preview = await self._chat("session_create", sid, route["visitor"], route["topic"],
                                      route["lang"], route["created"], 0, "", text)
        position = int(await self._route("route_enqueue", sid, preview, self.process_id))
        await self._count_safely(self.count_request(sid, int(route["created"]), route["topic"],
                                                    route["lang"]))
        return position

    # -- closing --------------------------------------------------------------------------------

    async def close(self: Store, sid: str, by: str, actor: str, reason: str,
                    disposition: str = "", rating: int | None = None,
                    comment: str | None = None) -> str:
        """Chat hash first (nobody writes any more), then routing, the visitor's record and the
        closed index. 'ok', 'closed' (already: the rest is done again, harmlessly),
        'disposed' (already closed: a gendarme's late disposition is recorded), 'conflict'
        (a late disposition when there is one) or 'not_found'."""
        return (await self.close_chat(sid, by, actor, reason, disposition, rating,
                                      comment)).status

    async def close_chat(self: Store, sid: str, by: str, actor: str, reason: str,
                         disposition: str = "", rating: int | None = None,
                         comment: str | None = None) -> Closing:
        """``close``, saying how the chat ended (who closed it, why): what a gendarme who
        records a disposition after the citizen left is answered with."""
        retention = " ".join([str(self.retention_ms)] + [
            f"{t}={self.retention_of(t)}" for t in self.topics])
        routed = False  # the routing state and the closed index done (close.lua)
        if self.composed:  # the chat's hash, routing, the closed index: one call
            reply = await self.scripts.run(
                "close", [*self.keys.chat(sid), self.keys.closed, *self.routing_keys], sid, by,
                actor, reason, disposition, retention, rating or "", comment or "",
                self.topic_list)
            await self._settle(reply)  # an offer revoked by the close
            res = reply.result[0]
            routed = len(reply.result) > 1
        else:
            res = await self._chat("session_close", sid, by, actor, reason, disposition,
                                   retention, rating or "", comment or "")
        if res[0] in ("not_found", "conflict"):
            return Closing(str(res[0]))
        status, vid, topic, closed_at, was_by, was_reason, counted = res
        ended = Closing(str(status), str(was_by or by), str(was_reason or reason))
        if status == "disposed":
            # done again, harmlessly: the visitor's record learns the disposition (the next
            # gendarme is told how this chat ended); a close cut short is finished
            await self.finish_close(sid, str(vid), str(topic), int(closed_at or 0),
                                    ended.reason, disposition)
            if counted:
                await self._count_safely(self.count_late_disposition(sid, str(counted),
                                                                     disposition))
            return ended
        if not routed:
            await self.finish_close(sid, str(vid), str(topic), int(closed_at or 0),
                                    ended.reason, disposition)
        else:  # what close.lua leaves: the visitor's record and the reports
            await asyncio.gather(
                self._release_visitor(str(vid), sid, _ended(int(closed_at or 0), str(topic),
                                                             ended.reason, disposition)),
                self._count_safely(self._count_closed(sid)))
        if rating and status == "ok":
            await self._count_safely(self.count_rating(sid, rating))
        return ended

    async def finish_close(self: Store, sid: str, vid: str, topic: str, closed_at: int,
                           reason: str, disposition: str) -> None:
        await self._route("route_close", sid)
        await self._release_visitor(vid, sid, _ended(closed_at, topic, reason, disposition))
        await self.redis.zadd(self.keys.closed, {sid: closed_at})
        await self._count_safely(self._count_closed(sid))

    async def _count_closed(self: Store, sid: str) -> None:
        info = await self.count_close(sid)
        if info is not None and self.on_counted is not None:
            self.on_counted(info)

    async def _count_safely(self: Store, counting: Any) -> None:
        """The reports count what happened; their failing must not undo or fail it."""
        try:
            await counting
        except Exception as exc:  # noqa: BLE001 - a count lost is said, the chat goes on
            log.warning("a report figure was not counted: %s", type(exc).__name__)

    # -- matching and offers --------------------------------------------------------------------

    async def match(self: Store, max_matches: int = 200) -> int:
        s = self.settings
        return int(await self._route(
            "match", int(s.offer_timeout * 1000), 1 if s.assign_mode == "direct" else 0,
            int(s.lang_fallback * 1000), int(s.offer_timeout * 1000), max_matches,
            int(s.absent_skip_s * 1000)))

    async def accept(self: Store, sid: str, login: str, name: str) -> str:
        if not self.composed:
            return str(await self._route("accept", sid, login, name))
        reply = await self.scripts.run("accept_offer", [*self.keys.chat(sid), *self.routing_keys],
                                       sid, login, name, self.topic_list)
        await self._settle(reply)  # its events: the chat's hash is told already
        return str(reply.result)

    async def decline(self: Store, sid: str, login: str) -> str:
        return str(await self._route("decline", sid, login))

    async def expire_offers(self: Store) -> int:
        return int(await self._route("expire_offers"))

    async def transfer(self: Store, sid: str, login: str, to_agent: str | None,
                       to_topic: Topic | None, note: str = "", name: str = "",
                       by: str = "holder") -> tuple[str, str]:
        """Hands a chat on (transfer.lua): ``by`` 'holder' (the agent's own chat) or
        'supervisor' (anybody's: a reassignment). ``note`` is stored as an internal note
        signed by ``login``/``name`` and rides on the chat's next offer. Returns (status,
        the agent who held it): 'ok', 'not_found', 'conflict' (the target cannot take it, or
        the chat was closed at that very moment)."""
        res = await self._route_checked(
            "transfer", sid, "" if by == "supervisor" else login,
            login, to_agent or "", to_topic.id if to_topic else "",
            to_topic.priority if to_topic else 0, to_topic.weight if to_topic else 1,
            int(self.settings.offer_timeout * 1000), note, name or login, by)
        status = str(res[0])
        if status == "ok":  # for the reports: a chat handed on at least once
            await self._count_safely(self.scripts.command(
                "HINCRBY", self.keys.session(sid), "transfers", 1))
        return status, str(res[1]) if len(res) > 1 else ""

    async def take_over(self: Store, sid: str, login: str, name: str) -> tuple[str, str]:
        """A supervisor makes an active or offered chat their own (take_over.lua). Returns
        (status, who held it or had it offered): 'ok', 'not_found' (no open chat),
        'conflict' (theirs already, or waiting in a queue, or closed at that very moment)."""
        res = await self._route_checked("take_over", sid, "", login, name)
        return str(res[0]), str(res[1]) if len(res) > 1 else ""

    async def _route_checked(self: Store, name: str, sid: str, holder: str,
                             *args: Any) -> list[Any]:
        """A routing script that moves one open chat, whose chat hash may have been closed
        between the two steps (a close writes the chat's hash first, the routing record
        after: docs/operations.md). If session_sync.lua finds it closed, the close won: the
        events are not published (nobody is told of a move that did not happen), the close
        finishes the routing state (route_close.lua gives back what this move took), and the
        caller answers `conflict`. A script that finds no routing record answers 'not_found';
        a chat closed already (its hash says so) is `conflict` too to its last ``holder``,
        and `not_found` to anybody else, as any chat that is not theirs; a supervisor
        (``holder`` '') sees every chat: any chat that exists but cannot move (closed,
        waiting in a queue) is `conflict` to them."""
        reply = await self.scripts.run(name, self.routing_keys, self.topic_list, sid, *args)
        res = list(reply.result)
        if res[0] == "not_found":
            state, agent = await self.redis.hmget(self.keys.session(sid), "state", "agent")
            if (state is not None and not holder) or (state == "closed" and agent == holder):
                return ["conflict"]
        told = await self.tell_chats(reply.syncs) if reply.syncs else []
        if "closed" in told:
            return ["conflict"]
        if reply.later:
            await self._publish_events(reply.later)
        return res

    # -- gendarmes ------------------------------------------------------------------------------

    async def heartbeat(self: Store, logins: list[str], visitor_sids: list[str]) -> list[str]:
        """Agents first, then the visitors' sessions (those this process holds a visitor
        connection to), at most BEAT_PAGE names per call: a call of 500 held Redis for 2-4 ms,
        which every message relayed at that moment waited for."""
        back: list[str] = []
        for i in range(0, max(1, len(logins)), BEAT_PAGE):
            page = logins[i:i + BEAT_PAGE]
            back += await self._route("heartbeat", len(page), self.process_id, *page)
        for i in range(0, len(visitor_sids), BEAT_PAGE):
            await self._route("heartbeat", 0, self.process_id, *visitor_sids[i:i + BEAT_PAGE])
        return back

    # -- the visitor's presence -----------------------------------------------------------------

    async def presence(self: Store, changes: list[tuple[str, bool]]) -> int:
        """This process now holds a visitor connection to each chat marked True, and no longer
        any to those marked False (presence.lua); how many queued chats have their visitor
        back (matching may offer them again)."""
        back = 0
        for i in range(0, len(changes), READ_PAGE):
            flat = [x for sid, held in changes[i:i + READ_PAGE]
                    for x in (sid, "1" if held else "0")]
            back += int(await self._route("presence", self.process_id, *flat))
        return back

    async def presence_of(self: Store, sids: list[str]) -> list[dict[str, Any] | None]:
        """``{state: connected|gone, since}`` of each chat's visitor (None: no such open chat).
        A record from before presence was kept counts as connected since the chat began."""
        return [None if r is None else presence_view(r) for r in await self.routes(sids)]

    async def agent_online(self: Store, login: str, capacity: int, langs: Iterable[str],
                           topics: Iterable[str], name: str) -> tuple[str, list[dict[str, Any]]]:
        status, flat = await self._route("agent_online", login, capacity, " ".join(langs),
                                         " ".join(topics), name)
        sids = flat[::4]
        seqs = await self.last_seqs(sids)
        sessions = [{"session": flat[i], "state": flat[i + 1], "topic": flat[i + 2],
                     "last_seq": seq, "assigned_at": int(flat[i + 3] or 0)}
                    for i, seq in zip(range(0, len(flat), 4), seqs)]
        return str(status), sessions

    async def set_status(self: Store, login: str, status: str, capacity: int,
                         langs: Iterable[str], topics: Iterable[str], name: str
                         ) -> tuple[str, int, int]:
        st, load, cap = await self._route("status", login, status, capacity, " ".join(langs),
                                          " ".join(topics), name)
        return str(st), int(load), int(cap)

    async def reap(self: Store) -> list[int]:
        """Liveness (reap.lua); the chats whose visitor left past their grace are closed here,
        chat first."""
        s = self.settings
        gone, requeued, left, expired = await self._route(
            "reap", int(s.heartbeat_ttl * 1000), int(s.agent_grace * 1000),
            int(s.visitor_grace * 1000))
        await asyncio.gather(*(self.close(sid, "system", "", "visitor_left") for sid in left),
                             *(self.close(sid, "system", "", "expired") for sid in expired))
        return [int(gone), int(requeued), len(left) + len(expired)]

    # -- answers later --------------------------------------------------------------------------

    async def leave(self: Store, sid: str, vid: str, ttl_ms: int) -> int | None:
        """The visitor's chat waits for an answer without them (leave.lua); its deadline (epoch
        ms), or None if it is not an open chat of theirs."""
        reply = await self._route("leave", sid, vid, ttl_ms)
        if reply[0] != "ok":
            return None
        await self._count_safely(self.count_async(sid))
        return int(reply[1])

    async def take(self: Store, sid: str, login: str, any_topic: bool) -> str:
        """A gendarme takes a chat left for later out of its turn: offered to them now
        (take.lua). 'ok', 'not_found', 'taken', 'offline', 'no_room'; a chat closed meanwhile
        (no routing record any more) is 'closed' when it was left for later and of a topic
        this gendarme takes (else 'not_found', the same answer as for no chat at all)."""
        status = str(await self._route("take", sid, login, "1" if any_topic else "0",
                                       int(self.settings.offer_timeout * 1000)))
        if status in ("not_found", "taken"):  # closed (its routing record goes right after)?
            state, was_left, topic = await self.redis.hmget(self.keys.session(sid), "state",
                                                            "async", "topic")
            if state == "closed" and (status == "taken" or (was_left and (
                    any_topic or await self._serves(login, topic)))):
                return "closed"
        return status

    async def _serves(self: Store, login: str, topic: str | None) -> bool:
        (a,) = await self.agents([login])
        served = str((a or {}).get("topics") or "").split()
        return not served or topic in served

    async def save_code(self: Store, digest: str, sid: str, vid: str, until_ms: int) -> None:
        """A resume code (its digest only) leads to the chat until the chat's deadline."""
        await self.redis.set(self.keys.code(digest), msgpack.packb([sid, vid]), pxat=until_ms)

    async def code_target(self: Store, digest: str) -> tuple[str, str] | None:
        raw = await self.redis.get(self.keys.code(digest))
        if raw is None:
            return None
        sid, vid = unpack(raw)
        return str(sid), str(vid)

    async def count_code_try(self: Store, ip: str, window_s: int) -> int:
        """Resume codes tried from this address in the current window (all processes)."""
        key = self.keys.code_counter(hashlib.sha256(ip.encode()).hexdigest()[:20],
                                     int(self.now_ms() // 1000 // window_s))
        return int((await self.scripts.run("count", [key], window_s)).result)

    async def figures(self: Store, topics: list[str], max_age_s: int = 3600) -> Figures:
        """What waiting times are estimated from (``Figures``), read in two round trips of the
        batcher: every start of a chat waits for figures read after it came (matching.py),
        so this read is made hundreds of times a second under load; it was five round trips
        of the pooled client."""
        k = self.keys
        cmd = self.scripts.command
        fields = [f"{t}:{i}" for t in topics for i in range(PACE_RING)]
        reads = [cmd("ZRANGE", k.available, 0, -1), cmd("HGETALL", k.handling)]
        if fields:
            reads.append(cmd("HMGET", k.served, *fields))
        reads += [cmd("ZCARD", k.queue(t)) for t in topics]
        reads += [cmd("ZRANGE", k.queue(t), 0, 0, "WITHSCORES") for t in topics]
        res = await asyncio.gather(*reads)
        logins, flat, raws = res[0], res[1], res[2] if fields else []
        rest = res[3:] if fields else res[2:]
        lengths, heads = rest[:len(topics)], rest[len(topics):]
        records = []
        if logins:
            records = [unpack(r) for r in await cmd("HMGET", k.agents, *logins) if r is not None]
        oldest = self.now_ms() - max_age_s * 1000
        lines: dict[str, tuple[list[tuple[int, int]], int | None]] = {}
        for i, t in enumerate(topics):
            moves = []
            for raw in raws[i * PACE_RING:(i + 1) * PACE_RING]:
                parts = raw.split(",") if raw is not None else ()
                if len(parts) == 2 and int(parts[0]) >= oldest:  # (3: waits kept before 2026-12)
                    moves.append((int(parts[0]), int(parts[1])))
            since = None
            head = heads[i]  # [[member, score]] (RESP3), or [member, score] (RESP2)
            if head:
                score = int(float(head[0][1] if isinstance(head[0], list) else head[1]))
                # a head sent to the front (an orphan, a transfer) came to this line at a time
                # its score does not tell; one left for later: nobody waits live
                if 0 <= score < QUEUE_SHIFT:
                    since = score
            lines[t] = (moves, since)
        handling = flat if isinstance(flat, dict) else dict(zip(flat[::2], flat[1::2]))
        return Figures(records, {t: int(n) for t, n in zip(topics, lengths)},
                       {t: int(ms) for t, ms in handling.items()}, lines)

    # -- what the queues look like --------------------------------------------------------------

    async def queue_positions(self: Store, entries: list[tuple[str, str]]) -> list[int | None]:
        """1-based positions of (topic, sid) pairs among waiting visitors of their topic, each
        line read the cheaper way: in pages (``ZRANGE``) when those asked for are a good share
        of it (two processes hold about half of a line each: a ``ZRANK`` each cost a worker
        70 ms per 5,000 every second under a backlog), else a ``ZRANK`` each (O(log n): a long
        line of which few are asked). Pages read side by side may see the line move between
        them: a sid a page missed gets its ``ZRANK``."""
        asked: dict[str, set[str]] = {}
        for topic, sid in entries:
            asked.setdefault(topic, set()).add(sid)
        found: dict[tuple[str, str], int] = {}
        many = [t for t, sids in asked.items() if len(sids) >= LINE_READ_MIN]
        if many:
            async with self.redis.pipeline(transaction=False) as pipe:
                for t in many:
                    pipe.zcard(self.keys.queue(t))
                lengths = await pipe.execute()
            pages = [(t, start) for t, n in zip(many, lengths)
                     if int(n) <= LINE_READ_SHARE * len(asked[t])
                     for start in range(0, int(n), READ_PAGE)]
            for i in range(0, len(pages), PAGES_PER_TRIP):  # Redis is not held up for long
                trip = pages[i:i + PAGES_PER_TRIP]
                async with self.redis.pipeline(transaction=False) as pipe:
                    for t, start in trip:
                        pipe.zrange(self.keys.queue(t), start, start + READ_PAGE - 1)
                    replies = await pipe.execute()
                for (t, start), page in zip(trip, replies):
                    mine = asked[t]
                    for at, sid in enumerate(page, start + 1):
                        if sid in mine:
                            found.setdefault((t, sid), at)
        missing = [e for e in dict.fromkeys(entries) if e not in found]
        for i in range(0, len(missing), READ_PAGE):
            part = missing[i:i + READ_PAGE]
            async with self.redis.pipeline(transaction=False) as pipe:
                for topic, sid in part:
                    pipe.zrank(self.keys.queue(topic), sid)
                ranks = await pipe.execute()
            found.update((e, int(r) + 1) for e, r in zip(part, ranks) if r is not None)
        return [found.get(e) for e in entries]

    async def queue_stats(self: Store, topics: list[str]
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
        routes = await self.routes(list(heads.values()))
        oldest = {t: int(r["created"]) for t, r in zip(heads, routes) if r}
        return waiting, oldest, int(res[-2]), int(res[-1])

    async def agents(self: Store, logins: list[str]) -> list[dict[str, Any] | None]:
        """The gendarmes' records (None: never seen)."""
        if not logins:
            return []
        raws = await self.redis.hmget(self.keys.agents, logins)
        return [None if raw is None else unpack(raw) for raw in raws]

    async def agent_states(self: Store, logins: list[str]) -> list[tuple[str, int, int]]:
        """Live (status, load, capacity) of each login; ``offline`` when never seen."""
        return [(str(a.get("status") or "offline"), int(a.get("load") or 0),
                 int(a.get("cap") or 0)) if a else ("offline", 0, 0)
                for a in await self.agents(logins)]

    async def agent_view(self: Store, logins: list[str], credentials: list[str]
                         ) -> tuple[dict[str, list[dict[str, Any]]], list[bool]]:
        """Each agent's chats as the routing state says (offered to them, or theirs), and
        whether each credential (a login token's digest; '' for none) is still valid."""
        records = await self.agents(logins)
        async with self.redis.pipeline(transaction=False) as pipe:
            for digest in credentials:
                if digest:
                    pipe.exists(self.keys.token(digest))
            found = iter(await pipe.execute())
        valid = [bool(next(found)) if digest else True for digest in credentials]
        pairs = [(login, sid) for login, a in zip(logins, records) if a
                 for sid in a.get("held") or ()]
        routes = await self.routes([sid for _, sid in pairs])
        views: dict[str, list[dict[str, Any]]] = {}
        for (login, sid), r in zip(pairs, routes):
            if r is None:
                continue
            views.setdefault(login, []).append({
                "session": sid, "state": r["st"], "offer_agent": r.get("offer_agent") or "",
                "agent": r.get("agent") or "", "topic": r["topic"], "lang": r["lang"],
                "created": int(r["created"]), "deadline": int(r.get("deadline") or 0),
                "assigned_at": int(r.get("assigned_at") or 0), "async": r.get("async") == 1})
        return views, valid
