"""`scripts`: what one call of a chat script costs Redis, on a Redis of its own that does
nothing else (no chatd, no clients: the busy machine's noise is what the relay scenarios
measure).

The append of a citizen's message, as the store sends it (its keys, its arguments, its text as
``scripts.source`` builds it), is run ``calls`` times in pipelines of 500; then the same text
with an empty body (what the prelude and the helpers cost), a script that only reads the clock
and returns a reply of the same shape (what Redis charges for a call with these keys and
arguments), one that returns at once, the same two as Redis Functions (``FCALL``, Redis 7),
and a bare ``PUBLISH`` and ``HSET`` for scale. Each figure is Redis's own ``usec_per_call``
from ``INFO commandstats``, read after each kind.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from typing import Any

from chatd.embedded import find_redis_server
from chatd.store.keys import Keys
from chatd.store.scripts import RETURN, source

from .cluster import _tcp_answers, _wait, free_port

PIPELINE = 500
SID = "loadtestscriptcost"
_EMPTY_BODY = "local function main()\nreturn {'ok', 0}\nend\n"
_FLOOR = "local t = redis.call('TIME')\nreturn {{'ok', 0}}\n"
_LIBRARY = ("#!lua name=loadtest_scriptcost\n"
            "redis.register_function('floor', function(keys, args)\n"
            "  local t = redis.call('TIME')\n  return {{'ok', 0}}\nend)\n"
            "redis.register_function('empty', function(keys, args) return 1 end)\n")


def run(calls: int) -> tuple[dict[str, Any], dict[str, list[tuple[float, float]]]]:
    import redis

    port = free_port()
    with tempfile.TemporaryDirectory(prefix="chatd-loadtest-scripts-") as directory:
        proc = subprocess.Popen(
            [find_redis_server(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", directory],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            _wait(lambda: _tcp_answers(port), 10, "redis-server")
            r = redis.Redis(port=port)
            return _measure(r, calls)
        finally:
            proc.terminate()
            proc.wait(10)


def _measure(r: Any, calls: int) -> tuple[dict[str, Any], dict[str, list[tuple[float, float]]]]:
    keys = Keys("loadtest").chat(SID)
    args = ["", SID, "msg", "visitor", "v1", "", "", "", ""]  # mode, sid, kind, from, actor,
    # text and cid (set per call), name, attachment: append.lua's ARGV
    append = source("append")
    prelude = append[:append.index("local function main()")]
    texts = {"append": append, "prelude": prelude + _EMPTY_BODY + RETURN, "floor": _FLOOR,
             "empty": "return 1\n"}
    shas = {name: r.script_load(text) for name, text in texts.items()}
    version = r.info("server")["redis_version"]
    functions = int(version.split(".")[0]) >= 7
    if functions:
        r.function_load(_LIBRARY, replace=True)

    def measure(command: str, call: Any) -> float:
        r.delete(*keys)
        r.hset(keys[0], mapping={"state": "active", "visitor": "v1", "agent": "a1"})
        r.config_resetstat()
        for start in range(0, calls, PIPELINE):
            pipe = r.pipeline(transaction=False)
            for n in range(start, min(calls, start + PIPELINE)):
                call(pipe, n)
            pipe.execute()
        stats = r.info("commandstats")
        return round(float(stats[f"cmdstat_{command}"]["usec_per_call"]), 2)

    def script(name: str, with_args: bool = True) -> Any:
        def call(pipe: Any, n: int) -> None:
            argv = list(args)
            argv[5], argv[6] = f"message {n} of the run", f"c{n}"
            if with_args:
                pipe.evalsha(shas[name], len(keys), *keys, *argv)
            else:
                pipe.evalsha(shas[name], 0)
        return call

    t0 = time.monotonic()
    result: dict[str, Any] = {
        "scenario": "scripts", "redis_version": version, "calls": calls,
        "append_us": measure("evalsha", script("append")),
        "prelude_and_helpers_us": measure("evalsha", script("prelude")),
        "call_floor_us": measure("evalsha", script("floor")),
        "empty_script_us": measure("evalsha", script("empty")),
        "empty_script_no_args_us": measure("evalsha", script("empty", with_args=False)),
        "fcall_floor_us": None, "fcall_empty_us": None,
        "publish_us": measure("publish", lambda p, n: p.publish("loadtest:ch", b"x" * 80)),
        "hset_us": measure("hset", lambda p, n: p.hset("loadtest:h", "f", n)),
    }
    if functions:
        argv = list(args)
        result["fcall_floor_us"] = measure(
            "fcall", lambda p, n: p.fcall("floor", len(keys), *keys, *argv))
        result["fcall_empty_us"] = measure(
            "fcall", lambda p, n: p.fcall("empty", len(keys), *keys, *argv))
    result["duration_s"] = round(time.monotonic() - t0, 1)
    bars = [k for k, v in result.items() if k.endswith("_us") and v is not None]
    return result, {"µs per call": [(float(i), float(result[k])) for i, k in enumerate(bars)]}
