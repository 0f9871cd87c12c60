"""The reports' figures: counted as chats happen, read back per hour, day or topic.

Part of ``Store``. Each fact is counted once (a member of the day's "done" set guards it: a
close finished twice, by its process and by the repair, counts once); a process killed between
the guard and the counts loses that fact rather than counting it twice. Figures go to the
hour the chat was created in (with its topic and language) and to that day (with its topic),
and live ``CHATD_REPORTS_DAYS``. No visitor id, text or address is stored here.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from .. import reports

if TYPE_CHECKING:
    from .store import Store

DONE_TTL_S = 3 * 86400  # a fact cannot be counted again within this (a repair takes seconds)
_HOUR_MS = 3_600_000
_DAY_MS = 86_400_000


class Reports:
    async def _count(self: Store, fact: str, created_ms: int, topic: str, lang: str,
                     figures: dict[str, int]) -> bool:
        """Adds ``figures`` to the chat's hour and day, once per ``fact``; False if counted
        already."""
        k = self.keys
        done = k.report_done(self.now_ms() // _DAY_MS)
        if not await self.redis.sadd(done, fact):
            return False
        hour, day = created_ms // _HOUR_MS, created_ms // _DAY_MS
        month = reports.month_of(reports.day_date(day))
        keep = self.settings.reports_days * 86400 + 86400
        per_topic = (k.report_day(day), k.report_month(month))
        totals = (k.report_hour_all(hour), k.report_day_all(day))
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.expire(done, DONE_TTL_S)
            for name, n in figures.items():
                pipe.hincrby(k.report_hour(hour), f"{topic}|{lang}|{name}", n)
                for key in per_topic:
                    pipe.hincrby(key, f"{topic}|{name}", n)
                for key in totals:
                    pipe.hincrby(key, name, n)
            for key in (k.report_hour(hour), *per_topic, *totals):
                pipe.expire(key, keep + (31 * 86400 if key == per_topic[1] else 0))
            await pipe.execute()
        return True

    async def count_request(self: Store, sid: str, topic: str, lang: str, created_ms: int) -> None:
        await self._count(f"q:{sid}", created_ms, topic, lang, {"req": 1})

    async def count_async(self: Store, sid: str) -> None:
        """A question left for later: marked on the chat (its close is then no abandon)."""
        info = await self.redis.hmget(self.keys.session(sid), "created", "topic", "lang")
        if info[0] is None:
            return
        await self.redis.hset(self.keys.session(sid), "async", 1)
        await self._count(f"a:{sid}", int(info[0]), info[1] or "", info[2] or "", {"async": 1})

    async def count_close(self: Store, sid: str) -> dict[str, Any] | None:
        """What a closed chat adds; returns its durations (for the metrics) if counted now."""
        names = ("created", "topic", "lang", "answered_at", "first_reply_at", "closed_at",
                 "async", "transfers", "disposition", "state")
        info = dict(zip(names, await self.redis.hmget(self.keys.session(sid), *names)))
        if info["state"] != "closed" or info["created"] is None:
            return None
        facts = reports.chat_facts({k: v for k, v in info.items() if v is not None})
        if not await self._count(f"c:{sid}", int(info["created"]), info["topic"] or "",
                                 info["lang"] or "", facts):
            return None
        return info

    async def count_rating(self: Store, sid: str, rating: int) -> None:
        info = await self.redis.hmget(self.keys.session(sid), "created", "topic", "lang")
        if info[0] is None:
            return
        await self._count(f"r:{sid}", int(info[0]), info[1] or "", info[2] or "",
                          {"rate_n": 1, "rate_sum": rating})

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
