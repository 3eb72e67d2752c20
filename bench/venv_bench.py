"""Time-to-ready venv: venvsmith next to ``uv venv && uv pip install`` and ``python -m venv && pip install``.

What a new CI pod sees: a **fresh target directory** every time. Per requirement set and repetition:

- **venvsmith** (embedded, ``venvsmith venv D -r SET``): *first* with an empty ``VENVSMITH_HOME`` (resolve,
  download or build every wheel, assemble and pack the venv, unpack it), then *repeat* with the same home
  and a new ``D`` (the archive comes from the store);
- **venvsmith-server** (``venvsmith venv D -r SET --server ADDR``, a ``venvsmith serve builder`` subprocess
  started with an empty home for the cell; the client's own home is empty every time, so the archive comes
  over gRPC ``GetArtifact``): *first* (the server builds) and *repeat* (built on the server already);
- **uv**: ``uv venv D --python P`` + ``uv pip install --python D/bin/python -r SET``, *cold* (an empty
  ``--cache-dir``) and *warm* (the same cache again, a new ``D``); uv's defaults otherwise (hard links from
  its cache, no bytecode compilation);
- **pip**: ``P -m venv D`` + ``D/bin/pip install --no-cache-dir -r SET`` (*cold*; pip compiles bytecode, its
  default).

Every tool gets the same index settings (read from pip's configuration at run time, or the local mirror with
``--mirror``) and targets the same interpreter: the bench venv's base Python. The tools' order rotates per set
and repetition; every figure is the wall clock of the tool's fresh subprocesses (both steps for uv and pip).
Each produced venv must import the set's top-level modules (a failure is recorded, not raised), and the
distributions installed by each tool are compared.

Then, unless ``--no-profile``: where venvsmith's embedded *repeat* spends its time (``bench/profile_venv.py``:
a timeline of its phases without a profiler, then cProfile of every thread).

Results: ``bench/results/<date>-venv.md`` (+ ``.json`` and a ``.png`` drawn by ``bench/plot_venv.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

from common import BENCH, QUICK_SET, SCRUB, bench_main, bench_parser, failure_text, run_fields, save_report
from resolve_bench import (
    IndexArgs,
    ResolverServer,
    Run,
    Tools,
    canonical,
    compare_pins,
    failures_section,
    fmt_cell,
    git_describe,
    md_escape,
    select_runs,
    start_run,
    summarize,
    tool_version,
    wait_idle,
)

DEFAULT_SETS = ("requests", "django", "fastapi-all", "jupyter", "datasci", "sdist-docopt")
#: Top-level modules each produced venv must import (else: the set's requirement names, as modules).
IMPORTS = {
    "requests": ("requests",),
    "django": ("django",),
    "fastapi-all": ("fastapi", "uvicorn", "httpx", "jinja2", "multipart", "email_validator", "itsdangerous",
                    "yaml", "pydantic_settings", "pydantic_extra_types", "uvloop", "httptools", "watchfiles",
                    "websockets"),
    "jupyter": ("notebook", "jupyterlab", "ipykernel", "ipywidgets", "nbconvert", "jupyter_console"),
    "datasci": ("boto3", "pandas", "sklearn", "matplotlib"),
    "sdist-docopt": ("docopt",),
    "run": ("requests", "rich", "httpx"),
}
#: (tool, scenario) in report order, with the label of each.
SERIES = (
    ("venvsmith", "first", "venvsmith first"),
    ("venvsmith", "repeat", "venvsmith repeat"),
    ("venvsmith-server", "first", "server first"),
    ("venvsmith-server", "repeat", "server repeat"),
    ("uv", "cold", "uv cold"),
    ("uv", "warm", "uv warm"),
    ("pip", "cold", "pip (no cache)"),
)
TOOLS = ("venvsmith", "venvsmith-server", "uv", "pip")
# Issue 5's goals for a built set: <= 1.0x uv cold, >= 15x faster than pip.
GOAL_UV_RATIO = 1.0
GOAL_PIP_SPEEDUP = 15.0
#: The "venv ready at ..." line: packages, lock key, the client's own seconds, "from the store" (and how a node
#: cache placed it, or that the node's kept answer was used: not parsed).
_READY = re.compile(r"\((\d+) packages, lock key (\w+), ([\d.]+) s(, from the store)?[^)]*\)")
#: Installed by ``python -m venv`` itself, not by the set.
SEEDED = frozenset({"pip", "setuptools"})


def modules_for(set_name: str, set_file: Path) -> tuple[str, ...]:
    if set_name in IMPORTS:
        return IMPORTS[set_name]
    names = []
    for line in set_file.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line)
        if match and not line.lstrip().startswith(("#", "-")):
            names.append(canonical(match.group(1)).replace("-", "_"))
    return tuple(names)


def installed(dest: Path) -> dict[str, str]:
    """``name -> version`` of the ``*.dist-info`` directories in the venv's site-packages."""
    found = {}
    for info in dest.glob("lib/python*/site-packages/*.dist-info"):
        name, _, version = info.name[: -len(".dist-info")].rpartition("-")
        if name:
            found[canonical(name)] = version
    return found


