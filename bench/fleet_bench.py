"""Fleet capacity: what one replica sustains, what grows per lock key, and how fast replica B serves what A built.

Real processes, all on 127.0.0.1, started by this bench: a Debian ``docker-registry`` (filesystem storage,
``tests/fixtures/registry.py``), a ``redis-server`` (``tests/fixtures/redis_server.py``), ``venvsmith serve
builder --store oci://127.0.0.1:PORT/fleet --cache redis://127.0.0.1:PORT/0`` (replica A, and the B replicas) and
``venvsmith serve resolver --cache ...``, against a hermetic index the bench builds and serves on 127.0.0.1
(``tests/fixtures/index.py``; wheels with random, incompressible data files, so that sizes are the data's;
``--sets`` and ``--mirror`` do not apply). In order, on a fresh registry and Redis:

1. **growth**: K distinct environments (``--keys``, default 1 5 20; wheels drawn from a shared pool, so sharing
   shows) built one after another on A; after each checkpoint the registry's storage (blob bytes, split into
   venv archives / wheels / manifests and configs; manifest revisions) and Redis (``DBSIZE``, ``MEMORY USAGE``
   per venvsmith namespace by ``SCAN``, ``INFO memory``): per lock key, overall and marginal;
2. **cache hits**: ``Resolve`` on the resolver and ``ResolveAndBuild`` (wheels + venv archive) on builder A,
   answered from cache, by N concurrent clients (``--hit-clients``, default 1 4 16) for ``--hit-seconds``
   each: requests/s, p50 / p99;
3. **concurrent builds**: N distinct lock keys built at once on A (``--build-levels``, default 1 2 4 8):
   wall time, builds/min, latency;
4. **replica handoff**: an environment of ``--env-mib`` (default 50) MiB built on A; ``--repeat`` (default 5)
   times a new B with an empty home: B's ``ResolveAndBuild`` plus the client's ``GetArtifact`` of the archive
   (``venvsmith venv --server``'s fetch): medians (goal < 1 s).

``--quick``: a smoke run of each part (small levels, an 8 MiB environment, one handoff). Results:
``bench/results/<date>-fleet.md`` (+ ``.json``, ``.csv`` and ``.png``); the README's "Capacity model" section
quotes them.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import random
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import fleet_model
from common import BENCH_VENV, REPO, SCRUB, WORK_DIR, bench_parser, parse_opts, report_base, rerendered, save_report
from resolve_bench import git_describe, wait_idle

#: Growth: the pool of wheels environments are drawn from, the wheels per environment, the data per wheel.
POOL, PER_ENV, POOL_WHEEL_BYTES = 12, 4, 256 * 1024
#: Concurrent builds: the data in each build's own wheel.
BUILD_WHEEL_BYTES = 1024 * 1024
#: The handoff environment is split over this many wheels.
BIG_WHEELS = 5
HIT_SET = ["h0", "h1"]
WARM_SET = ["h2"]
QUICK = {"keys": [1, 3], "hit_clients": [1, 4], "hit_seconds": 1.0, "build_levels": [1, 2], "env_mib": 8.0,
         "repeat": 1}
TIMEOUT = [300.0]


def _fixtures():
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from tests.fixtures import builder_server, index, redis_server, registry

    return builder_server, index, redis_server, registry


def growth_sets(rng: random.Random, count: int) -> list[list[str]]:
    """``count`` distinct sets of :data:`PER_ENV` packages of the pool (so, distinct lock keys)."""
    seen: set[tuple[int, ...]] = set()
    out = []
    while len(out) < count:
        pick = tuple(sorted(rng.sample(range(POOL), PER_ENV)))
        if pick not in seen:
            seen.add(pick)
            out.append([f"g{i}" for i in pick])
    return out


def make_index(root: Path, rng: random.Random, builds: int, env_bytes: int):
    """The hermetic index (started ``IndexServer``): tiny ``h*``, the pool ``g*``, one ``c<i>`` per concurrent
    build, the handoff environment's ``big*``."""
    _, index_mod, _, _ = _fixtures()
    b = index_mod.IndexBuilder(root)

    def add(name: str, data: int) -> None:
        files = {f"{name}/__init__.py": b"", f"{name}/data.bin": rng.randbytes(data)} if data else None
        b.add(name, "1.0", files=files)

    for name in ("h0", "h1", "h2"):
        add(name, 0)
    for i in range(POOL):
        add(f"g{i}", POOL_WHEEL_BYTES)
    for i in range(builds):
        add(f"c{i}", BUILD_WHEEL_BYTES)
    for i in range(BIG_WHEELS):
        add(f"big{i}", env_bytes // BIG_WHEELS)
    return index_mod.IndexServer(b).start()


# -- calls ---------------------------------------------------------------------------------------------------


def resolve_request(index_url: str, reqs: list[str]):
    from venvsmith.v1 import common_pb2, resolver_pb2

    return resolver_pb2.ResolveRequest(requirements=list(reqs), index=common_pb2.IndexConfig(index_url=index_url))


def build_request(index_url: str, reqs: list[str], wheels: bool = True):
    """Wheels + venv archive, as ``venvsmith venv --server`` asks (``wheels=False``: the archive alone)."""
    from venvsmith.v1 import builder_pb2

    resolve = resolve_request(index_url, reqs)
    return builder_pb2.ResolveAndBuildRequest(resolve=resolve, options=builder_pb2.BuildOptions(
        wheels=wheels, venv_archive=True, index=resolve.index))


def build_result(events):
    """The stream's one build result (RuntimeError without a venv archive)."""
    results = [e.build.result for e in events
               if e.WhichOneof("event") == "build" and e.build.WhichOneof("event") == "result"]
    if len(results) != 1 or not results[0].venv_archive.digest.hash:
        raise RuntimeError("the stream ended without a venv archive")
    return results[0]


def channel(address: str):
    import grpc

    return grpc.insecure_channel(address, options=[("grpc.max_receive_message_length", 64 << 20)])


def _error(exc: BaseException) -> str:
    import grpc

    if isinstance(exc, grpc.RpcError):
        return SCRUB(f"{exc.code().name}: {exc.details()}")[:300]
    return SCRUB(f"{type(exc).__name__}: {exc}")[:300]


# -- 1. growth -----------------------------------------------------------------------------------------------


def registry_usage(data_dir: Path, archives: set[str], wheels: set[str]) -> dict:
    """Blobs (count, bytes; split by what they are) and manifest revisions in a registry's filesystem storage."""
    root = data_dir / "docker" / "registry" / "v2"
    usage = {"blobs": 0, "registry_bytes": 0, "archive_bytes": 0, "wheel_bytes": 0, "meta_bytes": 0, "manifests": 0}
    for blob in (root / "blobs" / "sha256").glob("*/*/data"):
        size = blob.stat().st_size
        digest = blob.parent.name
        usage["blobs"] += 1
        usage["registry_bytes"] += size
        kind = "archive_bytes" if digest in archives else "wheel_bytes" if digest in wheels else "meta_bytes"
        usage[kind] += size
    for revisions in (root / "repositories").glob("**/_manifests/revisions/sha256"):
        usage["manifests"] += sum(1 for _ in revisions.iterdir())
    return usage


def redis_usage(client) -> dict:
    """``DBSIZE``, ``used_memory`` and per namespace (``venvsmith:<namespace>:...``) keys and ``MEMORY USAGE``, in
    all and of the keys without an expiry."""
    spaces: dict[str, dict[str, int]] = {}
    for raw in client.scan_iter(match="*", count=1000):
        key = raw.decode(errors="replace")
        parts = key.split(":")
        name = parts[1] if parts[0] == "venvsmith" and len(parts) > 2 else "(other)"
        space = spaces.setdefault(name, {"keys": 0, "bytes": 0, "persistent_keys": 0, "persistent_bytes": 0})
        size = int(client.memory_usage(raw, samples=0) or 0)
        space["keys"] += 1
        space["bytes"] += size
        if client.pttl(raw) == -1:  # no expiry: stays until deleted or evicted
            space["persistent_keys"] += 1
            space["persistent_bytes"] += size
    return {"redis_keys": int(client.dbsize()), "redis_used_memory": int(client.info("memory")["used_memory"]),
            "redis_key_bytes": sum(s["bytes"] for s in spaces.values()),
            "redis_persistent_bytes": sum(s["persistent_bytes"] for s in spaces.values()), "redis_namespaces": spaces}


def run_growth(ctx: dict, checkpoints: list[int], rng: random.Random) -> list[dict]:
    sets = growth_sets(rng, max(checkpoints))
    stub = ctx["builder_stub"]

    def snapshot(keys: int) -> dict:
        return {"keys": keys, **registry_usage(ctx["registry_data"], ctx["archives"], ctx["wheels"]),
                **redis_usage(ctx["redis"])}

    snapshots = [snapshot(0)]
    for done, reqs in enumerate(sets, start=1):
        result = build_result(stub.ResolveAndBuild(build_request(ctx["index_url"], reqs), timeout=TIMEOUT[0]))
        ctx["archives"].add(result.venv_archive.digest.hash)
        ctx["wheels"].update(w.digest.hash for w in result.wheels)
        if done in checkpoints:
            snapshots.append(snapshot(done))
            print(f"growth: {done} lock keys: {snapshots[-1]['registry_bytes']} registry bytes, "
                  f"{snapshots[-1]['redis_keys']} Redis keys", flush=True)
    return snapshots


# -- 2. cache hits -------------------------------------------------------------------------------------------


def hit_level(address: str, kind: str, index_url: str, clients: int, seconds: float) -> dict:
    """``clients`` threads, one channel each, calling for ``seconds``; every answer must be a cache hit."""
    from venvsmith.v1 import builder_pb2_grpc, resolver_pb2_grpc

    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)
    stop = threading.Event()

    def client() -> None:
        ch = channel(address)
        try:
            if kind == "Resolve":
                stub = resolver_pb2_grpc.ResolverServiceStub(ch)
                request = resolve_request(index_url, HIT_SET)

                def call() -> str:
                    return "" if stub.Resolve(request, timeout=TIMEOUT[0]).stats.resolution_cache_hit else "miss"
            else:
                stub = builder_pb2_grpc.BuilderServiceStub(ch)
                request = build_request(index_url, HIT_SET)

                def call() -> str:
                    return "" if build_result(stub.ResolveAndBuild(request, timeout=TIMEOUT[0])).stats.cached \
                        else "miss"
            try:
                call()  # the channel connected before the clock starts
            except Exception as exc:  # noqa: BLE001 - this client is out, counted as a failure
                with lock:
                    failures.append(f"warm-up: {_error(exc)}")
                return
            finally:
                barrier.wait()
            while not stop.is_set():
                started = time.perf_counter()
                try:
                    error = call()
                except Exception as exc:  # noqa: BLE001 - recorded per call
                    error = _error(exc)
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    (failures.append(error) if error else latencies.append(elapsed))
        finally:
            ch.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join(seconds + TIMEOUT[0])
    row = fleet_model.rate_row(clients, latencies, len(failures), time.perf_counter() - started)
    row["errors"] = sorted(set(failures))[:3]
    return row


