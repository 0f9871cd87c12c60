"""The reports' figures: counted as chats happen, read back per hour, day or topic.

Part of ``Store``. Each fact is counted once per chat: a mark in the chat's own hash
(``counted_<fact>``, HSETNX) guards it, so a close finished twice (by its process and by the
repair), a close or a leave sent again, even days later, counts once. The counts go through the
client that never resends by itself (a resent HINCRBY would count twice); a process killed
between the mark and the counts loses that fact rather than counting it twice. Figures go to
the hour the chat started in (with its first topic and language), to that day and that month
(with the topic) and to the hour's and day's totals, and live ``CHATD_REPORTS_DAYS``. No
visitor id, chat id, text or address is stored here.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from .. import reports

if TYPE_CHECKING:
    from .store import Store

_HOUR_MS = 3_600_000
_DAY_MS = 86_400_000
_CHAT = ("created", "topic0", "topic", "lang")
#: what close_facts.lua reads of a closed chat for its figures
CLOSE_FACTS = (*_CHAT, "answered_at", "first_reply_at", "closed_at", "async", "transfers",
               "disposition", "state")


class Reports:
    async def _count(self: Store, sid: str, fact: str, figures: dict[str, int],
                     info: dict[str, Any] | None = None, marked: bool = False
                     ) -> dict[str, Any] | None:
        """Adds ``figures`` to the chat's hour, day and month, once per chat and ``fact``;
        returns the chat's fields read (None if gone or counted already). ``marked``: the
        caller has set the fact's mark already, atomically with its read (close_facts.lua)."""
        if info is None:
            info = dict(zip(_CHAT, await self.redis.hmget(self.keys.session(sid), *_CHAT)))
        if info.get("created") is None:
            return None
        cmd = self.scripts.command
        if not marked and not await cmd("HSETNX", self.keys.session(sid), f"counted_{fact}", 1):
            return None
        topic, lang = info.get("topic0") or info.get("topic") or "", info.get("lang") or ""
        await self.scripts.run("tally", self.report_keys(int(info["created"])), topic, lang,
                               self.reports_keep_s(),
                               *[x for pair in figures.items() for x in pair])
        return info

    def report_keys(self: Store, created: int) -> list[str]:
        """tally.lua's keys for a chat created at ``created`` (epoch ms): its hour, day and
        month, the hour's and the day's totals."""
        k = self.keys
        hour, day = created // _HOUR_MS, created // _DAY_MS
        return [k.report_hour(hour), k.report_day(day),
                k.report_month(reports.month_of(reports.day_date(day))),
                k.report_hour_all(hour), k.report_day_all(day)]

    def reports_keep_s(self: Store) -> int:
        return self.settings.reports_days * 86400 + 86400

    async def count_request(self: Store, sid: str, created_ms: int, topic: str,
                            lang: str) -> None:
        """A chat started: what it started with is known here (no read on the start path)."""
        await self._count(sid, "q", {"req": 1},
                          {"created": created_ms, "topic0": topic, "lang": lang})

    async def count_async(self: Store, sid: str) -> None:
        """A question left for later: marked on the chat (its close is then no abandon)."""
        await self.redis.hset(self.keys.session(sid), "async", 1)
        await self._count(sid, "a", {"async": 1})

    async def count_close(self: Store, sid: str) -> dict[str, Any] | None:
        """What a closed chat adds; returns its fields (for the metrics) if counted now. The
        mark and the read are one step (close_facts.lua): a disposition recorded after the
        citizen left (session_close.lua) is then either read here or corrected once after."""
        values = await self._chat("close_facts", sid, *CLOSE_FACTS)
        if not values:
            return None
        info = dict(zip(CLOSE_FACTS, values))
        facts = reports.chat_facts({k: v for k, v in info.items() if v is not None})
        return await self._count(sid, "c", facts, info, marked=True)

    async def count_late_disposition(self: Store, sid: str, counted: str,
                                     disposition: str) -> None:
        """A disposition recorded after the chat was counted (with ``counted``, 'none'):
        moved from that one to this one, once."""
        await self._count(sid, "d", {f"disp:{counted}": -1, f"disp:{disposition}": 1})

    async def count_rating(self: Store, sid: str, rating: int) -> None:
        await self._count(sid, "r", {"rate_n": 1, "rate_sum": rating})

    async def report(self: Store, first: date, last: date, by: str) -> list[dict[str, Any]]:
        """Rows of the report from ``first`` to ``last`` (whole UTC days), by hour, day or
        topic: one small hash per row (the totals kept for it), or, by topic, whole months
        and the days around them."""
        k = self.keys
        d0, d1 = reports.epoch_day(first), reports.epoch_day(last)
        if by == "topic":
            months, days = reports.spans(first, last)
            names = [k.report_month(m) for m in months] + [k.report_day(d) for d in days]
        elif by == "hour":
            units = list(range(d0 * 24, (d1 + 1) * 24))
            names = [k.report_hour_all(h) for h in units]
        else:
            units = list(range(d0, d1 + 1))
            names = [k.report_day_all(d) for d in units]
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(name)
            raws = await pipe.execute()
        if by == "topic":
            by_topic: dict[str, dict[str, int]] = {}
            for raw in raws:
                reports.add_by_topic(by_topic, raw)
            return [reports.row(t, by_topic.get(t, {})) for t in self.topics]
        label = reports.hour_key if by == "hour" else reports.day_key
        out = []
        for unit, raw in zip(units, raws):
            figures: dict[str, int] = {}
            reports.add(figures, raw)
            out.append(reports.row(label(unit), figures))
        return out
