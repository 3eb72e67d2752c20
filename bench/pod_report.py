"""The pod bench's report: one table per scenario of issue 14 (venvsmith, uv warm / cold, ratio, goal, pass),
the goals at a glance, the client's timeline, the builder's figures and the failures.

Everything is read from the results JSON (``pod_bench.py --render-only JSON`` re-renders it).
"""

from __future__ import annotations

import statistics
from pathlib import Path

from common import save_report
from resolve_bench import compare_pins, failures_section, md_escape, select_runs, summarize
from venv_bench import cell_summary, fmt_x, pressure_note, ratio, vcell

#: (set, scenario) -> (ratio goal against the uv figure, absolute goal in seconds or None); issue 14.
GOALS_NODE_HIT = {"jupyter": (0.25, 0.3), "requests": (0.5, None)}
GOALS_NEW_NODE = {"jupyter": (0.4, None)}
GOAL_RESOLVE = 1.0
CLIENTS = (("", "verifying (default)"), ("/no-verify", "`--no-verify`"))
PLACEMENTS = (("node-hit", "hard links (same filesystem)"), ("node-hit-layered", "layered on the shared copy"))
NOT_AVAILABLE = "not available (no `--node-cache` in `venvsmith venv --help`)"


cell = cell_summary
short = vcell


def verdict(value: float | None, goal: float | None, seconds: float | None = None,
            goal_s: float | None = None) -> str:
    if goal is None and goal_s is None:
        return "—"
    if value is None:
        return "✗ (no figure)"
    ok = (goal is None or value <= goal) and (goal_s is None or (seconds is not None and seconds < goal_s))
    return "✓ pass" if ok else "✗ fail"


def goal_text(goal: float | None, goal_s: float | None, of: str) -> str:
    parts = ([f"≤ {goal:g}x {of}"] if goal is not None else []) + ([f"< {goal_s:g} s"] if goal_s is not None else [])
    return ", ".join(parts) or "—"


def _vs(results: dict, scenario: str, name: str) -> dict:
    return cell(results, "venvsmith", scenario, name)


def goal_rows(results: dict) -> list[dict]:
    """Every goal of issue 14 this run measured: scenario, set, client, figure, goal, pass (None: no figure)."""
    rows = []
    for name in results["sets"]:
        uv_warm, uv_cold = cell(results, "uv", "warm", name), cell(results, "uv", "cold", name)
        for suffix, client in CLIENTS:
            for key, goals, uv, of in (("node-hit", GOALS_NODE_HIT, uv_warm, "uv warm"),
                                       ("node-hit-layered", GOALS_NODE_HIT, uv_warm, "uv warm"),
                                       ("new-node", GOALS_NEW_NODE, uv_cold, "uv cold")):
                if name not in goals:
                    continue
                goal, goal_s = goals[name]
                vs = _vs(results, key + suffix, name)
                value = ratio(vs, uv)
                rows.append({"scenario": key, "set": name, "client": client.strip("`"), "ratio": value,
                             "seconds": vs.get("median"), "goal": goal_text(goal, goal_s, of),
                             "pass": None if value is None else verdict(value, goal, vs.get("median"),
                                                                        goal_s) == "✓ pass"})
        for mode in ("node cache",):
            herds = [h for h in results["herds"] if h["set_name"] == name and h["mode"] == mode]
            if herds:
                rows.append({"scenario": "pods at once", "set": name, "client": mode, "ratio": None,
                             "seconds": statistics.median(h.get("wall_s", 0.0) for h in herds),
                             "goal": "one archive download, all ready", "pass": all(herd_ok(h) for h in herds)})
        vs, uv = _vs(results, "resolve-warm", name), cell(results, "uv", "compile-warm", name)
        value = ratio(vs, uv)
        rows.append({"scenario": "embedded resolve", "set": name, "client": "embedded", "ratio": value,
                     "seconds": vs.get("median"), "goal": f"≤ {GOAL_RESOLVE:g}x uv pip compile warm",
                     "pass": None if value is None else value <= GOAL_RESOLVE})
    return rows


def herd_ok(h: dict) -> bool:
    downloads = h.get("archive_downloads")
    return (not h.get("error") and h.get("ready") == h["pods"] and downloads is not None
            and 0.99 <= downloads <= 1.01)


