"""``bench/fleet_bench.py`` and its model (``bench/fleet_model.py``): the per-lock-key figures, the sizing formulas
and the report on a tiny input; the storage accounting on a registry-like tree and a real redis-server; the quick
mode end to end (slow: a real registry, Redis and replicas). No timings are asserted."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.fixture
def fleet(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import fleet_bench
    import fleet_model

    return fleet_bench, fleet_model


def snapshot(keys: int, registry: int, archives: int, wheels: int, meta: int, redis_bytes: int,
             resolution: int) -> dict:
    return {"keys": keys, "registry_bytes": registry, "archive_bytes": archives, "wheel_bytes": wheels,
            "meta_bytes": meta, "blobs": 3 * keys, "manifests": 2 * keys, "redis_keys": 5 * keys,
            "redis_key_bytes": redis_bytes, "redis_used_memory": 1_000_000 + redis_bytes,
            "redis_persistent_bytes": redis_bytes // 4,
            "redis_namespaces": {"resolution": {"keys": keys, "bytes": resolution, "persistent_keys": 0,
                                                "persistent_bytes": 0}} if keys else {}}


def tiny_results(fleet_model) -> dict:
    snapshots = [snapshot(0, 0, 0, 0, 0, 0, 0), snapshot(2, 3000, 2000, 900, 100, 400, 300),
                 snapshot(6, 6200, 6000, 1000, 300, 1200, 900)]
    hits = {"Resolve": [fleet_model.rate_row(1, [1.0, 2.0, 3.0], 0, 0.5)],
            "ResolveAndBuild": [fleet_model.rate_row(1, [10.0, 30.0], 0, 0.5),
                                fleet_model.rate_row(4, [20.0] * 8, 1, 0.5)]}
    builds = [fleet_model.build_row(2, [1.0, 3.0], 3.0, 0, 2)]
    per_key = fleet_model.growth(snapshots)
    cli = [{"resolve_and_build_s": 0.2, "fetch_s": 0.1, "total_s": 0.3, "venvs_built_on_b": 0},
           {"resolve_and_build_s": 0.4, "fetch_s": 0.2, "total_s": 0.6, "venvs_built_on_b": 0},
           {"error": "UNAVAILABLE: down"}]
    return {"date": "2000-01-01", "quick": False, "index": "tiny", "hit_servers": {"Resolve": "serve resolver",
            "ResolveAndBuild": "serve builder"}, "growth_pool": 4, "growth_set_size": 2, "growth_wheel_bytes": 10,
            "snapshots": snapshots, "per_key": per_key, "hits": hits, "builds": builds,
            "handoff": {"wheels": 2, "archive_bytes": 5 << 20, "build_s": 2.0, "runs": cli, "modes": {
                "venv --server": cli,
                "archive only, HTTP": [{"resolve_and_build_s": 0.1, "fetch_s": 0.1, "total_s": 0.2,
                                        "venvs_built_on_b": 1}]}},
            "sizing": fleet_model.sizing(per_key["marginal"], fleet_model.sustained(hits["ResolveAndBuild"])["per_s"]),
            "machine": {"cpus": 2, "platform": "test", "load_before": 0.1, "load_after": 0.2},
            "versions": {"venvsmith": "abc"}}


def test_per_lock_key_figures_are_overall_from_the_baseline_and_marginal_between_the_last_two(fleet):
    _, model = fleet
    per_key = model.growth(tiny_results(model)["snapshots"])
    assert per_key["overall"]["registry_bytes"] == pytest.approx(6200 / 6)
    assert per_key["marginal"]["registry_bytes"] == pytest.approx((6200 - 3000) / 4)
    assert per_key["marginal"]["wheel_bytes"] == pytest.approx(100 / 4)  # the pool's wheels are mostly stored
    assert per_key["overall"]["manifests"] == pytest.approx(2.0)
    assert per_key["namespaces"] == {"resolution": {"keys": pytest.approx(1.0), "bytes": pytest.approx(150.0),
                                                    "persistent_keys": 0, "persistent_bytes": 0}}
    assert per_key["marginal"]["redis_persistent_bytes"] == pytest.approx((300 - 100) / 4)
    assert model.growth(tiny_results(model)["snapshots"][:1]) == {}


def test_sizing_applies_the_readme_formulas_to_the_measured_figures(fleet):
    _, model = fleet
    per_key = {"meta_bytes": 1000.0, "redis_key_bytes": 4096.0, "redis_persistent_bytes": 96.0}
    example = {"jobs_per_day": 36000, "distinct_keys_per_day": 10, "retention_days": 2, "archive_mib": 1.0,
               "new_wheel_mib_per_key": 0.5, "busy_hours": 10, "peak_factor": 2.0, "build_minutes": 6.0,
               "resolution_ttl_s": 100.0, "cores_per_builder": 2}
    z = model.sizing(per_key, hits_per_s=1.0, example=example)
    assert z["live_keys"] == 20
    assert z["registry_bytes"] == pytest.approx(20 * (1.5 * model.MIB + 1000))
    assert z["peak_rps"] == pytest.approx(36000 / 36000 * 2)
    assert z["redis_bytes"] == pytest.approx(2 * (20 * 96 + 2 * 100 * 4000))
    assert z["replicas_by_hits"] == pytest.approx(2.0)
    # 10 keys over 600 min x 2 = 1/30 builds/min, x 6 min = 0.2 in flight, 2 cores per builder
    assert z["replicas_by_builds"] == pytest.approx(0.1)
    assert z["replicas"] == 2
    assert model.sizing(per_key, hits_per_s=0.5, example=example)["replicas"] == 4
    assert model.sizing(per_key, hits_per_s=1e6, example={**example, "build_minutes": 60.0})["replicas"] == 2
    assert model.sizing(per_key, hits_per_s=1e6, example={**example, "build_minutes": 150.0})["replicas"] == 3


def test_the_saturation_is_the_first_level_near_the_best_throughput(fleet):
    _, model = fleet
    rows = [model.build_row(1, [1.0], 1.0, 0, 1), model.build_row(2, [1.1, 1.1], 1.1, 0, 2),
            model.build_row(4, [2.1] * 4, 2.1, 0, 4), model.build_row(8, [0.1] * 8, 0.1, 1, 7)]
    assert model.saturation(rows) == {"concurrency": 2, "per_min": pytest.approx(60 * 4 / 2.1)}
    assert model.saturation([]) == {}


def test_the_sustained_rate_is_the_best_level_without_failures(fleet):
    _, model = fleet
    rows = tiny_results(model)["hits"]["ResolveAndBuild"]
    assert model.sustained(rows) is rows[0]  # the faster level had a failure
    assert model.sustained([]) == {}


def test_the_report_has_every_table_and_the_csv_every_figure(fleet, tmp_path, monkeypatch):
    fleet_bench, model = fleet
    results = tiny_results(model)
    markdown = model.render_markdown(results, "chart.png")
    assert "![fleet capacity](chart.png)" in markdown
    assert "| ResolveAndBuild | serve builder | 4 | 8 | 1 | 16 |" in markdown
    assert "| 2 | 2 | 0 | 2 | 3.00 s | 40.0 | 2.00 s | 3.00 s |" in markdown
    assert ("| venv --server | 2/3 | 0.300 s (0.200-0.400) | 0.150 s (0.100-0.200) | **0.450 s (0.300-0.600)** | 0 |"
            in markdown)
    assert "| archive only, HTTP | 1/1 | 0.100 s (0.100-0.100) |" in markdown and markdown.count("| 1 |\n") == 1
    assert "- failed: venv --server: UNAVAILABLE: down" in markdown
    assert "| `resolution` | 1.00 | 150 B |" in markdown
    base = "2000-01-01-fleet"
    monkeypatch.setattr(fleet_bench, "BENCH_VENV", tmp_path / "no-bench-venv")  # no chart without it
    fleet_bench.write_report(results, tmp_path, base)
    assert json.loads((tmp_path / f"{base}.json").read_text())["per_key"] == json.loads(json.dumps(results["per_key"]))
    with open(tmp_path / f"{base}.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["section", "x", "metric", "value"]
    assert ["hits:ResolveAndBuild", "4", "per_s", "16.0"] in rows
    assert ["growth", "6", "registry_bytes", "6200"] in rows
    assert ["handoff:venv --server", "1", "total_s", "0.6"] in rows
    assert ["handoff:archive only, HTTP", "0", "fetch_s", "0.1"] in rows
    assert not (tmp_path / f"{base}.png").exists()


def test_registry_usage_counts_each_blob_once_and_every_manifest_revision(fleet, tmp_path):
    fleet_bench, _ = fleet
    v2 = tmp_path / "docker" / "registry" / "v2"
    for digest, size in (("aa" + "0" * 62, 100), ("bb" + "0" * 62, 30), ("cc" + "0" * 62, 7)):
        blob = v2 / "blobs" / "sha256" / digest[:2] / digest / "data"
        blob.parent.mkdir(parents=True)
        blob.write_bytes(b"x" * size)
    for repo, revisions in (("fleet/envs", 3), ("fleet/blobs", 0)):
        folder = v2 / "repositories" / repo / "_manifests" / "revisions" / "sha256"
        folder.mkdir(parents=True)
        for i in range(revisions):
            (folder / f"{i:064x}").mkdir()
    usage = fleet_bench.registry_usage(tmp_path, archives={"aa" + "0" * 62}, wheels={"bb" + "0" * 62})
    assert usage == {"blobs": 3, "registry_bytes": 137, "archive_bytes": 100, "wheel_bytes": 30, "meta_bytes": 7,
                     "manifests": 3}


def test_redis_usage_groups_keys_by_venvsmith_namespace(fleet):
    fleet_bench, _ = fleet
    from tests.fixtures.redis_server import RedisServer

    with RedisServer() as server:
        client = server.client()
        client.set("venvsmith:resolution:k1", b"x" * 1000)
        client.set("venvsmith:resolution:k2", b"y" * 10, px=600_000)
        client.set("venvsmith:metadata:abc", b"z")
        client.set("unrelated", b"w")
        usage = fleet_bench.redis_usage(client)
    assert usage["redis_keys"] == 4
    spaces = usage["redis_namespaces"]
    assert {name: s["keys"] for name, s in spaces.items()} == {"resolution": 2, "metadata": 1, "(other)": 1}
    assert spaces["resolution"]["bytes"] > 1000 > spaces["metadata"]["bytes"] > 0
    assert usage["redis_key_bytes"] == sum(s["bytes"] for s in spaces.values())
    assert spaces["resolution"]["persistent_keys"] == 1 and spaces["metadata"]["persistent_keys"] == 1
    assert 0 < spaces["resolution"]["persistent_bytes"] < spaces["resolution"]["bytes"]
    assert usage["redis_persistent_bytes"] == sum(s["persistent_bytes"] for s in spaces.values())


@pytest.mark.slow
def test_the_fleet_bench_quick_mode_measures_every_part_without_a_failure(fleet, tmp_path):
    fleet_bench, _ = fleet
    if shutil.which("docker-registry") is None or shutil.which("redis-server") is None:
        pytest.fail("docker-registry and redis-server are needed: run `make registry-tools redis-tools`")
    assert fleet_bench.main(["--quick", "--output-dir", str(tmp_path)]) == 0
    (report,) = tmp_path.glob("*-fleet-quick.json")
    results = json.loads(report.read_text())
    assert [s["keys"] for s in results["snapshots"]] == [0, *fleet_bench.QUICK["keys"]]
    last = results["snapshots"][-1]
    assert last["archive_bytes"] > 0 and last["wheel_bytes"] > 0 and last["manifests"] > 0 and last["redis_keys"] > 0
    assert set(results["hits"]) == {"Resolve", "ResolveAndBuild"}
    assert all(r["calls"] > 0 and not r["failures"] for rows in results["hits"].values() for r in rows)
    assert [r["venvs_built"] for r in results["builds"]] == fleet_bench.QUICK["build_levels"]
    assert set(results["handoff"]["modes"]) == set(fleet_bench.HANDOFF_MODES)
    for (run,) in results["handoff"]["modes"].values():
        assert not run["error"] and run["venvs_built_on_b"] == 0  # B served A's image from the registry
    assert results["alive_at_end"] == {"builder": True, "resolver": True}
    assert report.with_suffix(".csv").exists() and "| venv --server | 1/1 |" in report.with_suffix(".md").read_text()
