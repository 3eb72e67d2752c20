"""Chart for ``fleet_bench.py``: ``plot_fleet.py RESULTS.json OUT.png``.

Runs under the bench venv (matplotlib), imports nothing from venvsmith: everything is in the JSON. Left: cache
hits per second of one replica by concurrent clients. Middle: concurrent distinct builds on one builder,
builds/min and p50 latency. Right: registry bytes and Redis key bytes after K distinct lock keys.
"""

from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

MIB = 1024 * 1024


def main(json_path: str, png_path: str) -> int:
    with open(json_path, encoding="utf-8") as fh:
        results = json.load(fh)
    fig, (hits, builds, growth) = plt.subplots(1, 3, figsize=(16, 5.0))
    for kind, rows in results["hits"].items():
        hits.plot([r["clients"] for r in rows], [r["per_s"] for r in rows], marker="o",
                  label=f"{kind} ({results['hit_servers'][kind]})")
    hits.set_xscale("log", base=2)
    hits.set_yscale("log")
    hits.set_xlabel("concurrent clients")
    hits.set_ylabel("cache hits / s")
    hits.set_title("one replica: cache hits", fontsize=10)
    hits.legend(fontsize=8)
    hits.grid(alpha=0.3)

    levels = [r["concurrency"] for r in results["builds"]]
    builds.plot(levels, [r["per_min"] for r in results["builds"]], marker="o", color="#2ca02c", label="builds/min")
    builds.set_xscale("log", base=2)
    builds.set_xlabel("distinct builds started at once")
    builds.set_ylabel("builds / min", color="#2ca02c")
    latency = builds.twinx()
    latency.plot(levels, [r["p50_s"] for r in results["builds"]], marker="s", color="#d62728", label="p50 latency")
    latency.set_ylabel("p50 latency (s)", color="#d62728")
    builds.set_ylim(bottom=0)
    latency.set_ylim(bottom=0)
    builds.set_title("one builder: concurrent builds", fontsize=10)
    builds.grid(alpha=0.3)

    snaps = results["snapshots"]
    keys = [s["keys"] for s in snaps]
    growth.plot(keys, [s["registry_bytes"] / MIB for s in snaps], marker="o", label="registry (all blobs)")
    growth.plot(keys, [s["archive_bytes"] / MIB for s in snaps], marker=".", ls="--", label="of which venv archives")
    growth.plot(keys, [s["wheel_bytes"] / MIB for s in snaps], marker=".", ls=":", label="of which wheels")
    growth.set_xlabel("distinct lock keys built")
    growth.set_ylabel("registry MiB")
    redis = growth.twinx()
    redis.plot(keys, [s["redis_key_bytes"] / 1024 for s in snaps], marker="s", color="#9467bd", label="Redis keys")
    redis.set_ylabel("Redis key bytes (KiB)", color="#9467bd")
    growth.set_title("what grows per lock key", fontsize=10)
    growth.legend(fontsize=8, loc="upper left")
    growth.grid(alpha=0.3)
    fig.suptitle(f"fleet capacity, {results['date']}, {results['machine']['cpus']} CPUs", fontsize=11)
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
