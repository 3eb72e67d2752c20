"""What the three benches share: paths, the scrubber of host names, the bench venv, the command line (one
parser of the common options), the report writer (JSON, chart, markdown) and the ``main`` of a bench.

Each bench (``resolve_bench``, ``venv_bench``, ``concurrency_bench``) builds its parser with
:func:`bench_parser`, adds its own options, and its ``main`` is :func:`bench_main` with its run and report.
``bench/run.py`` hands the same command line to every selected bench, so the common options mean the same in
all of them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import urlsplit

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
SETS_DIR = BENCH / "sets"
RESULTS_DIR = BENCH / "results"
WORK_DIR = BENCH / "work"
BENCH_VENV = BENCH / ".venv"
BENCH_PACKAGES = ("uv", "matplotlib", "pip-tools")
#: The set of a smoke run (``--quick``) when no ``--sets`` are given.
QUICK_SET = "requests"
#: The CLI each bench times unless ``--venvsmith`` names another.
VENVSMITH = REPO / ".venv" / "bin" / "venvsmith"

_URL = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*)://([^/\s'\"<>]+)")


class Scrubber:
    """Keeps network host names out of everything written: they become ``<host>``."""

    def __init__(self) -> None:
        self.hosts: set[str] = set()

    def learn(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme in ("http", "https") and parts.hostname:
            self.hosts.add(parts.hostname)

    def __call__(self, text: str) -> str:
        text = _URL.sub(lambda m: f"{m.group(1)}://<host>" if m.group(1) != "file" else m.group(0), text)
        for host in sorted(self.hosts, key=len, reverse=True):
            text = text.replace(host, "<host>")
        return text


SCRUB = Scrubber()


def failure_text(proc: subprocess.CompletedProcess) -> str:
    lines = [ln.strip() for ln in (proc.stderr or proc.stdout or "").splitlines() if ln.strip()]
    tail = " / ".join(lines[-3:]) if lines else "(no output)"
    if len(tail) > 300:
        tail = tail[:297] + "..."
    return f"exit {proc.returncode}: {tail}"


def ensure_bench_venv() -> None:
    """``bench/.venv`` with uv, matplotlib and pip-tools (never the project venv)."""
    python = BENCH_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {BENCH_VENV.relative_to(REPO)} ...", flush=True)
        base = getattr(sys, "_base_executable", None) or sys.executable
        subprocess.run([base, "-m", "venv", str(BENCH_VENV)], check=True)
    probe = subprocess.run(
        [str(python), "-c", "import matplotlib, piptools, uv"], capture_output=True, check=False
    )
    if probe.returncode != 0 or not (BENCH_VENV / "bin" / "uv").exists():
        print(f"installing {' '.join(BENCH_PACKAGES)} into {BENCH_VENV.relative_to(REPO)} ...", flush=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        *BENCH_PACKAGES], check=True)


def resolve_set_files(names: list[str]) -> list[tuple[str, Path]]:
    """``(name, path)`` of each set: a name under ``bench/sets`` or a ``.txt`` path."""
    out = []
    for name in names:
        path = Path(name)
        if not path.suffix:
            path = SETS_DIR / f"{name}.txt"
        if not path.is_file():
            raise SystemExit(f"no requirement set {name!r} (looked for {path})")
        out.append((path.stem, path.resolve()))
    return out


# -- the command line ----------------------------------------------------------------------------------


def bench_parser(prog: str, doc: str, *, default_sets: Sequence[str], timeout: float, quick_help: str,
                 timeout_help: str = "seconds per tool invocation", repeat_help: str | None = None,
                 keep_work_help: str = "keep homes and caches under bench/work/") -> argparse.ArgumentParser:
    """The parser of a bench with every common option; the bench adds its own. ``repeat_help``: the bench
    repeats its runs (``--repeat``, default 5)."""
    p = argparse.ArgumentParser(prog=prog, description=doc.split("\n\n")[0])
    p.add_argument("--sets", nargs="+", default=list(default_sets),
                   help=f"set names under bench/sets (default: {' '.join(default_sets)}) or .txt paths")
    if repeat_help:
        p.add_argument("--repeat", type=int, default=5, help=repeat_help)
    p.add_argument("--quick", action="store_true", help=quick_help)
    p.add_argument("--timeout", type=float, default=timeout, help=f"{timeout_help} (default {timeout:.0f})")
    p.add_argument("--venvsmith", default=str(VENVSMITH), help="the CLI to time")
    p.add_argument("--output-dir", default=str(RESULTS_DIR))
    p.add_argument("--keep-work", action="store_true", help=keep_work_help)
    p.add_argument("--as-is", action="store_true",
                   help="run venvsmith with the environment's bytecode setting (no warm-up, no pyc cache)")
    p.add_argument("--wait-idle", type=float, default=0.0, metavar="S",
                   help="wait up to S seconds for the load average to drop below --idle-load first")
    p.add_argument("--idle-load", type=float, default=0.5)
    p.add_argument("--render-only", metavar="JSON", help="re-render the report (and chart) from a results JSON")
    from mirror import add_mirror_options  # mirror imports the benches' helpers: not at module level

    add_mirror_options(p)
    p.add_argument("--venvsmith-pythonpath", metavar="DIR",
                   help="put DIR first on venvsmith's PYTHONPATH (time a candidate fix kept in a scratch tree)")
    return p


def parse_opts(parser: argparse.ArgumentParser, argv: list[str] | None, strict: bool) -> argparse.Namespace:
    """``strict``: unknown options are an error (a bench run on its own); else they belong to another bench."""
    if strict:
        return parser.parse_args(argv)
    return parser.parse_known_args(argv)[0]


# -- the report ----------------------------------------------------------------------------------------


def run_fields(opts: argparse.Namespace, stamp: str, sets: list[tuple[str, Path]]) -> dict:
    """The fields every bench's results start with: when, how (quick, mirror, candidate) and the sets."""
    return {
        "date": dt.date.today().isoformat(),
        "started": stamp,
        "quick": opts.quick,
        "mirror": bool(getattr(opts, "mirror", False)),
        "venvsmith_pythonpath": getattr(opts, "venvsmith_pythonpath", None) or "",
        "sets": {name: [ln.strip() for ln in p.read_text().splitlines() if ln.strip()] for name, p in sets},
    }


