"""Resolve benchmark: venvsmith next to ``uv pip compile`` (and optionally pip) in the same run.

Three figures per requirement set (issue 3, "Speed"):

1. **cold**: empty ``VENVSMITH_HOME`` vs ``uv pip compile`` with an empty ``--cache-dir`` (and, once per set,
   ``pip install --dry-run --report -`` with an empty ``--cache-dir`` unless ``--skip-pip``);
2. **warm, new request**: the same homes/caches again, venvsmith with ``--no-cache`` (the resolution cache
   is bypassed, so the resolver runs again over cached index pages and metadata) vs uv's second run;
3. **repeat through a server**: ``venvsmith serve resolver`` in a subprocess with its own home, then N
   identical ``Resolve`` calls through the gRPC stub from this process; client-side p50/p99.

Every tool gets the same index settings, read at run time from pip's configuration: the default index URL,
the extra index URLs and the find-links. Every timing of a tool is the wall clock of one fresh subprocess
(``time.perf_counter`` around ``subprocess.run``). Cold/warm runs are repeated ``--repeat`` times, interleaved
across sets and tools (the tool that goes first alternates), and reported as median (min-max).

uv, matplotlib and pip-tools live in a separate bench venv (``bench/.venv``), never in the project venv; the
chart is drawn by ``bench/plot_resolve.py`` running under that venv's interpreter.

Results: ``bench/results/<YYYY-MM-DD>-resolve.md`` (+ ``.json`` and ``.png``); the table is printed too.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from common import (
    BENCH_VENV,
    QUICK_SET,
    REPO,
    SCRUB,
    WORK_DIR,
    bench_main,
    bench_parser,
    failure_text,
    resolve_set_files,
    run_fields,
    save_report,
)

PYCACHE_DIR = WORK_DIR / "pycache"
DEFAULT_SETS = ("jupyter", "fastapi-all", "datasci")
TARGET_PYTHON = "3.11"

# Issue 3's speed goals, checked in the report.
GOAL_COLD_RATIO = 1.5
GOAL_WARM_RATIO = 1.0
GOAL_SERVER_P50_MS = 5.0

_UV_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;#\\]+)")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# -- index settings --------------------------------------------------------------------------------


@dataclass(frozen=True)
class IndexArgs:
    """pip's index configuration, passed explicitly (same spelling) to venvsmith, uv and pip."""

    index_url: str | None
    extra_index_urls: tuple[str, ...]
    find_links: tuple[str, ...]
    no_index: bool
    cert: str | None
    origin: str
    #: Nothing else may join these settings: venvsmith completes a request's empty lists from pip's configuration
    #: (extra indexes, find-links), so with ``isolated`` it runs with ``PIP_CONFIG_FILE`` = the null device,
    #: as pip always does here. The ``--mirror`` index is isolated.
    isolated: bool = False

    @classmethod
    def from_pip_config(cls) -> IndexArgs:
        from venvsmith.core.config import default_index_url, read_pip_config

        config = read_pip_config()
        origin = config.origins.get("index-url", "pip's built-in default (read at run time)")
        return cls(
            index_url=None if config.no_index else default_index_url(config),
            extra_index_urls=tuple(config.extra_index_urls),
            find_links=tuple(config.find_links),
            no_index=config.no_index,
            cert=config.cert,
            origin=origin,
        )

    @classmethod
    def default_only(cls) -> IndexArgs:
        """pip's default index alone (its extra indexes and find-links left out), isolated from the rest of pip's
        configuration: the "default index only" comparisons (the pod bench). With ``no-index``: as configured."""
        full = cls.from_pip_config()
        if full.no_index:
            return full
        return cls(index_url=full.index_url, extra_index_urls=(), find_links=(), no_index=False, cert=full.cert,
                   origin=full.origin, isolated=True)

    def server_allow_args(self) -> list[str]:
        """``--allow-index`` options of a server run with ``PIP_CONFIG_FILE`` = the null device for this isolated
        index: none when it is pip's built-in default alone (the server's own default allows that index and the
        host it serves files from), else the origin of each location."""
        if not self.isolated:
            return []
        from venvsmith.core.config import PipIndexConfig, default_index_url
        from venvsmith.core.index.allowlist import origin_of

        if not (self.extra_index_urls or self.find_links) and self.index_url == default_index_url(PipIndexConfig()):
            return []
        args: list[str] = []
        for url in (self.index_url or "", *self.extra_index_urls, *self.find_links):
            if url:
                args += ["--allow-index", origin_of(url)]
        return args

    def argv(self) -> list[str]:
        args: list[str] = []
        if self.no_index:
            args.append("--no-index")
        else:
            args += ["--index-url", self.index_url or ""]
            for url in self.extra_index_urls:
                args += ["--extra-index-url", url]
        for link in self.find_links:
            args += ["--find-links", link]
        return args

    def describe(self) -> list[str]:
        """For the report: local locations verbatim, network indexes without their host."""
        lines = []
        if self.no_index:
            lines.append("default index: none (`no-index`)")
        else:
            lines.append(f"default index: {describe_location(self.index_url or '')} from {self.origin}")
        for url in self.extra_index_urls:
            lines.append(f"extra index: {describe_location(url)}")
        for link in self.find_links:
            lines.append(f"find-links: {describe_location(link)}")
        return lines


