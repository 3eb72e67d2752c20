"""Load: a bounded mix of requests from many concurrent clients against a resolver and a builder server.

``venvsmith serve builder`` and ``venvsmith serve resolver --builder <the builder>`` run on 127.0.0.1 with empty
homes, against a hermetic index this bench builds and serves on 127.0.0.1 (``tests/fixtures/index.py``: wheels
with small dependency trees; nothing leaves the loopback, so ``--sets`` and ``--mirror`` do not apply). After a
warm-up (the sets of the cache hits resolved once, one build for the digests to stat), ``--requests`` (default 500)
requests drawn with a fixed seed go to ``--clients`` (default 32) threads, one gRPC channel each:

- ``resolve-hit``: ``Resolve`` of a warmed-up set (resolution cache hit), to the resolver;
- ``resolve-cold``: ``Resolve`` of a random set with ``no_cache``, to the resolver;
- ``build``: ``ResolveAndBuild`` of one of a few sets, wheels + venv archive (the first of each set builds, the
  others hit the store), to the builder;
- ``stat``: ``StatArtifacts`` of the warm-up build's digests, to the builder;
- ``bad``: a ``Resolve`` with a malformed requirement to either server: good when it ends INVALID_ARGUMENT.

Reported per kind: calls, failures (anything but the expected outcome; must be 0), p50 / p99 / max latency
(client side, the stream read to its end, nearest rank); the whole run's wall time; each server's peak RSS
(``VmHWM``). ``--quick``: 40 requests from 4 clients.

Results: ``bench/results/<date>-load.md`` (+ ``.json``).
"""

from __future__ import annotations

import argparse
import os
import platform
import queue
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import REPO, SCRUB, WORK_DIR, bench_parser, parse_opts, report_base, rerendered, save_report
from resolve_bench import git_describe, md_escape, percentile, proc_memory

KINDS = {"resolve-hit": 0.3, "resolve-cold": 0.2, "build": 0.2, "stat": 0.2, "bad": 0.1}
#: Packages of the hermetic index: ``p<i>`` depends on up to two packages of higher number (small trees).
PACKAGES = 30
HIT_SETS = [["p0"], ["p1", "p5"], ["p2", "p9", "p11"]]
BUILD_SETS = [["p3"], ["p4", "p12"], ["p6"], ["p7", "p20"]]
QUICK_REQUESTS, QUICK_CLIENTS = 40, 4


def make_index(root: Path, rng: random.Random):
    """The hermetic index (``IndexBuilder``) and its started ``IndexServer`` on 127.0.0.1."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from tests.fixtures.index import IndexBuilder, IndexServer

    builder = IndexBuilder(root)
    for i in range(PACKAGES):
        later = list(range(i + 1, PACKAGES))
        deps = [f"p{j}>=1" for j in rng.sample(later, min(len(later), rng.randint(0, 2)))]
        for version in ("1.0", "1.1"):
            builder.add(f"p{i}", version, deps=deps)
    return IndexServer(builder).start()


def jobs(rng: random.Random, count: int) -> list[tuple[str, object]]:
    """``count`` (kind, argument) pairs drawn with ``KINDS``' weights."""
    kinds = rng.choices(list(KINDS), weights=list(KINDS.values()), k=count)
    out: list[tuple[str, object]] = []
    for kind in kinds:
        if kind == "resolve-hit":
            out.append((kind, rng.choice(HIT_SETS)))
        elif kind == "resolve-cold":
            out.append((kind, [f"p{i}" for i in rng.sample(range(PACKAGES), rng.randint(1, 4))]))
        elif kind == "build":
            out.append((kind, rng.choice(BUILD_SETS)))
        elif kind == "bad":
            out.append((kind, rng.choice(["resolver", "builder"])))
        else:
            out.append((kind, None))
    return out


