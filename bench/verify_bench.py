"""Verify benchmark: ``venvsmith verify`` of a lock next to the cold resolution that produced it (issue 11: verify
must cost a small fraction of a resolution).

Per requirement set and repetition:

1. **resolve, cold**: ``venvsmith resolve -r SET --format pylock`` with an empty ``VENVSMITH_HOME``;
2. **verify, cold**: ``venvsmith verify LOCK -r SET`` with another empty home (pages and metadata fetched again);
3. **verify, warm**: the same with the resolve's home (its index cache).

Same index settings for every run (pip's configuration read at run time, or ``--mirror``); wall clock of one
fresh subprocess each; median (min-max) over ``--repeat``. Results: ``bench/results/<date>-verify.md`` + ``.json``.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import WORK_DIR, bench_main, bench_parser, failure_text, resolve_set_files, run_fields, save_report
from resolve_bench import TARGET_PYTHON, IndexArgs, Tools, timed

DEFAULT_SETS = ("jupyter", "fastapi-all", "datasci")


def build_parser():
    return bench_parser("verify_bench.py", __doc__, default_sets=DEFAULT_SETS, timeout=900.0,
                        quick_help="one set (requests), one repetition",
                        repeat_help="repetitions per set (default 5)")


def _one(tools: Tools, set_file: Path, work: Path) -> dict[str, float | str]:
    index = tools.index.argv()
    target = ["--python-version", TARGET_PYTHON]
    resolve_home, verify_home = work / "resolve-home", work / "verify-home"
    lock = work / "pylock.toml"
    out: dict[str, float | str] = {}
    seconds, proc, error = timed([str(tools.venvsmith), "resolve", "-r", str(set_file), *target, *index,
                                  "--format", "pylock", "-o", str(lock)],
                                 {**tools.vs_env, "VENVSMITH_HOME": str(resolve_home)}, work, tools.opts.timeout)
    if error or proc is None or proc.returncode != 0:
        return {"error": error or failure_text(proc)}
    out["resolve_cold"] = seconds
    for scenario, home in (("verify_cold", verify_home), ("verify_warm", resolve_home)):
        seconds, proc, error = timed([str(tools.venvsmith), "verify", str(lock), "-r", str(set_file), *target,
                                      *index, "-q"],
                                     {**tools.vs_env, "VENVSMITH_HOME": str(home)}, work, tools.opts.timeout)
        if error or proc is None or proc.returncode != 0:
            return {**out, "error": f"{scenario}: {error or failure_text(proc)}"}
        out[scenario] = seconds
    return out


def run(opts) -> dict:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    sets = resolve_set_files(opts.sets)
    index = getattr(opts, "index_override", None) or IndexArgs.from_pip_config()
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    results = {**run_fields(opts, stamp, sets), "index": index.origin, "runs": {}}
    with tempfile.TemporaryDirectory(dir=WORK_DIR, prefix="verify-") as tmp:
        tools = Tools(opts, index, Path(tmp))
        for name, path in sets:
            tools.warm_up(path)
            runs = []
            for rep in range(opts.repeat):
                work = Path(tmp) / f"{name}-{rep}"
                work.mkdir()
                runs.append(_one(tools, path, work))
                if not opts.keep_work:
                    shutil.rmtree(work, ignore_errors=True)
                print(f"{name} #{rep}: {runs[-1]}", file=sys.stderr, flush=True)
            results["runs"][name] = runs
    return results


def _cell(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):.2f} s ({min(values):.2f}-{max(values):.2f})"


def render(results: dict, _chart: str | None) -> str:
    lines = [f"# verify vs cold resolve ({results['date']})", "", f"Index: {results['index']}.", "",
             "| set | resolve, cold | verify, cold | verify, warm | cold verify / cold resolve |",
             "|---|---|---|---|---|"]
    for name, runs in results["runs"].items():
        ok = [r for r in runs if "error" not in r]
        column = {key: [float(r[key]) for r in ok] for key in ("resolve_cold", "verify_cold", "verify_warm")}
        ratio = (f"{statistics.median(column['verify_cold']) / statistics.median(column['resolve_cold']):.2f}"
                 if ok else "-")
        lines.append(f"| {name} | {_cell(column['resolve_cold'])} | {_cell(column['verify_cold'])} | "
                     f"{_cell(column['verify_warm'])} | {ratio} |")
        for failed in (r for r in runs if "error" in r):
            lines.append(f"\n{name}: failed: {failed['error']}")
    return "\n".join(lines) + "\n"


def write_report(results: dict, outdir: Path, base: str) -> Path:
    return save_report(results, outdir, base, render)


def main(argv: list[str] | None = None, strict: bool = True) -> int:
    return bench_main(argv, strict, parser=build_parser(), kind="verify", run=run, write_report=write_report)


if __name__ == "__main__":
    sys.exit(main())
