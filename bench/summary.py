"""``bench/results/<date>.md``: one table over the latest report of each bench, linking them.

    python bench/summary.py [--output-dir DIR] [--date YYYY-MM-DD]

Reads the newest ``<date>-resolve.json``, ``<date>-venv.json`` and ``<date>-concurrency.json`` (full runs; the
``-mirror`` variants in a second table; ``-quick`` runs are never summarized) and the goals of the newest
``<date>-pod.json``, and writes the summary named by today's date (or ``--date``). ``bench/run.py`` calls it
after the benches.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
from pathlib import Path

import resolve_bench
import venv_bench
from common import RESULTS_DIR, SCRUB
from resolve_bench import fmt_cell, fmt_ratio

KINDS = ("resolve", "venv", "concurrency")


def latest(outdir: Path, kind: str, mirror: bool) -> Path | None:
    suffix = f"-{kind}-mirror.json" if mirror else f"-{kind}.json"
    found = sorted(p for p in outdir.glob(f"*{suffix}") if p.name[:10].count("-") == 2)
    return found[-1] if found else None


def _load(path: Path | None) -> dict | None:
    return json.loads(path.read_text(encoding="utf-8")) if path else None


def _resolve_cells(res: dict | None, name: str) -> list[str]:
    if res is None or name not in res["sets"]:
        return ["—"] * 4
    cold = [resolve_bench.summarize(resolve_bench.select_runs(res, t, "cold", name)) for t in ("venvsmith", "uv")]
    warm = [resolve_bench.summarize(resolve_bench.select_runs(res, t, "warm", name)) for t in ("venvsmith", "uv")]
    server = next((s for s in res["server"] if s["set_name"] == name and s.get("calls")), None)
    return [
        f"{fmt_cell(cold[0])} / {fmt_cell(cold[1])} = {fmt_ratio(cold[0], cold[1], resolve_bench.GOAL_COLD_RATIO)}",
        f"{fmt_cell(warm[0])} / {fmt_cell(warm[1])} = {fmt_ratio(warm[0], warm[1], resolve_bench.GOAL_WARM_RATIO)}",
        f"{server['p50_ms']:.2f} ms" if server else "—",
        _service_cell(server, cold[1], warm[1]),
    ]


def _service_cell(server: dict | None, uv_cold: dict, uv_warm: dict) -> str:
    """A running server's first (cold) resolution and its median new resolution once warm, with ratios."""
    if not server:
        return "—"
    cell = resolve_bench.service_cell(server["first_call_ms"] / 1000, uv_cold, resolve_bench.GOAL_COLD_RATIO)
    if server.get("warm_new_ms"):
        warm = statistics.median(server["warm_new_ms"]) / 1000
        cell += " / " + resolve_bench.service_cell(warm, uv_warm, resolve_bench.GOAL_WARM_RATIO)
    return cell


def _venv_cells(venv: dict | None, name: str) -> list[str]:
    if venv is None or name not in venv["sets"]:
        return ["—"] * 8
    cell = {f"{t}/{s}": venv_bench.cell_summary(venv, t, s, name) for t, s, _ in venv_bench.SERIES}
    r = venv_bench.ratios(venv, name)

    def short(summary: dict) -> str:
        if not summary["n"]:
            return "—"
        if not summary["ok"]:
            return "fails"
        return f"{summary['median']:.2f} s"

    return [
        short(cell["venvsmith/first"]), short(cell["venvsmith/repeat"]), short(cell["venvsmith-server/repeat"]),
        short(cell["uv/cold"]), short(cell["uv/warm"]), short(cell["pip/cold"]),
        f"{venv_bench.fmt_x(r['repeat_vs_uv_cold'], goal_max=venv_bench.GOAL_UV_RATIO)} / "
        f"{venv_bench.fmt_x(r['server_repeat_vs_uv_cold'], goal_max=venv_bench.GOAL_UV_RATIO)}",
        f"{venv_bench.fmt_x(r['pip_vs_repeat'], goal_min=venv_bench.GOAL_PIP_SPEEDUP)} / "
        f"{venv_bench.fmt_x(r['pip_vs_server_repeat'], goal_min=venv_bench.GOAL_PIP_SPEEDUP)}",
    ]


