"""The benches' command line: one shared parser of the common options (bench/common.py), ``bench/run.py --help``.

Only argument parsing runs here for the benches that need the network; the load bench, hermetic, runs its quick
mode."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
BENCHES = ("resolve_bench", "venv_bench", "concurrency_bench", "load_bench", "verify_bench", "fleet_bench")


@pytest.fixture
def bench_modules(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import common

    return common, [__import__(name) for name in BENCHES]


def _options(parser) -> dict[str, object]:
    return {action.option_strings[-1]: action.default for action in parser._actions if action.option_strings}


def test_every_bench_has_the_common_options(bench_modules):
    common, modules = bench_modules
    shared = _options(common.bench_parser("x", "doc", default_sets=("s",), timeout=1.0, quick_help="q"))
    for module in modules:
        own = _options(module.build_parser())
        assert shared.keys() <= own.keys(), module.__name__
        assert own["--venvsmith"] == shared["--venvsmith"] and own["--output-dir"] == shared["--output-dir"]


def test_quick_and_repeat_are_applied_by_the_shared_main(bench_modules, tmp_path, monkeypatch):
    common, (resolve_bench, venv_bench, concurrency_bench, *_) = bench_modules
    seen = {}

    def run(opts):
        seen["opts"] = opts
        return {"date": "2000-01-01"}

    def written(results, outdir, base):
        seen["base"] = base
        return tmp_path / base

    parser = venv_bench.build_parser()
    monkeypatch.setattr(common, "ensure_bench_venv", lambda: None)  # no bench venv is created by a test
    argv = ["--quick", "--sets", "django", "requests", "--output-dir", str(tmp_path)]
    assert common.bench_main(argv, True, parser=parser, kind="venv", run=run, write_report=written,
                             quick=venv_bench._quick) == 0
    opts = seen["opts"]
    assert (opts.sets, opts.repeat, opts.profile_runs, opts.profile_set) == (["django"], 1, 1, "django")
    assert seen["base"] == "2000-01-01-venv-quick"
    with pytest.raises(SystemExit, match="--repeat must be at least 1"):
        common.bench_main(["--repeat", "0"], True, parser=resolve_bench.build_parser(), kind="resolve", run=run,
                          write_report=written)
    with pytest.raises(SystemExit, match="--clients must be at least 1"):
        concurrency_bench.main(["--clients", "0"])


def test_run_help_lists_every_bench():
    out = subprocess.run([sys.executable, str(BENCH / "run.py"), "--help"], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    for prog in BENCHES:
        assert f"usage: {prog}" in out
    bad = subprocess.run([sys.executable, str(BENCH / "run.py"), "--no-such-option"], capture_output=True,
                         text=True, timeout=60, check=False)
    assert bad.returncode == 2 and "unrecognized arguments" in bad.stderr


@pytest.mark.slow
def test_the_load_bench_quick_mode_runs_every_kind_without_a_failure(bench_modules, tmp_path):
    import json

    load_bench = bench_modules[1][3]
    assert load_bench.main(["--quick", "--output-dir", str(tmp_path)]) == 0
    (report,) = tmp_path.glob("*-load-quick.json")
    results = json.loads(report.read_text())
    assert results["calls_made"] == results["requests"] == load_bench.QUICK_REQUESTS
    assert results["clients"] == load_bench.QUICK_CLIENTS
    assert results["failures"] == 0, results["kinds"]
    assert set(results["kinds"]) == set(load_bench.KINDS)
    assert all(s["alive_at_end"] and s["rss_peak_mib"] > 0 for s in results["servers"].values())
    assert "| resolve-hit |" in report.with_suffix(".md").read_text()
