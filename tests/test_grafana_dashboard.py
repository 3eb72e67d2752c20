"""deploy/grafana/venvsmith.json plots only metrics the code exports, and every exported metric has a panel."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import REGISTRY

from venvsmith.core import observe

DASHBOARD = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "venvsmith.json"
_HISTOGRAM_SERIES = ("_bucket", "_count", "_sum")


def _queried() -> set[str]:
    """The metric families named in the dashboard's queries (histogram series reduced to their family)."""
    dashboard = json.loads(DASHBOARD.read_text())
    names = set()
    for panel in dashboard["panels"]:
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            for name in re.findall(r"\bvenvsmith_[a-z_]+", target["expr"]):
                for suffix in _HISTOGRAM_SERIES:
                    if name.endswith(suffix) and name.removesuffix(suffix) in observe.METRICS:
                        name = name.removesuffix(suffix)
                names.add(name)
    return names


class _Everything:
    """A source giving every scrape-time metric, so that the registry exports all families."""


def _exported() -> dict[str, str]:
    keep = _Everything()
    observe.add_source(keep, lambda _: {name: 0 for name, (kind, _) in observe.METRICS.items()
                                        if name not in _DIRECT})
    families = {}
    for family in REGISTRY.collect():
        if family.name.startswith("venvsmith_"):
            name = family.name + "_total" if family.type == "counter" else family.name
            families[name] = family.type
    del keep
    return families


_DIRECT = {"venvsmith_rpc_requests_total", "venvsmith_rpc_duration_seconds", "venvsmith_rpc_in_flight",
           "venvsmith_cache_lookups_total", "venvsmith_build_duration_seconds", "venvsmith_builds_in_flight",
           "venvsmith_draining", "venvsmith_fleet_flights_total", "venvsmith_artifact_reads_total",
           "venvsmith_artifact_bytes_sent_total"}


def test_every_queried_metric_is_exported_with_its_declared_type():
    exported = _exported()
    assert set(observe.METRICS) == set(exported), "METRICS and the registry disagree"
    for name, (kind, _) in observe.METRICS.items():
        assert exported[name] == kind, name
    unknown = _queried() - set(exported)
    assert not unknown, f"the dashboard queries metrics the code does not export: {sorted(unknown)}"


def test_every_exported_metric_has_a_panel():
    assert set(observe.METRICS) - _queried() == set()
