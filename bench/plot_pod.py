"""Chart for ``pod_bench.py``: ``plot_pod.py RESULTS.json OUT.png``.

Runs under the bench venv (matplotlib), imports nothing from venvsmith: everything is in the JSON. Left: a new
pod's venv per set (node has it, new node, today's ``--server`` path, verifying and ``--no-verify``) next to uv
warm and cold (log scale). Right: the embedded resolve with warm caches next to ``uv pip compile`` warm.
"""

from __future__ import annotations

import json
import math
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from plot_bars import grouped_bars  # noqa: E402

VENV_SERIES = (
    ("venvsmith", "node-hit/no-verify", "node has it (links), --no-verify", "#1f77b4", None),
    ("venvsmith", "node-hit", "node has it (links), verifying", "#aec7e8", None),
    ("venvsmith", "node-hit-layered/no-verify", "node has it (layered), --no-verify", "#17becf", "//"),
    ("venvsmith", "new-node/no-verify", "new node, --no-verify", "#9467bd", None),
    ("venvsmith", "new-node", "new node, verifying", "#c5b0d5", None),
    ("venvsmith", "server/no-verify", "--server alone, --no-verify", "#2ca02c", "//"),
    ("venvsmith", "server", "--server alone, verifying", "#98df8a", "//"),
    ("uv", "warm", "uv warm", "#ff7f0e", None),
    ("uv", "cold", "uv cold", "#ffbb78", None),
)
RESOLVE_SERIES = (
    ("venvsmith", "resolve-warm", "venvsmith resolve (warm caches)", "#1f77b4", None),
    ("uv", "compile-warm", "uv pip compile (warm)", "#ff7f0e", None),
)


def main(json_path: str, png_path: str) -> int:
    with open(json_path, encoding="utf-8") as fh:
        results = json.load(fh)
    sets = list(results["sets"])
    runs = results["runs"]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(15, 6.0), gridspec_kw={"width_ratios": [3, 1]})
    for axis, catalogue, ylabel, title, log in (
            (ax, VENV_SERIES, "wall clock, new pod, fresh target dir (s, log)", "a new pod's venv", True),
            (ax2, RESOLVE_SERIES, "wall clock (s)", "resolve, warm caches", False)):
        series = [s for s in catalogue if any(r["tool"] == s[0] and r["scenario"] == s[1] for r in runs)]
        grouped_bars(axis, runs, sets, series, 0.84 / max(len(series), 1), capsize=2)
        if log:
            axis.set_yscale("log")
            shown = [r["seconds"] for r in runs if not r["error"] and r["seconds"] > 0
                     and any(r["tool"] == s[0] and r["scenario"] == s[1] for s in series)]
            if shown:  # bars start a decade below the fastest run, not at an arbitrary floor
                axis.set_ylim(bottom=10 ** math.floor(math.log10(min(shown)) - 0.3))
        axis.set_xticks(range(len(sets)), sets, fontsize=8)
        axis.set_xlim(-0.5, len(sets) - 0.5)
        axis.set_ylabel(ylabel)
        axis.set_title(f"{title} (median, min–max, {results['repeat']} runs)", fontsize=9)
        axis.legend(fontsize=7, ncol=2 if log else 1)
        axis.grid(axis="y", alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(png_path, dpi=110, metadata={"Software": "matplotlib"})
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