# -- 3. concurrent builds ------------------------------------------------------------------------------------


def build_level(ctx: dict, sets: list[list[str]]) -> dict:
    """The builds of ``sets`` (distinct lock keys) started at once, one thread and channel each."""
    from venvsmith.v1 import builder_pb2_grpc

    latencies: list[float] = []
    errors: list[str] = []
    built: list[bool] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(sets) + 1)

    def client(reqs: list[str]) -> None:
        ch = channel(ctx["builder"].address)
        stub = builder_pb2_grpc.BuilderServiceStub(ch)
        try:
            barrier.wait()
            started = time.perf_counter()
            result = build_result(stub.ResolveAndBuild(build_request(ctx["index_url"], reqs), timeout=TIMEOUT[0]))
            with lock:
                latencies.append(time.perf_counter() - started)
                built.append(result.stats.venv_built)
        except Exception as exc:  # noqa: BLE001 - recorded per build
            with lock:
                errors.append(_error(exc))
        finally:
            ch.close()

    threads = [threading.Thread(target=client, args=(reqs,), daemon=True) for reqs in sets]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join(TIMEOUT[0] + 60)
    row = fleet_model.build_row(len(sets), latencies, time.perf_counter() - started, len(errors), sum(built))
    row["errors"] = sorted(set(errors))[:3]
    return row


