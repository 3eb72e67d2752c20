"""New CI pods (issue 14): venvsmith's node-shared environments and thin client next to uv, in the same run.

A ``venvsmith serve builder`` subprocess (``--http-port``, ``--metrics-port``) is started once per set with an
empty home and builds the set first (one untimed ``venvsmith venv --server`` through it); every client below
then has an **empty** ``VENVSMITH_HOME`` (a new pod) and a **fresh** target directory. Per set and repetition,
in an order that rotates:

1. **new pod, node already has the environment**: ``venvsmith venv D -r SET --server ADDR --node-cache N``, ``N``
   filled once by an untimed first run: ``D`` on ``N``'s filesystem (hard links) and, when a second filesystem
   is writable (``--layer-root``, default ``/dev/shm``), ``D`` there (the layered venv); next to ``uv venv D &&
   uv pip install -r SET`` with a warm ``--cache-dir`` (and cold, for reference);
2. **new pod, new node**: the same with an empty ``N``, next to uv cold; and today's path for reference:
   ``--server`` without a node cache (every pod downloads and unpacks the archive);
5. **embedded resolve, new set, warm metadata caches**: ``venvsmith resolve -r SET --no-cache`` on a home whose
   index-page and metadata caches an untimed first resolve filled (``resolve_bench``'s *warm*: the resolution
   cache is bypassed, the resolver runs), next to ``uv pip compile`` on its warmed ``--cache-dir``.

Scenarios 1-2 run both with the default client (it checks the server's pins against its own indexes, with its
empty home: a cold resolve) and with ``--no-verify``. Then, per set and repetition:

3. **pods on one node at once** (``--pods``, default 20): that many ``venvsmith venv --server --node-cache N``
   processes started together with one empty ``N``, distinct homes and targets (``--no-verify``: the node's fill
   is measured, not 20 resolves): wall until all are ready, and the archive's downloads counted by the builder's
   ``venvsmith_artifact_bytes_sent_total`` / ``venvsmith_artifact_reads_total`` (bytes over the archive's size);
   without ``--node-cache`` too, once per set (``--herd-baseline-runs``), for reference;

and once per run, on ``requests`` (or the first set):

4. **the client's cache-hit path**: ``bench/trace_client.py`` runs the CLI with gRPC's client calls timed (start
   -> CLI imported -> first RPC -> last RPC -> ``main`` returned), a run with ``-X importtime``
   (``PYTHONPROFILEIMPORTTIME``), and ``python -c pass``, next to uv warm's two steps.

Without ``--node-cache`` in ``venvsmith venv --help``, its rows say "not available" and the rest still runs.
Every venv produced must import the set's modules (checked untimed). Index: pip's default index alone, read from
its configuration at run time (its extra indexes and find-links left out; or ``--mirror``), the same for every
tool; target: the bench venv's base interpreter.

Results: ``bench/results/<date>-pod.md`` (+ ``.json`` and ``.png`` drawn by ``bench/plot_pod.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import asdict
from functools import partial
from pathlib import Path

import pod_report
from common import BENCH, QUICK_SET, SCRUB, Trash, bench_main, bench_parser, failure_text, remove_tree, run_fields
from resolve_bench import IndexArgs, ResolverServer, Run, free_port, git_describe, start_run, tool_version, wait_idle
from venv_bench import VenvTools, code_revision, cpu_pressure, modules_for

DEFAULT_SETS = ("jupyter", "requests")
PODS = 20
#: Seconds between deleting a set's trash and its timed runs (ext4's RECENTCY_MIN is 60 s; the sync before makes
#: the freed inodes' table blocks clean, else 300 s).
SETTLE = 65.0
#: Where a target on another filesystem than the node cache goes (the layered venv), unless --layer-root.
LAYER_ROOTS = ("/dev/shm", tempfile.gettempdir())


class PodTools(VenvTools):
    """:class:`VenvTools` plus what the client of this checkout offers (``venvsmith venv --help``)."""

    def __init__(self, opts: argparse.Namespace, index, work: Path) -> None:
        super().__init__(opts, index, work)
        for env in (self.env, self.vs_env, self.check_env):
            env.pop("VENVSMITH_NODE_CACHE", None)
        proc = subprocess.run([str(self.venvsmith), "venv", "--help"], env=self.vs_env, capture_output=True,
                              text=True, check=False)
        self.venv_help = proc.stdout
        self.has_node_cache = "--node-cache" in proc.stdout
        self.trash = Trash(work / "trash")
        self.discard = self.trash.discard
        self.has_no_verify = "--no-verify" in proc.stdout
        # ``--node-cache-mode {auto,hardlink,layered}``: each placement asked for by name, on one filesystem
        self.has_node_cache_mode = "--node-cache-mode" in proc.stdout and "layered" in proc.stdout

    def pod(self, name: str, set_file: Path, dest: Path, home: Path, *, server: str, node: Path | None,
            verify: bool, scenario: str, rep: int, mode: str | None = None) -> Run:
        """A new pod: ``venvsmith venv DEST --server ADDR [--node-cache NODE [--node-cache-mode MODE]]
        [--no-verify]``, empty ``home``."""
        extra = ["--node-cache", str(node)] if node is not None else []
        if node is not None and mode and self.has_node_cache_mode:
            extra += ["--node-cache-mode", mode]
        if not verify:
            extra.append("--no-verify")
        try:
            return self.venvsmith_venv(name, set_file, dest, home, scenario=scenario, rep=rep, server=server,
                                       extra=extra, tool="venvsmith")
        finally:
            self.discard(home)


# -- the builder's metrics -------------------------------------------------------------------------------


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def metric_sum(samples: dict, name: str) -> float | None:
    """The sum over labels of ``name``; None when the server does not export it."""
    values = [v for (n, _), v in samples.items() if n == name]
    return sum(values) if values else None


def get_artifact_calls(samples: dict) -> float:
    return sum(v for (n, labels), v in samples.items() if n == "venvsmith_rpc_requests_total"
               and dict(labels).get("method") == "GetArtifact")


def downloads(before: dict, after: dict, archive_bytes: int) -> dict:
    """What the builder served between two scrapes: reads, bytes, GetArtifact calls, and bytes / archive size."""
    out: dict = {"get_artifact_calls": get_artifact_calls(after) - get_artifact_calls(before)}
    for key, name in (("reads", "venvsmith_artifact_reads_total"), ("bytes", "venvsmith_artifact_bytes_sent_total")):
        a, b = metric_sum(after, name), metric_sum(before, name)
        out[key] = None if a is None else a - (b or 0.0)
    if out["bytes"] is not None and archive_bytes:
        out["archive_downloads"], out["counted_by"] = out["bytes"] / archive_bytes, "bytes sent / archive size"
    else:  # a builder without the artifact counters: its GetArtifact calls (a resumed download counts twice)
        out["archive_downloads"], out["counted_by"] = out["get_artifact_calls"], "GetArtifact calls"
    return out


class Builder:
    """The set's ``serve builder`` (HTTP and metrics ports), built once: the archive's size and lock key."""

    def __init__(self, tools: PodTools, home: Path) -> None:
        self.metrics_port, self.http_port = free_port(), free_port()
        self.server = ResolverServer(tools, home, service="builder", extra_args=[
            "--metrics-port", str(self.metrics_port), "--http-port", str(self.http_port)])
        self.tools = tools
        self.info: dict = {}

    @property
    def address(self) -> str:
        return self.server.address

    def start_and_build(self, name: str, set_file: Path, work: Path) -> str:
        """Start the server, build the set through one ``venvsmith venv --server``; an error or ''."""
        try:
            self.server.start()
        except Exception as exc:  # noqa: BLE001 - recorded; the set's venvsmith rows then fail
            return SCRUB(f"builder server did not start: {exc}")[:300]
        self.info["startup_s"] = self.server.startup_s
        built = self.tools.venvsmith_venv(name, set_file, work / "build-venv", work / "build-home",
                                          scenario="build", rep=-1, server=self.address)
        shutil.rmtree(work / "build-home", ignore_errors=True)
        self.info["first_build_s"] = built.seconds
        if not built.ok:
            return f"the first build failed: {built.error}"
        cmd = [str(self.tools.venvsmith), "build", "-r", str(set_file), "--server", self.address, "--no-wheelhouse",
               "--format", "json", "-q", *self.tools.index.argv(), *self.tools.vs_target]
        proc = subprocess.run(cmd, env={**self.tools.vs_env, "VENVSMITH_HOME": str(work / "build-home")},
                              cwd=self.tools.work, capture_output=True, text=True, timeout=self.tools.opts.timeout)
        shutil.rmtree(work / "build-home", ignore_errors=True)
        if proc.returncode != 0:
            return f"venvsmith build --server: {failure_text(proc)}"
        doc = json.loads(proc.stdout)
        archive = next((a for a in doc["artifacts"] if "venv" in a["kind"]), None)
        if archive is None:
            return "venvsmith build --server named no venv archive"
        self.info.update(lock_key=doc["lock_key"], archive_bytes=int(archive["digest"].rsplit("/", 1)[1]),
                         archive=archive["filename"], packages=built.stats.get("packages"))
        return ""

    def metrics(self) -> dict:
        return scrape(self.metrics_port)

    def stop(self) -> None:
        self.info["rss_peak_mib"] = self.server.memory().get("VmHWM", 0.0)
        self.server.stop()


# -- scenarios 1, 2 and 5: one set, one repetition ------------------------------------------------------


def venv_modes(tools: PodTools) -> list[tuple[str, bool]]:
    """(scenario suffix, verify): the default client, and ``--no-verify`` when the client has it."""
    return [("", True), *([("/no-verify", False)] if tools.has_no_verify else [])]


def cell_jobs(tools: PodTools, name: str, set_file: Path, cell: Path, rep: int, server: str, node_warm: Path,
              layer: Path | None, uv_warm: Path, resolve_home: Path, compile_cache: Path, record) -> list:
    """The interleaved jobs of one set and repetition: callables that time one thing and ``record`` it."""

    def uv_cold() -> None:
        record(tools.uv_venv(name, set_file, cell / "uv-cold", cell / "uv-cold-cache", scenario="cold", rep=rep))
        tools.discard(cell / "uv-cold-cache")

    def pod(scenario: str, dest: Path, node: Path | None, verify: bool, mode: str | None = None) -> None:
        record(tools.pod(name, set_file, dest, cell / f"home-{scenario.replace('/', '-')}", server=server,
                         node=node, verify=verify, scenario=scenario, rep=rep, mode=mode))

    def new_node(scenario: str, tag: str, verify: bool) -> None:
        node = cell / f"node-empty-{tag}"
        node.mkdir(parents=True)
        try:
            pod(scenario, cell / f"new-node-{tag}", node, verify)
        finally:
            tools.discard(node)

    jobs = [uv_cold, partial(record_call, record, tools.uv_venv, name, set_file, cell / "uv-warm", uv_warm,
                             scenario="warm", rep=rep)]
    for suffix, verify in venv_modes(tools):
        tag = suffix.strip("/") or "verify"
        jobs.append(partial(pod, f"server{suffix}", cell / f"server-{tag}", None, verify))
        if tools.has_node_cache:
            jobs.append(partial(pod, f"node-hit{suffix}", cell / f"hit-{tag}", node_warm, verify, "hardlink"))
            jobs.append(partial(new_node, f"new-node{suffix}", tag, verify))
            if tools.has_node_cache_mode:  # layered by name, on the node cache's filesystem
                jobs.append(partial(pod, f"node-hit-layered{suffix}", cell / f"layered-{tag}", node_warm, verify,
                                    "layered"))
            elif layer is not None:  # layered because the target is on another filesystem
                jobs.append(partial(pod, f"node-hit-layered{suffix}", layer / f"rep{rep}-{tag}", node_warm, verify))
    jobs.append(partial(record_call, record, tools.venvsmith_resolve, set_file, resolve_home, no_cache=True,
                        scenario="resolve-warm", set_name=name, rep=rep))
    jobs.append(partial(record_call, record, tools.uv_compile, set_file, compile_cache, scenario="compile-warm",
                        set_name=name, rep=rep))
    return jobs


def record_call(record, timed, *args, **kwargs) -> None:
    """``record(timed(*args, **kwargs))``: one timed tool run as a job."""
    record(timed(*args, **kwargs))


# -- scenario 3: pods on one node at once --------------------------------------------------------------


def herd(tools: PodTools, builder: Builder, name: str, set_file: Path, work: Path, pods: int, rep: int,
         node_cache: bool) -> dict:
    """``pods`` clients started together (one empty node cache, or none); wall until the last is ready and
    what the builder served meanwhile."""
    work.mkdir(parents=True, exist_ok=True)
    node = work / "node"
    extra = ["--node-cache", str(node)] if node_cache else []
    if tools.has_no_verify:
        extra.append("--no-verify")
    if node_cache:
        node.mkdir()
    row: dict = {"set_name": name, "rep": rep, "mode": "node cache" if node_cache else "no node cache",
                 "pods": pods, "verify": not tools.has_no_verify}
    try:
        before = builder.metrics()
    except OSError as exc:
        return {**row, "error": f"metrics unreachable: {exc}"}
    procs, ends, logs = [], {}, []
    os.sync()  # untimed, as before every timed run
    started = time.perf_counter()
    for i in range(pods):
        home = work / f"home-{i}"
        home.mkdir()
        log = open(work / f"pod-{i}.log", "w", encoding="utf-8")  # noqa: SIM115 - closed below
        logs.append(log)
        procs.append(subprocess.Popen(tools.venvsmith_venv_cmd(set_file, work / f"venv-{i}", builder.address, extra),
                                      env={**tools.vs_env, "VENVSMITH_HOME": str(home)}, cwd=tools.work,
                                      stdout=log, stderr=subprocess.STDOUT))

    def wait(i: int, proc: subprocess.Popen) -> None:
        try:
            proc.wait(timeout=tools.opts.timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        ends[i] = time.perf_counter() - started

    waiters = [threading.Thread(target=wait, args=(i, p)) for i, p in enumerate(procs)]
    for t in waiters:
        t.start()
    for t in waiters:
        t.join()
    for log in logs:
        log.close()
    row["wall_s"] = max(ends.values())
    row["pod_s"] = [ends[i] for i in range(pods)]
    try:
        row.update(downloads(before, builder.metrics(), builder.info.get("archive_bytes", 0)))
    except OSError as exc:
        row["error"] = f"metrics unreachable: {exc}"
    errors = []
    for i, proc in enumerate(procs):
        run = Run("venvsmith", "herd", name, rep, ends[i])
        if proc.returncode != 0:
            text = (work / f"pod-{i}.log").read_text(encoding="utf-8", errors="replace")
            run.error = failure_text(subprocess.CompletedProcess([], proc.returncode, text, ""))
        run = tools.check(run, work / f"venv-{i}", name, set_file)
        if run.error:
            errors.append(f"pod {i}: {run.error}")
    row["ready"] = pods - len(errors)
    row["errors"] = [SCRUB(e)[:300] for e in errors[:5]]
    return row


# -- scenario 4: the client's cache-hit path ------------------------------------------------------------


def importtime_total(stderr: str) -> tuple[float, list[tuple[str, float]]]:
    """``-X importtime``: the sum of the top-level imports' cumulative times (s), and the ten largest of them."""
    top = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        parts = line[len("import time:"):].split("|")
        if len(parts) != 3:
            continue
        label = parts[2].rstrip()
        if label.startswith(" ") and not label.startswith("  "):  # one space: a top-level import
            top.append((label.strip(), int(parts[1]) / 1e6))
    return sum(s for _, s in top), sorted(top, key=lambda kv: -kv[1])[:10]


