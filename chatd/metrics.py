"""Prometheus metrics of this process (``GET /metrics``).

Counters are per process; with ``--workers N`` each scrape answers for the worker that took it,
so deployment-wide figures (queue lengths, agents) are better read from ``GET /api/stats``,
which asks Redis.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

CONNECTIONS = Gauge("chatd_connections", "Open WebSocket connections", ["role"])
FRAMES_IN = Counter("chatd_frames_in_total", "Frames received", ["role"])
MESSAGES = Counter("chatd_messages_total", "Messages appended", ["sender"])
# label lookups cost on the hot path: bind the children once
MESSAGES_BY = {sender: MESSAGES.labels(sender) for sender in ("visitor", "agent")}
ERRORS = Counter("chatd_errors_total", "error frames sent", ["code"])
SESSIONS = Counter("chatd_sessions_started_total", "Chats started")
ASYNC_CHATS = Counter("chatd_async_total", "Chats left by the visitor to be answered later")
CODE_RESUMES = Counter("chatd_code_resumes_total", "Visitors back through a resume code")
# the reports' figures, for Grafana: each chat observed once, by the process that counted it
_CHAT_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 21600, 86400)
WAIT = Histogram("chatd_wait_seconds", "From a chat's start to its first gendarme", ["topic"],
                 buckets=_CHAT_BUCKETS)
FIRST_RESPONSE = Histogram("chatd_first_response_seconds",
                           "From a chat's start to its gendarme's first message", ["topic"],
                           buckets=_CHAT_BUCKETS)
DURATION = Histogram("chatd_chat_duration_seconds", "From a chat's start to its end (answered "
                     "chats)", ["topic"], buckets=_CHAT_BUCKETS)
ABANDONED = Counter("chatd_abandoned_total", "Chats ended by the visitor before any answer",
                    ["topic"])


def observe_chat(info: dict[str, str | None]) -> None:
    """A closed chat's figures (store.Reports.count_close), once."""
    topic = info.get("topic0") or info.get("topic") or ""  # the topic it started in
    created = int(info.get("created") or 0)
    closed = int(info.get("closed_at") or created)
    if info.get("answered_at"):
        WAIT.labels(topic).observe(max(0, int(info["answered_at"] or 0) - created) / 1000)
        DURATION.labels(topic).observe(max(0, closed - created) / 1000)
        if info.get("first_reply_at"):
            FIRST_RESPONSE.labels(topic).observe(
                max(0, int(info["first_reply_at"] or 0) - created) / 1000)
    elif not info.get("async"):
        ABANDONED.labels(topic).inc()


MATCHES = Counter("chatd_matches_total", "Visitors matched with an agent")
MATCH_RUNS = Histogram("chatd_match_run_seconds", "Duration of one matching run",
                       buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5))
TASK_RESTARTS = Counter("chatd_task_restarts_total",
                        "Background tasks restarted after they raised (matching, delivery…)",
                        ["task"])
SLOW_CLOSES = Counter("chatd_slow_consumer_closes_total", "Connections closed as too slow")


def render() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE_LATEST