# -- 4. handoff ----------------------------------------------------------------------------------------------


def venv_builds(port: int) -> float:
    """Venv archives a builder built itself (``venvsmith_build_duration_seconds_count{kind="venv"}``); an
    environment image found in the registry is no build."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return sum(s.value for family in text_string_to_metric_families(text) for s in family.samples
               if s.name == "venvsmith_build_duration_seconds_count" and s.labels.get("kind") == "venv")


def http_fetch(url: str, dest: Path, digest) -> None:
    """GET ``url`` into ``dest`` (1 MiB reads), sha256-checked against ``digest``."""
    import hashlib
    import urllib.request

    sha = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=TIMEOUT[0]) as answer, open(dest, "wb") as out:
        while block := answer.read(1 << 20):
            sha.update(block)
            out.write(block)
    if sha.hexdigest() != digest.hash or dest.stat().st_size != digest.size_bytes:
        raise RuntimeError(f"{url}: the bytes do not match sha256:{digest.hash}")


#: How the client asks B: (wheels too, fetch over gRPC) -- ``venv --server`` -- or the archive alone over HTTP.
HANDOFF_MODES = {"venv --server": (True, "grpc"), "archive only, HTTP": (False, "http")}


def handoff_run(ctx: dict, work: Path, big: list[str], run: int, mode: str) -> dict:
    """A new B (empty home): warm-up call, then timed ResolveAndBuild + fetch of the archive's bytes."""
    from venvsmith.clients.builder import RemoteBuilder

    wheels, transport = HANDOFF_MODES[mode]
    builder_server = ctx["fixtures"][0]
    home = work / f"b-{run}"
    metrics = builder_server.free_port()
    b = builder_server.BuilderProcess(home, *ctx["replica_args"], "--metrics-port", str(metrics),
                                      allow=[ctx["index_base"]])
    remote = RemoteBuilder(b.address)

    def fetch(ref, dest: Path) -> None:
        if transport == "http":
            http_fetch(ref.http_url, dest, ref.digest)
        else:
            remote.fetch(ref.digest, dest)

    try:
        warm = build_result(remote.resolve_and_build(build_request(ctx["index_url"], WARM_SET, wheels),
                                                     timeout=TIMEOUT[0]))
        fetch(warm.venv_archive, work / f"warm-{run}.tar.zst")
        dest = work / f"archive-{run}.tar.zst"
        started = time.perf_counter()
        result = build_result(remote.resolve_and_build(build_request(ctx["index_url"], big, wheels),
                                                       timeout=TIMEOUT[0]))
        answered = time.perf_counter()
        fetch(result.venv_archive, dest)
        done = time.perf_counter()
        ok = result.venv_archive.digest.hash == ctx["big_digest"] and dest.stat().st_size == ctx["big_size"]
        rebuilt = venv_builds(metrics)
        error = "" if ok else "B served another archive"
        if rebuilt:
            error = f"B built {rebuilt:.0f} venvs itself (the registry's image was not used)"
        return {"resolve_and_build_s": answered - started, "fetch_s": done - answered, "total_s": done - started,
                "venvs_built_on_b": rebuilt, "error": error}
    except Exception as exc:  # noqa: BLE001 - recorded per run
        return {"error": _error(exc)}
    finally:
        remote.close()
        b.stop()
        shutil.rmtree(home, ignore_errors=True)
        for leftover in work.glob(f"*-{run}.tar.zst"):
            leftover.unlink()


