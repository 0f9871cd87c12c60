"""python -m loadtest SCENARIO [--url URL --redis-url URL --key-prefix P | --spawn N]
[--duration S] [--json FILE]: see docs/benchmarks.md."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import resource
import signal
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .cluster import Target

# what `pip install '.[loadtest]'` adds to chatd's own dependencies
NEEDS = ("httpx", "psutil", "matplotlib", "picows")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m loadtest")
    p.add_argument("scenario", choices=("relay", "match", "idle", "surge", "soak", "chaos",
                                             "reports", "uploads", "scripts"))
    where = p.add_mutually_exclusive_group(required=False)
    where.add_argument("--url", help="a running chatd, e.g. ws://127.0.0.1:8000 (comma-separated for several)")
    where.add_argument("--spawn", type=int, metavar="N", help="start Redis and N chatd processes")
    p.add_argument("--redis-url", help="with --url: the deployment's Redis (to create agent accounts)")
    p.add_argument("--key-prefix", default="chatd", help="with --url: its CHATD_KEY_PREFIX")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of load (10)")
    p.add_argument("--json", help="write the report here, and a PNG plot beside it")
    p.add_argument("--pairs", type=int, default=100)
    p.add_argument("--rate", type=float, default=None,
                   help="relay: messages/s offered in total (2000); match, chaos: arrivals/s (2000, 1.5)")
    p.add_argument("--visitors", type=int, default=2000)
    p.add_argument("--agents", type=int, default=None, help="match: 50; chaos: 6")
    p.add_argument("--capacity", type=int, default=5)
    p.add_argument("--connections", type=int, default=1000)
    p.add_argument("--base", type=float, default=2.0, help="surge: arrivals/s before the surge")
    p.add_argument("--factor", type=float, default=8.0, help="surge: arrival multiplier")
    p.add_argument("--redis", choices=("single", "cluster"), default="single",
                   help="with --spawn: one redis-server, or a Redis Cluster of three primaries")
    p.add_argument("--topology", choices=("single", "sentinel", "cluster"), default="single",
                   help="chaos: the Redis topology it starts (Debian's redis-server 7)")
    p.add_argument("--faults", help="chaos: comma-separated, in turn: kill-chatd, kill-primary, "
                   "freeze, restart-redis (default: all that fit the topology)")
    p.add_argument("--days", type=int, default=400, help="reports: days of figures seeded (400)")
    p.add_argument("--requests", type=int, default=20, help="reports: requests timed per kind (20)")
    p.add_argument("--uploads", type=int, default=100, help="uploads: photos sent (100)")
    p.add_argument("--concurrency", type=int, default=4, help="uploads: photos at once (4)")
    p.add_argument("--photo-mb", type=float, default=4.0, help="uploads: photo size in MB (4)")
    p.add_argument("--against", choices=("baseline",),
                   help="relay: the same ladder of rates on chatd, then on the baseline "
                   "(loadtest/baseline.py), with --spawn N processes each")
    p.add_argument("--ladder", default="2000,4000,6000,7000,8000,9000,10000,12000",
                   help="relay --against: the rates offered in turn (msg/s), each for --duration")
    p.add_argument("--calls", type=int, default=20000,
                   help="scripts: calls of each kind, on a Redis of its own (20000)")
    p.add_argument("--every", type=float, default=8.0, help="chaos: seconds between faults")
    p.add_argument("--processes", type=int, default=2, help="chaos: chatd processes")
    p.add_argument("--ack-replicas", type=int, help="chaos: CHATD_ACK_REPLICAS "
                   "(default 1 on sentinel, 0 on single)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.scenario == "uploads":  # a moderate relay beside the photos
        args.rate = 200.0 if args.rate is None else args.rate
    if args.scenario != "chaos":
        args.rate = 2000.0 if args.rate is None else args.rate
        args.agents = 50 if args.agents is None else args.agents
    missing = []
    for module in NEEDS:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
    if missing:
        print(f"loadtest: {', '.join(missing)} missing; install the load tester's extra with "
              "pip install '.[loadtest]' (in chatd's directory)", file=sys.stderr)
        return 2
    if args.scenario == "chaos":
        return _chaos(args)
    if args.scenario == "scripts":
        return _scripts(args)
    if not (args.url or args.spawn):
        print("loadtest: give --url or --spawn N", file=sys.stderr)
        return 2
    from .cluster import Cluster, Target
    # stop cleanly on SIGTERM too (timeout, CI): the spawned servers and Redis go with us
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    if args.against:
        return _against(args)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    env: dict[str, str] = {}
    if args.scenario == "match":
        env["CHATD_TICK"] = "0.2"
    if args.scenario in ("relay", "uploads"):
        env["CHATD_ASSIGN_MODE"] = "direct"
    if args.scenario == "uploads" and args.spawn:  # the photos go to a directory of the run's
        import tempfile

        env["CHATD_UPLOAD_DIR"] = tempfile.mkdtemp(prefix="chatd-loadtest-uploads-")
    if args.scenario in ("surge", "soak"):
        from .surge import ASYNC_AFTER_S

        env["CHATD_TICK"] = "0.2"
        env["CHATD_ASYNC_AFTER_S"] = str(ASYNC_AFTER_S)
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    if args.spawn:
        try:
            with Cluster(args.spawn, env, args.redis) as target:
                return runner(_run(args, target))
        except KeyboardInterrupt:
            print("loadtest: interrupted; servers stopped", file=sys.stderr)
            return 130
        finally:
            if "CHATD_UPLOAD_DIR" in env:
                import shutil

                shutil.rmtree(env["CHATD_UPLOAD_DIR"], ignore_errors=True)
    if args.scenario == "reports":
        print("loadtest: reports seeds figures over what a deployment has: --spawn only",
              file=sys.stderr)
        return 2
    if not args.redis_url:
        print("loadtest: --url needs --redis-url (and --key-prefix) to create agent accounts",
              file=sys.stderr)
        return 2
    target = Target(args.url.split(","), args.redis_url, args.key_prefix)
    return runner(_run(args, target))


def _against(args: argparse.Namespace) -> int:
    from . import against
    from . import report as rep
    from .cluster import Cluster

    if args.scenario != "relay" or not args.spawn:
        print("loadtest: --against baseline is for relay, with --spawn N", file=sys.stderr)
        return 2
    try:
        rates = [float(r) for r in args.ladder.split(",") if r.strip()]
    except ValueError:
        print(f"loadtest: --ladder must be rates separated by commas, not {args.ladder!r}",
              file=sys.stderr)
        return 2
    if not rates or min(rates) <= 0:
        print("loadtest: --ladder needs at least one rate above 0", file=sys.stderr)
        return 2
    import uvloop

    def log(line: str) -> None:
        print(f"loadtest: {line}", file=sys.stderr, flush=True)
    runs = {}
    try:
        for server in ("chatd", "baseline"):
            env = {"CHATD_ASSIGN_MODE": "direct"} if server == "chatd" else {}
            with Cluster(args.spawn, env, server=server) as target:
                runs[server] = uvloop.run(against.ladder(target, args.pairs, rates,
                                                         args.duration, log))
    except KeyboardInterrupt:
        print("loadtest: interrupted; servers stopped", file=sys.stderr)
        return 130
    result = against.compare(runs, args.pairs, args.duration)
    series = {f"{name} delivered msg/s": [(s["rate"], s["delivered_per_s"]) for s in steps]
              for name, steps in runs.items()}
    right = {f"{name} p99 ms": [(s["rate"], s["p99_ms"]) for s in steps]
             for name, steps in runs.items()}
    rep.write(result, args.json, series, f"relay at {args.pairs} chats: chatd and the baseline",
              "msg/s delivered", right=right, right_label="p99 (ms)", xlabel="msg/s offered")
    bad = any(s["lost"] or s["duplicates"] or s["out_of_order"] for s in runs["chatd"])
    return 1 if bad else 0


def _scripts(args: argparse.Namespace) -> int:
    from . import report as rep
    from . import scriptcost

    if args.calls < 1:
        print("loadtest: --calls must be at least 1", file=sys.stderr)
        return 2
    result, series = scriptcost.run(args.calls)
    rep.write(result, args.json, series, "what a script call costs Redis (usec_per_call)",
              "µs per call", xlabel="kind (in the order of the report)")
    return 0


def _chaos(args: argparse.Namespace) -> int:
    from . import chaos
    from . import report as rep

    if args.faults:
        faults = [f.strip() for f in args.faults.split(",") if f.strip()]
    elif args.topology == "single":
        faults = ["kill-chatd", "freeze", "restart-redis", "kill-primary"]
    else:
        faults = ["kill-primary", "kill-chatd", "freeze", "restart-redis"]
    unknown = [f for f in faults if f not in chaos.FAULTS]
    if unknown:
        print(f"loadtest: unknown fault {unknown[0]!r} (known: {', '.join(chaos.FAULTS)})",
              file=sys.stderr)
        return 2
    replicas = args.ack_replicas if args.ack_replicas is not None else (
        0 if args.topology == "single" else 1)
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    try:
        result, series, marks = runner(chaos.run(
            args.topology, faults, args.duration, args.every, args.processes,
            args.rate or 1.5, args.agents or 6, replicas))
    except KeyboardInterrupt:
        print("loadtest: interrupted; servers and Redis stopped", file=sys.stderr)
        return 130
    rep.write(result, args.json, series["left"], f"chaos on {args.topology}: faults marked",
              "per second", marks, series["right"], "seconds")
    bad = [k for k in ("lost", "duplicated", "reordered", "taken_back", "double_assigned",
                       "over_capacity", "stranded", "client_errors") if result[k]]
    if bad:
        print(f"loadtest: the checker found {', '.join(f'{k}={result[k]}' for k in bad)}",
              file=sys.stderr)
    return 1 if bad else 0


async def _run(args: argparse.Namespace, target: Target) -> int:
    from . import report as rep

    if args.scenario == "relay":
        from . import relay

        result, series = await relay.run(target, args.pairs, args.rate, args.duration)
        rep.write(result, args.json, series, f"relay: {args.rate:g} msg/s offered", "latency (ms)")
        return 0 if not (result["lost"] or result["duplicates"] or result["out_of_order"]) else 1
    if args.scenario == "match":
        from . import match

        result, series = await match.run(target, args.visitors, args.agents, args.capacity,
                                         args.rate)
        rep.write(result, args.json, series, "match: time to assignment", "ms")
        bad = result["double_assignments"] or result["over_capacity"] or result["unserved"]
        return 1 if bad else 0
    if args.scenario == "idle":
        from . import idle

        result, series = await idle.run(target, args.connections, args.duration)
        rep.write(result, args.json, series, "idle connections", "server RSS (MiB)")
        return 1 if result["failed"] else 0
    if args.scenario == "uploads":
        from . import uploads

        result, series = await uploads.run(target, args.uploads, args.concurrency, args.photo_mb,
                                           args.pairs, args.rate, args.duration)
        rep.write(result, args.json, series,
                  f"uploads: {args.uploads} photos beside {args.rate:g} msg/s", "latency (ms)")
        bad = result["lost"] or result["duplicates"] or result["out_of_order"] \
            or result["uploads_ok"] < args.uploads
        return 1 if bad else 0
    if args.scenario == "reports":
        from . import reports

        result, series = await reports.run(target, args.days, args.requests)
        rep.write(result, args.json, series, "reports: response times", "ms")
        return 0
    from . import surge

    result, series = await surge.run(target, args.base, args.factor, args.duration,
                                     soak=args.scenario == "soak")
    rep.write(result, args.json, series, f"{args.scenario}: queue and waits", "visitors / seconds")
    return 1 if result["errors"] or result["lost"] else 0


if __name__ == "__main__":
    sys.exit(main())
