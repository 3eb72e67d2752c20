"""Concurrency: N identical cold requests at once against a fresh server — how much work actually ran.

Per set (default ``jupyter``; ``--quick``: ``requests``):

- **builder**: ``venvsmith serve builder`` started with an empty ``VENVSMITH_HOME``; ``--clients`` threads
  (default 50), each with its own channel, released together by a barrier, each calling ``ResolveAndBuild``
  with the request ``venvsmith venv`` sends (wheels + venv archive). From every reply: the resolve summary's
  ``ResolveStats`` (``resolution_cache_hit``, ``shared_in_flight``) and the ``BuildStats`` of the result
  (``venv_built``, ``shared_in_flight``, ``cached``, wheels downloaded / built / cached). A resolution *ran*
  for a reply that neither hit the resolution cache nor joined one in flight; a venv was *built* for a reply
  with ``venv_built``; the wheels downloaded add up over the replies (single-flight: each file once).
  Then a second, warm wave of the same requests. Finally the server's peak RSS (``VmHWM`` in
  ``/proc/<pid>/status``).
- **resolver**: the same with ``venvsmith serve resolver`` and ``Resolve``.

Latency is client-side, per call (stream fully read), from the barrier's release; p50 / p99 by nearest rank.
The clients are threads of this process and share its GIL and the machine's CPUs with the server.

Results: ``bench/results/<date>-concurrency.md`` (+ ``.json``).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path

from common import QUICK_SET, SCRUB, bench_main, bench_parser, run_fields, save_report
from resolve_bench import ResolverServer, git_describe, md_escape, percentile, start_run, wait_idle
from venv_bench import VenvTools, code_revision

DEFAULT_SETS = ("jupyter",)


def venv_request(set_file: Path, tools: VenvTools):
    """The ResolveAndBuildRequest ``venvsmith venv D -r SET ...`` sends, and the ResolveRequest inside it."""
    from venvsmith.cli import build_parser, build_request
    from venvsmith.v1 import builder_pb2

    args = build_parser().parse_args(["resolve", "-r", str(set_file), *tools.index.argv(), *tools.vs_target])
    resolve = build_request(args)
    options = builder_pb2.BuildOptions(wheels=True, venv_archive=True, index=resolve.index)
    return builder_pb2.ResolveAndBuildRequest(resolve=resolve, options=options), resolve


def _call_builder(stub, request, timeout: float) -> dict:
    out: dict = {}
    for event in stub.ResolveAndBuild(request, timeout=timeout):
        kind = event.WhichOneof("event")
        if kind == "resolve" and event.resolve.WhichOneof("event") == "summary":
            s = event.resolve.summary.stats
            out.update(resolution_cache_hit=s.resolution_cache_hit, resolve_shared=s.shared_in_flight,
                       resolve_ms=s.elapsed_ms)
        elif kind == "build" and event.build.WhichOneof("event") == "result":
            b = event.build.result.stats
            out.update(venv_built=b.venv_built, build_shared=b.shared_in_flight, build_cached=b.cached,
                       wheels_downloaded=b.wheels_downloaded, wheels_built=b.wheels_built,
                       wheels_cached=b.wheels_cached, build_ms=b.elapsed_ms)
    if "venv_built" not in out:
        raise RuntimeError("the stream ended without a build result")
    return out


def _call_resolver(stub, request, timeout: float) -> dict:
    s = stub.Resolve(request, timeout=timeout).stats
    return {"resolution_cache_hit": s.resolution_cache_hit, "resolve_shared": s.shared_in_flight,
            "resolve_ms": s.elapsed_ms}


def wave(address: str, kind: str, request, clients: int, timeout: float) -> list[dict]:
    """``clients`` threads, one channel each, released together; one reply record per thread."""
    import grpc

    from venvsmith.v1 import builder_pb2_grpc, resolver_pb2_grpc

    barrier = threading.Barrier(clients + 1)
    replies: list[dict] = [{} for _ in range(clients)]

    def client(i: int) -> None:
        channel = grpc.insecure_channel(address, options=[("grpc.max_receive_message_length", 64 << 20)])
        try:
            if kind == "builder":
                stub, call = builder_pb2_grpc.BuilderServiceStub(channel), _call_builder
            else:
                stub, call = resolver_pb2_grpc.ResolverServiceStub(channel), _call_resolver
            grpc.channel_ready_future(channel).result(timeout=30)
            barrier.wait()
            started = time.perf_counter()
            try:
                replies[i] = {**call(stub, request, timeout), "ms": (time.perf_counter() - started) * 1000}
            except grpc.RpcError as exc:
                replies[i] = {"error": SCRUB(f"{exc.code().name}: {exc.details()}")[:300],
                              "ms": (time.perf_counter() - started) * 1000}
            except Exception as exc:  # noqa: BLE001 - recorded per call
                replies[i] = {"error": SCRUB(str(exc))[:300], "ms": (time.perf_counter() - started) * 1000}
        finally:
            channel.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    for t in threads:
        t.join(timeout + 60)
    return replies


def summarize_wave(replies: list[dict]) -> dict:
    ok = [r for r in replies if "error" not in r and "ms" in r]
    errors = [r["error"] for r in replies if "error" in r]
    out: dict = {"calls": len(replies), "ok": len(ok), "errors": errors[:5], "error_count": len(errors)}
    if not ok:
        return out
    ms = [r["ms"] for r in ok]
    hits = sum(bool(r.get("resolution_cache_hit")) for r in ok)
    shared = sum(bool(r.get("resolve_shared")) for r in ok)
    out.update(
        p50_ms=statistics.median(ms), p99_ms=percentile(ms, 99), max_ms=max(ms), min_ms=min(ms),
        resolution_cache_hits=hits, resolutions_shared=shared,
        resolutions_ran=sum(not r.get("resolution_cache_hit") and not r.get("resolve_shared") for r in ok),
    )
    if any("venv_built" in r for r in ok):
        out.update(
            venv_built=sum(bool(r.get("venv_built")) for r in ok),
            build_shared=sum(bool(r.get("build_shared")) for r in ok),
            build_cached=sum(bool(r.get("build_cached")) for r in ok),
            wheels_downloaded=sum(r.get("wheels_downloaded", 0) for r in ok),
            wheels_built=sum(r.get("wheels_built", 0) for r in ok),
            wheels_cached=sum(r.get("wheels_cached", 0) for r in ok),
        )
    return out


def bench_server(tools: VenvTools, kind: str, name: str, set_file: Path, work: Path, clients: int,
                 timeout: float) -> dict:
    request, resolve = venv_request(set_file, tools)
    server = ResolverServer(tools, work / f"{kind}-{name}" / "home", service=kind)
    result: dict = {"set_name": name, "server": kind, "clients": clients}
    try:
        server.start()
    except Exception as exc:  # noqa: BLE001 - recorded
        server.stop()
        return {**result, "error": SCRUB(f"server did not start: {exc}")[:300]}
    try:
        result["startup_s"] = server.startup_s
        result["rss_idle_mib"] = server.memory().get("VmRSS", 0.0)
        payload = request if kind == "builder" else resolve
        for label in ("cold", "warm"):
            started = time.perf_counter()
            replies = wave(server.address, kind, payload, clients, timeout)
            result[label] = {**summarize_wave(replies), "wall_s": time.perf_counter() - started}
            print(f"  {name:<10} {kind:<8} {label}: " + ", ".join(
                f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}"
                for k, v in result[label].items() if k != "errors"), flush=True)
        mem = server.memory()
        result["rss_peak_mib"] = mem.get("VmHWM", 0.0)
        result["rss_end_mib"] = mem.get("VmRSS", 0.0)
        if any(result[w].get("error_count") for w in ("cold", "warm")):
            result["log_tail"] = server.log_tail()
    finally:
        server.stop()
        shutil.rmtree(work / f"{kind}-{name}", ignore_errors=True)
    return result


def run_bench(opts: argparse.Namespace) -> dict:
    index, sets, stamp, work = start_run(opts, "concurrency")
    tools = VenvTools(opts, index, work)
    rev_start = code_revision()
    load_before = wait_idle(opts.wait_idle, opts.idle_load)
    print(f"concurrency bench: {opts.clients} identical requests at once; sets {', '.join(n for n, _ in sets)}",
          flush=True)
    rows = []
    for name, set_file in sets:
        for kind in ("builder", "resolver"):
            if kind == "resolver" and opts.skip_resolver:
                continue
            rows.append(bench_server(tools, kind, name, set_file, work, opts.clients, opts.timeout))
    if not opts.keep_work:
        shutil.rmtree(work, ignore_errors=True)
    return {
        **run_fields(opts, stamp, sets),
        "clients": opts.clients,
        "index": index.describe(),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_before": round(load_before, 2),
                    "load_after": round(os.getloadavg()[0], 2)},
        "versions": {"venvsmith": git_describe(), "venvsmith_code_at_start": rev_start,
                     "venvsmith_code": code_revision()},
        "rows": rows,
    }


def render_markdown(results: dict) -> str:
    m = results["machine"]
    title = f"# Concurrency, {results['date']}{' (quick smoke run)' if results['quick'] else ''}"
    title += ", local mirror" if results.get("mirror") else ""
    out = [title, ""]
    start = results["versions"].get("venvsmith_code_at_start")
    if start and start != results["versions"].get("venvsmith_code"):
        out += [f"**The checked-out venvsmith changed during this run** (code {start} to "
                f"{results['versions']['venvsmith_code']}).", ""]
    if results.get("venvsmith_pythonpath"):
        out += [f"**venvsmith ran with `PYTHONPATH={results['venvsmith_pythonpath']}`** (a candidate fix).", ""]
    out += [
        f"venvsmith {results['versions']['venvsmith']}; {m['cpus']} CPUs, {m['platform']}; 1-min load average "
        f"{m['load_before']} before / {m['load_after']} after.",
        "",
        "Index settings: " + "; ".join(results["index"]) + ".",
        "",
        f"{results['clients']} threads, one gRPC channel each, released together against a server started with "
        "an empty home (**cold**), then the same again (**warm**). *Ran* = replies that neither hit a cache nor "
        "joined identical work in flight; wheels downloaded are summed over all replies. Latency is per call, "
        "client-side, the stream read to its end. The server's gRPC pool has 32 workers: calls beyond that "
        "wait for one.",
        "",
        "| set | server | wave | ok | resolutions ran / shared / cache hits | venv builds ran / shared / cached "
        "| wheels downloaded (sum) | p50 | p99 | max | wave wall |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in results["rows"]:
        if row.get("error"):
            out.append(f"| `{row['set_name']}` | {row['server']} | — | error: {md_escape(row['error'])} |"
                       + " |" * 7)
            continue
        for label in ("cold", "warm"):
            w = row[label]
            if not w.get("ok"):
                err = md_escape((w.get("errors") or ["?"])[0])
                out.append(f"| `{row['set_name']}` | {row['server']} | {label} | 0/{w['calls']}: {err} |"
                           + " |" * 7)
                continue
            res = f"{w['resolutions_ran']} / {w['resolutions_shared']} / {w['resolution_cache_hits']}"
            if "venv_built" in w:
                builds = (f"{w['venv_built']} / {w['build_shared']} / {w['build_cached']}")
                wheels = f"{w['wheels_downloaded']} (+{w['wheels_built']} built)"
            else:
                builds = wheels = "—"
            errors = f" ({w['error_count']} failed)" if w.get("error_count") else ""
            out.append(
                f"| `{row['set_name']}` | {row['server']} | {label} | {w['ok']}/{w['calls']}{errors} | {res} | "
                f"{builds} | {wheels} | {w['p50_ms']:.0f} ms | {w['p99_ms']:.0f} ms | {w['max_ms']:.0f} ms | "
                f"{w['wall_s']:.2f} s |")
    out += ["", "| set | server | start → healthy | RSS idle | RSS after | peak RSS (VmHWM) |",
            "|---|---|---|---|---|---|"]
    for row in results["rows"]:
        if not row.get("error"):
            out.append(f"| `{row['set_name']}` | {row['server']} | {row['startup_s']:.2f} s | "
                       f"{row['rss_idle_mib']:.0f} MiB | {row['rss_end_mib']:.0f} MiB | "
                       f"{row['rss_peak_mib']:.0f} MiB |")
    errors = [(row, label) for row in results["rows"] for label in ("cold", "warm")
              if not row.get("error") and row[label].get("error_count")]
    if errors:
        out += ["", "## Errors", ""]
        for row, label in errors:
            out += [f"- `{row['set_name']}` {row['server']} {label}: " + "; ".join(
                md_escape(e) for e in row[label]["errors"])]
            if row.get("log_tail"):
                out += [f"  server log: {md_escape(row['log_tail'])}"]
    return "\n".join(out) + "\n"


def write_report(results: dict, outdir: Path, base: str) -> Path:
    return save_report(results, outdir, base, lambda doc, _chart: render_markdown(doc))


def build_parser() -> argparse.ArgumentParser:
    p = bench_parser("concurrency_bench", __doc__, default_sets=DEFAULT_SETS, timeout=1800.0,
                     quick_help=f"smoke run: {QUICK_SET} only", timeout_help="seconds per call")
    p.add_argument("--clients", type=int, default=50, help="concurrent identical requests (default 50)")
    p.add_argument("--skip-resolver", action="store_true", help="only the builder server")
    return p


def _check(opts: argparse.Namespace) -> None:
    if opts.clients < 1:
        raise SystemExit("--clients must be at least 1")


def main(argv: list[str] | None = None, strict: bool = True) -> int:
    return bench_main(argv, strict, parser=build_parser(), kind="concurrency", run=run_bench,
                      write_report=write_report, check=_check)


if __name__ == "__main__":
    sys.exit(main())
