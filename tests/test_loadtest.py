"""The load tester works: each scenario runs briefly against spawned servers, writes its JSON
report and PNG plot, and finds nothing lost, duplicated, out of order or double-assigned.
These are not benchmarks (docs/benchmarks.md has the figures); they keep the tool honest."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness import ROOT

pytestmark = pytest.mark.slow


def loadtest(tmp_path: Path, *args: str) -> dict[str, object]:
    out = tmp_path / "report.json"
    r = subprocess.run([sys.executable, "-m", "loadtest", *args, "--json", str(out)],
                       capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "report.png").stat().st_size > 1000
    report = json.loads(out.read_text())
    assert all(not isinstance(v, (dict, list)) for v in report.values()), "flat JSON"
    return report


def test_relay_scenario(tmp_path: Path) -> None:
    r = loadtest(tmp_path, "relay", "--spawn", "2", "--pairs", "10", "--rate", "300", "--duration", "3")
    for field in ("offered_per_s", "delivered_per_s", "p50_ms", "p99_ms", "max_ms"):
        assert field in r
    assert r["lost"] == r["duplicates"] == r["out_of_order"] == 0
    assert r["delivered_per_s"] > 200


def test_relay_against_the_baseline(tmp_path: Path) -> None:
    """The same ladder on chatd, then on the minimal relay of the same stack, each on its own
    Redis and processes; nothing lost on either (whether a step is OK depends on the machine's
    load, so that is left to the unit test below and to docs/benchmarks.md)."""
    r = loadtest(tmp_path, "relay", "--against", "baseline", "--spawn", "2", "--pairs", "10",
                 "--ladder", "100,200", "--duration", "2")
    for server in ("chatd", "baseline"):
        assert r[f"{server}_100_lost"] == 0, r
        assert float(r[f"{server}_100_delivered_per_s"]) > 90, r  # type: ignore[arg-type]
        assert r.get(f"{server}_200_lost", 0) == 0, r
        assert r[f"{server}_highest_ok_rate"] in (0, 100, 200), r
        assert float(r[f"{server}_peak_delivered_per_s"]) > 90, r  # type: ignore[arg-type]
    if r["baseline_highest_ok_rate"]:
        assert r["ratio_highest_ok_rate"] == round(
            r["chatd_highest_ok_rate"] / r["baseline_highest_ok_rate"], 3)  # type: ignore[operator]


def test_scripts_scenario_reports_what_a_call_costs_redis(tmp_path: Path) -> None:
    """The append script really ran on a Redis of its own: a chat's append (seven commands)
    costs Redis several times what an empty script given the same arguments does."""
    r = loadtest(tmp_path, "scripts", "--calls", "5000")
    assert r["calls"] == 5000
    append, empty = float(r["append_us"]), float(r["empty_script_us"])  # type: ignore[arg-type]
    assert append > 2 * empty > 0, r
    if int(str(r["redis_version"]).split(".")[0]) >= 7:
        assert float(r["fcall_empty_us"]) > 0, r  # type: ignore[arg-type]


def test_the_comparison_takes_each_servers_highest_ok_step_and_the_same_load_for_cpu() -> None:
    from loadtest.against import compare, ok

    def step(rate: float, p99: float, server_us: float, redis_us: float) -> dict[str, object]:
        s: dict[str, object] = {
            "rate": rate, "offered_per_s": rate, "delivered_per_s": rate * 0.99, "p99_ms": p99,
            "lost": 0, "duplicates": 0, "out_of_order": 0, "unacked": 0, "disconnected": 0,
            "server_cpu_us_per_msg": server_us, "redis_cpu_us_per_msg": redis_us}
        s["ok"] = ok(s)
        return s
    chatd = [step(1000, 10, 300, 40), step(2000, 30, 250, 35), step(3000, 80, 240, 30)]
    base = [step(1000, 5, 150, 5), step(2000, 6, 120, 4), step(3000, 9, 110, 4),
            step(4000, 60, 100, 4)]
    assert [s["ok"] for s in chatd] == [True, True, False]
    assert not ok({**chatd[0], "lost": 1}) and not ok({**chatd[0], "delivered_per_s": 900})
    r = compare({"chatd": chatd, "baseline": base}, 1000, 5)
    assert r["chatd_highest_ok_rate"] == 2000 and r["baseline_highest_ok_rate"] == 3000
    assert r["ratio_highest_ok_rate"] == round(2000 / 3000, 3)
    assert r["chatd_peak_delivered_per_s"] == 2970 and r["baseline_peak_delivered_per_s"] == 3960
    assert r["common_rate"] == 2000  # CPU compared at the same load: 250 / 120, 35 / 4
    assert r["ratio_server_cpu_us_per_msg"] == 2.08 and r["ratio_redis_cpu_us_per_msg"] == 8.75
    assert all(not isinstance(v, (dict, list)) for v in r.values())


def test_match_scenario(tmp_path: Path) -> None:
    r = loadtest(tmp_path, "match", "--spawn", "2", "--visitors", "200", "--agents", "10", "--capacity", "3")
    for field in ("matches_per_s", "assign_p50_ms", "assign_p99_ms"):
        assert field in r
    assert r["double_assignments"] == r["over_capacity"] == r["unserved"] == 0


def test_idle_scenario(tmp_path: Path) -> None:
    r = loadtest(tmp_path, "idle", "--spawn", "1", "--connections", "300", "--duration", "2")
    assert r["connections"] == 300 and r["failed"] == 0
    assert int(r["rss_per_connection_bytes"]) > 0 and int(r["server_rss_bytes"]) > 0  # type: ignore[call-overload]


def test_surge_scenario(tmp_path: Path) -> None:
    """×8 for 10 s: nothing lost, every citizen served (live or later), violence never sent to
    "answer later" while low-priority chats are, violence served within a few chat lengths, and
    the estimates honest: the median of estimate / the wait that followed within a factor of two
    (eleven runs gave 0.88 to 1.27, docs/benchmarks.md)."""
    r = loadtest(tmp_path, "surge", "--spawn", "2", "--base", "2", "--factor", "8", "--duration", "30")
    assert r["errors"] == r["lost"] == 0, r
    assert r["served"] == r["arrivals"]
    assert "arrivals_per_s_before" in r and "arrivals_per_s_during" in r and "queue_max" in r
    assert r["async_priority"] == 0 and int(r["async_other"]) > 0  # type: ignore[call-overload]
    assert int(r["eta_samples"]) >= 10  # type: ignore[call-overload]
    assert float(r["wait_p90_s_priority"]) <= 12.0, r  # type: ignore[arg-type]  # 1-7 s measured
    assert 0.5 <= float(r["eta_ratio_p50"]) <= 2.0, r  # type: ignore[arg-type]


def test_soak_scenario(tmp_path: Path) -> None:
    r = loadtest(tmp_path, "soak", "--spawn", "2", "--base", "3", "--duration", "5")
    assert r["scenario"] == "soak"
    assert r["errors"] == r["lost"] == 0
    assert int(r["arrivals"]) > 0 and r["served"] == r["arrivals"]  # type: ignore[call-overload]


def test_without_its_extra_the_load_tester_says_what_to_install() -> None:
    """As if `pip install .` had been run without `[loadtest]`: picows cannot be imported."""
    code = ("import sys, runpy; sys.modules['picows'] = None; sys.argv = ['loadtest', 'relay', "
            "'--spawn', '1']; runpy.run_module('loadtest', run_name='__main__')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       cwd=ROOT)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert r.stderr.strip() == ("loadtest: picows missing; install the load tester's extra with "
                                "pip install '.[loadtest]' (in chatd's directory)")


def test_reports_over_a_seeded_year(tmp_path: Path) -> None:
    """400 days of figures for every topic: a year by day is 400 rows, and answers quickly
    (docs/benchmarks.md, "Reports": about 110 ms here; the bound is loose for a busy machine)."""
    r = loadtest(tmp_path, "reports", "--spawn", "1", "--days", "400", "--requests", "5")
    assert r["rows"] == 400 and int(r["chats_seeded"]) > 100_000  # type: ignore[call-overload]
    assert float(r["year_by_day_p50_ms"]) < 1000, r  # type: ignore[arg-type]
    assert float(r["year_by_topic_p50_ms"]) < 1000, r  # type: ignore[arg-type]


def test_uploads_scenario(tmp_path: Path) -> None:
    """A few photos beside a small relay: every photo stored, nothing of the relay lost, and
    both phases measured (docs/benchmarks.md, "Photos", has the real run's figures)."""
    r = loadtest(tmp_path, "uploads", "--spawn", "1", "--uploads", "6", "--concurrency", "2",
                 "--photo-mb", "1", "--pairs", "4", "--rate", "50", "--duration", "2")
    assert r["uploads_ok"] == 6 and int(r["photo_bytes"]) > 900_000  # type: ignore[call-overload]
    assert r["lost"] == r["duplicates"] == r["out_of_order"] == 0
    for field in ("upload_p50_ms", "upload_p99_ms", "relay_p99_ms_without", "relay_p99_ms_during"):
        assert float(r[field]) > 0, r  # type: ignore[arg-type]
    assert int(r["relay_messages_during"]) > 0  # type: ignore[call-overload]


def test_a_server_that_cannot_start_is_said_and_nothing_is_left_running() -> None:
    """A chatd that exits at start (a bad setting) ends the run at once, with its own words,
    and the Redis started for it is stopped: a failed run leaves no process behind."""
    from loadtest.cluster import Cluster

    spawned = Cluster(2, env={"CHATD_RETENTION_DAYS": "soon"})
    with pytest.raises(SystemExit) as failed:
        spawned.__enter__()
    message = str(failed.value)
    assert message.startswith("loadtest: chatd at http://127.0.0.1:") and "exited" in message
    assert "CHATD_RETENTION_DAYS" in message, message
    assert spawned.redis is not None and spawned.redis.poll() is not None
    assert all(p.poll() is not None for p in spawned.procs)
    assert not spawned.dir.exists()
