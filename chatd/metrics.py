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
MATCHES = Counter("chatd_matches_total", "Visitors matched with an agent")
MATCH_RUNS = Histogram("chatd_match_run_seconds", "Duration of one matching run",
                       buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5))
TASK_RESTARTS = Counter("chatd_task_restarts_total",
                        "Background tasks restarted after they raised (matching, delivery…)",
                        ["task"])
SLOW_CLOSES = Counter("chatd_slow_consumer_closes_total", "Connections closed as too slow")


def render() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE_LATEST