def describe_location(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme in ("http", "https"):
        return f"an {parts.scheme} index (host not recorded)"
    return f"`{url}`"


# -- running things ----------------------------------------------------------------------------------


@dataclass
class Run:
    """One timed subprocess: a tool on a set in a scenario."""

    tool: str
    scenario: str
    set_name: str
    rep: int
    seconds: float
    error: str = ""
    pins: dict[str, str] = field(default_factory=dict)
    stats: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.error


def timed(cmd: list[str], env: dict[str, str], cwd: Path, timeout: float
          ) -> tuple[float, subprocess.CompletedProcess | None, str]:
    """Wall clock of one subprocess, measured around ``subprocess.run``."""
    started = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return time.perf_counter() - started, None, f"timed out after {timeout:.0f} s"
    except OSError as exc:
        return time.perf_counter() - started, None, f"cannot run {cmd[0]}: {exc}"
    return time.perf_counter() - started, proc, ""


def parse_venvsmith(stdout: str) -> tuple[dict[str, str], dict]:
    doc = json.loads(stdout)
    pins = {canonical(p["name"]): p["version"] for p in doc["pins"]}
    for p in doc["pins"]:
        SCRUB.learn(p.get("url", ""))
    return pins, dict(doc.get("stats", {}))


def parse_uv(stdout: str) -> dict[str, str]:
    pins = {}
    for line in stdout.splitlines():
        match = _UV_PIN.match(line.strip())
        if match:
            pins[canonical(match.group(1))] = match.group(2)
    if not pins:
        raise ValueError("no name==version lines in uv's output")
    return pins


def parse_pip_report(stdout: str) -> dict[str, str]:
    doc = json.loads(stdout)
    for item in doc.get("install", []):
        SCRUB.learn(item.get("download_info", {}).get("url", ""))
    return {canonical(i["metadata"]["name"]): i["metadata"]["version"] for i in doc.get("install", [])}


def base_env() -> dict[str, str]:
    """The caller's environment minus anything that would silently change a tool's index or cache."""
    env = dict(os.environ)
    for var in list(env):
        if var.startswith("UV_") or var in ("VENVSMITH_HOME", "VENVSMITH_NODE_CACHE", "PIP_INDEX_URL",
                                            "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_NO_INDEX",
                                            "PIP_CONSTRAINT"):
            env.pop(var)
    return env


class Tools:
    """How each tool is invoked; every command takes the same explicit index settings."""

    def __init__(self, opts: argparse.Namespace, index: IndexArgs, work: Path) -> None:
        self.opts = opts
        self.index = index
        self.work = work
        self.venvsmith = Path(opts.venvsmith)
        self.bench_python = BENCH_VENV / "bin" / "python"
        self.uv = BENCH_VENV / "bin" / "uv"
        self.pip_compile = BENCH_VENV / "bin" / "pip-compile"
        self.env = base_env()
        self.vs_env = self._venvsmith_env()

    def _venvsmith_env(self) -> dict[str, str]:
        """venvsmith runs with its bytecode cached, as an installed tool has it (unless ``--as-is``).

        ``PYTHONDONTWRITEBYTECODE`` would make every process compile the project's sources again; the
        bytecode goes to a cache prefix under ``bench/work/`` so that nothing is written beside the sources.
        """
        env = dict(self.env)
        if self.index.isolated:
            env["PIP_CONFIG_FILE"] = os.devnull
        if getattr(self.opts, "venvsmith_pythonpath", None):
            # A candidate fix in a scratch tree, imported before the editable install (``--venvsmith-pythonpath``).
            env["PYTHONPATH"] = str(Path(self.opts.venvsmith_pythonpath).resolve())
        if self.opts.as_is:
            return env
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(PYCACHE_DIR)
        return env

    def warm_up(self, set_file: Path) -> None:
        """Untimed: write the bytecode cache (every module a resolve or the server imports)."""
        python = self.venvsmith.parent / "python"
        imports = "import venvsmith.cli, resolver_service.engine, resolver_service.service, grpc_health.v1"
        subprocess.run([str(python), "-c", imports], env=self.vs_env, cwd=self.work, capture_output=True,
                       check=False)
        home = self.work / "warm-up-home"
        self.venvsmith_resolve(set_file, home, no_cache=True, scenario="warm-up", set_name="", rep=-1)
        shutil.rmtree(home, ignore_errors=True)

    def _finish(self, run: Run, seconds, proc, error, parse) -> Run:
        run.seconds = seconds
        if error:
            run.error = error
        elif proc.returncode != 0:
            run.error = failure_text(proc)
        else:
            try:
                parsed = parse(proc.stdout)
            except (ValueError, KeyError, TypeError) as exc:
                run.error = f"unparseable output: {exc}"
            else:
                if isinstance(parsed, tuple):
                    run.pins, run.stats = parsed
                else:
                    run.pins = parsed
        run.error = SCRUB(run.error)
        return run

    def venvsmith_resolve(self, set_file: Path, home: Path, *, no_cache: bool, scenario: str,
                          set_name: str, rep: int, best_match: bool = False) -> Run:
        cmd = [str(self.venvsmith), "resolve", "--format", "json", "-r", str(set_file),
               "--python-version", TARGET_PYTHON, *self.index.argv()]
        if no_cache:
            cmd.append("--no-cache")
        if best_match:
            cmd += ["--index-strategy", "unsafe-best-match"]
        env = {**self.vs_env, "VENVSMITH_HOME": str(home)}
        run = Run("venvsmith", scenario, set_name, rep, 0.0)
        return self._finish(run, *timed(cmd, env, self.work, self.opts.timeout), parse_venvsmith)

    def uv_compile(self, set_file: Path, cache: Path, *, scenario: str, set_name: str, rep: int,
                   best_match: bool = False) -> Run:
        cmd = [str(self.uv), "pip", "compile", str(set_file), "--python-version", TARGET_PYTHON,
               "--no-config", "--cache-dir", str(cache), *self.index.argv()]
        if best_match:
            cmd += ["--index-strategy", "unsafe-best-match"]
        env = dict(self.env)
        if self.index.cert and "SSL_CERT_FILE" not in env:
            env["SSL_CERT_FILE"] = self.index.cert
        run = Run("uv", scenario, set_name, rep, 0.0)
        return self._finish(run, *timed(cmd, env, self.work, self.opts.timeout), parse_uv)

    def _pip_env(self) -> dict[str, str]:
        # pip gets the very same settings on its command line, and no config file on top of them.
        return {**self.env, "PIP_CONFIG_FILE": os.devnull}

    def _pip_target_args(self) -> list[str]:
        if bench_python_version(self.bench_python) == TARGET_PYTHON:
            return []
        return ["--python-version", TARGET_PYTHON, "--only-binary=:all:"]

    def pip_dry_run(self, set_file: Path, cache: Path, *, set_name: str, rep: int) -> Run:
        cmd = [str(self.bench_python), "-m", "pip", "install", "--dry-run", "--report", "-", "--quiet",
               "--ignore-installed", "--disable-pip-version-check", "--cache-dir", str(cache),
               "-r", str(set_file), *self._pip_target_args(), *self.index.argv()]
        if self.index.cert:
            cmd += ["--cert", self.index.cert]
        run = Run("pip", "cold", set_name, rep, 0.0)
        return self._finish(run, *timed(cmd, self._pip_env(), self.work, self.opts.timeout),
                            parse_pip_report)

    def pip_compile_run(self, set_file: Path, cache: Path, *, set_name: str, rep: int) -> Run:
        cmd = [str(self.pip_compile), "--quiet", "--no-header", "--no-annotate", "--cache-dir", str(cache),
               "--output-file", "-", str(set_file), *self.index.argv()]
        if self.index.cert:
            cmd += ["--cert", self.index.cert]
        run = Run("pip-compile", "cold", set_name, rep, 0.0)
        return self._finish(run, *timed(cmd, self._pip_env(), self.work, self.opts.timeout), parse_uv)


_VERSIONS: dict[Path, str] = {}


def bench_python_version(python: Path) -> str:
    if python not in _VERSIONS:
        out = subprocess.run([str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, check=False)
        _VERSIONS[python] = out.stdout.strip()
    return _VERSIONS[python]


def tool_version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable ({exc})"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr).strip() else "?"


# -- the server scenario -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def proc_memory(pid: int) -> dict[str, float]:
    """``VmRSS`` and ``VmHWM`` (peak resident set) of a live process from ``/proc``, in MiB (Linux only)."""
    out: dict[str, float] = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(value.split()[0]) / 1024  # kB
    except (OSError, ValueError):
        pass
    return out


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class ServerResult:
    set_name: str
    error: str = ""
    startup_s: float = 0.0
    first_call_ms: float = 0.0
    second_call_ms: float = 0.0
    calls: int = 0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    mean_ms: float = 0.0
    max_ms: float = 0.0
    server_p50_ms: float = 0.0
    cache_hits: int = 0
    cli_wall_s: list[float] = field(default_factory=list)
    #: New resolutions (``no_cache``) on the now-warm server: metadata and pages cached, nothing memoised.
    warm_new_ms: list[float] = field(default_factory=list)


class ResolverServer:
    """``venvsmith serve resolver`` (or ``serve builder``, which serves ResolverService too) as a subprocess
    with its own ``VENVSMITH_HOME``."""

    def __init__(self, tools: Tools, home: Path, service: str = "resolver", extra_args: Sequence[str] = ()) -> None:
        """``extra_args``: more ``serve`` options (``--metrics-port N``, ``--http-port N``)."""
        self.tools = tools
        self.home = home
        self.service = service
        self.extra_args = list(extra_args)
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log = home.parent / f"{service}-server.log"
        self.proc: subprocess.Popen | None = None
        self.startup_s = 0.0

    def start(self, timeout: float = 60.0) -> None:
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        self.home.mkdir(parents=True, exist_ok=True)
        env = {**self.tools.vs_env, "VENVSMITH_HOME": str(self.home)}
        cmd = [str(self.tools.venvsmith), "serve", self.service, "--port", str(self.port), *self.extra_args]
        cmd += self.tools.index.server_allow_args()  # the server's configuration names no index when isolated
        started = time.perf_counter()
        with open(self.log, "w", encoding="utf-8") as log:
            self.proc = subprocess.Popen(cmd, env=env, cwd=self.tools.work, stdout=log,
                                         stderr=subprocess.STDOUT)
        channel = grpc.insecure_channel(self.address)
        try:
            stub = health_pb2_grpc.HealthStub(channel)
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log_tail()}")
                if time.perf_counter() - started > timeout:
                    raise RuntimeError(f"server not healthy after {timeout:.0f} s: {self.log_tail()}")
                try:
                    reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
                except grpc.RpcError:
                    time.sleep(0.05)
                    continue
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    break
                time.sleep(0.05)
        finally:
            channel.close()
        self.startup_s = time.perf_counter() - started

    def memory(self) -> dict[str, float]:
        """The server process's resident set now and at its peak (``VmRSS`` / ``VmHWM``), in MiB."""
        return proc_memory(self.proc.pid) if self.proc is not None and self.proc.poll() is None else {}

    def log_tail(self) -> str:
        try:
            lines = self.log.read_text(encoding="utf-8").strip().splitlines()
        except OSError:
            return "(no log)"
        return SCRUB(" / ".join(lines[-3:]))[:300]

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=15)


