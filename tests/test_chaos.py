"""The fault suite runs each kind of fault briefly against real topologies, and its checker
finds nothing lost, duplicated, reordered, taken back, double-assigned, over capacity or
stranded (docs/benchmarks.md has a long run). A failure prints the checker's counts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness import ROOT

pytestmark = pytest.mark.slow

CHECKED = ("lost", "duplicated", "reordered", "taken_back", "double_assigned", "over_capacity",
           "stranded", "client_errors")


@pytest.mark.parametrize("topology, fault", [
    ("single", "kill-chatd"),
    ("single", "freeze"),
    ("single", "restart-redis"),
    ("sentinel", "kill-primary"),
    ("sentinel", "freeze"),
    ("cluster", "kill-primary"),
])
def test_chaos(tmp_path: Path, topology: str, fault: str) -> None:
    out = tmp_path / "chaos.json"
    r = subprocess.run([sys.executable, "-m", "loadtest", "chaos", "--topology", topology,
                        "--faults", fault, "--duration", "9", "--every", "6",
                        "--json", str(out)], capture_output=True, text=True, timeout=240,
                       cwd=ROOT)
    report = json.loads(out.read_text()) if out.exists() else {}
    assert r.returncode == 0, r.stderr[-3000:]
    assert {k: report[k] for k in CHECKED} == {k: 0 for k in CHECKED}
    assert report["faults_injected"] >= 1 and report["messages_acknowledged"] > 20
    assert report["ack_replicas"] == (0 if topology == "single" else 1)
    assert (tmp_path / "chaos.png").stat().st_size > 1000
