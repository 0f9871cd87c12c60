"""Loads the Lua scripts of ``lua/`` and runs them, batched (``batch.py``).

Each script belongs to a family, named on its first line, which says which keys it is given
(KEYS, in the order keys.py lists them) and so which slot it runs in: ``chat`` (one chat's
keys), ``routing`` (the routing state, then one queue per topic: ARGV[2] names the topics in
that order), ``visitor`` (one visitor's keys), ``counter`` (one counter), ``reports`` (the
figures of one hour, day and month: the ``{r}`` slot), or ``composed``: an operation's
steps in one call, for a Redis that holds every key (``source`` says how; its KEYS begin with
the chat's, so that what it holds back is confirmed as a chat script's). A script never builds
a key name; the prelude binds the names it was given (S, R, V, C, P), then comes the transition
table (states.py), ``lib.lua``, and the script's body, wrapped so that every script returns
``{result, PUBS, MARKS, LATER, SYNCS}`` (lib.lua says what each holds), or ``{result}`` when
those four are empty. Scripts are registered once and run by SHA; a Redis that lost its script
cache (a restart, a failover to a node that never ran them) gets them again.
"""

from __future__ import annotations

import asyncio
import functools
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from .batch import Batcher
from .keys import ROUTING
from .records import PACE_RING, QUEUE_SHIFT
from .states import lua_table

# What a script of each family binds its KEYS to (S, R, V, C, P: declared before the
# helpers, which use them). A composed script binds them anew at each of its steps.
_BINDS = {
    "chat": "S = {hash = KEYS[1], msgs = KEYS[2], notes = KEYS[3], cids = KEYS[4], "
            "channel = KEYS[5], uploads = KEYS[6]}\n",
    "routing": "R = {" + ", ".join(f"{name} = KEYS[{i + 1}]" for i, name in enumerate(ROUTING))
               + ", queue = {}}\n"
               "do\n  local n = " + str(len(ROUTING)) + "\n"
               "  for t in string.gmatch(ARGV[2], '%S+') do n = n + 1; R.queue[t] = KEYS[n] end\n"
               "end\n",
    "visitor": "V = {hash = KEYS[1], sessions = KEYS[2], blocked = KEYS[3], counter = KEYS[4]}\n",
    "counter": "C = KEYS[1]\n",
    "reports": "P = {hour = KEYS[1], day = KEYS[2], month = KEYS[3], hour_all = KEYS[4], "
               "day_all = KEYS[5]}\n",
}
_HEAD = (f"local PACE_RING, QUEUE_SHIFT = {PACE_RING}, {QUEUE_SHIFT}\n"
         "local S, R, V, C, P\n")


def _read(name: str) -> str:
    return resources.files(__package__).joinpath("lua", name).read_text(encoding="utf-8")


def family(name: str) -> str:
    first = _read(f"{name}.lua").splitlines()[0]
    if not first.startswith("-- family: "):
        raise ValueError(f"{name}.lua must start with '-- family: chat|routing|visitor|counter|"
                         "reports|composed'")
    return first.split(":", 1)[1].strip()


def steps(name: str) -> tuple[str, ...]:
    """The steps a composed script runs (its second line: ``-- steps: a b c``)."""
    second = _read(f"{name}.lua").splitlines()[1]
    if not second.startswith("-- steps: "):
        raise ValueError(f"{name}.lua, a composed script, must name its steps on line 2")
    return tuple(second.split(":", 1)[1].split())


NAMES = tuple(sorted(p.name[:-4] for p in resources.files(__package__).joinpath("lua").iterdir()
                     if p.name.endswith(".lua") and p.name != "lib.lua"))
FAMILIES = {name: family(name) for name in NAMES}


_FUNCTION = re.compile(r"^local function (\w+)\(", re.M)
_WORD = re.compile(r"\b[A-Za-z_]\w*\b")


@functools.cache
def _parts() -> tuple[str, list[tuple[str, str]]]:
    """lib.lua as its opening (mode, clock, result lists: every script needs them) and its
    functions, each with the comment above it, in order; the transition table is one more
    function (``move``, with ``TRANSITIONS``)."""
    lib = _read("lib.lua")
    starts = [m.start() for m in _FUNCTION.finditer(lib)]
    # a function's part begins with the comment lines right above it
    bounds = []
    for at in starts:
        begin = lib.rfind("\n\n", 0, at)
        bounds.append(begin + 1 if begin != -1 else at)
    opening = lib[:bounds[0]] if bounds else lib
    functions = [("move", lua_table())]
    for i, begin in enumerate(bounds):
        end = bounds[i + 1] if i + 1 < len(bounds) else len(lib)
        m = _FUNCTION.search(lib, begin)
        assert m is not None
        functions.append((m.group(1), lib[begin:end]))
    return opening, functions