def run_handoff(ctx: dict, work: Path, repeat: int, env_bytes: int) -> dict:
    big = [f"big{i}" for i in range(BIG_WHEELS)]
    started = time.perf_counter()
    result = build_result(ctx["builder_stub"].ResolveAndBuild(build_request(ctx["index_url"], big),
                                                              timeout=TIMEOUT[0]))
    build_s = time.perf_counter() - started
    ctx["big_digest"], ctx["big_size"] = result.venv_archive.digest.hash, result.venv_archive.digest.size_bytes
    # The warm-up environment exists in the registry too (built by A), as in a fleet.
    build_result(ctx["builder_stub"].ResolveAndBuild(build_request(ctx["index_url"], WARM_SET), timeout=TIMEOUT[0]))
    modes: dict[str, list[dict]] = {mode: [] for mode in HANDOFF_MODES}
    for run in range(repeat):
        for mode, runs in modes.items():  # interleaved: a slow moment of the machine hits both
            runs.append(handoff_run(ctx, work, big, run, mode))
            print(f"handoff #{run} ({mode}): {runs[-1]}", flush=True)
    return {"wheels": BIG_WHEELS, "data_bytes": env_bytes, "archive_bytes": ctx["big_size"], "build_s": build_s,
            "runs": modes["venv --server"], "modes": modes}