def python_info(python: Path) -> dict[str, str]:
    code = ("import json, platform, sys; print(json.dumps({'version': platform.python_version(), "
            "'base': getattr(sys, '_base_executable', sys.executable), 'executable': sys.executable}))")
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def code_revision() -> str:
    """The project's code (``builder_service``, ``resolver_service``, ``venvsmith``) as git tree ids, plus
    whether it has uncommitted changes: a commit of results alone does not change it."""
    paths = ("builder_service", "resolver_service", "venvsmith")
    try:
        trees = subprocess.run(["git", "rev-parse", *(f"HEAD:{p}" for p in paths)], cwd=BENCH.parent,
                               capture_output=True, text=True, check=False).stdout.split()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", *paths],
                               cwd=BENCH.parent, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return "?"
    return "/".join(t[:8] for t in trees) + (" + uncommitted changes" if dirty else "")


def cpu_pressure() -> float | None:
    """Share of the last 10 s in which some runnable task waited for a CPU (Linux PSI), in percent."""
    try:
        with open("/proc/pressure/cpu", encoding="ascii") as fh:
            return float(fh.readline().split()[1].split("=")[1])
    except (OSError, IndexError, ValueError):
        return None


def timed_steps(steps: list[list[str]], env: dict[str, str], cwd: Path, timeout: float
                ) -> tuple[float, list[float], str]:
    """Run the commands one after the other; total wall clock, each step's, and the first failure."""
    walls: list[float] = []
    for cmd in steps:
        started = time.perf_counter()
        try:
            proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            walls.append(time.perf_counter() - started)
            return sum(walls), walls, f"{Path(cmd[0]).name} timed out after {timeout:.0f} s"
        except OSError as exc:
            return sum(walls), walls, f"cannot run {cmd[0]}: {exc}"
        walls.append(time.perf_counter() - started)
        if proc.returncode != 0:
            return sum(walls), walls, f"{Path(cmd[0]).name} {cmd[1]}: {failure_text(proc)}"
    return sum(walls), walls, ""


