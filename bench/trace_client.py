"""Timeline of one client command: ``trace_client.py --out REPORT.json -- venv D -r SET --server ADDR ...``.

Runs ``venvsmith.cli.main`` in this process (the project venv's interpreter, as the ``venvsmith`` script would)
and writes a JSON report of when each gRPC call the client made started and ended, relative to this script's
first line. Only gRPC's own client classes are hooked (``grpc._channel``'s multi-callables), never venvsmith's
functions: the thin client under test may move its seams, the wire stays. ``pod_bench.py`` puts these marks
next to the process wall clock it measures and to ``-X importtime``:

- start -> the CLI imported (``import venvsmith.cli``; gRPC itself is imported first, by the hooks);
- the CLI imported -> the first RPC starts (arguments, requirement files, the request, imports done on the way);
- first RPC start -> last RPC end (answers, downloads over gRPC);
- last RPC end -> ``main`` returned (placing the venv from the node cache or the archive, output).
"""

from __future__ import annotations

import time

T0 = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

_CLASSES = ("_UnaryUnaryMultiCallable", "_UnaryStreamMultiCallable", "_StreamUnaryMultiCallable",
            "_StreamStreamMultiCallable", "_SingleThreadedUnaryStreamMultiCallable")


def hook_grpc(calls: list[dict]) -> None:
    """Record ``{"method", "start", "end"}`` (seconds since T0) of every client call: a stream ends when its
    call is done (``add_done_callback``), a unary call when it returns."""
    import grpc._channel as channel

    def wrap(real, kind: str):
        def call(self, *args, **kwargs):
            method = getattr(self, "_method", b"?")
            entry = {"method": method.decode() if isinstance(method, bytes) else str(method), "kind": kind,
                     "start": time.perf_counter() - T0}
            calls.append(entry)
            result = real(self, *args, **kwargs)
            done = getattr(result, "add_done_callback", None)
            if kind == "__call__" and done is not None:  # a streaming call: ends when its stream does
                done(lambda _call: entry.setdefault("end", time.perf_counter() - T0))
            elif kind == "future" and done is not None:
                done(lambda _future: entry.setdefault("end", time.perf_counter() - T0))
            else:
                entry["end"] = time.perf_counter() - T0
            return result

        return call

    for name in _CLASSES:
        cls = getattr(channel, name, None)
        if cls is None:
            continue
        for kind in ("__call__", "with_call", "future"):
            real = cls.__dict__.get(kind)
            if real is not None:
                setattr(cls, kind, wrap(real, kind))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("argv", nargs=argparse.REMAINDER)
    opts = parser.parse_args()
    argv = opts.argv[1:] if opts.argv[:1] == ["--"] else opts.argv
    here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if p != here]  # bench/ modules must not shadow anything the CLI imports
    calls: list[dict] = []
    hook_grpc(calls)
    grpc_imported = time.perf_counter() - T0
    import venvsmith.cli as cli

    cli_imported = time.perf_counter() - T0
    try:
        status = cli.main(argv)
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else 1
    returned = time.perf_counter() - T0
    packages: dict[str, int] = {}
    for module in sys.modules:
        packages[module.split(".")[0]] = packages.get(module.split(".")[0], 0) + 1
    report = {"status": status, "grpc_imported_s": grpc_imported, "cli_imported_s": cli_imported,
              "returned_s": returned, "calls": calls, "modules_loaded": len(sys.modules),
              "packages_loaded": dict(sorted(packages.items(), key=lambda kv: -kv[1])[:25]),
              # what the cache-hit path should not need (issue 14): the resolver, the build engine, packaging
              "project_modules": sorted(m for m in sys.modules
                                        if m.split(".")[0] in ("builder_service", "resolver_service"))}
    Path(opts.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return status


if __name__ == "__main__":
    sys.exit(main())
