"""The fleet bench's figures from its raw measurements, the capacity model built on them, and the report.

Pure functions over plain dicts (what ``bench/fleet_bench.py`` measured and stores as JSON), so that the tables
and the sizing formulas are tested on a tiny input and ``--render-only`` re-renders a stored run:

- :func:`rate_row`: one concurrency level of cache hits (calls, failures, requests/s, p50 / p99);
- :func:`build_row`: one level of concurrent distinct builds (builds/s, p50 / max latency);
- :func:`growth`: what one more lock key costs in the registry and in Redis, from snapshots after K keys;
- :func:`sizing`: the worked example (registry bytes, Redis memory, replicas for N CI jobs a day);
- :func:`render_markdown` / :func:`csv_rows`: the report.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

MIB = 1024 * 1024
GIB = 1024 * MIB

#: The worked example of the README's capacity model (override with ``--example-*``).
EXAMPLE = {"jobs_per_day": 20000, "distinct_keys_per_day": 300, "retention_days": 30, "archive_mib": 150.0,
           "new_wheel_mib_per_key": 20.0, "busy_hours": 10, "peak_factor": 4.0, "build_minutes": 3.0,
           "resolution_ttl_s": 600.0, "cores_per_builder": 4}


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


def rate_row(clients: int, latencies_ms: Sequence[float], failures: int, seconds: float) -> dict:
    """One level of the cache-hit run: ``clients`` threads calling for ``seconds``."""
    calls = len(latencies_ms)
    return {"clients": clients, "calls": calls, "failures": failures, "seconds": seconds,
            "per_s": calls / seconds if seconds > 0 else 0.0,
            "p50_ms": statistics.median(latencies_ms) if calls else 0.0,
            "p99_ms": percentile(latencies_ms, 99)}


def build_row(concurrency: int, latencies_s: Sequence[float], wall_s: float, failures: int,
              venvs_built: int) -> dict:
    """One level of concurrent builds: ``concurrency`` distinct lock keys started at once on one builder."""
    return {"concurrency": concurrency, "builds": len(latencies_s), "failures": failures, "wall_s": wall_s,
            "venvs_built": venvs_built, "per_min": 60 * len(latencies_s) / wall_s if wall_s > 0 else 0.0,
            "p50_s": statistics.median(latencies_s) if latencies_s else 0.0,
            "max_s": max(latencies_s, default=0.0)}


def sustained(rows: Sequence[dict]) -> dict:
    """The best failure-free level of a cache-hit run (``{}`` when none)."""
    ok = [r for r in rows if r["calls"] and not r["failures"]]
    return max(ok, key=lambda r: r["per_s"]) if ok else {}


#: Quantities of a growth snapshot that are divided per lock key.
GROWTH_FIELDS = ("registry_bytes", "archive_bytes", "wheel_bytes", "meta_bytes", "blobs", "manifests",
                 "redis_keys", "redis_key_bytes", "redis_persistent_bytes", "redis_used_memory")


def growth(snapshots: Sequence[dict]) -> dict:
    """Per lock key, from snapshots ``[{"keys": 0, ...}, {"keys": K1, ...}, ...]`` (first: the baseline).

    ``overall``: (last - baseline) / K_last; ``marginal``: (last - previous) / (K_last - K_previous), the cost of
    one more lock key once the common wheels are stored (what a long-running fleet sees); ``namespaces``: Redis
    keys and bytes per lock key of each venvsmith namespace, overall."""
    if len(snapshots) < 2:
        return {}
    base, prev, last = snapshots[0], snapshots[-2], snapshots[-1]

    def per(a: dict, b: dict) -> dict:
        keys = b["keys"] - a["keys"]
        return {f: (b.get(f, 0) - a.get(f, 0)) / keys for f in GROWTH_FIELDS} if keys > 0 else {}

    names = sorted(set(last.get("redis_namespaces", {})) | set(base.get("redis_namespaces", {})))
    spaces = {}
    for name in names:
        before = base.get("redis_namespaces", {}).get(name, {})
        after = last.get("redis_namespaces", {}).get(name, {})
        spaces[name] = {f: (after.get(f, 0) - before.get(f, 0)) / last["keys"]
                        for f in ("keys", "bytes", "persistent_keys", "persistent_bytes")}
    return {"overall": per(base, last), "marginal": per(prev, last), "namespaces": spaces}


def saturation(rows: Sequence[dict]) -> dict:
    """Where concurrent builds stop paying: the smallest failure-free level within 10 % of the best builds/min."""
    ok = [r for r in rows if r["builds"] and not r["failures"]]
    if not ok:
        return {}
    best = max(r["per_min"] for r in ok)
    knee = min((r for r in ok if r["per_min"] >= 0.9 * best), key=lambda r: r["concurrency"])
    return {"concurrency": knee["concurrency"], "per_min": best}


def sizing(per_key: dict, hits_per_s: float, example: dict | None = None) -> dict:
    """The worked example: registry, Redis and replicas for ``jobs_per_day`` CI jobs.

    - lock keys held = distinct keys/day x retention days;
    - registry = keys held x (archive + wheels no other key has + measured manifests and configs per key);
    - Redis = 2 (allocator, fragmentation) x (keys held x measured bytes per key that never expire + entries of one
      resolution TTL at peak (peak requests/s x TTL, every request distinct: the worst case) x measured expiring
      bytes per key);
    - replicas = max(peak requests/s / sustained cache hits/s, peak builds in flight (peak builds/min x build
      minutes) / cores per builder (a build that compiles takes a core), at least 2 (one may be drained)."""
    ex = {**EXAMPLE, **(example or {})}
    live_keys = ex["distinct_keys_per_day"] * ex["retention_days"]
    registry = live_keys * ((ex["archive_mib"] + ex["new_wheel_mib_per_key"]) * MIB + per_key.get("meta_bytes", 0.0))
    persistent = per_key.get("redis_persistent_bytes", 0.0)
    expiring = per_key.get("redis_key_bytes", 0.0) - persistent
    peak_rps = ex["jobs_per_day"] / (ex["busy_hours"] * 3600) * ex["peak_factor"]
    redis_bytes = 2 * (live_keys * persistent + peak_rps * ex["resolution_ttl_s"] * expiring)
    peak_builds = ex["distinct_keys_per_day"] / (ex["busy_hours"] * 60) * ex["peak_factor"]
    in_flight = peak_builds * ex["build_minutes"]
    by_hits = peak_rps / hits_per_s if hits_per_s > 0 else math.inf
    slots = ex["cores_per_builder"]
    by_builds = in_flight / slots if slots else math.inf
    return {"example": ex, "live_keys": live_keys, "registry_bytes": registry, "redis_bytes": redis_bytes,
            "redis_persistent_per_key": persistent, "redis_expiring_per_key": expiring, "peak_rps": peak_rps,
            "peak_builds_per_min": peak_builds, "builds_in_flight": in_flight, "build_slots": slots,
            "hits_per_s": hits_per_s, "replicas_by_hits": by_hits, "replicas_by_builds": by_builds,
            "replicas": max(2, math.ceil(max(by_hits, by_builds)))}


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def handoff_summary(runs: Sequence[dict]) -> dict:
    """Median (min-max) of replica B's times over the runs without an error."""
    ok = [r for r in runs if not r.get("error")]
    out: dict = {"runs": len(runs), "ok": len(ok)}
    for field in ("resolve_and_build_s", "fetch_s", "total_s"):
        values = [r[field] for r in ok]
        out[field] = {"median": _median(values), "min": min(values, default=0.0), "max": max(values, default=0.0)}
    return out


def _size(n: float) -> str:
    if abs(n) >= GIB:
        return f"{n / GIB:.2f} GiB"
    if abs(n) >= MIB:
        return f"{n / MIB:.2f} MiB"
    if abs(n) >= 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n:.0f} B"