def table(res: dict | None, venv: dict | None) -> list[str]:
    names = list(dict.fromkeys([*(venv["sets"] if venv else []), *(res["sets"] if res else [])]))
    out = ["| set | resolve cold: venvsmith / uv | resolve warm: venvsmith / uv | resolve repeat p50 (gRPC) "
           "| resolve via a running server: cold / warm new request "
           "| venv first | venv repeat | venv repeat via server | uv cold | uv warm | pip "
           "| repeat / uv cold (embedded / server) | pip / repeat (embedded / server) |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in names:
        out.append(f"| `{name}` | " + " | ".join([*_resolve_cells(res, name), *_venv_cells(venv, name)]) + " |")
    return out


def concurrency_lines(conc: dict | None) -> list[str]:
    if conc is None:
        return []
    lines = []
    for row in conc["rows"]:
        if row.get("error"):
            lines.append(f"- `{row['set_name']}` {row['server']}: error: {row['error']}")
            continue
        cold, warm = row["cold"], row["warm"]
        if not cold.get("ok"):
            lines.append(f"- `{row['set_name']}` {row['server']}: all {cold['calls']} cold calls failed")
            continue
        work = f"{cold['resolutions_ran']} resolution(s) ran"
        if "venv_built" in cold:
            work += f", {cold['venv_built']} venv build(s), {cold['wheels_downloaded']} wheel downloads"
        lines.append(
            f"- `{row['set_name']}` {row['server']}: {cold['ok']}/{cold['calls']} cold calls ok, {work}; "
            f"cold p50 / p99 {cold['p50_ms']:.0f} / {cold['p99_ms']:.0f} ms, warm p50 / p99 "
            f"{warm.get('p50_ms', 0):.0f} / {warm.get('p99_ms', 0):.0f} ms; peak RSS {row['rss_peak_mib']:.0f} MiB")
    return lines


def pod_lines(path: Path | None) -> list[str]:
    """The pod report's goals (issue 14), one line each, linking the report."""
    pod = _load(path)
    if path is None or pod is None or not pod.get("goals"):
        return []
    out = ["", f"New CI pods ([pod report]({path.with_suffix('.md').name}), {pod['versions'].get('venvsmith', '?')}):",
           ""]
    for g in pod["goals"]:
        figure = f"{g['seconds']:.2f} s" if g.get("seconds") is not None else "not measured"
        if g.get("ratio") is not None:
            figure += f", {venv_bench.fmt_x(g['ratio'])}"
        mark = "" if g["pass"] is None else (" ✓" if g["pass"] else " ✗")
        out.append(f"- {g['scenario']} `{g['set']}` ({g['client']}): {figure} (goal {g['goal']}){mark}")
    return out


def render(outdir: Path, date: str) -> str:
    out = [f"# Benchmarks, {date}", ""]
    for mirror in (False, True):
        paths = {kind: latest(outdir, kind, mirror) for kind in KINDS}
        if not any(paths.values()):
            continue
        res, venv, conc = (_load(paths[k]) for k in KINDS)
        heading = "Against a local mirror (`--mirror`)" if mirror else "Against the configured indexes"
        out += [f"## {heading}", "", "Reports: " + ", ".join(
            f"[{kind}]({p.with_suffix('.md').name})" for kind, p in paths.items() if p) + ".", ""]
        revisions = [f"{kind} {doc['versions'].get('venvsmith', '?')}" for kind, doc in zip(KINDS, (res, venv, conc),
                                                                                         strict=True) if doc]
        if revisions:
            out += ["venvsmith revision of each report: " + ", ".join(revisions) + ".", ""]
        loads = []
        for doc in (res, venv, conc):
            if doc:
                m = doc["machine"]
                loads += [m["load_before"], m["load_after"], *m.get("load_during", [])]
        if loads:
            out += [f"1-min load average during these runs: {min(loads):.2f}–{max(loads):.2f} (median "
                    f"{statistics.median(loads):.2f}) on {(venv or res or conc)['machine']['cpus']} CPUs.", ""]
        out += table(res, venv)
        out += ["", "Resolve columns: median wall clock of a fresh `venvsmith resolve` / `uv pip compile` process "
                "(ratio, goals ≤ 1.5x cold, ≤ 1.0x warm), and the same resolutions asked of a running server "
                "(its first call, and a new request once its caches are warm); venv columns: median wall clock to a "
                "ready venv in a new directory (goals for a built set: ≤ 1.0x uv cold, ≥ 15x faster than pip). "
                "Details, spreads, pin comparisons and failures are in the linked reports."]
        lines = concurrency_lines(conc)
        if lines:
            out += ["", f"Concurrency ({conc['clients']} identical cold requests at once, fresh server):", "", *lines]
        out += pod_lines(latest(outdir, "pod", mirror))
        if venv and venv.get("profile") and venv["profile"].get("timeline"):
            t = venv["profile"]["timeline"]
            top = sorted(t["phases"], key=lambda ph: ph["s"], reverse=True)[:3]
            out += ["", f"venvsmith's embedded repeat of `{venv['profile']['set_name']}` "
                    f"({t['process_wall_s']:.2f} s): " + ", ".join(f"{ph['name']} {ph['s']:.2f} s" for ph in top)
                    + " (see the venv report's profile)."]
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="summary", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", default=str(RESULTS_DIR))
    parser.add_argument("--date", default=dt.date.today().isoformat())
    opts = parser.parse_args(argv)
    outdir = Path(opts.output_dir)
    if not any(latest(outdir, kind, mirror) for kind in KINDS for mirror in (False, True)):
        print("summary: no full reports yet", file=sys.stderr)
        return 0
    path = outdir / f"{opts.date}.md"
    path.write_text(SCRUB(render(outdir, opts.date)), encoding="utf-8")
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
