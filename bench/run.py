"""``make bench``: run the project's benchmarks and write their reports under ``bench/results/``.

    python bench/run.py [--bench NAME]... [options of that bench]

For now there is one bench, ``resolve`` (``bench/resolve_bench.py``; ``--help`` lists its options:
``--sets``, ``--repeat``, ``--skip-pip``, ``--quick``, ...). More benches register in ``BENCHES``.
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
BENCHES = {"resolve": "resolve_bench"}


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
    status = 0
    for name in opts.bench or list(BENCHES):
        module = importlib.import_module(BENCHES[name])
        status = module.main(rest) or status
    return status


if __name__ == "__main__":
    sys.exit(main())
