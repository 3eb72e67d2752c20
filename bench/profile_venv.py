"""Where ``venvsmith venv`` spends its time: ``profile_venv.py --out REPORT.json [--cprofile] -- venv D -r SET ...``.

Runs ``venvsmith.cli.main`` in this process (the project venv's interpreter, as ``venvsmith`` would) and writes a
JSON report:

- a **timeline** of the phases, from hooks on the CLI's own seams (no profiler): imports, argument parsing and
  the request, opening the embedded engines (``connect_builder``), the resolve stream up to its summary (with
  its stats: was the resolution cache hit?), the build stream up to its result (was the venv archive cached?),
  unpacking the archive, and closing;
- with ``--cprofile``: cProfile of the main thread and of every other thread (``threading.Thread.run`` is
  wrapped so that each thread gets its own profiler), the top functions of each.

``venv_bench.py`` runs it on the embedded *repeat* path; it can be run by hand the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path

T0 = time.perf_counter()
REPO = Path(__file__).resolve().parent.parent


def _short(filename: str) -> str:
    for prefix in (str(REPO) + os.sep, os.path.dirname(os.__file__) + os.sep):
        if filename.startswith(prefix):
            return filename[len(prefix):]
    return filename


def _rows(stats, key: str, limit: int, project_only: bool = False) -> list[dict]:
    """Top ``limit`` entries of a ``pstats.Stats`` by ``key`` ("cumtime" or "tottime")."""
    skip = ("<frozen runpy>", "profile_venv.py", "threading.py", "concurrent/futures/thread.py")
    rows = []
    for (filename, line, func), (cc, nc, tt, ct, _callers) in stats.stats.items():
        if any(s in filename for s in skip) or func in ("<module>", "exec", "<built-in method builtins.exec>"):
            continue
        if key == "cumtime" and ("importlib" in filename or "__import__" in func or "_handle_fromlist" in func):
            continue  # imports are a phase of the timeline; here they would crowd out everything else
        if project_only and not filename.startswith(str(REPO)):
            continue
        rows.append({"func": f"{_short(filename)}:{line}({func})", "ncalls": nc if nc == cc else f"{nc}/{cc}",
                     "tottime": round(tt, 4), "cumtime": round(ct, 4)})
    rows.sort(key=lambda r: r[key], reverse=True)
    return rows[:limit]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--cprofile", action="store_true")
    parser.add_argument("argv", nargs=argparse.REMAINDER)
    opts = parser.parse_args()
    argv = opts.argv[1:] if opts.argv[:1] == ["--"] else opts.argv

    profilers: list[tuple[str, object]] = []
    main_profile = None
    if opts.cprofile:
        import cProfile

        main_profile = cProfile.Profile()
        original_run = threading.Thread.run

        def profiled_run(self):
            profile = cProfile.Profile()
            profilers.append((self.name, profile))
            profile.enable()
            try:
                return original_run(self)
            finally:
                profile.disable()

        threading.Thread.run = profiled_run
        main_profile.enable()

    marks: dict[str, float] = {}
    stats: dict[str, dict] = {}

    def mark(name: str, last: bool = False) -> None:
        """The first time ``name`` happened (the last time with ``last``)."""
        if last:
            marks[name] = time.perf_counter()
        else:
            marks.setdefault(name, time.perf_counter())

    import builder_service.archive as archive
    import builder_service.engine  # noqa: F401 - imported here so that "open engines" is construction only
    import builder_service.orchestrate  # noqa: F401
    import venvsmith.cli as cli
    import venvsmith.cli.build as cli_build

    mark("imported")

    real_connect = cli_build.connect_builder

    def connect(server, **options):
        mark("connect")
        client = real_connect(server, **options)
        mark("connected")
        real_rab = client.resolve_and_build

        def resolve_and_build(request, timeout=None):
            mark("rab_start")
            for event in real_rab(request, timeout=timeout) if timeout else real_rab(request):
                kind = event.WhichOneof("event")
                if kind == "resolve":
                    mark("first_resolve_event")
                    if event.resolve.WhichOneof("event") == "summary":
                        mark("resolve_summary")
                        s = event.resolve.summary.stats
                        stats["resolve_stats"] = {
                            "resolution_cache_hit": s.resolution_cache_hit, "elapsed_ms": round(s.elapsed_ms, 2),
                            "shared_in_flight": s.shared_in_flight, "pins": event.resolve.summary.pin_count}
                elif kind == "build":
                    mark("first_build_event")
                    if event.build.WhichOneof("event") == "result":
                        mark("build_result")
                        b = event.build.result.stats
                        stats["build_stats"] = {
                            "cached": b.cached, "venv_built": b.venv_built, "wheels_cached": b.wheels_cached,
                            "wheels_downloaded": b.wheels_downloaded, "elapsed_ms": round(b.elapsed_ms, 2)}
                yield event

        client.resolve_and_build = resolve_and_build
        return client

    durations: dict[str, float] = {}

    def timed_hook(module, name: str, start: str, end: str, key: str) -> None:
        """Wrap ``module.name``: mark ``start`` / ``end`` around its first call, add up its wall time."""
        real = getattr(module, name)

        def wrapper(*args, **kwargs):
            mark(start)
            began = time.perf_counter()
            try:
                return real(*args, **kwargs)
            finally:
                durations[key] = durations.get(key, 0.0) + time.perf_counter() - began
                mark(end, last=True)

        setattr(module, name, wrapper)

    cli_build.connect_builder = connect
    # Placing the venv: ``unpack`` (an archive from the store or fetched), or, in trees that have it,
    # ``materialize`` (an unpacked template in the home, cloned with hard links).
    timed_hook(archive, "unpack", "place", "placed", "unpack")
    try:
        import builder_service.materialize as materialize
    except ImportError:
        materialize = None
    else:
        timed_hook(materialize, "materialize", "place", "placed", "materialize")
        timed_hook(materialize, "template_for", "template", "templated", "template_for")
        timed_hook(materialize, "clone_tree", "clone", "cloned", "clone_tree")
    status = cli.main(argv)
    end = time.perf_counter()
    if main_profile is not None:
        main_profile.disable()

    def span(a: str, b: str) -> float:
        return max(marks.get(b, end) - marks.get(a, end), 0.0) if a in marks else 0.0

    phases = [
        ("import venvsmith and the builder modules", marks["imported"] - T0),
        ("arguments, requirements file, request", span("imported", "connect")),
        ("open the embedded engines (connect_builder)", span("connect", "connected")),
        ("resolve stream until its summary", span("rab_start", "resolve_summary")),
        ("build stream until its result (after the summary)", span("resolve_summary", "build_result")),
        ("between the result and placing the venv", span("build_result", "place")),
        ("place the venv (" + (" + ".join(f"{k} {v:.3f} s" for k, v in durations.items()) or "nothing ran")
         + ")", span("place", "placed")),
        ("close the engines, print", end - marks.get("placed", end)),
    ]
    report = {
        "status": status,
        "in_process_s": end - T0,
        "phases": [{"name": n, "s": round(s, 4)} for n, s in phases],
        **stats,
    }
    if main_profile is not None:
        import pstats

        main_stats = pstats.Stats(main_profile)
        report["main_cumulative"] = _rows(main_stats, "cumtime", 25)
        report["main_own"] = _rows(main_stats, "tottime", 15)
        others = [p for _, p in profilers]
        if others:
            thread_stats = pstats.Stats(others[0])
            for p in others[1:]:
                thread_stats.add(p)
            report["threads"] = _rows(thread_stats, "cumtime", 20, project_only=True)
            report["thread_counts"] = dict(Counter(name.rsplit("_", 1)[0].rstrip("0123456789-")
                                                   for name, _ in profilers))
    Path(opts.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return status


if __name__ == "__main__":
    sys.exit(main())