def _header(results: dict) -> list[str]:
    m, v = results["machine"], results["versions"]
    loads = m.get("load_during") or [m["load_before"]]
    out = [f"# New CI pods: node-shared environments and the thin client, {results['date']}"
           f"{' (quick smoke run)' if results['quick'] else ''}{', local mirror' if results.get('mirror') else ''}",
           ""]
    if v.get("venvsmith_code_at_start") and v["venvsmith_code_at_start"] != v.get("venvsmith_code"):
        out += [f"**The checked-out venvsmith changed during this run** ({v['venvsmith_code_at_start']} to "
                f"{v['venvsmith_code']}).", ""]
    features = results["features"]
    out += [
        f"Commit {v['venvsmith']} (code trees {v.get('venvsmith_code', '?')}); {v['uv']}; target CPython "
        f"{results['target']['python']} (`{results['target']['interpreter']}`) for every tool; {m['cpus']} CPUs, "
        f"{m['platform']}; 1-min load average {m['load_before']} before, {min(loads):.2f}–{max(loads):.2f} during, "
        f"{m['load_after']} after{pressure_note(m)}; venvsmith's bytecode: {results['bytecode']}.",
        "",
        "Index settings (pip's default index alone, read from its configuration at run time; every tool gets the "
        "same):",
        "",
        *[f"- {line}" for line in results["index"]],
        "",
        f"Client features of this checkout: `--node-cache` {'yes' if features['node_cache'] else '**no**'}, "
        f"`--no-verify` {'yes' if features['no_verify'] else 'no'}. Every figure is the wall clock of fresh "
        f"subprocesses into a new target directory with an empty `VENVSMITH_HOME` (a new pod), median (min–max) of "
        f"{results['repeat']} runs interleaved with uv's; each venv imported the set's modules afterwards (untimed); "
        "before each run the disk is synced, and nothing is deleted between timed runs: trees are moved aside and "
        f"deleted before the next set, {results.get('settle', 65):g} s before its runs (untimed; ext4 without a "
        "journal skips inodes freed in the last 60 s on every allocation, which made each run after a deletion of "
        "another venv several times slower, whichever tool). "
        "uv: `uv venv D --python P` + `uv pip install --python D/bin/python -r SET`, warm = a `--cache-dir` a first "
        "install filled, cold = an empty one. The builder server built each set before (one `venvsmith venv "
        "--server` through it).",
        "",
    ]
    return out


def _scenario1(results: dict) -> list[str]:
    out = ["## 1. New pod, node already has the environment", "",
           "`venvsmith venv D -r SET --server ADDR --node-cache N`, `N` filled by one earlier run; layered by "
           + ", ".join(f"`{s['set_name']}`: {s.get('layered_by') or 'nothing (not measured)'}"
                       for s in results["servers"]) + ".", "",
           "| set | placement | client | venvsmith | uv warm | ratio | goal | pass | uv cold (ref.) |",
           "|---|---|---|---|---|---|---|---|---|"]
    for name in results["sets"]:
        uv_warm, uv_cold = cell(results, "uv", "warm", name), cell(results, "uv", "cold", name)
        goal, goal_s = GOALS_NODE_HIT.get(name, (None, None))
        for key, placement in (*PLACEMENTS, ("server", "none: `--server` alone (today's path)")):
            for suffix, client in CLIENTS:
                if suffix and not results["features"]["no_verify"]:
                    continue
                vs = _vs(results, key + suffix, name)
                if not vs["n"]:
                    why = (NOT_AVAILABLE if not results["features"]["node_cache"]
                           else "not measured (no `--node-cache-mode`, no second filesystem)")
                    out.append(f"| `{name}` | {placement} | {client} | {why} | {short(uv_warm)} | — | "
                               f"{goal_text(goal, goal_s, 'uv warm')} | — | {short(uv_cold)} |")
                    continue
                value = ratio(vs, uv_warm)
                own_goal = (goal, goal_s) if key != "server" else (None, None)
                out.append(f"| `{name}` | {placement} | {client} | {short(vs)} | {short(uv_warm)} | {fmt_x(value)} | "
                           f"{goal_text(*own_goal, 'uv warm')} | "
                           f"{verdict(value, own_goal[0], vs.get('median'), own_goal[1])} | "
                           f"{short(uv_cold)} |")
    return out