class Calls:
    """The requests of each kind, made on one client's channels."""

    def __init__(self, resolver: str, builder: str, index_url: str, digests: list) -> None:
        import grpc

        from venvsmith.v1 import artifact_pb2_grpc, builder_pb2_grpc, resolver_pb2_grpc

        options = [("grpc.max_receive_message_length", 64 << 20)]
        self.channels = [grpc.insecure_channel(resolver, options=options),
                         grpc.insecure_channel(builder, options=options)]
        self.resolver = resolver_pb2_grpc.ResolverServiceStub(self.channels[0])
        self.builder_resolver = resolver_pb2_grpc.ResolverServiceStub(self.channels[1])
        self.builder = builder_pb2_grpc.BuilderServiceStub(self.channels[1])
        self.artifacts = artifact_pb2_grpc.ArtifactServiceStub(self.channels[1])
        self.index_url = index_url
        self.digests = digests

    def resolve_request(self, reqs, no_cache: bool = False):
        from venvsmith.v1 import common_pb2, resolver_pb2

        return resolver_pb2.ResolveRequest(requirements=list(reqs), no_cache=no_cache,
                                           index=common_pb2.IndexConfig(index_url=self.index_url))

    def build(self, reqs):
        from venvsmith.v1 import builder_pb2

        resolve = self.resolve_request(reqs)
        request = builder_pb2.ResolveAndBuildRequest(resolve=resolve, options=builder_pb2.BuildOptions(
            wheels=True, venv_archive=True, index=resolve.index))
        results = [e.build.result for e in self.builder.ResolveAndBuild(request, timeout=TIMEOUT[0])
                   if e.WhichOneof("event") == "build" and e.build.WhichOneof("event") == "result"]
        if len(results) != 1 or not results[0].venv_archive.digest.hash:
            raise RuntimeError("the stream ended without a venv archive")
        return results[0]

    def run(self, kind: str, arg) -> str:
        """Make one call; returns ``""`` when it had the expected outcome, else what went wrong."""
        import grpc

        from venvsmith.v1 import artifact_pb2

        try:
            if kind == "resolve-hit":
                if not self.resolver.Resolve(self.resolve_request(arg), timeout=TIMEOUT[0]).stats.resolution_cache_hit:
                    return "not a cache hit"
            elif kind == "resolve-cold":
                self.resolver.Resolve(self.resolve_request(arg, no_cache=True), timeout=TIMEOUT[0])
            elif kind == "build":
                self.build(arg)
            elif kind == "stat":
                answer = self.artifacts.StatArtifacts(artifact_pb2.StatArtifactsRequest(digests=self.digests),
                                                      timeout=TIMEOUT[0])
                if answer.missing:
                    return f"{len(answer.missing)} digests missing"
            else:
                stub = self.resolver if arg == "resolver" else self.builder_resolver
                try:
                    stub.Resolve(self.resolve_request(["p0==="]), timeout=TIMEOUT[0])
                except grpc.RpcError as exc:
                    wanted = exc.code() == grpc.StatusCode.INVALID_ARGUMENT
                    return "" if wanted else f"{exc.code().name}: {exc.details()}"
                return "a malformed requirement was answered"
        except grpc.RpcError as exc:
            return f"{exc.code().name}: {exc.details()}"
        except Exception as exc:  # noqa: BLE001 - recorded per call
            return f"{type(exc).__name__}: {exc}"
        return ""

    def close(self) -> None:
        for channel in self.channels:
            channel.close()


#: The per-call timeout (set from --timeout).
TIMEOUT = [120.0]


def drive(resolver: str, builder: str, index_url: str, digests: list, work: list, clients: int) -> list[dict]:
    """``clients`` threads take jobs from ``work`` until none is left; one record per call."""
    todo: queue.Queue = queue.Queue()
    for job in work:
        todo.put(job)
    records: list[dict] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients)

    def client() -> None:
        calls = Calls(resolver, builder, index_url, digests)
        try:
            barrier.wait()
            while True:
                try:
                    kind, arg = todo.get_nowait()
                except queue.Empty:
                    return
                started = time.perf_counter()
                error = calls.run(kind, arg)
                record = {"kind": kind, "ms": (time.perf_counter() - started) * 1000, "error": SCRUB(error)[:300]}
                with lock:
                    records.append(record)
        finally:
            calls.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT[0] * len(work) / clients + 60)
    return records


def summarize(records: list[dict]) -> dict:
    out: dict = {}
    for kind in KINDS:
        mine = [r for r in records if r["kind"] == kind]
        if not mine:
            continue
        ms = [r["ms"] for r in mine]
        errors = [r["error"] for r in mine if r["error"]]
        out[kind] = {"calls": len(mine), "failures": len(errors), "errors": sorted(set(errors))[:5],
                     "p50_ms": statistics.median(ms), "p99_ms": percentile(ms, 99), "max_ms": max(ms)}
    return out


