"""Every Redis key and channel name chatd uses, and nowhere else.

Names are grouped by the hash tag that decides their Redis Cluster slot (docs/operations.md,
"Redis Cluster"):

- ``{<sid>}``: one chat: its state as the transcript sees it, messages, notes, client ids,
  channel. Chats spread over every shard; a message touches its chat's shard only.
- ``{m}``: the routing state (queues, offers, gendarmes, loads, every open chat's routing
  record), one slot: matching must see it all at once.
- ``{v:<vid>}``: one visitor: their open chat, their chats, their bar, their allowance.
- ``{d}``: deployment-wide: the secret, accounts and login tokens, the closed index, the audit
  trail, personal canned answers.
- ``{r}``: the reports' figures, per hour and per day (anonymous counts, no chat's id).
- per-address counters: one key each (a single-key operation needs no tag).

Lua scripts never build a name: they are given every key they touch in KEYS, in the order
their header lists (scripts.py), and their events name a target (a chat, a gendarme) that
Python turns into a channel here. Every name starts with the deployment's ``key_prefix``.
"""

from __future__ import annotations

import re

#: name -> pattern; ``<arg>`` marks an argument, ``P`` the prefix.
PATTERNS: dict[str, str] = {
    # deployment-wide
    "secret": "P:{d}:secret",
    "epoch": "P:{d}:epoch",  # which generation of data this Redis holds
    "sweep": "P:{d}:sweep",  # held by the process sweeping this period
    "repair": "P:{d}:repair",  # likewise, for the repair of interrupted operations
    "account": "P:{d}:acct:<login>",
    "accounts": "P:{d}:accts",
    "token": "P:{d}:tok:<digest>",
    "tokens": "P:{d}:toks:<login>",
    "closed": "P:{d}:closed",
    "audit": "P:{d}:audit",
    "audit_seen": "P:{d}:aseen:<login>:<sid>",  # a read audited lately (one entry per while)
    "audit_seen_how": "P:{d}:aseen:<login>:<sid>:<how>",  # likewise, for one kind of view
    "canned": "P:{d}:canned:<login>",
    # one visitor
    "visitor": "P:{v:<vid>}",
    "visitor_sessions": "P:{v:<vid>}:sessions",
    "blocked": "P:{v:<vid>}:blocked",
    "token_counter": "P:{v:<vid>}:rl:<hour>",
    "code": "P:{d}:code:<digest>",  # a resume code (its digest) -> the chat it leads back to
    # reports
    "report_hour": "P:{r}:h:<hour>",  # hours since the epoch (UTC) -> topic|lang|figure counts
    "report_hour_all": "P:{r}:ht:<hour>",  # the same hour, all topics -> figure counts
    "report_day": "P:{r}:d:<day>",  # days since the epoch (UTC) -> topic|figure counts
    "report_day_all": "P:{r}:dt:<day>",  # the same day, all topics -> figure counts
    "report_month": "P:{r}:m:<month>",  # months since 1970-01 -> topic|figure counts
    # one address (hashed)
    "ip_counter": "P:rl:ip:<digest>:<hour>",
    "code_counter": "P:rl:code:<digest>:<window>",  # resume codes tried from an address
    # routing state, one slot
    "topics": "P:{m}:topics",
    "routes": "P:{m}:routes",  # sid -> the chat's routing record (msgpack)
    "agents": "P:{m}:agents",  # login -> the gendarme's record (msgpack)
    "available": "P:{m}:avail",
    "offers": "P:{m}:offers",
    "offer_order": "P:{m}:offer_order",  # counts first offers: FIFO is checked against it
    "agents_seen": "P:{m}:seen",
    "visitors_seen": "P:{m}:vseen",
    "orphans": "P:{m}:orphans",
    "open": "P:{m}:open",
    "pending": "P:{m}:pending",  # chats whose creation is under way
    "handling": "P:{m}:handling",
    "async_due": "P:{m}:async",  # chats left to be answered later, scored by their deadline
    "served": "P:{m}:served",  # waits and places in line of the last chats taken, per topic
    # chats whose visitor counts as connected, scored by their last heartbeat (presence.lua)
    "present": "P:{m}:present",
    "queue": "P:{m}:q:<topic>",
    # one chat, one slot
    "session": "P:s:{<sid>}",
    "messages": "P:s:{<sid>}:m",
    "notes": "P:s:{<sid>}:n",
    "cids": "P:s:{<sid>}:c",
    # the chat's photos: upload id -> its record (uploads.lua); no TTL: the sweep deletes it
    # with the files (retention.py), so files are never left without their record
    "uploads": "P:s:{<sid>}:u",
    # channels
    "session_channel": "P:s:{<sid>}:ch",
    "agent_channel": "P:{m}:a:<login>:ch",
    "beat": "P:{<shard>}:beat",  # each process's liveness beats (one channel per shard)
}

#: the routing keys every matching script is given, in this order, then one queue per topic
ROUTING = ("topics", "routes", "agents", "available", "offers", "offer_order", "agents_seen",
           "visitors_seen", "orphans", "open", "pending", "handling", "async_due", "served",
           "present")
#: a chat's keys, in the order its scripts are given them
SESSION = ("session", "messages", "notes", "cids", "session_channel", "uploads")

_ARG = re.compile(r"<(\w+)>")


class Keys:
    """Key names for one deployment prefix: ``Keys("chatd").session("abc")``."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        for name, pattern in PATTERNS.items():
            setattr(self, name, _python_function(prefix, pattern))
        # a chat's keys are asked for at every message: their text around the sid, split once
        self._chat_parts = [tuple((prefix + PATTERNS[name][1:]).split("<sid>"))
                            for name in SESSION]

    # Declared for type checkers; bound in __init__.
    def __getattr__(self, name: str) -> str:  # pragma: no cover
        raise AttributeError(name)

    def routing(self, topics: list[str]) -> list[str]:
        """The KEYS of a matching script: ROUTING, then the queue of each topic."""
        return [getattr(self, name) for name in ROUTING] + [self.queue(t) for t in topics]

    def chat(self, sid: str) -> list[str]:
        """The KEYS of a chat's script."""
        return [head + sid + tail for head, tail in self._chat_parts]


def _python_function(prefix: str, pattern: str):  # type: ignore[no-untyped-def]
    text = prefix + pattern[1:]
    args = _ARG.findall(text)
    if not args:
        return text
    parts = _ARG.split(text)  # literal, arg, literal, arg, ...

    def build(*values: object) -> str:
        out = [parts[0]]
        for i, value in enumerate(values):
            out.append(str(value))
            out.append(parts[2 * i + 2])
        return "".join(out)

    build.__name__ = "_".join(args)
    return build