class VenvTools(Tools):
    """The commands of every tool, on one target interpreter, with the same index settings."""

    def __init__(self, opts: argparse.Namespace, index: IndexArgs, work: Path) -> None:
        super().__init__(opts, index, work)
        bench = python_info(self.bench_python)
        self.target_python = Path(bench["base"])  # the interpreter every venv is made for
        self.target_version = bench["version"]
        own = python_info(self.venvsmith.parent / "python")
        # venvsmith targets its own interpreter by default; ask for the bench's when they differ.
        self.vs_target = [] if own["version"] == self.target_version else ["--python-version", self.target_version]
        self.check_env = {k: v for k, v in self.env.items() if not k.startswith("PYTHON")}
        #: What a checked venv becomes: deleted (the pod bench moves it to its :class:`~common.Trash` instead).
        self.discard: Callable[[Path], None] = lambda path: shutil.rmtree(path, ignore_errors=True)

    def warm_up(self, set_file: Path) -> None:
        """Untimed: the resolve warm-up, then the builder's modules and one whole ``venvsmith venv``, so that no
        timed run pays for writing bytecode."""
        super().warm_up(set_file)
        python = self.venvsmith.parent / "python"
        imports = ("import venvsmith.cli.build, venvsmith.clients.builder, builder_service.engine, "
                   "builder_service.archive, builder_service.orchestrate, builder_service.service, "
                   "builder_service.http_server, builder_service.sdist_build")
        subprocess.run([str(python), "-c", imports], env=self.vs_env, cwd=self.work, capture_output=True,
                       check=False)
        home = self.work / "warm-up-home"
        self.venvsmith_venv("warm-up", set_file, self.work / "warm-up-venv", home, scenario="warm-up", rep=-1)
        shutil.rmtree(home, ignore_errors=True)

    def check(self, run: Run, dest: Path, set_name: str, set_file: Path) -> Run:
        """Does the venv import the set's modules? Its distributions go into ``run.pins``; ``dest`` is removed."""
        try:
            if run.ok:
                run.pins = installed(dest)
                modules = modules_for(set_name, set_file)
                try:
                    proc = subprocess.run([str(dest / "bin" / "python"), "-c", f"import {', '.join(modules)}"],
                                          env=self.check_env, cwd=self.work, capture_output=True, text=True,
                                          timeout=self.opts.timeout)
                except (OSError, subprocess.TimeoutExpired) as exc:
                    run.error = f"import check could not run: {exc}"
                else:
                    if proc.returncode != 0:
                        run.error = f"import check failed: {failure_text(proc)}"
                run.stats["imports_checked"] = list(modules)
        finally:
            self.discard(dest)
        run.error = SCRUB(run.error)
        return run

    def venvsmith_venv_cmd(self, set_file: Path, dest: Path, server: str | None = None,
                           extra: Sequence[str] = ()) -> list[str]:
        """``venvsmith venv DEST -r SET -q`` with the index settings and target, ``--server``, ``extra``."""
        cmd = [str(self.venvsmith), "venv", str(dest), "-r", str(set_file), "-q", *self.index.argv(),
               *self.vs_target]
        if server:
            cmd += ["--server", server]
        return [*cmd, *extra]

    def venvsmith_venv(self, set_name: str, set_file: Path, dest: Path, home: Path, *, scenario: str, rep: int,
                       server: str | None = None, extra: Sequence[str] = (), tool: str | None = None) -> Run:
        """``extra``: more ``venv`` options; ``tool``: the run's tool label (default venvsmith[-server])."""
        cmd = self.venvsmith_venv_cmd(set_file, dest, server, extra)
        home.mkdir(parents=True, exist_ok=True)
        env = {**self.vs_env, "VENVSMITH_HOME": str(home)}
        started = time.perf_counter()
        try:
            proc = subprocess.run(cmd, env=env, cwd=self.work, capture_output=True, text=True,
                                  timeout=self.opts.timeout)
        except subprocess.TimeoutExpired:
            proc, error = None, f"timed out after {self.opts.timeout:.0f} s"
        else:
            error = "" if proc.returncode == 0 else failure_text(proc)
        run = Run(tool or ("venvsmith-server" if server else "venvsmith"), scenario, set_name, rep,
                  time.perf_counter() - started, error=error)
        if proc is not None and not error:
            match = _READY.search(proc.stdout)
            if match:
                run.stats.update(packages=int(match.group(1)), lock_key=match.group(2),
                                 reported_s=float(match.group(3)), from_store=bool(match.group(4)))
        return self.check(run, dest, set_name, set_file)

    def uv_venv(self, set_name: str, set_file: Path, dest: Path, cache: Path, *, scenario: str, rep: int) -> Run:
        env = dict(self.env)
        if self.index.cert and "SSL_CERT_FILE" not in env:
            env["SSL_CERT_FILE"] = self.index.cert
        common = ["--no-config", "--cache-dir", str(cache), "--quiet"]
        steps = [
            [str(self.uv), "venv", str(dest), "--python", str(self.target_python), *common],
            [str(self.uv), "pip", "install", "--python", str(dest / "bin" / "python"), "-r", str(set_file),
             *common, *self.index.argv()],
        ]
        seconds, walls, error = timed_steps(steps, env, self.work, self.opts.timeout)
        run = Run("uv", scenario, set_name, rep, seconds, error=error, stats={"steps_s": walls})
        return self.check(run, dest, set_name, set_file)

    def pip_venv(self, set_name: str, set_file: Path, dest: Path, *, rep: int) -> Run:
        install = [str(dest / "bin" / "pip"), "install", "--no-cache-dir", "--disable-pip-version-check",
                   "--quiet", "-r", str(set_file), *self.index.argv()]
        if self.index.cert:
            install += ["--cert", self.index.cert]
        steps = [[str(self.target_python), "-m", "venv", str(dest)], install]
        seconds, walls, error = timed_steps(steps, self._pip_env(), self.work, self.opts.timeout)
        run = Run("pip", "cold", set_name, rep, seconds, error=error, stats={"steps_s": walls})
        return self.check(run, dest, set_name, set_file)


# -- the benchmark -----------------------------------------------------------------------------------