def build_resolve_request(set_file: Path, index: IndexArgs):
    """The same request the CLI would send for ``venvsmith resolve -r SET --python-version X ...``."""
    from venvsmith.cli import build_parser, build_request

    args = build_parser().parse_args(
        ["resolve", "-r", str(set_file), "--python-version", TARGET_PYTHON, *index.argv()]
    )
    return build_request(args)


#: New (uncached) resolutions timed on a warm server per set.
WARM_NEW_CALLS = 5


def bench_server(server: ResolverServer, tools: Tools, set_name: str, set_file: Path, calls: int,
                 cli_runs: int, timeout: float) -> ServerResult:
    import grpc

    from venvsmith.v1 import resolver_pb2_grpc

    result = ServerResult(set_name, startup_s=server.startup_s)
    try:
        request = build_resolve_request(set_file, tools.index)
    except Exception as exc:  # the CLI's request builder is the interface under test
        result.error = SCRUB(f"cannot build the request: {exc}")
        return result
    channel = grpc.insecure_channel(server.address)
    try:
        stub = resolver_pb2_grpc.ResolverServiceStub(channel)

        def call(req=request) -> tuple[float, object]:
            started = time.perf_counter()
            response = stub.Resolve(req, timeout=timeout)
            return (time.perf_counter() - started) * 1000, response

        result.first_call_ms, _ = call()  # a real resolution, cold caches on the server
        result.second_call_ms, _ = call()
        latencies, server_ms = [], []
        for _ in range(calls):
            ms, response = call()
            latencies.append(ms)
            server_ms.append(response.stats.elapsed_ms)
            result.cache_hits += int(response.stats.resolution_cache_hit)
        fresh = type(request)()
        fresh.CopyFrom(request)
        fresh.no_cache = True
        for _ in range(WARM_NEW_CALLS):
            result.warm_new_ms.append(call(fresh)[0])
    except grpc.RpcError as exc:
        result.error = SCRUB(f"{exc.code().name}: {exc.details()}")[:300]
        return result
    finally:
        channel.close()
    result.calls = len(latencies)
    result.p50_ms = statistics.median(latencies)
    result.p99_ms = percentile(latencies, 99)
    result.mean_ms = statistics.fmean(latencies)
    result.max_ms = max(latencies)
    result.server_p50_ms = statistics.median(server_ms)
    # The CI agent's view: a fresh `venvsmith resolve --server` process per call (startup included).
    cmd = [str(tools.venvsmith), "resolve", "--format", "json", "-r", str(set_file), "--python-version",
           TARGET_PYTHON, "--server", server.address, *tools.index.argv()]
    for _ in range(cli_runs):
        seconds, proc, error = timed(cmd, tools.vs_env, tools.work, timeout)
        if error or proc.returncode != 0:
            result.error = SCRUB(error or failure_text(proc))
            break
        result.cli_wall_s.append(seconds)
    return result


