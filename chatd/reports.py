"""What the reports are made of, without I/O: the figures recorded per chat, the fixed
buckets its durations are counted in, and the rows (JSON and CSV) read from them.

Durations are counted in fixed buckets (``EDGES``, seconds) so that hours, days and processes
add up; a percentile is interpolated inside the bucket it falls in, so it is off by at most
that bucket's width (each edge is about 1.5× the one before: a duration just above an edge may
read up to half as much again). Nothing here names a visitor.
"""

from __future__ import annotations

import bisect
import csv
import io
from datetime import date, datetime, timedelta, timezone
from typing import Any, Iterable

#: bucket upper edges in seconds; the last bucket holds everything longer
EDGES = (1, 2, 3, 5, 8, 12, 18, 27, 40, 60, 90, 135, 200, 300, 450, 675, 1000, 1500, 2250,
         3400, 5000, 7500, 11000, 17000, 26000, 40000, 60000, 90000, 135000, 200000, 300000)
DURATIONS = ("wait", "first", "dur")  # to a gendarme; to their first message; the whole chat
COUNTS = ("req", "ans", "abd", "async", "xfer", "rate_n", "rate_sum", "abd_ms")
GROUPINGS = ("hour", "day", "topic")
MAX_HOURS_RANGE = 62  # days a by=hour report may span (a row an hour)
FIELDS = ("key", "requests", "answered", "abandoned", "async", "transferred", "wait_p50_s",
          "wait_p90_s", "first_response_p50_s", "duration_p50_s", "rating_avg", "rating_count",
          "abandoned_wait_avg_s")


class ReportError(ValueError):
    """A report asked for wrongly: the message says what to change."""


def bucket(seconds: float) -> int:
    return bisect.bisect_left(EDGES, max(0.0, seconds))


def percentile(counts: dict[int, int], q: float) -> float | None:
    """The q-th percentile (0-100) of durations counted per bucket, interpolated inside its
    bucket; None without any."""
    total = sum(counts.values())
    if not total:
        return None
    rank = q / 100 * total
    seen = 0
    for b in sorted(counts):
        n = counts[b]
        if seen + n >= rank and n:
            lo = EDGES[b - 1] if b > 0 else 0
            hi = EDGES[b] if b < len(EDGES) else EDGES[-1] * 1.5
            return round(lo + (hi - lo) * max(0.0, rank - seen) / n, 1)
        seen += n
    return float(EDGES[-1])


def chat_facts(info: dict[str, str]) -> dict[str, int]:
    """The figures one closed chat adds, from its hash (store.Reports.record_close)."""
    created = int(info.get("created") or 0)
    closed = int(info.get("closed_at") or created)
    answered = info.get("answered_at")
    facts: dict[str, int] = {}
    if answered:
        facts["ans"] = 1
        facts[f"wait:{bucket((int(answered) - created) / 1000)}"] = 1
        facts[f"dur:{bucket((closed - created) / 1000)}"] = 1
        if info.get("first_reply_at"):
            facts[f"first:{bucket((int(info['first_reply_at']) - created) / 1000)}"] = 1
    elif not info.get("async"):  # gave up before anyone answered (left for later is not that)
        facts["abd"] = 1
        facts["abd_ms"] = max(0, closed - created)
    if int(info.get("transfers") or 0) > 0:
        facts["xfer"] = 1
    facts[f"disp:{info.get('disposition') or 'none'}"] = 1
    return facts


def day_of(text: str, name: str) -> date:
    try:
        d = date.fromisoformat(text)
    except ValueError:
        raise ReportError(f"{name}: a date as YYYY-MM-DD, got {text[:40]!r}") from None
    if not 1970 <= d.year <= 9000:
        raise ReportError(f"{name}: a date from 1970 to 9000, got {text[:40]!r}")
    return d