def _spread(cell: dict) -> str:
    return f"{cell['median']:.3f} s ({cell['min']:.3f}-{cell['max']:.3f})"


def render_markdown(results: dict, chart: str | None) -> str:
    m = results["machine"]
    out = [f"# Fleet capacity, {results['date']}{' (quick smoke run)' if results['quick'] else ''}", "",
           f"venvsmith {results['versions']['venvsmith']}; {m['cpus']} CPUs, {m['platform']}; 1-min load average "
           f"{m['load_before']} before, {m['load_after']} after. Everything on 127.0.0.1: a Debian "
           "`docker-registry` (filesystem storage), a `redis-server`, `serve builder --store oci://HOST:PORT/fleet "
           "--cache redis://HOST:PORT/0` and `serve resolver --cache redis://HOST:PORT/0`, against the bench's own "
           f"index ({results['index']}). Clients are threads of the bench process, one gRPC channel each.", ""]
    if chart:
        out += [f"![fleet capacity]({chart})", ""]
    out += ["## What one replica sustains: cache hits", "",
            "Each level: N clients call for the level's seconds, every answer checked to be a cache hit "
            "(`Resolve`: `resolution_cache_hit`; `ResolveAndBuild`: `stats.cached`, wheels + venv archive refs).",
            "", "| call | server | clients | calls | failures | requests/s | p50 | p99 |",
            "|---|---|---|---|---|---|---|---|"]
    for kind, rows in results["hits"].items():
        for r in rows:
            out.append(f"| {kind} | {results['hit_servers'][kind]} | {r['clients']} | {r['calls']} | "
                       f"{r['failures']} | {r['per_s']:.0f} | {r['p50_ms']:.1f} ms | {r['p99_ms']:.1f} ms |")
    out += ["", "## What one replica sustains: concurrent builds", "",
            "Each level: N distinct lock keys (new wheels from the index, a new venv archive each, pushed to the "
            "registry) started at once on one builder.", "",
            "| concurrent builds | builds | failures | venvs built | wall | builds/min | p50 latency | max latency |",
            "|---|---|---|---|---|---|---|---|"]
    for r in results["builds"]:
        out.append(f"| {r['concurrency']} | {r['builds']} | {r['failures']} | {r['venvs_built']} | "
                   f"{r['wall_s']:.2f} s | {r['per_min']:.1f} | {r['p50_s']:.2f} s | {r['max_s']:.2f} s |")
    knee = results.get("build_saturation") or saturation(results["builds"])
    if knee:
        out += ["", f"Throughput comes within 10 % of the best ({knee['per_min']:.1f} builds/min) at "
                f"{knee['concurrency']} concurrent builds. These builds install wheels (no compiling): the figures are "
                "the per-build overhead; a build that compiles sdists takes a core while it runs."]
    out += ["", "## What grows with the number of distinct lock keys", "",
            f"K environments of {results['growth_set_size']} wheels each drawn from a pool of "
            f"{results['growth_pool']} ({_size(results['growth_wheel_bytes'])} of random data per wheel), built "
            "one after another on a fresh registry and Redis. Registry: the blobs under its storage directory "
            "(each stored once whatever the repositories), split into venv archives, wheels and the rest "
            "(manifests, image configs); manifests: revisions over every repository. Redis: `DBSIZE`, the sum "
            "of `MEMORY USAGE` of the keys, `INFO memory` `used_memory`.", "",
            "| lock keys | registry blobs | registry bytes | venv archives | wheels | manifests + configs | "
            "manifests | Redis keys | Redis key bytes | Redis used_memory |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for s in results["snapshots"]:
        out.append(f"| {s['keys']} | {s['blobs']} | {_size(s['registry_bytes'])} | {_size(s['archive_bytes'])} | "
                   f"{_size(s['wheel_bytes'])} | {_size(s['meta_bytes'])} | {s['manifests']} | {s['redis_keys']} | "
                   f"{_size(s['redis_key_bytes'])} | {_size(s['redis_used_memory'])} |")
    g = results["per_key"]
    if g:
        out += ["", "Per lock key (overall: from the empty baseline to the last K; marginal: between the last two "
                "K, once the pool's wheels are stored):", "",
                "| per lock key | registry bytes | venv archive | new wheels | manifests + configs | manifests | "
                "Redis keys | Redis key bytes |", "|---|---|---|---|---|---|---|---|"]
        for label in ("overall", "marginal"):
            p = g[label]
            out.append(f"| {label} | {_size(p['registry_bytes'])} | {_size(p['archive_bytes'])} | "
                       f"{_size(p['wheel_bytes'])} | {_size(p['meta_bytes'])} | {p['manifests']:.1f} | "
                       f"{p['redis_keys']:.1f} | {_size(p['redis_key_bytes'])} |")
        out += ["", "| Redis namespace | keys per lock key | bytes per lock key | of which without expiry |",
                "|---|---|---|---|"]
        for name, ns in g["namespaces"].items():
            out.append(f"| `{name}` | {ns['keys']:.2f} | {_size(ns['bytes'])} | "
                       f"{_size(ns.get('persistent_bytes', 0))} |")
    h = results["handoff"]
    modes = h.get("modes") or {"venv --server": h["runs"]}
    runs = next(iter(modes.values()))
    out += ["", "## Replica B serves an environment replica A built", "",
            f"An environment of {h['wheels']} wheels of random (incompressible) data: venv archive "
            f"{_size(h['archive_bytes'])}. Built once on A ({h['build_s']:.2f} s). Then {len(runs)} times per way "
            "of asking (interleaved): a new B (fresh home: empty local store) on the same registry and Redis, one "
            "warm-up call of a small environment (B's connections up, as in a running replica), then timed: B's "
            "`ResolveAndBuild` (resolution from Redis; what was asked for pulled from the registry into B's local "
            "store) and the client's fetch of the archive's bytes into a file, sha256-checked. `venv --server`: "
            "wheels + venv archive asked for and the archive read with `GetArtifact`, as `venvsmith venv --server` "
            "does (so B pulls the wheels too); `archive only, HTTP`: the venv archive alone, read from B's HTTP "
            "endpoint. \"Venvs B built itself\": B's `venvsmith_build_duration_seconds_count{kind=\"venv\"}` "
            "(0: the registry's image was used).", "",
            "| client asks | runs ok | B: ResolveAndBuild | client: fetch archive | total (goal < 1 s) | "
            "venvs B built itself |", "|---|---|---|---|---|---|"]
    for mode, mine in modes.items():
        hs = handoff_summary(mine)
        rebuilt = sum(r.get("venvs_built_on_b", 0) for r in mine)
        out.append(f"| {mode} | {hs['ok']}/{hs['runs']} | {_spread(hs['resolve_and_build_s'])} | "
                   f"{_spread(hs['fetch_s'])} | **{_spread(hs['total_s'])}** | {rebuilt:.0f} |")
    errors = [f"{mode}: {r['error']}" for mode, mine in modes.items() for r in mine if r.get("error")]
    if errors:
        out += [""] + [f"- failed: {e}" for e in errors]
    z = results.get("sizing")
    if z:
        ex = z["example"]
        out += ["", "## Sizing example (formulas of the README's capacity model, with this run's figures)", "",
                f"{ex['jobs_per_day']} CI jobs a day, {ex['distinct_keys_per_day']} distinct lock keys a day, kept "
                f"{ex['retention_days']} days; environments of {ex['archive_mib']:.0f} MiB with "
                f"{ex['new_wheel_mib_per_key']:.0f} MiB of wheels no other key has, {ex['build_minutes']:.0f} min "
                f"per build; jobs over {ex['busy_hours']} busy hours with a peak {ex['peak_factor']:.0f}x the mean; "
                f"resolution TTL {ex['resolution_ttl_s']:.0f} s.", "",
                f"- lock keys held: {z['live_keys']}; registry: {_size(z['registry_bytes'])};",
                f"- Redis: 2 x ({z['live_keys']} x {_size(z['redis_persistent_per_key'])} without expiry + "
                f"{z['peak_rps'] * ex['resolution_ttl_s']:.0f} x {_size(z['redis_expiring_per_key'])} expiring) = "
                f"{_size(z['redis_bytes'])};",
                f"- peak {z['peak_rps']:.2f} requests/s / {z['hits_per_s']:.0f} hits/s per replica = "
                f"{z['replicas_by_hits']:.3f} replicas; peak {z['builds_in_flight']:.1f} builds in flight / "
                f"{z['build_slots']} cores per builder = {z['replicas_by_builds']:.2f} replicas; **{z['replicas']} "
                "replicas** (at least 2)."]
    return "\n".join(out) + "\n"


def csv_rows(results: dict) -> list[list[object]]:
    """The report's tables in one long CSV: ``section, x, metric, value``."""
    rows: list[list[object]] = [["section", "x", "metric", "value"]]
    for kind, levels in results["hits"].items():
        for r in levels:
            for metric in ("calls", "failures", "per_s", "p50_ms", "p99_ms"):
                rows.append([f"hits:{kind}", r["clients"], metric, r[metric]])
    for r in results["builds"]:
        for metric in ("builds", "failures", "venvs_built", "wall_s", "per_min", "p50_s", "max_s"):
            rows.append(["builds", r["concurrency"], metric, r[metric]])
    for s in results["snapshots"]:
        for metric in GROWTH_FIELDS:
            rows.append(["growth", s["keys"], metric, s[metric]])
    for label, p in (results["per_key"] or {}).items():
        if label != "namespaces":
            for metric, value in p.items():
                rows.append([f"per_key:{label}", "", metric, value])
    for name, ns in (results["per_key"] or {}).get("namespaces", {}).items():
        rows += [[f"per_key:redis:{name}", "", metric, value] for metric, value in ns.items()]
    h = results["handoff"]
    for mode, runs in (h.get("modes") or {"venv --server": h["runs"]}).items():
        for i, r in enumerate(runs):
            for metric in ("resolve_and_build_s", "fetch_s", "total_s"):
                if metric in r:
                    rows.append([f"handoff:{mode}", i, metric, r[metric]])
    return rows