# -- the benchmark -----------------------------------------------------------------------------------


def start_run(opts: argparse.Namespace, kind: str) -> tuple[IndexArgs, list[tuple[str, Path]], str, Path]:
    """A bench run's index settings (their URLs scrubbed from reports), requirement sets, time stamp and fresh
    work directory ``bench/work/<kind>-<stamp>``."""
    index = getattr(opts, "index_override", None) or IndexArgs.from_pip_config()
    for url in (index.index_url or "", *index.extra_index_urls, *index.find_links):
        SCRUB.learn(url)
    sets = resolve_set_files(opts.sets)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    work = WORK_DIR / f"{kind}-{stamp}"
    work.mkdir(parents=True, exist_ok=True)
    return index, sets, stamp, work


def run_bench(opts: argparse.Namespace) -> dict:
    index, sets, stamp, work = start_run(opts, "resolve")
    tools = Tools(opts, index, work)
    runs: list[Run] = []
    load_before = wait_idle(opts.wait_idle, opts.idle_load)
    if not opts.as_is:
        tools.warm_up(sets[0][1])

    def record(run: Run) -> None:
        runs.append(run)
        status = "ok" if run.ok else f"FAILED {run.error[:160]}"
        extra = ""
        if run.stats:
            extra = f" (in-process {run.stats.get('elapsed_ms', 0):.0f} ms)"
        print(f"  rep {run.rep} {run.set_name:<12} {run.scenario:<5} {run.tool:<11} "
              f"{run.seconds:7.3f} s{extra}  {status}", flush=True)

    print(f"resolve bench: sets {', '.join(n for n, _ in sets)}; repeat {opts.repeat}; work dir {work}")
    for rep in range(opts.repeat):
        for i, (name, set_file) in enumerate(sets):
            cell = work / f"rep{rep}" / name
            vs_home, uv_cache = cell / "venvsmith-home", cell / "uv-cache"
            vs_first = (rep + i) % 2 == 0
            order = ["venvsmith", "uv"] if vs_first else ["uv", "venvsmith"]
            for scenario in ("cold", "warm"):
                for tool in order:
                    if tool == "venvsmith":
                        record(tools.venvsmith_resolve(set_file, vs_home, no_cache=scenario == "warm",
                                                       scenario=scenario, set_name=name, rep=rep))
                    else:
                        record(tools.uv_compile(set_file, uv_cache, scenario=scenario, set_name=name,
                                                rep=rep))
            if rep == 0 and not opts.skip_pip:
                record(tools.pip_dry_run(set_file, cell / "pip-cache", set_name=name, rep=rep))
                # pip unions every index (no first-index rule): compare its pins with both tools run
                # the same way. Warm caches: these are for the pins, not for the timing tables.
                record(tools.venvsmith_resolve(set_file, vs_home, no_cache=True, scenario="best-match",
                                               set_name=name, rep=rep, best_match=True))
                record(tools.uv_compile(set_file, uv_cache, scenario="best-match", set_name=name, rep=rep,
                                        best_match=True))
            if rep == 0 and opts.pip_compile:
                record(tools.pip_compile_run(set_file, cell / "pip-compile-cache", set_name=name, rep=rep))
            if not opts.keep_work:
                shutil.rmtree(cell, ignore_errors=True)

    servers: list[ServerResult] = []
    if opts.server_calls > 0:
        print(f"server: {opts.server_calls} Resolve calls per set through the gRPC stub", flush=True)
        for name, set_file in sets:
            # A fresh server with an empty home per set: its first call is a cold resolution.
            server = ResolverServer(tools, work / "server" / name / "home")
            try:
                server.start()
            except Exception as exc:  # record it, keep the other figures
                servers.append(ServerResult(name, error=f"server did not start: {SCRUB(str(exc))[:300]}"))
                continue
            try:
                res = bench_server(server, tools, name, set_file, opts.server_calls, opts.cli_server_runs,
                                   opts.timeout)
            finally:
                server.stop()
            servers.append(res)
            if res.error:
                print(f"  {name:<12} server FAILED {res.error[:160]}", flush=True)
            else:
                print(f"  {name:<12} server first {res.first_call_ms:.0f} ms, new request warm "
                      f"{statistics.median(res.warm_new_ms):.0f} ms, p50 {res.p50_ms:.2f} ms, "
                      f"p99 {res.p99_ms:.2f} ms ({res.cache_hits}/{res.calls} cache hits)", flush=True)
    if not opts.keep_work:
        shutil.rmtree(work, ignore_errors=True)
    load_after = os.getloadavg()[0]

    return {
        **run_fields(opts, stamp, sets),
        "repeat": opts.repeat,
        "target_python": TARGET_PYTHON,
        "index": index.describe(),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_before": round(load_before, 2),
            "load_after": round(load_after, 2),
        },
        "bytecode": "as in the environment" if opts.as_is else "cached (PYTHONPYCACHEPREFIX, warmed up)",
        "versions": {
            "venvsmith": git_describe(),
            "uv": tool_version([str(tools.uv), "--version"]),
            "pip": tool_version([str(tools.bench_python), "-m", "pip", "--version"]).split(" from ")[0],
        },
        "pip_python": subprocess.run(
            [str(tools.bench_python), "-c", "import platform; print(platform.python_version())"],
            capture_output=True, text=True, check=False).stdout.strip(),
        "runs": [asdict(r) for r in runs],
        "server": [asdict(s) for s in servers],
    }


