"""Every Redis key and channel name chatd uses, and nowhere else.

Patterns are written once here; Python gets them through ``Keys`` and the Lua scripts get the
same patterns as generated functions (``k_session(sid)`` …), so the two can never disagree.
A session's hash, streams and channel share the hash tag ``{sid}`` so that they live on one
Redis Cluster slot; matching state shares the tag ``{m}``. Every name starts with the
deployment's ``key_prefix``, which is also how tests isolate themselves on one Redis.
"""

from __future__ import annotations

import re

#: name -> pattern; ``<arg>`` marks an argument, ``P`` the prefix.
PATTERNS: dict[str, str] = {
    "secret": "P:secret",
    "epoch": "P:epoch",  # which generation of data this Redis holds
    "account": "P:acct:<login>",
    "accounts": "P:accts",
    "token": "P:tok:<digest>",
    "tokens": "P:toks:<login>",
    "blocked": "P:blocked:<vid>",
    "counter": "P:rl:<name>",
    "closed": "P:closed",
    "sweep": "P:sweep",  # held by the process sweeping this period
    "visitor_sessions": "P:v:<vid>:sessions",
    "audit": "P:audit",
    "canned": "P:canned:<login>",
    # matching state, one slot
    "topics": "P:{m}:topics",
    "queue": "P:{m}:q:<topic>",
    "available": "P:{m}:avail",
    "agent": "P:{m}:ag:<login>",
    "agent_sessions": "P:{m}:agsess:<login>",
    "offers": "P:{m}:offers",
    "offer_order": "P:{m}:offer_order",  # counts first offers: FIFO is checked against it
    "agents_seen": "P:{m}:seen",
    "visitors_seen": "P:{m}:vseen",
    "orphans": "P:{m}:orphans",
    "open": "P:{m}:open",
    "handling": "P:{m}:handling",
    # one session, one slot
    "session": "P:s:{<sid>}",
    "messages": "P:s:{<sid>}:m",
    "notes": "P:s:{<sid>}:n",
    "cids": "P:s:{<sid>}:c",
    # channels
    "session_channel": "P:s:{<sid>}:ch",
    "agent_channel": "P:a:{<login>}:ch",
    "broadcast": "P:bc",
}

_ARG = re.compile(r"<(\w+)>")


class Keys:
    """Key names for one deployment prefix: ``Keys("chatd").session("abc")``."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        for name, pattern in PATTERNS.items():
            setattr(self, name, _python_function(prefix, pattern))

    # Declared for type checkers; bound in __init__.
    def __getattr__(self, name: str) -> str:  # pragma: no cover
        raise AttributeError(name)


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


def lua_functions() -> str:
    """Lua source defining ``k_<name>(args…)`` for every pattern, using the global ``P``."""
    lines = []
    for name, pattern in PATTERNS.items():
        args = _ARG.findall(pattern)
        pieces = []
        for i, piece in enumerate(_ARG.split(pattern[1:])):
            if i % 2:
                pieces.append(f"tostring({piece})")
            elif piece:
                pieces.append(repr(piece).replace("'", '"'))
        body = " .. ".join(["P"] + pieces)
        lines.append(f"local function k_{name}({', '.join(args)}) return {body} end")
    return "\n".join(lines) + "\n"
