"""Chart for ``resolve_bench.py``: ``plot_resolve.py RESULTS.json OUT.png``.

Runs under the bench venv (``bench/.venv``, where matplotlib is installed), never the project venv, and
imports nothing from venvsmith: everything it needs is in the JSON the bench wrote.
"""

from __future__ import annotations

import json
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from plot_bars import grouped_bars  # noqa: E402

SERIES = (
    ("venvsmith", "cold", "venvsmith cold", "#1f77b4", None),
    ("uv", "cold", "uv cold", "#ff7f0e", None),
    ("venvsmith", "warm", "venvsmith warm (new request)", "#1f77b4", "//"),
    ("uv", "warm", "uv warm", "#ff7f0e", "//"),
)


def main(json_path: str, png_path: str) -> int:
    with open(json_path, encoding="utf-8") as fh:
        results = json.load(fh)
    sets = list(results["sets"])
    series = [s for s in SERIES if any(r["tool"] == s[0] and r["scenario"] == s[1] for r in results["runs"])]
    has_server = any(s["calls"] for s in results["server"])
    fig, axes = plt.subplots(1, 2 if has_server else 1, figsize=(13 if has_server else 9, 4.8),
                             gridspec_kw={"width_ratios": [3, 1.4]} if has_server else None, squeeze=False)
    ax = axes[0][0]
    width = 0.8 / max(len(series), 1)
    grouped_bars(ax, results["runs"], sets, series, width, capsize=3)
    labels = []
    for name in sets:  # pip is an order of magnitude slower: its figure goes under the set's name
        pip = [r["seconds"] for r in results["runs"]
               if r["tool"] == "pip" and r["set_name"] == name and not r["error"]]
        labels.append(f"{name}\n(pip cold: {statistics.median(pip):.1f} s)" if pip else name)
    ax.set_xticks(range(len(sets)), labels)
    ax.set_ylabel("wall clock per fresh process (s)")
    ax.set_title(f"resolve, target Python {results['target_python']} "
                 f"(median, min–max over {results['repeat']} runs)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)

    if has_server:
        ax2 = axes[0][1]
        rows = [s for s in results["server"] if s["calls"]]
        names = [s["set_name"] for s in rows]
        xs = range(len(rows))
        ax2.bar([x - 0.2 for x in xs], [s["p50_ms"] for s in rows], 0.4, label="p50", color="#2ca02c")
        ax2.bar([x + 0.2 for x in xs], [s["p99_ms"] for s in rows], 0.4, label="p99", color="#98df8a")
        ax2.axhline(5.0, color="red", linestyle="--", linewidth=1, label="goal p50 ≤ 5 ms")
        ax2.set_xticks(list(xs), names)
        ax2.set_ylabel("client-side latency (ms)")
        ax2.set_title(f"repeat request via server ({rows[0]['calls']} calls)")
        ax2.legend(fontsize=8)
        ax2.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(png_path, dpi=110, metadata={"Software": "matplotlib"})
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