def wait_idle(max_wait: float, threshold: float) -> float:
    """Wait (at most ``max_wait`` s) until the 1-minute load average is below ``threshold``; returns it."""
    deadline = time.monotonic() + max_wait
    load = os.getloadavg()[0]
    if load >= threshold and max_wait > 0:
        print(f"waiting for the machine to go idle (load {load:.2f}) ...", flush=True)
    while load >= threshold and time.monotonic() < deadline:
        time.sleep(5)
        load = os.getloadavg()[0]
    return load


def git_describe() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                             text=True, check=False).stdout.strip()
        # The benches' own reports (written into bench/results/ as a run goes) do not make the code dirty.
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)bench/results"], cwd=REPO,
                               capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return "?"
    return f"{rev}{' + uncommitted changes' if dirty else ''}"


# -- the report ----------------------------------------------------------------------------------------


def select_runs(results: dict, tool: str, scenario: str, set_name: str) -> list[dict]:
    """The runs of one tool, scenario and set (every bench report selects its cells so)."""
    return [r for r in results["runs"]
            if r["tool"] == tool and r["scenario"] == scenario and r["set_name"] == set_name]


def summarize(runs: list[dict]) -> dict:
    ok = [r["seconds"] for r in runs if not r["error"]]
    errors = [r["error"] for r in runs if r["error"]]
    out: dict = {"n": len(runs), "ok": len(ok), "errors": errors}
    if ok:
        out.update(median=statistics.median(ok), min=min(ok), max=max(ok))
    return out


