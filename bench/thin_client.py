"""The remote cache-hit path of ``venvsmith venv PATH --server ADDR``, process start to exit, as a new pod sees it.

``thin_client.py --server ADDR [--repeat N] [--no-verify] [--node-cache DIR] [--dest-dir DIR] -- [venv options]
REQ...`` runs the CLI ``N`` times in a fresh process with an empty ``VENVSMITH_HOME`` and a new PATH (the server
must already have the build: run it once first) and prints the median of each phase:

- *interpreter start*: from ``Popen`` to the first line of the wrapper (the interpreter and ``site``);
- *imports*: ``venvsmith.cli`` and ``venvsmith.cli.build`` (what a run imports before any work);
- *arguments and request*: parsing, reading pip's configuration and requirements files;
- *ResolveAndBuild*: the round trip to the server, up to the build's result;
- *interpreter check*: the probe of the venv's base interpreter (a subprocess);
- *verification*: the client's check of the pins against its own indexes (not with ``--no-verify``);
- *download + unpack*: :func:`venvsmith.clients.stream_unpack.receive_venv`;
- *exit*: the rest, up to the process's end.

The phases come from wrappers around the CLI's own functions (no profiler). For the imports alone, run
``python -X importtime -m venvsmith.cli venv ...`` once, as the README shows.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: Runs in the measured process: marks each phase with ``time.time()`` and prints them as JSON on stderr's last
#: line (argv: the CLI's own).
WRAPPER = r"""
import time
marks = {"started": time.time()}
import json, sys
import venvsmith.cli, venvsmith.cli.build as b, venvsmith.cli.verify as v
marks["imported"] = time.time()

def timed(module, name, key):
    real = getattr(module, name)
    def wrapper(*args, **kwargs):
        marks.setdefault(key + ".start", time.time())
        try:
            return real(*args, **kwargs)
        finally:
            marks[key + ".end"] = time.time()
    setattr(module, name, wrapper)

timed(b, "_run", "build")
timed(b, "check_base_interpreter", "interpreter")
timed(v, "verify_answer", "verify")
try:
    import venvsmith.clients.stream_unpack as s
    timed(s, "receive_venv", "unpack")
except ImportError:  # a tree from before the streaming client: download to a file, then unpack it
    import builder_service.archive as a, venvsmith.clients.builder as c
    timed(c.RemoteBuilder, "fetch", "unpack")
    timed(a, "unpack", "unpack")
code = venvsmith.cli.main(sys.argv[1:])
marks["main_done"] = time.time()
sys.stderr.write("\n" + json.dumps(marks) + "\n")
sys.exit(code)
"""

PHASES = ("interpreter start", "imports", "arguments and request", "ResolveAndBuild", "interpreter check",
          "verification", "download + unpack", "exit", "total")


def one_run(python: str, argv: list[str], home: Path, node_cache: str | None = None) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VENVSMITH_")}
    env["VENVSMITH_HOME"] = str(home)
    if node_cache:
        env["VENVSMITH_NODE_CACHE"] = node_cache
    launched = time.time()
    proc = subprocess.run([python, "-c", WRAPPER, *argv], env=env, capture_output=True, text=True, timeout=600)
    ended = time.time()
    if proc.returncode != 0:
        raise SystemExit(f"venvsmith failed ({proc.returncode}):\n{proc.stderr}")
    m = json.loads(proc.stderr.strip().splitlines()[-1])

    def span(a: str, b: str) -> float:
        return (m[b] - m[a]) if a in m and b in m else 0.0

    phases = {
        "interpreter start": m["started"] - launched,
        "imports": span("started", "imported"),
        "arguments and request": span("imported", "build.start"),
        "ResolveAndBuild": span("build.start", "build.end"),
        "interpreter check": span("interpreter.start", "interpreter.end"),
        "verification": span("verify.start", "verify.end"),
        "download + unpack": span("unpack.start", "unpack.end"),
        "exit": ended - m["main_done"] + span("unpack.end", "main_done"),
        "total": ended - launched,
    }
    return phases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", required=True)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-verify", action="store_true")
    parser.add_argument("--dest-dir", help="where each run's PATH is made (default: a temporary directory)")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--node-cache", metavar="DIR",
                        help="VENVSMITH_NODE_CACHE of every run (its client/ keeps the probe and valid verdicts)")
    parser.add_argument("rest", nargs=argparse.REMAINDER, help="-- then venv options and requirements")
    args = parser.parse_args()
    rest = args.rest[1:] if args.rest[:1] == ["--"] else args.rest
    runs = []
    with tempfile.TemporaryDirectory(dir=args.dest_dir) as work:
        for i in range(args.repeat):
            dest = Path(work) / f"venv{i}"
            argv = ["venv", str(dest), "--server", args.server, *(["--no-verify"] if args.no_verify else []), *rest]
            runs.append(one_run(args.python, argv, Path(work) / f"home{i}", args.node_cache))
    print(f"# venv --server{' --no-verify' if args.no_verify else ''}: medians of {len(runs)} runs (ms)")
    for phase in PHASES:
        values = [r[phase] * 1000 for r in runs]
        print(f"{phase:<24} {statistics.median(values):8.1f}   (min {min(values):.1f}, max {max(values):.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
