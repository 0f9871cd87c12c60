"""docs/grafana-dashboard.json is imported by hand into Grafana, so nothing else notices when a
metric in chatd/metrics.py is renamed and a panel goes quietly empty: every query here must name
metrics that chatd registers, and every panel must use the ${DS_PROMETHEUS} variable."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY

import chatd.metrics  # noqa: F401  registers chatd's collectors in the default registry

DASHBOARD: dict[str, Any] = json.loads(
    (Path(__file__).parent.parent / "docs" / "grafana-dashboard.json").read_text("utf-8"))
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"),
            "summary": ("", "_sum", "_count"), "info": ("_info",)}
KNOWN = {family.name + suffix for family in REGISTRY.collect()
         for suffix in SUFFIXES.get(family.type, ("",))}
# label matchers, ranges, strings and grouping clauses name labels, not metrics
NOT_METRICS = re.compile(r'\{[^}]*\}|\[[^\]]*\]|"[^"]*"'
                         r"|\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
NAME = re.compile(r"(?<![\w:.$])[a-zA-Z_:][\w:]*(?![\w:]|\s*\()")  # not a function call
KEYWORDS = {"and", "or", "unless", "bool", "offset", "group_left", "group_right"}


def metric_names(expr: str) -> set[str]:
    return set(NAME.findall(NOT_METRICS.sub(" ", expr))) - KEYWORDS


def unknown_metrics(dashboard: dict[str, Any]) -> dict[int, set[str]]:
    return {p["id"]: bad for p in dashboard["panels"]
            if (bad := {n for t in p["targets"] for n in metric_names(t["expr"])} - KNOWN)}


def test_dashboard_identity_and_datasource() -> None:
    assert (DASHBOARD["uid"], DASHBOARD["title"]) == ("chatd-service", "chatd — service")
    ids = [panel["id"] for panel in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids)) and all(isinstance(i, int) for i in ids)
    for panel in DASHBOARD["panels"]:
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        assert panel["targets"] and panel["gridPos"] and panel["description"], panel["title"]
        assert all(t["datasource"]["uid"] == "${DS_PROMETHEUS}" for t in panel["targets"])


def test_queries_name_registered_metrics() -> None:
    assert all(metric_names(t["expr"]) for p in DASHBOARD["panels"] for t in p["targets"])
    assert unknown_metrics(DASHBOARD) == {}


def test_a_misspelt_metric_is_caught() -> None:
    for i, panel in enumerate(DASHBOARD["panels"]):
        broken = copy.deepcopy(DASHBOARD)
        target = broken["panels"][i]["targets"][0]
        target["expr"] = target["expr"].replace("chatd_", "chatd_x", 1)
        assert panel["id"] in unknown_metrics(broken), target["expr"]