def parse_query(params: dict[str, str], today: date, keep_days: int
                ) -> tuple[date, date, str, str]:
    """(first day, last day, grouping, format) of a report request; ReportError if wrong."""
    last = day_of(params["to"], "to") if params.get("to") else today
    first = day_of(params["from"], "from") if params.get("from") else last - timedelta(days=6)
    by = params.get("by", "day")
    fmt = params.get("format", "json")
    if by not in GROUPINGS:
        raise ReportError(f"by: one of {', '.join(GROUPINGS)}, got {by[:20]!r}")
    if fmt not in ("json", "csv"):
        raise ReportError(f"format: json or csv, got {fmt[:20]!r}")
    if first > last:
        raise ReportError("from: must not be after to")
    span = (last - first).days + 1
    if span > keep_days + 1:
        raise ReportError(f"at most {keep_days + 1} days at once (figures are kept {keep_days} days)")
    if by == "hour" and span > MAX_HOURS_RANGE:
        raise ReportError(f"by=hour: at most {MAX_HOURS_RANGE} days at once; use by=day")
    return first, last, by, fmt


def epoch_day(d: date) -> int:
    return (d - date(1970, 1, 1)).days


def hour_key(hour: int) -> str:
    return datetime.fromtimestamp(hour * 3600, timezone.utc).strftime("%Y-%m-%dT%H:00Z")


def day_date(day: int) -> date:
    return date(1970, 1, 1) + timedelta(days=day)


def day_key(day: int) -> str:
    return day_date(day).isoformat()


def row(key: str, figures: dict[str, int]) -> dict[str, Any]:
    """One report row from the figures of a group (field -> count, without topic/lang)."""
    hist: dict[str, dict[int, int]] = {d: {} for d in DURATIONS}
    disps: dict[str, int] = {}
    for name, n in figures.items():
        kind, _, rest = name.partition(":")
        if kind in hist:
            hist[kind][int(rest)] = hist[kind].get(int(rest), 0) + n
        elif kind == "disp":
            disps[rest] = disps.get(rest, 0) + n
    rated = figures.get("rate_n", 0)
    abandoned = figures.get("abd", 0)
    return {
        "key": key, "requests": figures.get("req", 0), "answered": figures.get("ans", 0),
        "abandoned": abandoned, "async": figures.get("async", 0),
        "transferred": figures.get("xfer", 0),
        "wait_p50_s": percentile(hist["wait"], 50), "wait_p90_s": percentile(hist["wait"], 90),
        "first_response_p50_s": percentile(hist["first"], 50),
        "duration_p50_s": percentile(hist["dur"], 50),
        "rating_avg": round(figures.get("rate_sum", 0) / rated, 2) if rated else None,
        "rating_count": rated,
        "abandoned_wait_avg_s": round(figures.get("abd_ms", 0) / abandoned / 1000, 1)
        if abandoned else None,
        # a disposition recorded after the chat was counted moves it from `none`: no zeros
        "dispositions": {k: v for k, v in sorted(disps.items()) if v},
    }


def add(into: dict[str, int], raw: dict[str, str]) -> None:
    """Adds a stored hash of figure -> count into ``into``."""
    for name, value in raw.items():
        into[name] = into.get(name, 0) + int(value)


def add_by_topic(into: dict[str, dict[str, int]], raw: dict[str, str]) -> None:
    """Adds a stored hash of ``topic|figure`` -> count into ``into`` (topic -> figures)."""
    for field, value in raw.items():
        topic, _, name = field.partition("|")
        figures = into.setdefault(topic, {})
        figures[name] = figures.get(name, 0) + int(value)


def month_of(d: date) -> int:
    return d.year * 12 + d.month - 1 - 1970 * 12


def spans(first: date, last: date) -> tuple[list[int], list[int]]:
    """The whole months (months since 1970-01) and the other days (days since the epoch)
    that cover ``first``..``last``: a year is read as 12 months and a few days, not 365."""
    months: list[int] = []
    days: list[int] = []
    d = first
    while d <= last:
        month_start = d.replace(day=1)
        next_month = (month_start + timedelta(days=32)).replace(day=1)
        if d == month_start and next_month - timedelta(days=1) <= last:
            months.append(month_of(d))
            d = next_month
        else:
            days.append(epoch_day(d))
            d += timedelta(days=1)
    return months, days


def to_csv(rows: Iterable[dict[str, Any]]) -> str:
    """The rows as CSV: the contract's columns, then one per disposition seen."""
    rows = list(rows)
    disps = sorted({d for r in rows for d in r["dispositions"]})
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow([*FIELDS, *(f"disposition_{d}" for d in disps)])
    for r in rows:
        w.writerow([("" if r[f] is None else r[f]) for f in FIELDS]
                   + [r["dispositions"].get(d, 0) for d in disps])
    return out.getvalue()