def trace_client(tools: PodTools, name: str, set_file: Path, work: Path, server: str, node: Path | None,
                 verify: bool, runs: int) -> dict:
    """Timeline (median of ``runs`` by process wall), import time and Python start-up of one client mode."""
    python = tools.venvsmith.parent / "python"
    extra = ["--node-cache", str(node)] if node is not None else []
    if node is not None and tools.has_node_cache_mode:
        extra += ["--node-cache-mode", "hardlink"]
    if not verify:
        extra.append("--no-verify")
    out: dict = {"set_name": name, "node_cache": node is not None, "verify": verify}
    traces = []
    for i in range(runs):
        home, dest, report = work / f"home-{i}", work / f"venv-{i}", work / f"trace-{i}.json"
        home.mkdir(parents=True, exist_ok=True)
        cmd = [str(python), str(BENCH / "trace_client.py"), "--out", str(report), "--",
               *tools.venvsmith_venv_cmd(set_file, dest, server, extra)[1:]]
        started = time.perf_counter()
        proc = subprocess.run(cmd, env={**tools.vs_env, "VENVSMITH_HOME": str(home)}, cwd=tools.work,
                              capture_output=True, text=True, timeout=tools.opts.timeout)
        wall = time.perf_counter() - started
        tools.discard(home)
        run = tools.check(Run("venvsmith", "trace", name, i, wall,
                              error="" if proc.returncode == 0 else failure_text(proc)), dest, name, set_file)
        if run.error or not report.exists():
            return {**out, "error": run.error or "no trace written"}
        traces.append({**json.loads(report.read_text(encoding="utf-8")), "process_wall_s": wall})
    out["walls_s"] = [t["process_wall_s"] for t in traces]
    out["trace"] = sorted(traces, key=lambda t: t["process_wall_s"])[len(traces) // 2]
    home, dest = work / "home-importtime", work / "venv-importtime"
    proc = subprocess.run(tools.venvsmith_venv_cmd(set_file, dest, server, extra),
                          env={**tools.vs_env, "VENVSMITH_HOME": str(home), "PYTHONPROFILEIMPORTTIME": "1"},
                          cwd=tools.work, capture_output=True, text=True, timeout=tools.opts.timeout)
    tools.discard(home)
    tools.discard(dest)
    if proc.returncode == 0:
        out["importtime_s"], out["importtime_top"] = importtime_total(proc.stderr)
    else:
        out["importtime_error"] = SCRUB(failure_text(proc))
    walls = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run([str(python), "-c", "pass"], env=tools.vs_env, cwd=tools.work, check=False)
        walls.append(time.perf_counter() - started)
    out["python_startup_s"] = statistics.median(walls)
    return out


# -- the run -------------------------------------------------------------------------------------------------


def layer_root(opts: argparse.Namespace, node_dir: Path) -> Path | None:
    """A writable directory on another filesystem than the node cache (the layered case), or None."""
    device = node_dir.stat().st_dev
    for root in ([opts.layer_root] if opts.layer_root else LAYER_ROOTS):
        path = Path(root)
        try:
            if path.is_dir() and os.access(path, os.W_OK) and path.stat().st_dev != device:
                return Path(tempfile.mkdtemp(prefix="venvsmith-pod-bench-", dir=path))
        except OSError:
            continue
    return None


def run_set(tools: PodTools, opts: argparse.Namespace, name: str, set_file: Path, setdir: Path, index: int,
            record, herds: list, traces: list, loads: list, pressure: list) -> dict:
    """Every scenario of one set on its own builder server; returns the server's figures."""
    builder = Builder(tools, setdir / "server-home")
    print(f"{name}: starting the builder and building the set ...", flush=True)
    error = builder.start_and_build(name, set_file, setdir)
    info = {"set_name": name, **builder.info}
    if error:
        builder.stop()
        info["error"] = error
        print(f"  {name}: {error[:300]}", flush=True)
        return info
    node_warm, layer = setdir / "node-warm", None
    node_warm.mkdir(parents=True, exist_ok=True)
    if tools.has_node_cache:
        filled = tools.pod(name, set_file, setdir / "fill-venv", setdir / "fill-home", server=builder.address,
                           node=node_warm, verify=not tools.has_no_verify, scenario="fill", rep=-1)
        info["node_fill_s"] = filled.seconds
        if not filled.ok:
            info["node_fill_error"] = filled.error
        layer = None if tools.has_node_cache_mode else layer_root(opts, node_warm)
    info["layered_by"] = ("--node-cache-mode layered" if tools.has_node_cache_mode
                          else f"a target on another filesystem ({layer.parent})" if layer else None)
    uv_warm, resolve_home, compile_cache = setdir / "uv-warm-cache", setdir / "resolve-home", setdir / "compile-cache"
    warm_ups = [tools.uv_venv(name, set_file, setdir / "uv-warm-up", uv_warm, scenario="warm-up", rep=-1),
                tools.venvsmith_resolve(set_file, resolve_home, no_cache=False, scenario="warm-up", set_name=name,
                                        rep=-1),
                tools.uv_compile(set_file, compile_cache, scenario="warm-up", set_name=name, rep=-1)]
    info["warm_up_errors"] = [f"{r.tool}: {r.error}" for r in warm_ups if r.error]
    # What the build and the warm-ups left (and the set before) is deleted now, then the disk settles: no timed
    # run below follows a deletion (see common.Trash).
    tools.trash.empty(opts.settle)
    try:
        for rep in range(opts.repeat):
            cell = setdir / f"rep{rep}"
            cell.mkdir(parents=True, exist_ok=True)
            loads.append(os.getloadavg()[0])
            if (psi := cpu_pressure()) is not None:
                pressure.append(psi)
            jobs = cell_jobs(tools, name, set_file, cell, rep, builder.address, node_warm, layer, uv_warm,
                             resolve_home, compile_cache, record)
            shift = (rep + index) % len(jobs)
            for job in [*jobs[shift:], *jobs[:shift]]:
                os.sync()  # untimed: the previous run's deletions and writes are flushed before this one starts
                job()
            modes = [True] if tools.has_node_cache else []
            if rep < opts.herd_baseline_runs:
                modes.append(False)
            for node_cache in modes:
                row = herd(tools, builder, name, set_file, cell / f"herd-{int(node_cache)}", opts.pods, rep,
                           node_cache)
                herds.append(row)
                print(f"  rep {rep} {name:<12} {opts.pods} pods ({row['mode']}): {row.get('wall_s', 0):.2f} s, "
                      f"{row.get('ready', 0)}/{opts.pods} ready, archive downloads {row.get('archive_downloads')}"
                      f"{' ' + row['error'] if row.get('error') else ''}", flush=True)
            if not opts.keep_work:
                tools.discard(cell)
        if name == opts.trace_set:
            node = node_warm if tools.has_node_cache else None
            for _, verify in venv_modes(tools):
                print(f"  {name}: client timeline ({'verify' if verify else '--no-verify'})", flush=True)
                traces.append(trace_client(tools, name, set_file, setdir / f"trace-{int(verify)}",
                                           builder.address, node, verify, opts.trace_runs))
    finally:
        builder.stop()
        info.update(builder.info)
        if layer is not None:
            remove_tree(layer)
    return info


def run_bench(opts: argparse.Namespace) -> dict:
    if not getattr(opts, "index_override", None):  # issue 14's comparison: the default index only
        opts.index_override = IndexArgs.default_only()
    index, sets, stamp, work = start_run(opts, "pod")
    tools = PodTools(opts, index, work)
    names = [n for n, _ in sets]
    opts.trace_set = opts.trace_set if opts.trace_set in names else (QUICK_SET if QUICK_SET in names else names[0])
    rev_start = code_revision()
    runs: list[Run] = []
    herds: list[dict] = []
    traces: list[dict] = []
    servers: list[dict] = []
    loads: list[float] = []
    pressure: list[float] = []
    load_before = wait_idle(opts.wait_idle, opts.idle_load)
    if not opts.as_is:
        tools.warm_up(dict(sets).get(QUICK_SET, sets[0][1]))

    def record(run: Run) -> None:
        runs.append(run)
        status = "ok" if run.ok else f"FAILED {run.error[:160]}"
        print(f"  rep {run.rep} {run.set_name:<12} {run.tool:<10} {run.scenario:<28} {run.seconds:8.3f} s  "
              f"{status}", flush=True)

    print(f"pod bench: sets {', '.join(names)}; repeat {opts.repeat}; --node-cache "
          f"{'available' if tools.has_node_cache else 'NOT AVAILABLE'}; target Python {tools.target_version}; "
          f"work dir {work}", flush=True)
    for i, (name, set_file) in enumerate(sets):
        servers.append(run_set(tools, opts, name, set_file, work / name, i, record, herds, traces, loads,
                               pressure))
        if not opts.keep_work:
            tools.discard(work / name)
    if not opts.keep_work:
        remove_tree(work)
    load_after = os.getloadavg()[0]
    return {
        **run_fields(opts, stamp, sets),
        "repeat": opts.repeat,
        "settle": opts.settle,
        "pods": opts.pods,
        "imports": {name: list(modules_for(name, p)) for name, p in sets},
        "target": {"python": tools.target_version, "interpreter": str(tools.target_python),
                   "venvsmith_args": tools.vs_target},
        "index": index.describe(),
        "features": {"node_cache": tools.has_node_cache, "no_verify": tools.has_no_verify},
        "machine": {
            "platform": platform.platform(), "cpus": os.cpu_count(), "load_before": round(load_before, 2),
            "load_after": round(load_after, 2), "load_during": [round(x, 2) for x in loads],
            "cpu_pressure_during": pressure,
        },
        "bytecode": "as in the environment" if opts.as_is else "cached (PYTHONPYCACHEPREFIX, warmed up)",
        "versions": {
            "venvsmith": git_describe(), "venvsmith_code_at_start": rev_start, "venvsmith_code": code_revision(),
            "uv": tool_version([str(tools.uv), "--version"]),
        },
        "runs": [asdict(r) for r in runs],
        "herds": herds,
        "traces": traces,
        "servers": servers,
    }


# -- entry point -------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = bench_parser("pod_bench", __doc__, default_sets=DEFAULT_SETS, timeout=1800.0,
                     quick_help=f"smoke run: {QUICK_SET} once, one client timeline",
                     repeat_help="repetitions per set (default 5)",
                     keep_work_help="keep homes, node caches and venvs under bench/work/")
    p.add_argument("--pods", type=int, default=PODS, help=f"clients started at once on one node (default {PODS})")
    p.add_argument("--herd-baseline-runs", type=int, default=1, metavar="N",
                   help="repetitions that also start the pods without --node-cache (default 1)")
    p.add_argument("--layer-root", metavar="DIR",
                   help=f"a directory on another filesystem for the layered case (default: {', '.join(LAYER_ROOTS)})")
    p.add_argument("--settle", type=float, default=SETTLE, metavar="S",
                   help=f"seconds waited after the deletions before each set's timed runs (default {SETTLE:g}: "
                        "ext4 without a journal skips inodes freed less than 60 s ago)")
    p.add_argument("--trace-set", default=QUICK_SET, help=f"set of the client timeline (default {QUICK_SET})")
    p.add_argument("--trace-runs", type=int, default=5, help="timeline runs per client mode (default 5)")
    return p


def _quick(opts: argparse.Namespace) -> None:
    opts.trace_runs = 1


def main(argv: list[str] | None = None, strict: bool = True) -> int:
    return bench_main(argv, strict, parser=build_parser(), kind="pod", run=run_bench,
                      write_report=pod_report.write_report, quick=_quick)


if __name__ == "__main__":
    sys.exit(main())