def _scenario2(results: dict) -> list[str]:
    out = ["", "## 2. New pod, new node (environment only in the builder)", "",
           "The same with an empty `--node-cache` directory; today's path (`--server`, no node cache) for reference.",
           "", "| set | client | venvsmith, new node | uv cold | ratio | goal | pass | `--server` alone | ratio |",
           "|---|---|---|---|---|---|---|---|---|"]
    for name in results["sets"]:
        uv_cold = cell(results, "uv", "cold", name)
        goal, _ = GOALS_NEW_NODE.get(name, (None, None))
        for suffix, client in CLIENTS:
            if suffix and not results["features"]["no_verify"]:
                continue
            vs, today = _vs(results, "new-node" + suffix, name), _vs(results, "server" + suffix, name)
            value = ratio(vs, uv_cold)
            first = short(vs) if vs["n"] else NOT_AVAILABLE
            out.append(f"| `{name}` | {client} | {first} | {short(uv_cold)} | {fmt_x(value)} | "
                       f"{goal_text(goal, None, 'uv cold')} | {verdict(value, goal) if vs['n'] else '—'} | "
                       f"{short(today)} | {fmt_x(ratio(today, uv_cold))} |")
    return out


def _scenario3(results: dict) -> list[str]:
    pods = results["pods"]
    out = ["", f"## 3. {pods} pods on one node at once, environment not on the node", "",
           f"{pods} `venvsmith venv --server ADDR --no-verify [--node-cache N]` processes started together, one empty "
           "`N`, distinct homes and targets; wall from the first start until the last exit; downloads from the "
           "builder's `/metrics` between before and after (`venvsmith_artifact_bytes_sent_total` over the archive's "
           "size, `venvsmith_artifact_reads_total`, `venvsmith_rpc_requests_total{method=\"GetArtifact\"}`).", "",
           "| set | mode | runs | all ready (median, min–max) | pods ready | archive downloads | blob reads "
           "| GetArtifact calls | goal | pass |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name in results["sets"]:
        for mode in ("node cache", "no node cache"):
            herds = [h for h in results["herds"] if h["set_name"] == name and h["mode"] == mode]
            if not herds:
                if mode == "node cache" and not results["features"]["node_cache"]:
                    out.append(f"| `{name}` | {mode} | — | {NOT_AVAILABLE} | — | — | — | — | "
                               "one download, all ready | — |")
                continue
            walls = [h["wall_s"] for h in herds if "wall_s" in h]
            wall = (f"{statistics.median(walls):.2f} s" + (f" ({min(walls):.2f}–{max(walls):.2f})" if len(walls) > 1
                                                           else "")) if walls else "—"

            def joined(key: str, fmt: str, rows=herds) -> str:
                return ", ".join("—" if h.get(key) is None else format(h[key], fmt) for h in rows)

            ready = ", ".join(f"{h.get('ready', 0)}/{h['pods']}" for h in herds)
            fetched = joined("archive_downloads", ".2f")
            counted = sorted({h["counted_by"] for h in herds if h.get("counted_by")})
            if counted and counted != ["bytes sent / archive size"]:
                fetched += f" (counted by {', '.join(counted)})"
            goal = "one download, all ready" if mode == "node cache" else "—"
            passed = ("✓ pass" if all(herd_ok(h) for h in herds) else "✗ fail") if mode == "node cache" else "—"
            out.append(f"| `{name}` | {mode} | {len(herds)} | {wall} | {ready} | "
                       f"{fetched} | {joined('reads', '.0f')} | "
                       f"{joined('get_artifact_calls', '.0f')} | {goal} | {passed} |")
    errors = [f"- `{h['set_name']}` {h['mode']} rep {h['rep']}: "
              + md_escape("; ".join(h.get("errors") or []) or h.get("error", ""))
              for h in results["herds"] if h.get("errors") or h.get("error")]
    if errors:
        out += ["", "Failed pods:", "", *errors]
    return out


def _scenario4(results: dict) -> list[str]:
    out = ["", "## 4. The client's cache-hit path (process start to exit)", ""]
    if not results["traces"]:
        return [*out, "Not run."]
    name = results["traces"][0]["set_name"]
    uv_warm = select_runs(results, "uv", "warm", name)
    steps = [r["stats"].get("steps_s", []) for r in uv_warm if not r["error"]]
    uv_steps = (f"`uv venv` {statistics.median(s[0] for s in steps):.3f} s + `uv pip install` "
                f"{statistics.median(s[1] for s in steps):.3f} s") if steps and all(len(s) == 2 for s in steps) else ""
    uv = summarize(uv_warm)
    node = results["features"]["node_cache"]
    where = " and the node cache too" if node else f" (no node cache: {NOT_AVAILABLE})"
    out += [f"`{name}`, the builder has it{where}; "
            f"uv warm {short(uv)}{' (' + uv_steps + ')' if uv_steps else ''}.", "",
            "| client | venvsmith process wall | uv warm | ratio |", "|---|---|---|---|"]
    for suffix, client in CLIENTS:
        vs = _vs(results, ("node-hit" if node else "server") + suffix, name)
        if vs["n"]:
            out.append(f"| {client} | {short(vs)} | {short(uv)} | {fmt_x(ratio(vs, uv))} |")
    for t in results["traces"]:
        client = "verifying (default)" if t["verify"] else "`--no-verify`"
        out += ["", f"Timeline, {client} (`bench/trace_client.py`: gRPC's client calls timed; the median of "
                f"{len(t.get('walls_s', []))} runs):", ""]
        if t.get("error"):
            out.append(f"failed: {md_escape(t['error'])}")
            continue
        tr = t["trace"]
        calls = sorted((c for c in tr["calls"] if "start" in c), key=lambda c: c["start"])
        wall = tr["process_wall_s"]
        rows = [("Python start-up alone (`python -c pass`, process wall)", t["python_startup_s"]),
                ("interpreter start-up + exit (process wall − in-process)", wall - tr["returned_s"]),
                ("import gRPC (the bench's hook imports it first)", tr["grpc_imported_s"]),
                ("import `venvsmith.cli`", tr["cli_imported_s"] - tr["grpc_imported_s"])]
        rows += rpc_rows(calls, tr["cli_imported_s"], tr["returned_s"])
        out += ["| phase | seconds |", "|---|---|", *[f"| {label} | {s:.3f} |" for label, s in rows],
                f"| **process wall** | **{wall:.3f}** |"]
        if "importtime_s" in t:
            top = ", ".join(f"`{m}` {s * 1000:.0f} ms" for m, s in t["importtime_top"][:6])
            out += ["", f"`-X importtime` (a separate run): top-level imports {t['importtime_s']:.3f} s in all "
                    f"(cumulative, under the profiler's own overhead); largest: {top}."]
        elif t.get("importtime_error"):
            out += ["", f"`-X importtime` run failed: {md_escape(t['importtime_error'])}"]
        project = tr.get("project_modules", [])
        resolver = [m for m in project if m.startswith("resolver_service")]
        out += ["", f"Modules loaded: {tr.get('modules_loaded', '?')} (" + ", ".join(
            f"{k} {v}" for k, v in list(tr.get("packages_loaded", {}).items())[:8]) + f"); `resolver_service` modules "
            f"{len(resolver)}, `builder_service` modules {len(project) - len(resolver)}"
            + (" (incl. `builder_service.engine`)" if "builder_service.engine" in project else "") + "."]
    return out


def rpc_rows(calls: list[dict], imported: float, returned: float) -> list[tuple[str, float]]:
    """The client's time from its imports to ``main``'s return: each RPC and the client's work between them."""
    if not calls:
        return [("CLI imported → `main` returned (no RPC)", returned - imported)]
    rows = [("CLI imported → first RPC starts (arguments, request, lazy imports)", calls[0]["start"] - imported)]
    for i, c in enumerate(calls):
        end = c.get("end", c["start"])
        rows.append((f"RPC `{c['method'].rsplit('/', 1)[-1]}` (from {c['start']:.3f} s)", end - c["start"]))
        if i + 1 < len(calls) and calls[i + 1]["start"] > end:
            rows.append(("client work until the next RPC (verifying pins, placing, ...)", calls[i + 1]["start"] - end))
    last = max(c.get("end", c["start"]) for c in calls)
    return [*rows, ("last RPC end → `main` returned (placement, output)", returned - last)]


def _scenario5(results: dict) -> list[str]:
    out = ["", "## 5. Embedded resolve of a new set, warm metadata caches", "",
           "`venvsmith resolve -r SET --no-cache` (the resolution cache bypassed: the resolver runs over the index "
           "pages and metadata an untimed first resolve cached, as `resolve_bench`'s *warm*) vs `uv pip compile` on "
           "its warmed `--cache-dir`; both `--python-version` the target's.", "",
           "| set | venvsmith resolve | in-process (median) | uv pip compile warm | ratio | goal | pass | pins vs uv |",
           "|---|---|---|---|---|---|---|---|"]
    for name in results["sets"]:
        runs = select_runs(results, "venvsmith", "resolve-warm", name)
        vs, uv = summarize(runs), cell(results, "uv", "compile-warm", name)
        value = ratio(vs, uv)
        inproc = [r["stats"].get("elapsed_ms", 0.0) / 1000 for r in runs if not r["error"] and r["stats"]]
        vs_pins = next((r["pins"] for r in runs if not r["error"]), None)
        uv_pins = next((r["pins"] for r in select_runs(results, "uv", "compile-warm", name) if not r["error"]), None)
        pins = compare_pins(vs_pins, uv_pins)[0] if vs_pins and uv_pins else "—"
        out.append(f"| `{name}` | {short(vs)} | {f'{statistics.median(inproc):.2f} s' if inproc else '—'} | "
                   f"{short(uv)} | {fmt_x(value)} | ≤ {GOAL_RESOLVE:g}x uv warm | {verdict(value, GOAL_RESOLVE)} | "
                   f"{pins} |")
    return out


def _glance(results: dict) -> list[str]:
    out = ["## Goals at a glance", "", "| scenario | set | client | venvsmith | ratio | goal | pass |",
           "|---|---|---|---|---|---|---|"]
    for g in results["goals"]:
        missing = "not available" if not results["features"]["node_cache"] and g["scenario"] != "embedded resolve" \
            else "not measured"
        seconds = f"{g['seconds']:.2f} s" if g.get("seconds") is not None else missing
        mark = "—" if g["pass"] is None else ("✓" if g["pass"] else "✗")
        out.append(f"| {g['scenario']} | `{g['set']}` | {g['client']} | {seconds} | {fmt_x(g['ratio'])} | "
                   f"{g['goal']} | {mark} |")
    return [*out, ""]


def _servers(results: dict) -> list[str]:
    out = ["", "## Builder servers (one per set)", "",
           "| set | start → healthy | first build (venv --server) | archive | packages | node fill | peak RSS |",
           "|---|---|---|---|---|---|---|"]
    for s in results["servers"]:
        if s.get("error"):
            out.append(f"| `{s['set_name']}` | error: {md_escape(s['error'][:200])} | | | | | |")
            continue
        size = f"{s['archive_bytes'] / 2**20:.1f} MiB" if s.get("archive_bytes") else "—"
        fill = f"{s['node_fill_s']:.2f} s" if s.get("node_fill_s") is not None else "—"
        out.append(f"| `{s['set_name']}` | {s.get('startup_s', 0):.2f} s | {s.get('first_build_s', 0):.1f} s | "
                   f"{size} | "
                   f"{s.get('packages') or '—'} | {fill} | {s.get('rss_peak_mib', 0):.0f} MiB |")
        for err in s.get("warm_up_errors") or []:
            out.append(f"| | warm-up failed: {md_escape(err[:200])} | | | | | |")
    return out


def render_markdown(results: dict, chart: str | None) -> str:
    out = [*_header(results), *_glance(results), *_scenario1(results), *_scenario2(results), *_scenario3(results),
           *_scenario4(results), *_scenario5(results), *_servers(results)]
    out += ["", "Sets: " + "; ".join(f"`{n}` = `{' '.join(reqs)}` (imports `{', '.join(results['imports'][n])}`)"
                                     for n, reqs in results["sets"].items())]
    out += failures_section(results)
    if chart:
        out += ["", f"![new CI pods]({chart})"]
    return "\n".join(out) + "\n"


def write_report(results: dict, outdir: Path, base: str) -> Path:
    results["goals"] = goal_rows(results)
    return save_report(results, outdir, base, render_markdown, "plot_pod.py")
