"""Chart for ``venv_bench.py``: ``plot_venv.py RESULTS.json OUT.png``.

Runs under the bench venv (matplotlib), imports nothing from venvsmith: everything is in the JSON. Left: the
wall clock of every tool and scenario per set (log scale: pip is one to two orders of magnitude slower). Right:
venvsmith's repeat (embedded and over gRPC) as a ratio to uv cold, uv warm and pip (log scale; below 1 is
faster than the other tool), with issue 5's goals.
"""

from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from plot_bars import grouped_bars  # noqa: E402

SERIES = (
    ("venvsmith", "first", "venvsmith first", "#aec7e8", None),
    ("venvsmith", "repeat", "venvsmith repeat", "#1f77b4", None),
    ("venvsmith-server", "first", "server first", "#c5b0d5", "//"),
    ("venvsmith-server", "repeat", "server repeat", "#9467bd", "//"),
    ("uv", "cold", "uv cold", "#ffbb78", None),
    ("uv", "warm", "uv warm", "#ff7f0e", None),
    ("pip", "cold", "pip (no cache)", "#7f7f7f", None),
)
RATIOS = (
    ("repeat_vs_uv_cold", "repeat / uv cold", "#1f77b4", None),
    ("repeat_vs_uv_warm", "repeat / uv warm", "#aec7e8", None),
    ("server_repeat_vs_uv_cold", "server repeat / uv cold", "#9467bd", "//"),
    ("server_repeat_vs_uv_warm", "server repeat / uv warm", "#c5b0d5", "//"),
    ("repeat_vs_pip", "repeat / pip", "#7f7f7f", None),
)


def main(json_path: str, png_path: str) -> int:
    with open(json_path, encoding="utf-8") as fh:
        results = json.load(fh)
    sets = list(results["sets"])
    runs = results["runs"]
    series = [s for s in SERIES if any(r["tool"] == s[0] and r["scenario"] == s[1] for r in runs)]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(16, 6.0), gridspec_kw={"width_ratios": [3, 2]})
    width = 0.84 / max(len(series), 1)
    grouped_bars(ax, runs, sets, series, width, capsize=2)
    ax.set_yscale("log")
    ax.set_xticks(range(len(sets)), sets, fontsize=8)
    ax.set_xlim(-0.5, len(sets) - 0.5)
    ax.set_ylabel("wall clock, fresh target dir (s, log)")
    title = f"time-to-ready venv, CPython {results['target']['python']} (median, min–max, {results['repeat']} runs)"
    if results.get("mirror"):
        title += ", local mirror"
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(axis="y", alpha=0.3, which="both")

    ratios = {name: dict(results.get("ratios", {}).get(name, {})) for name in sets}
    for name in sets:  # repeat / pip, the inverse of the pip speed-up
        speed = ratios[name].get("pip_vs_repeat")
        ratios[name]["repeat_vs_pip"] = 1 / speed if speed else None
    width = 0.84 / len(RATIOS)
    for k, (key, label, color, hatch) in enumerate(RATIOS):
        xs, heights = [], []
        for i, name in enumerate(sets):
            value = ratios[name].get(key)
            if value:
                xs.append(i + (k - (len(RATIOS) - 1) / 2) * width)
                heights.append(value)
        ax2.bar(xs, heights, width, label=label, color=color, hatch=hatch,
                edgecolor="white" if hatch is None else "black", linewidth=0.5)
    ax2.axhline(1.0, color="red", linestyle="--", linewidth=1, label="goal: ≤ 1.0x uv cold")
    ax2.axhline(1 / 15, color="black", linestyle=":", linewidth=1, label="goal: ≤ 1/15 of pip")
    ax2.set_yscale("log")
    ax2.set_xticks(range(len(sets)), sets, fontsize=8)
    ax2.set_xlim(-0.5, len(sets) - 0.5)
    ax2.set_ylabel("venvsmith repeat / other tool (log; < 1 = faster)")
    ax2.set_title("ratios of venvsmith's repeat", fontsize=10)
    ax2.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.09), ncol=3)
    ax2.grid(axis="y", alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(png_path, dpi=110, metadata={"Software": "matplotlib"})
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