def fmt_cell(summary: dict) -> str:
    if not summary["n"]:
        return "—"
    if not summary["ok"]:
        return f"error: {md_escape(summary['errors'][0][:120])}"
    text = f"{summary['median']:.2f} s"
    if summary["n"] > 1:
        text += f" ({summary['min']:.2f}–{summary['max']:.2f})"
    if summary["errors"]:
        text += f" [{len(summary['errors'])}/{summary['n']} failed]"
    return text


def fmt_ratio(a: dict, b: dict, goal: float) -> str:
    if not a.get("ok") or not b.get("ok"):
        return "—"
    ratio = a["median"] / b["median"]
    return f"{ratio:.2f}x {'✓' if ratio <= goal else '✗'}"


def service_cell(seconds: float, uv: dict, goal: float) -> str:
    """A service latency with its ratio to uv's median (and the goal's mark)."""
    if not uv.get("ok"):
        return f"{seconds:.2f} s"
    ratio = seconds / uv["median"]
    return f"{seconds:.2f} s ({ratio:.2f}x {'✓' if ratio <= goal else '✗'})"


def failures_section(results: dict) -> list[str]:
    """The report's "Failures" lines (none when every run succeeded): tool, scenario, set, repetition, error."""
    failures = [r for r in results["runs"] if r["error"]]
    if not failures:
        return []
    return ["", "## Failures", "", *(f"- {r['tool']} {r['scenario']} `{r['set_name']}` rep {r['rep']}: "
                                     f"{md_escape(r['error'])}" for r in failures)]


def md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def compare_pins(vs: dict[str, str], other: dict[str, str], names: tuple[str, str] = ("venvsmith", "uv")
                 ) -> tuple[str, list[str]]:
    only_vs = sorted(set(vs) - set(other))
    only_other = sorted(set(other) - set(vs))
    differ = sorted(n for n in set(vs) & set(other) if vs[n] != other[n])
    if not (only_vs or only_other or differ):
        return f"identical ({len(vs)} pins)", []
    details = [f"`{n}`: {names[0]} {vs[n]}, {names[1]} {other[n]}" for n in differ]
    details += [f"`{n}=={vs[n]}` only in {names[0]}" for n in only_vs]
    details += [f"`{n}=={other[n]}` only in {names[1]}" for n in only_other]
    return f"{len(differ) + len(only_vs) + len(only_other)} differences", details


def first_pins(results: dict, tool: str, set_name: str, scenarios: tuple[str, ...] = ("cold", "warm")
               ) -> dict[str, str] | None:
    for scenario in scenarios:
        for r in select_runs(results, tool, scenario, set_name):
            if not r["error"]:
                return r["pins"]
    return None


