"""A chat's states and the events that move it: defined here once.

Rule 1: every change of a chat's routing state goes through this table. The Lua scripts get it
as a generated table (``lua_table``: ``move(route, event)`` refuses an event the table does not
allow from the current state); the Python side reads it here; docs/protocol.md ("States")
prints it, and a test checks that the two agree (``markdown_table``).

The routing record in the ``{m}`` slot is the truth about where a chat stands (queued,
offered to whom, held by whom); the chat's own hash, in its own slot, keeps a copy of the
holder and the state, versioned (``ver``), which is what message writes are checked against.
"""

from __future__ import annotations

#: the states of a chat, in the order a chat usually goes through them
STATES = ("pending", "queued", "offered", "active", "closed")

#: event -> (the states it may happen in, the state it leads to, what it means)
TRANSITIONS: dict[str, tuple[tuple[str, ...], str, str]] = {
    "enqueue": (("pending",), "queued", "the chat exists: it waits in its topic's queue"),
    "offer": (("queued",), "offered", "offered to a gendarme, who has CHATD_OFFER_TIMEOUT to accept"),
    "assign": (("queued",), "active", "given to a gendarme at once (CHATD_ASSIGN_MODE=direct)"),
    "accept": (("offered",), "active", "the gendarme accepted"),
    "decline": (("offered",), "queued", "the gendarme declined: back to its place in the queue"),
    "expire": (("offered",), "queued", "not accepted in time: back to its place in the queue"),
    "offer_lost": (("offered",), "queued", "the gendarme went offline: back to its place"),
    "orphaned": (("active",), "queued",
                 "the gendarme was gone past CHATD_AGENT_GRACE: to the front of the queue"),
    "transfer_topic": (("active",), "queued", "handed to a topic: to the front of its queue"),
    "transfer_agent": (("active",), "offered", "handed to a named gendarme, as an offer"),
    "take_over": (("offered", "active"), "active",
                  "a supervisor takes the chat over: theirs at once, whoever held it"),
    "close": (("pending", "queued", "offered", "active"), "closed",
              "ended by the visitor, the gendarme or the system"),
}


def allowed(event: str, state: str) -> bool:
    froms, _, _ = TRANSITIONS[event]
    return state in froms


def lua_table() -> str:
    """Lua source defining ``TRANSITIONS`` and ``move(route, event)``."""
    rows = []
    for event, (froms, to, _) in TRANSITIONS.items():
        sources = ", ".join(f"{s} = true" for s in froms)
        rows.append(f"  {event} = {{to = '{to}', from = {{{sources}}}}},")
    return ("local TRANSITIONS = {\n" + "\n".join(rows) + "\n}\n"
            "-- Moves a routing record along an event of the table; false if not allowed now.\n"
            "local function move(route, event)\n"
            "  local t = TRANSITIONS[event]\n"
            "  if not t.from[route.st] then return false end\n"
            "  route.st = t.to\n"
            "  route.ver = (route.ver or 0) + 1\n"
            "  return true\n"
            "end\n")


def markdown_table() -> str:
    """The table as docs/protocol.md shows it."""
    lines = ["| event | from | to | meaning |", "| --- | --- | --- | --- |"]
    for event, (froms, to, meaning) in TRANSITIONS.items():
        lines.append(f"| `{event}` | {', '.join(f'`{s}`' for s in froms)} | `{to}` | {meaning} |")
    return "\n".join(lines)