def run_cell(tools: VenvTools, name: str, set_file: Path, cell: Path, rep: int, order: list[str], record,
             skip_pip: bool) -> dict:
    """One set, one repetition: every tool in ``order``; returns the builder server's figures."""
    server_info: dict = {}
    for tool in order:
        if tool == "venvsmith":
            home = cell / "vs-home"
            record(tools.venvsmith_venv(name, set_file, cell / "vs-first", home, scenario="first", rep=rep))
            record(tools.venvsmith_venv(name, set_file, cell / "vs-repeat", home, scenario="repeat", rep=rep))
            shutil.rmtree(home, ignore_errors=True)
        elif tool == "venvsmith-server":
            server = ResolverServer(tools, cell / "server-home", service="builder")
            try:
                server.start()
            except Exception as exc:  # recorded as both runs failing; the other tools go on
                error = SCRUB(f"builder server did not start: {exc}")[:300]
                for scenario in ("first", "repeat"):
                    record(Run("venvsmith-server", scenario, name, rep, 0.0, error=error))
                server.stop()
                continue
            try:
                server_info["startup_s"] = server.startup_s
                server_info["rss_idle_mib"] = server.memory().get("VmRSS", 0.0)
                for scenario in ("first", "repeat"):
                    # A new, empty client home each time: nothing on the client side but the CLI.
                    record(tools.venvsmith_venv(name, set_file, cell / f"srv-{scenario}",
                                                cell / f"client-home-{scenario}", scenario=scenario, rep=rep,
                                                server=server.address))
                server_info["rss_peak_mib"] = server.memory().get("VmHWM", 0.0)
            finally:
                server.stop()
            shutil.rmtree(cell / "server-home", ignore_errors=True)
        elif tool == "uv":
            cache = cell / "uv-cache"
            record(tools.uv_venv(name, set_file, cell / "uv-cold", cache, scenario="cold", rep=rep))
            record(tools.uv_venv(name, set_file, cell / "uv-warm", cache, scenario="warm", rep=rep))
            shutil.rmtree(cache, ignore_errors=True)
        elif tool == "pip" and not skip_pip:
            record(tools.pip_venv(name, set_file, cell / "pip", rep=rep))
    return server_info


def run_bench(opts: argparse.Namespace) -> dict:
    index, sets, stamp, work = start_run(opts, "venv")
    tools = VenvTools(opts, index, work)
    rev_start = code_revision()
    runs: list[Run] = []
    servers: list[dict] = []
    loads: list[float] = []
    pressure: list[float] = []
    load_before = wait_idle(opts.wait_idle, opts.idle_load)
    if not opts.as_is:
        tools.warm_up(sets[0][1])

    def record(run: Run) -> None:
        runs.append(run)
        status = "ok" if run.ok else f"FAILED {run.error[:160]}"
        extra = f" ({run.stats['packages']} pkgs)" if "packages" in run.stats else ""
        print(f"  rep {run.rep} {run.set_name:<12} {run.tool:<16} {run.scenario:<6} {run.seconds:8.3f} s{extra}  "
              f"{status}", flush=True)

    print(f"venv bench: sets {', '.join(n for n, _ in sets)}; repeat {opts.repeat}; target Python "
          f"{tools.target_version} ({tools.target_python}); work dir {work}", flush=True)
    for rep in range(opts.repeat):
        for i, (name, set_file) in enumerate(sets):
            cell = work / f"rep{rep}" / name
            cell.mkdir(parents=True, exist_ok=True)
            shift = (rep + i) % len(TOOLS)
            order = [*TOOLS[shift:], *TOOLS[:shift]]
            loads.append(os.getloadavg()[0])
            if (psi := cpu_pressure()) is not None:
                pressure.append(psi)
            skip_pip = opts.skip_pip or (opts.pip_runs is not None and rep >= opts.pip_runs)
            info = run_cell(tools, name, set_file, cell, rep, order, record, skip_pip)
            if info:
                servers.append({"set_name": name, "rep": rep, **info})
            if not opts.keep_work:
                shutil.rmtree(cell, ignore_errors=True)

    profile = None
    if not opts.no_profile:
        names = [n for n, _ in sets]
        target = opts.profile_set if opts.profile_set in names else ("jupyter" if "jupyter" in names else names[0])
        profile = profile_repeat(tools, target, dict(sets)[target], work / "profile", opts.profile_runs)
    if not opts.keep_work:
        shutil.rmtree(work, ignore_errors=True)
    load_after = os.getloadavg()[0]
    loads.append(load_after)
    return {
        **run_fields(opts, stamp, sets),
        "repeat": opts.repeat,
        "imports": {name: list(modules_for(name, p)) for name, p in sets},
        "target": {"python": tools.target_version, "interpreter": str(tools.target_python),
                   "venvsmith_args": tools.vs_target},
        "index": index.describe(),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_before": round(load_before, 2),
            "load_after": round(load_after, 2),
            "load_during": [round(x, 2) for x in loads],
            "cpu_pressure_during": pressure,
        },
        "bytecode": "as in the environment" if opts.as_is else "cached (PYTHONPYCACHEPREFIX, warmed up)",
        "versions": {
            "venvsmith": git_describe(),
            "venvsmith_code_at_start": rev_start, "venvsmith_code": code_revision(),
            "uv": tool_version([str(tools.uv), "--version"]),
            "pip": "pip " + tool_version([str(tools.target_python), "-c",
                                          "import ensurepip; print(ensurepip.version())"]),
        },
        "runs": [asdict(r) for r in runs],
        "servers": servers,
        "profile": profile,
    }


