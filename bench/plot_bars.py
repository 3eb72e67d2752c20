"""Grouped bar charts of timing runs (median bar, min–max whiskers), shared by the plot scripts.

Runs by the bench venv's Python (matplotlib); imports nothing from venvsmith.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def grouped_bars(ax, runs: Sequence[dict], sets: Sequence[str], series: Sequence[tuple], width: float,
                 capsize: float = 2) -> None:
    """One group per set, one bar per ``(tool, scenario, label, color, hatch)`` series: the median of the
    runs' ``seconds`` without an error, whiskers to min and max; "failed" where every run of it failed."""
    for k, (tool, scenario, label, color, hatch) in enumerate(series):
        xs, heights, lo, hi, failed = [], [], [], [], []
        for i, name in enumerate(sets):
            mine = [r for r in runs if r["tool"] == tool and r["scenario"] == scenario and r["set_name"] == name]
            ok = [r["seconds"] for r in mine if not r["error"]]
            x = i + (k - (len(series) - 1) / 2) * width
            if not ok:
                if mine:
                    failed.append(x)
                continue
            med = statistics.median(ok)
            xs.append(x)
            heights.append(med)
            lo.append(med - min(ok))
            hi.append(max(ok) - med)
        ax.bar(xs, heights, width, yerr=[lo, hi], capsize=capsize, label=label, color=color, hatch=hatch,
               edgecolor="white" if hatch is None else "black", linewidth=0.5)
        for x in failed:
            ax.text(x, 0.02, "failed", rotation=90, ha="center", va="bottom", fontsize=7, color="red",
                    transform=ax.get_xaxis_transform())
