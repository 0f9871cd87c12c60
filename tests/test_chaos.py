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


@pytest.mark.parametrize("topology, faults, duration", [
    ("single", "kill-chatd,freeze,restart-redis", "18"),
    ("sentinel", "freeze,kill-primary", "13"),
    ("cluster", "kill-primary", "9"),
])
def test_chaos(tmp_path: Path, topology: str, faults: str, duration: str) -> None:
    """Each topology once, its faults in turn every 4 s (one topology started per kind of
    Redis deployment, and one drain, keep the suite short)."""
    out = tmp_path / "chaos.json"
    r = subprocess.run([sys.executable, "-m", "loadtest", "chaos", "--topology", topology,
                        "--faults", faults, "--duration", duration, "--every", "4",
                        "--json", str(out)], capture_output=True, text=True, timeout=240,
                       cwd=ROOT)
    report = json.loads(out.read_text()) if out.exists() else {}
    assert r.returncode == 0, r.stderr[-3000:]
    assert {k: report[k] for k in CHECKED} == {k: 0 for k in CHECKED}
    for fault in faults.split(","):  # each struck at least once
        assert report["fault_" + fault.replace("-", "_")] >= 1, report
    assert report["messages_acknowledged"] > 20
    assert report["ack_replicas"] == (0 if topology == "single" else 1)
    assert (tmp_path / "chaos.png").stat().st_size > 1000