# -- the run -------------------------------------------------------------------------------------------------


def _require_tools() -> None:
    missing = [tool for tool, hint in (("docker-registry", "make registry-tools"), ("redis-server", "make redis-tools"))
               if shutil.which(tool) is None]
    if missing:
        raise SystemExit(f"the fleet bench needs {' and '.join(missing)} (make registry-tools redis-tools)")


def run_bench(opts: argparse.Namespace) -> dict:
    _require_tools()
    fixtures = _fixtures()
    builder_server, _, redis_server, registry_mod = fixtures
    TIMEOUT[0] = opts.timeout
    rng = random.Random(opts.seed)
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="fleet-", dir=WORK_DIR))
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    load_before = round(wait_idle(opts.wait_idle, opts.idle_load), 2)  # --wait-idle S: a quieter machine
    env_bytes = int(opts.env_mib * fleet_model.MIB)
    index = make_index(work / "index", rng, sum(opts.build_levels), env_bytes)
    registry = registry_mod.RegistryProcess(work / "registry").start()
    redis = redis_server.RedisServer().start()
    store = f"oci://{registry.host}/fleet"
    replica_args = ("--store", store, "--cache", redis.url)
    builder = resolver = None
    try:
        builder = builder_server.BuilderProcess(work / "a", *replica_args, allow=[index.base_url])
        resolver = builder_server.ResolverProcess(work / "r", allow=[index.base_url], cache=redis.url)
        ctx = {"fixtures": fixtures, "builder": builder, "builder_stub": builder.stub, "index_url": index.url,
               "index_base": index.base_url, "registry_data": registry.root / "data", "redis": redis.client(),
               "archives": set(), "wheels": set(), "replica_args": replica_args}
        print(f"fleet bench: growth to {max(opts.keys)} lock keys", flush=True)
        snapshots = run_growth(ctx, sorted(set(opts.keys)), rng)
        build_result(builder.stub.ResolveAndBuild(build_request(index.url, HIT_SET), timeout=opts.timeout))
        resolver.resolver_stub.Resolve(resolve_request(index.url, HIT_SET), timeout=opts.timeout)
        hits: dict[str, list[dict]] = {"Resolve": [], "ResolveAndBuild": []}
        for clients in opts.hit_clients:
            for kind, server in (("Resolve", resolver), ("ResolveAndBuild", builder)):
                hits[kind].append(hit_level(server.address, kind, index.url, clients, opts.hit_seconds))
                print(f"hits: {kind} x {clients}: {hits[kind][-1]['per_s']:.0f}/s", flush=True)
        builds, first = [], 0
        for level in opts.build_levels:
            builds.append(build_level(ctx, [[f"c{i}"] for i in range(first, first + level)]))
            first += level
            print(f"builds: {level} at once: {builds[-1]['wall_s']:.2f} s", flush=True)
        handoff = run_handoff(ctx, work, opts.repeat, env_bytes)
        alive = {"builder": builder.alive(), "resolver": resolver.alive()}
    finally:
        for process in (resolver, builder):
            if process is not None:
                process.stop()
        redis.stop()
        registry.stop()
        index.stop()
        if not opts.keep_work:
            shutil.rmtree(work, ignore_errors=True)
    per_key = fleet_model.growth(snapshots)
    best_hits = fleet_model.sustained(hits["ResolveAndBuild"])
    saturation = fleet_model.saturation(builds)
    return {
        "date": time.strftime("%Y-%m-%d"), "started": stamp, "quick": opts.quick, "seed": opts.seed,
        "index": "hermetic, on 127.0.0.1: wheels with random data files", "hit_set": HIT_SET,
        "hit_servers": {"Resolve": "serve resolver", "ResolveAndBuild": "serve builder"},
        "growth_pool": POOL, "growth_set_size": PER_ENV, "growth_wheel_bytes": POOL_WHEEL_BYTES,
        "snapshots": snapshots, "per_key": per_key, "hits": hits, "builds": builds, "handoff": handoff,
        "alive_at_end": alive,
        "build_saturation": saturation,
        "sizing": fleet_model.sizing(per_key.get("marginal", {}), best_hits.get("per_s", 0.0))
        if per_key else {},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_before": load_before,
                    "load_after": round(os.getloadavg()[0], 2)},
        "versions": {"venvsmith": git_describe()},
    }