def render_markdown(results: dict, chart: str | None) -> str:
    sets = list(results["sets"])
    server = {s["set_name"]: s for s in results["server"]}
    out = [f"# Resolve benchmark, {results['date']}{' (quick smoke run)' if results['quick'] else ''}"
           f"{', local mirror' if results.get('mirror') else ''}", ""]
    if results.get("venvsmith_pythonpath"):
        out += [f"venvsmith ran with `PYTHONPATH={results['venvsmith_pythonpath']}` (a candidate fix, not the "
                "checked-out tree).", ""]
    out += [
        f"venvsmith {results['versions']['venvsmith']} vs {results['versions']['uv']}"
        f" ({results['versions']['pip']}), target Python {results['target_python']}, "
        f"{results['machine']['cpus']} CPUs, {results['machine']['platform']}; 1-min load average "
        f"{results['machine']['load_before']} before / {results['machine']['load_after']} after; "
        f"venvsmith's Python bytecode: {results['bytecode']}.",
        "",
        "Index settings (read from pip's configuration at run time, passed explicitly to every tool):",
        "",
        *[f"- {line}" for line in results["index"]],
        "",
        f"Every figure is the wall clock of a fresh subprocess; cold/warm runs repeated {results['repeat']}x, "
        "interleaved; median (min–max). Ratio = venvsmith / uv (goals: cold ≤ "
        f"{GOAL_COLD_RATIO}x, warm ≤ {GOAL_WARM_RATIO}x, server p50 ≤ {GOAL_SERVER_P50_MS:g} ms).",
        "",
        "- **cold**: empty `VENVSMITH_HOME` / empty uv `--cache-dir`;",
        "- **warm**: the same home / cache again; venvsmith with `--no-cache` (resolution cache bypassed, "
        "index pages and metadata cached), uv's second run;",
        "- **server**: a `venvsmith serve resolver` subprocess started with an empty home per set; the same "
        "`Resolve` request through the gRPC stub: p50 / p99 client-side latency of the repeated request after "
        "two warm-up calls;",
        "- **service cold / warm**: the same server's first call (a cold resolution: empty caches, only the "
        "process already running) and the median of new resolutions once its caches are warm (`no_cache`: "
        "pages and metadata cached, resolution cache bypassed), next to uv cold / warm: what a CI agent "
        "calling the service sees.",
        "",
        "| set | venvsmith cold | uv cold | cold ratio | venvsmith warm | uv warm | warm ratio "
        "| server p50 / p99 | service cold (ratio) | service warm (ratio) | pip cold | pins vs uv |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    pin_notes: list[str] = []
    for name in sets:
        vs_cold = summarize(select_runs(results, "venvsmith", "cold", name))
        uv_cold = summarize(select_runs(results, "uv", "cold", name))
        vs_warm = summarize(select_runs(results, "venvsmith", "warm", name))
        uv_warm = summarize(select_runs(results, "uv", "warm", name))
        pip_cold = summarize(select_runs(results, "pip", "cold", name))
        srv = server.get(name)
        if srv is None:
            srv_cell = "—"
        elif srv["error"] and not srv["calls"]:
            srv_cell = f"error: {md_escape(srv['error'][:120])}"
        else:
            ok = "✓" if srv["p50_ms"] <= GOAL_SERVER_P50_MS else "✗"
            srv_cell = f"{srv['p50_ms']:.2f} / {srv['p99_ms']:.2f} ms {ok}"
        svc_cold = svc_warm = "—"
        if srv is not None and srv.get("calls"):
            svc_cold = service_cell(srv["first_call_ms"] / 1000, uv_cold, GOAL_COLD_RATIO)
            if srv.get("warm_new_ms"):
                svc_warm = service_cell(statistics.median(srv["warm_new_ms"]) / 1000, uv_warm, GOAL_WARM_RATIO)
        vs_pins, uv_pins = first_pins(results, "venvsmith", name), first_pins(results, "uv", name)
        if vs_pins is None or uv_pins is None:
            pin_cell = "— (a tool failed)"
        else:
            pin_cell, details = compare_pins(vs_pins, uv_pins)
            if details:
                pin_notes.append(f"- **{name}**, venvsmith vs uv: " + "; ".join(details))
        pip_pins = first_pins(results, "pip", name)
        for tool in ("venvsmith", "uv"):
            best = first_pins(results, tool, name, scenarios=("best-match",))
            if best is not None and pip_pins is not None:
                summary, details = compare_pins(best, pip_pins, (tool, "pip"))
                pin_notes.append(f"- **{name}**, {tool} `--index-strategy unsafe-best-match` vs pip: {summary}"
                                 + (": " + "; ".join(details) if details else ""))
        if pip_pins is not None and vs_pins is not None:
            summary, _ = compare_pins(vs_pins, pip_pins)
            pin_notes.append(f"- **{name}**, venvsmith default (first-index) vs pip: {summary} "
                             "(expected: pip has no first-index rule)")
        out.append(
            f"| `{name}` | {fmt_cell(vs_cold)} | {fmt_cell(uv_cold)} | "
            f"{fmt_ratio(vs_cold, uv_cold, GOAL_COLD_RATIO)} | {fmt_cell(vs_warm)} | {fmt_cell(uv_warm)} | "
            f"{fmt_ratio(vs_warm, uv_warm, GOAL_WARM_RATIO)} | {srv_cell} | {svc_cold} | {svc_warm} | "
            f"{fmt_cell(pip_cold)} | {pin_cell} |"
        )
    for name in sets:
        for tool in ("venvsmith", "uv"):
            distinct = {json.dumps(r["pins"], sort_keys=True) for scenario in ("cold", "warm")
                        for r in select_runs(results, tool, scenario, name) if not r["error"]}
            if len(distinct) > 1:
                pin_notes.append(f"- **{name}**: {tool} gave {len(distinct)} different pin sets across its runs")
    out += ["", "Sets: " + "; ".join(f"`{n}` = `{' '.join(reqs)}`" for n, reqs in results["sets"].items())]
    if any(r["tool"] == "pip-compile" for r in results["runs"]):
        out += ["", "pip-compile (cold, once per set): " + "; ".join(
            f"`{n}` {fmt_cell(summarize(select_runs(results, 'pip-compile', 'cold', n)))}" for n in sets)]
    if pin_notes:
        out += ["", "## Pin comparison", "", *pin_notes]
    if any(r["tool"] == "pip" for r in results["runs"]):
        out += ["", f"pip resolves for the interpreter it runs on (Python {results.get('pip_python', '?')}), "
                f"venvsmith and uv for `--python-version {results['target_python']}`, which both read as "
                f"{results['target_python']}.0: a release requiring e.g. `>={results['target_python']}.5` "
                "is open to pip only. pip unions every index; venvsmith and uv default to first-index, so the "
                "pip comparison uses `--index-strategy unsafe-best-match` (run once per set, warm caches)."]

    out += ["", "## venvsmith's own accounting (median over runs)", "",
            "| set | scenario | wall | in-process resolve | process overhead | pages fetched / cached "
            "| metadata fetched / cached | backtracks |", "|---|---|---|---|---|---|---|---|"]
    for name in sets:
        for scenario in ("cold", "warm"):
            ok = [r for r in select_runs(results, "venvsmith", scenario, name) if not r["error"] and r["stats"]]
            if not ok:
                continue
            wall = statistics.median(r["seconds"] for r in ok)
            inproc = statistics.median(r["stats"].get("elapsed_ms", 0.0) for r in ok) / 1000

            def med(key: str, rows=ok) -> str:
                return f"{statistics.median(r['stats'].get(key, 0) for r in rows):g}"

            out.append(
                f"| `{name}` | {scenario} | {wall:.2f} s | {inproc:.2f} s | {wall - inproc:.2f} s | "
                f"{med('pages_fetched')} / {med('pages_cached')} | {med('metadata_fetched')} / "
                f"{med('metadata_cached')} | {med('backtracks')} |"
            )

    if results["server"]:
        out += ["", "## Server detail", "",
                "| set | server start → healthy | 1st call (resolves) | 2nd call | calls | p50 | p99 | mean "
                "| max | server-side p50 | cache hits | new request, warm (median, min–max) "
                "| `resolve --server` CLI wall (median) |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for s in results["server"]:
            if s["error"] and not s["calls"]:
                out.append(f"| `{s['set_name']}` | error: {md_escape(s['error'][:200])} |" + " |" * 11)
                continue
            cli = f"{statistics.median(s['cli_wall_s']):.2f} s" if s["cli_wall_s"] else "—"
            new_ms = s.get("warm_new_ms") or []
            warm_new = (f"{statistics.median(new_ms):.0f} ms ({min(new_ms):.0f}–{max(new_ms):.0f})"
                        if new_ms else "—")
            if s["error"]:
                cli += f" (error: {md_escape(s['error'][:100])})"
            out.append(
                f"| `{s['set_name']}` | {s['startup_s']:.2f} s | {s['first_call_ms']:.0f} ms | "
                f"{s['second_call_ms']:.2f} ms | {s['calls']} | {s['p50_ms']:.2f} ms | {s['p99_ms']:.2f} ms | "
                f"{s['mean_ms']:.2f} ms | {s['max_ms']:.2f} ms | {s['server_p50_ms']:.3f} ms | "
                f"{s['cache_hits']}/{s['calls']} | {warm_new} | {cli} |"
            )

    out += failures_section(results)
    if chart:
        out += ["", f"![resolve timings]({chart})"]
    return "\n".join(out) + "\n"


# -- entry point -------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = bench_parser("resolve_bench", __doc__, default_sets=DEFAULT_SETS, timeout=900.0,
                     quick_help=f"smoke run: one small set ({QUICK_SET}, or the first of --sets), repeat 1, no pip",
                     repeat_help="cold/warm repetitions per set (default 5)")
    p.add_argument("--skip-pip", action="store_true", help="do not time pip's resolver (slow)")
    p.add_argument("--pip-compile", action="store_true", help="also time pip-compile once per set (cold)")
    p.add_argument("--server-calls", type=int, default=200, help="Resolve calls through the server (0: skip)")
    p.add_argument("--cli-server-runs", type=int, default=5,
                   help="fresh `venvsmith resolve --server` processes timed per set")
    return p


def write_report(results: dict, outdir: Path, base: str) -> Path:
    return save_report(results, outdir, base, render_markdown, "plot_resolve.py")


def _quick(opts: argparse.Namespace) -> None:
    opts.skip_pip = True


def main(argv: list[str] | None = None, strict: bool = True) -> int:
    return bench_main(argv, strict, parser=build_parser(), kind="resolve", run=run_bench, write_report=write_report,
                      quick=_quick)


if __name__ == "__main__":
    sys.exit(main())
