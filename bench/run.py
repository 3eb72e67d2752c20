"""``make bench``: run the project's benchmarks and write their reports under ``bench/results/``.

    python bench/run.py [--bench NAME]... [options of those benches]

Benches (in ``BENCHES``; each module's ``--help`` lists its options):

- ``resolve`` (``bench/resolve_bench.py``): resolve cold / warm / repeated over gRPC, next to uv and pip;
- ``venv`` (``bench/venv_bench.py``): time-to-ready venv on a fresh directory, next to uv and pip, and a
  profile of venvsmith's repeat path;
- ``concurrency`` (``bench/concurrency_bench.py``): 50 concurrent identical cold requests to a fresh builder
  (and resolver) server: how much work ran, latency, peak RSS;
- ``load`` (``bench/load_bench.py``): 500 mixed requests (cache hits, cold resolves, builds, artifact stats, bad
  input) from 32 concurrent clients against a resolver and a builder on 127.0.0.1 with a hermetic index:
  failures, p50 / p99 per kind, peak RSS of each server;
- ``verify`` (``bench/verify_bench.py``): ``venvsmith verify`` of a lock (cold and warm) next to the cold
  resolution that produced it;
- ``fleet`` (``bench/fleet_bench.py``): replicas on one OCI registry and one Redis (real ``docker-registry``,
  ``redis-server`` and ``serve`` processes on 127.0.0.1, hermetic index): cache hits/s and concurrent builds of
  one replica, registry bytes and Redis keys per lock key, replica B serving a 50 MiB environment A built;
- ``pod`` (``bench/pod_bench.py``): a new CI pod's venv from a builder server (node cache has it / new node /
  ``--server`` alone, verifying and ``--no-verify``) next to uv warm and cold, 20 pods on one node at once (one
  archive download?), the client's cache-hit timeline, and the embedded resolve with warm caches next to
  ``uv pip compile``.

The same command line goes to every bench (``--quick``, ``--repeat``, ``--mirror``, ``--sets`` ...); an option
no selected bench knows is an error. Afterwards ``bench/summary.py`` writes ``bench/results/<date>.md``, one
table linking the latest report of each kind.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PROJECT_PYTHON = REPO / ".venv" / "bin" / "python"

# name -> module under bench/ with a ``main(argv) -> int``
BENCHES = {"resolve": "resolve_bench", "venv": "venv_bench", "concurrency": "concurrency_bench", "load": "load_bench",
           "verify": "verify_bench", "fleet": "fleet_bench", "pod": "pod_bench"}


def _ensure_project_python() -> None:
    """The benches import venvsmith (the gRPC stubs, the CLI's request builder): use the project venv."""
    try:
        import venvsmith  # noqa: F401
    except ImportError:
        if PROJECT_PYTHON.exists() and Path(sys.executable).resolve() != PROJECT_PYTHON.resolve():
            os.execv(str(PROJECT_PYTHON), [str(PROJECT_PYTHON), *sys.argv])
        raise SystemExit("venvsmith is not importable: run `make setup` first") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n\n")[0], add_help=False)
    parser.add_argument("--bench", action="append", choices=sorted(BENCHES),
                        help="which bench to run (repeatable; default: all)")
    opts, rest = parser.parse_known_args(argv)
    _ensure_project_python()
    sys.path.insert(0, str(BENCH))
    selected = opts.bench or list(BENCHES)
    modules = [importlib.import_module(BENCHES[name]) for name in selected]
    if "-h" in rest or "--help" in rest:
        for module in modules:
            module.build_parser().print_help()
        return 0
    unknown = set.intersection(*(set(m.build_parser().parse_known_args(rest)[1]) for m in modules))
    if unknown:
        parser.error(f"unrecognized arguments for {', '.join(selected)}: {' '.join(sorted(unknown))}")
    status = 0
    for module in modules:
        status = module.main(rest, strict=False) or status
    if "--quick" not in rest:
        import summary

        outdir = [a.split("=", 1)[1] if "=" in a else rest[i + 1] for i, a in enumerate(rest)
                  if a.split("=", 1)[0] == "--output-dir"]
        summary.main(["--output-dir", outdir[-1]] if outdir else [])
    return status


if __name__ == "__main__":
    sys.exit(main())