def failures(results: dict) -> int:
    """Calls, builds and handoffs that did not have the expected outcome."""
    return (sum(r["failures"] for rows in results["hits"].values() for r in rows)
            + sum(r["failures"] for r in results["builds"])
            + sum(1 for runs in results["handoff"]["modes"].values() for r in runs if r.get("error")))


def write_report(results: dict, outdir: Path, base: str) -> Path:
    plot = "plot_fleet.py" if (BENCH_VENV / "bin" / "python").exists() else None
    path = save_report(results, outdir, base, fleet_model.render_markdown, plot_script=plot)
    with open(outdir / f"{base}.csv", "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(fleet_model.csv_rows(results))
    return path


def build_parser() -> argparse.ArgumentParser:
    p = bench_parser("fleet_bench", __doc__, default_sets=("requests",), timeout=300.0,
                     quick_help="smoke run: " + ", ".join(f"{k.replace('_', '-')} {v}" for k, v in QUICK.items()),
                     timeout_help="seconds per call", repeat_help="handoffs to a new replica B (default 5)")
    p.add_argument("--keys", type=int, nargs="+", default=[1, 5, 20],
                   help="growth checkpoints: distinct lock keys built (default 1 5 20)")
    p.add_argument("--hit-clients", type=int, nargs="+", default=[1, 4, 16],
                   help="concurrent clients of the cache-hit levels (default 1 4 16)")
    p.add_argument("--hit-seconds", type=float, default=4.0, help="seconds per cache-hit level (default 4)")
    p.add_argument("--build-levels", type=int, nargs="+", default=[1, 2, 4, 8],
                   help="distinct builds started at once, per level (default 1 2 4 8)")
    p.add_argument("--env-mib", type=float, default=50.0,
                   help="MiB of random data in the handoff environment (default 50)")
    p.add_argument("--seed", type=int, default=13, help="seed of the data and the growth sets (default 13)")
    return p


def main(argv: list[str] | None = None, strict: bool = True) -> int:
    """Runs without the bench venv (the chart is skipped without it) or any network: everything is local."""
    opts = parse_opts(build_parser(), argv, strict)
    if rerendered(opts, write_report):
        return 0
    if opts.quick:
        opts.keys, opts.hit_clients = QUICK["keys"], QUICK["hit_clients"]
        opts.hit_seconds, opts.build_levels = QUICK["hit_seconds"], QUICK["build_levels"]
        opts.env_mib, opts.repeat = min(opts.env_mib, QUICK["env_mib"]), QUICK["repeat"]
    if min(opts.keys + opts.hit_clients + opts.build_levels + [opts.repeat]) < 1 or opts.hit_seconds <= 0:
        raise SystemExit("--keys, --hit-clients, --build-levels and --repeat must be at least 1")
    opts.mirror = False  # the index is the bench's own
    results = run_bench(opts)
    write_report(results, Path(opts.output_dir), report_base(results["date"], "fleet", opts))
    return 1 if failures(results) else 0


if __name__ == "__main__":
    sys.exit(main())