# -- where the repeat path spends its time -----------------------------------------------------------


def profile_repeat(tools: VenvTools, name: str, set_file: Path, work: Path, runs: int) -> dict:
    """``bench/profile_venv.py`` on the embedded repeat of ``name``: a timeline, then cProfile of all threads."""
    print(f"profile: venvsmith venv (embedded, repeat) of {name}", flush=True)
    home = work / "home"
    work.mkdir(parents=True, exist_ok=True)
    out: dict = {"set_name": name}
    first = tools.venvsmith_venv(name, set_file, work / "first", home, scenario="first", rep=-1)
    if not first.ok:
        return {**out, "error": first.error}
    python = tools.venvsmith.parent / "python"
    env = {**tools.vs_env, "VENVSMITH_HOME": str(home)}
    venv_args = ["venv", "DEST", "-r", str(set_file), "-q", *tools.index.argv(), *tools.vs_target]

    def driver(extra: list[str], tag: str) -> dict:
        dest = work / f"dest-{tag}"
        report = work / f"{tag}.json"
        cmd = [str(python), str(BENCH / "profile_venv.py"), "--out", str(report), *extra, "--",
               *[str(dest) if a == "DEST" else a for a in venv_args]]
        started = time.perf_counter()
        proc = subprocess.run(cmd, env=env, cwd=tools.work, capture_output=True, text=True,
                              timeout=tools.opts.timeout)
        wall = time.perf_counter() - started
        shutil.rmtree(dest, ignore_errors=True)
        if proc.returncode != 0 or not report.exists():
            return {"error": SCRUB(failure_text(proc))}
        doc = json.loads(report.read_text(encoding="utf-8"))
        doc["process_wall_s"] = wall
        return doc

    timelines = [driver([], f"timeline{i}") for i in range(runs)]
    good = [t for t in timelines if "error" not in t]
    if good:
        out["timeline"] = sorted(good, key=lambda t: t["process_wall_s"])[len(good) // 2]  # the median run
        out["timeline_walls_s"] = [t["process_wall_s"] for t in good]
    else:
        out["error"] = timelines[0]["error"]
    out["cprofile"] = driver(["--cprofile"], "cprofile")

    def best_of(code: str) -> float:
        walls = []
        for _ in range(3):
            started = time.perf_counter()
            subprocess.run([str(python), "-c", code], env=env, cwd=tools.work, capture_output=True, check=False)
            walls.append(time.perf_counter() - started)
        return statistics.median(walls)

    out["python_startup_s"] = best_of("pass")
    out["import_s"] = best_of("import venvsmith.cli, venvsmith.cli.build, venvsmith.clients.builder, "
                              "builder_service.engine, builder_service.archive, builder_service.orchestrate")
    return out


# -- the report ----------------------------------------------------------------------------------------


def cell_summary(results: dict, tool: str, scenario: str, set_name: str) -> dict:
    return summarize(select_runs(results, tool, scenario, set_name))


def vcell(summary: dict) -> str:
    """``fmt_cell`` with a failure kept short (the whole message is under "Failures")."""
    if summary["n"] and not summary["ok"]:
        return f"✗ {md_escape(summary['errors'][0][:70])}… (all {summary['n']} failed)"
    return fmt_cell(summary)


def ratio(a: dict, b: dict) -> float | None:
    if not a.get("ok") or not b.get("ok"):
        return None
    return a["median"] / b["median"]


def fmt_x(value: float | None, *, goal_max: float | None = None, goal_min: float | None = None) -> str:
    if value is None:
        return "—"
    text = f"{value:.2f}x" if value < 10 else f"{value:.0f}x"
    if goal_max is not None:
        text += " ✓" if value <= goal_max else " ✗"
    if goal_min is not None:
        text += " ✓" if value >= goal_min else " ✗"
    return text


def ratios(results: dict, name: str) -> dict[str, float | None]:
    """Ratios of venvsmith's repeat (embedded and over gRPC) to uv and pip, for the report and the chart."""
    s = {f"{t}/{sc}": cell_summary(results, t, sc, name) for t, sc, _ in SERIES}
    out = {}
    for key, label in (("venvsmith/repeat", "repeat"), ("venvsmith-server/repeat", "server_repeat")):
        out[f"{label}_vs_uv_cold"] = ratio(s[key], s["uv/cold"])
        out[f"{label}_vs_uv_warm"] = ratio(s[key], s["uv/warm"])
        speed = ratio(s["pip/cold"], s[key])
        out[f"pip_vs_{label}"] = speed
    out["first_vs_uv_cold"] = ratio(s["venvsmith/first"], s["uv/cold"])
    return out


def first_installed(results: dict, tool: str, name: str) -> dict[str, str] | None:
    for r in results["runs"]:
        if r["tool"] == tool and r["set_name"] == name and r["pins"]:
            return r["pins"]
    return None


def pressure_note(machine: dict) -> str:
    psi = machine.get("cpu_pressure_during")
    if not psi:
        return ""
    return (f"; CPU pressure (PSI `some avg10`, time with a runnable task waiting for a CPU) {min(psi):.0f}–"
            f"{max(psi):.0f}% (median {statistics.median(psi):.0f}%) at the start of each set")


def render_markdown(results: dict, chart: str | None) -> str:
    sets = list(results["sets"])
    m = results["machine"]
    loads = m.get("load_during") or [m["load_before"]]
    title = f"# Time-to-ready venv, {results['date']}"
    title += " (quick smoke run)" if results["quick"] else ""
    title += ", local mirror" if results.get("mirror") else ""
    out = [title, ""]
    start = results["versions"].get("venvsmith_code_at_start")
    if start and start != results["versions"].get("venvsmith_code"):
        out += [f"**The checked-out venvsmith changed during this run** (code {start} to "
                f"{results['versions']['venvsmith_code']}): each process ran the code on disk when it started.", ""]
    if results.get("venvsmith_pythonpath"):
        out += [f"**venvsmith ran with `PYTHONPATH={results['venvsmith_pythonpath']}`** (a candidate fix, not the "
                "checked-out tree).", ""]
    out += [
        f"venvsmith {results['versions']['venvsmith']} vs {results['versions']['uv']} and "
        f"{results['versions']['pip']} (as `python -m venv` seeds it); target: CPython "
        f"{results['target']['python']} (`{results['target']['interpreter']}`) for every tool; "
        f"{m['cpus']} CPUs, {m['platform']}; 1-min load average {m['load_before']} before, "
        f"{min(loads):.2f}–{max(loads):.2f} (median {statistics.median(loads):.2f}) at the start of each set, "
        f"{m['load_after']} after{pressure_note(m)}; venvsmith's Python bytecode: {results['bytecode']}.",
        "",
        "Index settings (every tool gets the same, explicitly):",
        "",
        *[f"- {line}" for line in results["index"]],
        "",
        f"Every figure is the wall clock of the tool's fresh subprocesses into a **new, empty target directory**, "
        f"repeated {results['repeat']}x with the tools' order rotating; median (min–max). Each venv must import "
        "the set's modules afterwards (not timed).",
        "",
        "- **venvsmith first**: `venvsmith venv D -r SET` (embedded) with an empty `VENVSMITH_HOME`; **repeat**: "
        "same home, new `D` (the venv archive comes from the store: unpacked, or, where the checked-out code has "
        "it, cloned with hard links from an unpacked template in the home);",
        "- **server first / repeat**: the same through `--server` to a `venvsmith serve builder` subprocess "
        "started with an empty home for the set; the client's home is empty each time, so the archive "
        "travels over gRPC `GetArtifact` (server start-up not included);",
        "- **uv cold / warm**: `uv venv D --python P` + `uv pip install --python D/bin/python -r SET` with an "
        "empty / the same `--cache-dir`;",
        "- **pip**: `P -m venv D` + `D/bin/pip install --no-cache-dir -r SET` (pip compiles bytecode, the others "
        "do not).",
        "",
        "| set | venvsmith first | venvsmith repeat | server first | server repeat | uv cold | uv warm | pip |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in sets:
        cells = [vcell(cell_summary(results, t, sc, name)) for t, sc, _ in SERIES]
        out.append(f"| `{name}` | " + " | ".join(cells) + " |")

    out += ["", f"Ratios (median / median; goals for a built set: ≤ {GOAL_UV_RATIO:g}x uv cold, ≥ "
            f"{GOAL_PIP_SPEEDUP:g}x faster than pip):", "",
            "| set | repeat / uv cold | repeat / uv warm | pip / repeat | server repeat / uv cold "
            "| server repeat / uv warm | pip / server repeat | first / uv cold |",
            "|---|---|---|---|---|---|---|---|"]
    for name in sets:
        r = ratios(results, name)
        out.append(
            f"| `{name}` | {fmt_x(r['repeat_vs_uv_cold'], goal_max=GOAL_UV_RATIO)} | "
            f"{fmt_x(r['repeat_vs_uv_warm'])} | {fmt_x(r['pip_vs_repeat'], goal_min=GOAL_PIP_SPEEDUP)} | "
            f"{fmt_x(r['server_repeat_vs_uv_cold'], goal_max=GOAL_UV_RATIO)} | "
            f"{fmt_x(r['server_repeat_vs_uv_warm'])} | "
            f"{fmt_x(r['pip_vs_server_repeat'], goal_min=GOAL_PIP_SPEEDUP)} | {fmt_x(r['first_vs_uv_cold'])} |")

    out += ["", "Sets: " + "; ".join(f"`{n}` = `{' '.join(reqs)}` (imports `{', '.join(results['imports'][n])}`)"
                                     for n, reqs in results["sets"].items())]

    out += ["", "## What each tool installed", "",
            "Distributions found in each venv's site-packages (first successful run of each tool), compared with "
            "venvsmith's (pip and setuptools seeded by `python -m venv` left out):", "",
            "| set | venvsmith | uv | pip | uv vs venvsmith | pip vs venvsmith |", "|---|---|---|---|---|---|"]
    notes: list[str] = []
    for name in sets:
        vs = first_installed(results, "venvsmith", name) or first_installed(results, "venvsmith-server", name)
        uv = first_installed(results, "uv", name)
        pip = first_installed(results, "pip", name)
        if pip is not None and not (vs and SEEDED & set(vs)):
            pip = {k: v for k, v in pip.items() if k not in SEEDED}
        cells = []
        for other, label in ((uv, "uv"), (pip, "pip")):
            if vs is None or other is None:
                cells.append("—")
                continue
            summary, details = compare_pins(vs, other, ("venvsmith", label))
            cells.append(summary)
            if details:
                notes.append(f"- **{name}**, {label}: " + "; ".join(details))
        counts = " | ".join(str(len(x)) if x is not None else "—" for x in (vs, uv, pip))
        out.append(f"| `{name}` | {counts} | {cells[0]} | {cells[1]} |")
    if notes:
        out += ["", *notes]
    if not results.get("mirror"):
        out += ["", "pip unions every index; venvsmith and uv default to first-index (a name found on an extra "
                "index is taken from there only), so pip may install other versions."]

    sdist = [n for n in sets if n.startswith("sdist")]
    if sdist:
        out += ["", "## sdist-only set: first build vs repeat", "",
                "| set | tool | first / cold | repeat / warm | ratio |", "|---|---|---|---|---|"]
        for name in sdist:
            for tool, a, b in (("venvsmith", "first", "repeat"), ("venvsmith-server", "first", "repeat"),
                               ("uv", "cold", "warm"), ("pip", "cold", None)):
                sa = cell_summary(results, tool, a, name)
                sb = cell_summary(results, tool, b, name) if b else {"n": 0}
                rr = ratio(sa, sb) if b else None
                out.append(f"| `{name}` | {tool} | {vcell(sa)} | {vcell(sb)} | "
                           f"{'repeat ' + fmt_x(rr) + ' faster' if rr else '—'} |")

    if results["servers"]:
        out += ["", "## Builder server (`venvsmith serve builder`, one per set and repetition)", "",
                "| set | start → healthy | RSS idle | peak RSS (VmHWM) after first + repeat |", "|---|---|---|---|"]
        for name in sets:
            rows = [s for s in results["servers"] if s["set_name"] == name and s.get("rss_peak_mib")]
            if not rows:
                continue
            med = {k: statistics.median(s.get(k, 0.0) for s in rows)
                   for k in ("startup_s", "rss_idle_mib", "rss_peak_mib")}
            out.append(f"| `{name}` | {med['startup_s']:.2f} s | {med['rss_idle_mib']:.0f} MiB | "
                       f"{med['rss_peak_mib']:.0f} MiB (max {max(s['rss_peak_mib'] for s in rows):.0f}) |")
        out += ["", "Peak RSS is the server process's own; sdist builds run in child processes, not counted."]

    if results.get("profile"):
        out += ["", *render_profile(results["profile"], results)]

    out += failures_section(results)
    if chart:
        out += ["", f"![time-to-ready venv]({chart})"]
    return "\n".join(out) + "\n"


def render_profile(p: dict, results: dict) -> list[str]:
    out = [f"## Where venvsmith's embedded repeat spends its time (`{p['set_name']}`)", ""]
    if p.get("error") and "timeline" not in p:
        return [*out, f"Profiling failed: {md_escape(p['error'])}"]
    t = p["timeline"]
    walls = ", ".join(f"{w:.2f}" for w in p.get("timeline_walls_s", []))
    out += [f"`bench/profile_venv.py` runs `venvsmith.cli.main` with the phases timed (no profiler); the "
            f"median of {len(p.get('timeline_walls_s', []))} runs (process walls {walls} s). Python start-up "
            f"alone (`python -c pass`, process wall): {p['python_startup_s']:.3f} s; `python -c 'import venvsmith.cli, "
            f"builder_service.engine, ...'` (process wall): {p['import_s']:.3f} s.", "",
            "| phase | seconds | share |", "|---|---|---|"]
    total = t["process_wall_s"]
    rows = [("interpreter start-up + exit (process wall − in-process)", total - t["in_process_s"]),
            *[(ph["name"], ph["s"]) for ph in t["phases"]]]
    for label, seconds in rows:
        out.append(f"| {label} | {seconds:.3f} | {seconds / total:.0%} |")
    out.append(f"| **total (process wall)** | **{total:.3f}** | |")
    if t.get("resolve_stats"):
        out += ["", "Resolve summary: " + ", ".join(f"{k} {v}" for k, v in t["resolve_stats"].items())
                + ". Build result: " + ", ".join(f"{k} {v}" for k, v in t.get("build_stats", {}).items()) + "."]
    c = p.get("cprofile") or {}
    if c.get("error"):
        out += ["", f"cProfile run failed: {md_escape(c['error'])}"]
    elif c:
        out += ["", f"cProfile (every thread; the run took {c['process_wall_s']:.2f} s under the profiler). "
                "Main thread, top functions by cumulative time:", "",
                "| function | calls | own s | cumulative s |", "|---|---|---|---|"]
        out += [f"| `{md_escape(r['func'])}` | {r['ncalls']} | {r['tottime']:.3f} | {r['cumtime']:.3f} |"
                for r in c["main_cumulative"]]
        out += ["", "Main thread, top functions by own time:", "", "| function | calls | own s | cumulative s |",
                "|---|---|---|---|"]
        out += [f"| `{md_escape(r['func'])}` | {r['ncalls']} | {r['tottime']:.3f} | {r['cumtime']:.3f} |"
                for r in c["main_own"]]
        if c.get("threads"):
            out += ["", "Other threads (" + ", ".join(f"{k} ×{v}" for k, v in c["thread_counts"].items())
                    + "), project functions by cumulative time:", "",
                    "| function | calls | own s | cumulative s |", "|---|---|---|---|"]
            out += [f"| `{md_escape(r['func'])}` | {r['ncalls']} | {r['tottime']:.3f} | {r['cumtime']:.3f} |"
                    for r in c["threads"]]
    return out


def write_report(results: dict, outdir: Path, base: str) -> Path:
    results["ratios"] = {name: ratios(results, name) for name in results["sets"]}
    return save_report(results, outdir, base, render_markdown, "plot_venv.py")


# -- entry point -------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = bench_parser("venv_bench", __doc__, default_sets=DEFAULT_SETS, timeout=1800.0,
                     quick_help=f"smoke run: {QUICK_SET} once (pip included)",
                     repeat_help="repetitions per set (default 5)",
                     keep_work_help="keep homes, caches and venvs under bench/work/")
    p.add_argument("--skip-pip", action="store_true", help="do not time pip")
    p.add_argument("--pip-runs", type=int, default=None, metavar="N",
                   help="time pip in the first N repetitions only (default: all)")
    p.add_argument("--no-profile", action="store_true", help="skip the profile of the repeat path")
    p.add_argument("--profile-set", default="jupyter", help="set whose embedded repeat is profiled")
    p.add_argument("--profile-runs", type=int, default=3, help="timeline runs of the profiled repeat")
    return p


def _quick(opts: argparse.Namespace) -> None:
    opts.profile_runs = 1
    opts.profile_set = opts.sets[0]


def main(argv: list[str] | None = None, strict: bool = True) -> int:
    return bench_main(argv, strict, parser=build_parser(), kind="venv", run=run_bench, write_report=write_report,
                      quick=_quick)


if __name__ == "__main__":
    sys.exit(main())