def report_base(date: str, kind: str, opts: argparse.Namespace) -> str:
    """``<date>-<kind>[-mirror][-candidate][-quick]``: a smoke run, a mirror run or a run of a candidate fix
    (``--venvsmith-pythonpath``) never overwrites the full report."""
    candidate = "-candidate" if getattr(opts, "venvsmith_pythonpath", None) else ""
    return (f"{date}-{kind}{'-mirror' if getattr(opts, 'mirror', False) else ''}{candidate}"
            f"{'-quick' if opts.quick else ''}")


def draw_chart(script: str, json_path: Path, png_path: Path) -> str | None:
    """Runs ``bench/<script>`` under the bench venv (matplotlib lives there, not in the project venv)."""
    python = BENCH_VENV / "bin" / "python"
    proc = subprocess.run([str(python), str(BENCH / script), str(json_path), str(png_path)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        print(f"chart failed: {failure_text(proc)}", file=sys.stderr)
        return None
    return png_path.name


def save_report(results: dict, outdir: Path, base: str, render: Callable[[dict, str | None], str],
                plot_script: str | None = None) -> Path:
    """``<base>.json`` (scrubbed), the chart ``<base>.png`` when there is a plot script, and ``<base>.md``
    rendered by ``render(results, chart file name or None)``; the markdown is printed too."""
    outdir.mkdir(parents=True, exist_ok=True)
    json_path, png_path, md_path = outdir / f"{base}.json", outdir / f"{base}.png", outdir / f"{base}.md"
    json_path.write_text(SCRUB(json.dumps(results, indent=1)) + "\n", encoding="utf-8")
    chart = draw_chart(plot_script, json_path, png_path) if plot_script else None
    markdown = SCRUB(render(results, chart))
    md_path.write_text(markdown, encoding="utf-8")
    print()
    print(markdown)
    print(f"written: {md_path}, {json_path}" + (f", {png_path}" if chart else ""))
    return md_path


# -- running a bench -----------------------------------------------------------------------------------


def run_against_index(opts: argparse.Namespace, run: Callable[[argparse.Namespace], dict]) -> dict:
    """``run(opts)`` once the bench venv exists, against a local mirror of the sets' files with ``--mirror``."""
    ensure_bench_venv()
    if not opts.mirror:
        return run(opts)
    from mirror import serve_mirror

    with serve_mirror(opts, resolve_set_files(opts.sets)) as index:
        opts.index_override = index
        return run(opts)


def rerendered(opts: argparse.Namespace, write_report: Callable[[dict, Path, str], Path]) -> bool:
    """With ``--render-only JSON``: the report of that results file written again next to it (True: done)."""
    if not opts.render_only:
        return False
    path = Path(opts.render_only)
    write_report(json.loads(path.read_text(encoding="utf-8")), path.parent, path.stem)
    return True


def bench_main(argv: list[str] | None, strict: bool, *, parser: argparse.ArgumentParser, kind: str,
               run: Callable[[argparse.Namespace], dict], write_report: Callable[[dict, Path, str], Path],
               quick: Callable[[argparse.Namespace], None] | None = None,
               check: Callable[[argparse.Namespace], None] | None = None) -> int:
    """A bench's ``main``: ``--render-only`` re-renders a results JSON; else ``--quick`` narrows the sets to
    :data:`QUICK_SET` (or the first given) and calls ``quick(opts)``, ``check(opts)`` may refuse the options
    (``SystemExit``), and the run's report is written as ``<date>-<kind>...``."""
    opts = parse_opts(parser, argv, strict)
    if rerendered(opts, write_report):
        return 0
    if opts.quick:
        opts.sets = [QUICK_SET] if opts.sets == parser.get_default("sets") else opts.sets[:1]
        if "repeat" in opts:
            opts.repeat = 1
        if quick is not None:
            quick(opts)
    if "repeat" in opts and opts.repeat < 1:
        raise SystemExit("--repeat must be at least 1")
    if check is not None:
        check(opts)
    results = run_against_index(opts, run)
    write_report(results, Path(opts.output_dir), report_base(results["date"], kind, opts))
    return 0


def remove_tree(path: Path) -> None:
    """``rm -rf``, also of read-only trees (a node cache's: directories made writable on the way)."""

    def writable(function, name, _exc_info) -> None:
        parent = os.path.dirname(name)
        try:
            os.chmod(parent, 0o755)
            if os.path.isdir(name) and not os.path.islink(name):
                os.chmod(name, 0o755)
                shutil.rmtree(name, onerror=writable)
            else:
                os.unlink(name)
        except OSError:
            pass

    if path.exists() or path.is_symlink():
        shutil.rmtree(path, onerror=writable)


class Trash:
    """Trees moved aside (one ``rename``) instead of deleted while timed runs go on, deleted by :meth:`empty`.

    On an ext4 without a journal (this machine's root filesystem) a freed inode is skipped by every allocation for
    60 s, 300 s while its inode table block is dirty (``recently_deleted`` in ``fs/ext4/ialloc.c``): each file or
    directory made next after a large deletion scans past thousands of them. Deleting a venv (12k files) between two
    runs made the next run — of whichever tool — several times slower. So nothing is deleted between timed runs;
    :meth:`empty` deletes, syncs and waits ``settle`` seconds before the next timed run."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.count = 0

    def discard(self, path: Path) -> None:
        if not (path.exists() or path.is_symlink()):
            return
        self.root.mkdir(parents=True, exist_ok=True)
        self.count += 1
        try:
            os.rename(path, self.root / str(self.count))
        except OSError:  # another filesystem (a layered target on /dev/shm): deleted now, it costs nothing there
            remove_tree(path)

    def empty(self, settle: float) -> None:
        if not self.root.exists():
            return
        remove_tree(self.root)
        os.sync()
        time.sleep(settle)