def source(name: str) -> str:
    """A script as Redis runs it: its key bindings, lib.lua's opening, the helpers it calls
    (and those they call) and its body. Redis runs all of it at every call, so a script carries
    only what it uses: the whole library cost the append of each message about 16 µs of
    Redis CPU (docs/benchmarks.md, "Performance").

    A composed script (family ``composed``) does in one call what its steps do one call each:
    each step's body becomes a function of its own KEYS and ARGV (``step.name(keys, argv)``)
    that binds its family's names first, and the composed body calls them in turn. A Cluster
    cannot run it (its steps' keys are in different slots); one Redis, or a Sentinel's
    primary, runs an operation in one round trip instead of one per step."""
    body = _read(f"{name}.lua")
    kind = FAMILIES[name]
    parts = steps(name) if kind == "composed" else ()
    texts = {part: _read(f"{part}.lua") for part in parts}
    opening, functions = _parts()
    defined = {fn for fn, _ in functions}
    wanted = set(_WORD.findall(body + "".join(texts.values()))) & defined
    while True:  # what the wanted helpers call, until nothing new comes
        more = {w for fn, text in functions if fn in wanted
                for w in _WORD.findall(text) if w in defined} - wanted
        if not more:
            break
        wanted |= more
    helpers = "".join(text for fn, text in functions if fn in wanted)
    out = [_HEAD, _BINDS.get(kind, ""), opening, helpers]
    if parts:
        out.append("local step = {}\n")
        for part, text in texts.items():
            fresh = "ABSENT = {}\n" if FAMILIES[part] == "chat" else ""
            out.append(f"step.{part} = function(KEYS, ARGV)\n" + _BINDS[FAMILIES[part]] + fresh
                       + text + "\nend\n")
    out.append("local function main()\n" + body + "\nend\n" + RETURN)
    return "".join(out)


# Redis converts a script's reply table by table: four empty lists beside the result cost a
# message's append about 1 µs (`python -m loadtest scripts`), and most calls hold back nothing
# (acks that do not wait for replicas; chat scripts never leave events or syncs): then the
# reply is the result alone, in a list of one (batch.py tells the two apart by length).
RETURN = ("local result = main()\n"
           "if #PUBS + #MARKS + #LATER + #SYNCS == 0 then return {result} end\n"
           "return {result, PUBS, MARKS, LATER, SYNCS}\n")


@dataclass(frozen=True, slots=True)
class Reply:
    """A script's result, and what a routing script leaves its caller to do: tell the chats'
    hashes (``syncs``), then publish (``later``: kind, target, payload, ...)."""

    result: Any
    later: list[Any]
    syncs: list[Any]


class Scripts:
    def __init__(self, redis: Redis, batcher: Batcher, mode: str) -> None:
        self._redis = redis
        self._sources = {name: source(name) for name in NAMES}
        self._shas = {name: redis.register_script(src).sha for name, src in self._sources.items()}
        self._mode = mode  # 'd' (acks wait for replicas), 'c' (cluster), both or none
        self._batch = batcher
        batcher.confirm_sha = self._shas["confirm"]
        batcher.reload = self.load

    def command(self, *args: Any) -> asyncio.Future[Any]:
        """A plain command, in the same pipeline as the scripts of this turn of the loop: its
        reply's future, not a coroutine (a `gather` of ten report counts makes no tasks)."""
        return self._batch.call(*args)

    async def run(self, name: str, keys: list[str], *argv: Any) -> Reply:
        try:
            return await self._run(name, keys, argv)
        except NoScriptError:  # a Redis without them (restarted, failed over): load, run again
            await self.load()
            return await self._run(name, keys, argv)

    async def _run(self, name: str, keys: list[str], argv: tuple[Any, ...]) -> Reply:
        result, later, syncs = await self._batch.call(
            "EVALSHA", self._shas[name], len(keys), *keys, self._mode, *argv,
            chat=FAMILIES[name] in ("chat", "composed"))  # a composed one: the chat's keys first
        return Reply(result, later, syncs)

    async def load(self) -> None:
        """Every script into every node's cache (a cluster: every primary)."""
        await self._batch.load_scripts(list(self._sources.values()))