def run_bench(opts: argparse.Namespace) -> dict:
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from tests.fixtures.builder_server import BuilderProcess, ResolverProcess

    TIMEOUT[0] = opts.timeout
    rng = random.Random(opts.seed)
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="load-", dir=WORK_DIR))
    index = make_index(work / "index", rng)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    builder = resolver = None
    try:
        builder = BuilderProcess(work / "builder-home", allow=[index.base_url], http=False)
        resolver = ResolverProcess(work / "resolver-home", "--builder", builder.address, allow=[index.base_url])
        warm = Calls(resolver.address, builder.address, index.url, [])
        for reqs in HIT_SETS:
            warm.resolver.Resolve(warm.resolve_request(reqs), timeout=opts.timeout)
        result = warm.build(["p8"])
        digests = [w.digest for w in result.wheels] + [result.venv_archive.digest]
        warm.close()
        plan = jobs(rng, opts.requests)
        print(f"load bench: {opts.requests} requests from {opts.clients} clients", flush=True)
        started = time.perf_counter()
        records = drive(resolver.address, builder.address, index.url, digests, plan, opts.clients)
        wall = time.perf_counter() - started
        servers = {name: proc_memory(p.proc.pid) for name, p in (("resolver", resolver), ("builder", builder))}
        alive = {name: p.alive() for name, p in (("resolver", resolver), ("builder", builder))}
    finally:
        for process in (resolver, builder):
            if process is not None:
                process.stop()
        index.stop()
        if not opts.keep_work:
            shutil.rmtree(work, ignore_errors=True)
    kinds = summarize(records)
    return {
        "date": time.strftime("%Y-%m-%d"), "started": stamp, "quick": opts.quick, "seed": opts.seed,
        "requests": opts.requests, "clients": opts.clients, "calls_made": len(records), "wall_s": wall,
        "failures": sum(k["failures"] for k in kinds.values()), "kinds": kinds,
        "servers": {name: {"rss_peak_mib": mem.get("VmHWM", 0.0), "rss_end_mib": mem.get("VmRSS", 0.0),
                           "alive_at_end": alive[name]} for name, mem in servers.items()},
        "index": f"hermetic: {PACKAGES} projects x 2 versions of wheels on 127.0.0.1",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "load_after": round(os.getloadavg()[0], 2)},
        "versions": {"venvsmith": git_describe()},
    }


def render_markdown(results: dict) -> str:
    m = results["machine"]
    out = [f"# Load, {results['date']}{' (quick smoke run)' if results['quick'] else ''}", "",
           f"venvsmith {results['versions']['venvsmith']}; {m['cpus']} CPUs, {m['platform']}; 1-min load average "
           f"{m['load_after']} after.", "",
           f"{results['requests']} requests (seed {results['seed']}) from {results['clients']} threads, one gRPC "
           "channel per server each, against `serve resolver --builder` and `serve builder` on 127.0.0.1 with "
           f"empty homes after a warm-up; index: {results['index']}. A failure is any outcome but the expected "
           "one (`bad`: INVALID_ARGUMENT). Latency is client-side per call, nearest-rank percentiles.", "",
           f"**{results['calls_made']} calls in {results['wall_s']:.1f} s "
           f"({results['calls_made'] / max(results['wall_s'], 1e-9):.0f}/s), {results['failures']} failures.**", "",
           "| kind | calls | failures | p50 | p99 | max |", "|---|---|---|---|---|---|"]
    for kind, k in results["kinds"].items():
        out.append(f"| {kind} | {k['calls']} | {k['failures']} | {k['p50_ms']:.0f} ms | {k['p99_ms']:.0f} ms | "
                   f"{k['max_ms']:.0f} ms |")
    out += ["", "| server | peak RSS (VmHWM) | RSS at the end | alive at the end |", "|---|---|---|---|"]
    for name, s in results["servers"].items():
        out.append(f"| {name} | {s['rss_peak_mib']:.0f} MiB | {s['rss_end_mib']:.0f} MiB | {s['alive_at_end']} |")
    errors = [(kind, e) for kind, k in results["kinds"].items() for e in k["errors"]]
    if errors:
        out += ["", "## Errors", ""] + [f"- {kind}: {md_escape(e)}" for kind, e in errors]
    return "\n".join(out) + "\n"


def write_report(results: dict, outdir: Path, base: str) -> Path:
    return save_report(results, outdir, base, lambda doc, _chart: render_markdown(doc))


def build_parser() -> argparse.ArgumentParser:
    p = bench_parser("load_bench", __doc__, default_sets=("requests",), timeout=120.0,
                     quick_help=f"smoke run: {QUICK_REQUESTS} requests from {QUICK_CLIENTS} clients",
                     timeout_help="seconds per call")
    p.add_argument("--requests", type=int, default=500, help="requests in all (default 500)")
    p.add_argument("--clients", type=int, default=32, help="concurrent clients (default 32)")
    p.add_argument("--seed", type=int, default=11, help="seed of the request mix (default 11)")
    return p


def main(argv: list[str] | None = None, strict: bool = True) -> int:
    """Runs without the bench venv or any network: the index is hermetic."""
    opts = parse_opts(build_parser(), argv, strict)
    if rerendered(opts, write_report):
        return 0
    if opts.quick:
        opts.requests, opts.clients = min(opts.requests, QUICK_REQUESTS), min(opts.clients, QUICK_CLIENTS)
    if opts.requests < 1 or opts.clients < 1:
        raise SystemExit("--requests and --clients must be at least 1")
    opts.mirror = False  # the index is the bench's own
    results = run_bench(opts)
    write_report(results, Path(opts.output_dir), report_base(results["date"], "load", opts))
    return 1 if results["failures"] or results["calls_made"] != opts.requests else 0


if __name__ == "__main__":
    sys.exit(main())
