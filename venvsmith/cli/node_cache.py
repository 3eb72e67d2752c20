"""``venvsmith venv --node-cache DIR`` and ``venvsmith node-cache list|prune DIR``: node-shared environments
(:mod:`venvsmith.clients.node_cache`) from the command line. Parsing the options loads nothing else."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from venvsmith.clients.node_cache import Filler, NodeCache, Placement

#: ``--node-cache-mode`` values (:data:`venvsmith.clients.node_cache.MODES`, a test keeps them equal).
MODES = ("auto", "hardlink", "layered")
#: ``--node-cache-max-size`` default (:data:`venvsmith.clients.node_cache.DEFAULT_MAX_SIZE`).
DEFAULT_MAX_SIZE = "20GiB"


def add_venv_options(venv: argparse.ArgumentParser) -> None:
    venv.add_argument("--node-cache", metavar="DIR", default=None,
                      help="a node-level cache of unpacked, read-only environments shared by the pods of a node "
                           "(a hostPath volume on a LOCAL filesystem: its locks are flock(2), not for NFS): the "
                           "venv is placed from it without copying (hard links on the same filesystem, else a thin "
                           "venv layered on the shared one); a node that lacks the environment fetches it once. "
                           "Env: VENVSMITH_NODE_CACHE. --link-mode does not apply")
    venv.add_argument("--node-cache-mode", choices=MODES, default=None,
                      help="with --node-cache: hardlink, layered, or auto (default: hard links when PATH can hold "
                           "links to DIR, else layered). Env: VENVSMITH_NODE_CACHE_MODE")
    venv.add_argument("--node-cache-max-size", metavar="SIZE", default=None,
                      help="with --node-cache: after a fill, least recently used environments no venv depends on "
                           f"are evicted down to SIZE (20GiB, 500MB, 10%% of DIR's filesystem; default "
                           f"{DEFAULT_MAX_SIZE}). Env: VENVSMITH_NODE_CACHE_MAX_SIZE")


class NodeCacheRequest:
    """The node cache ``venv`` was asked to use: checked (DIR usable, mode and size valid) before any build."""

    def __init__(self, cache: NodeCache, mode: str, max_size: int) -> None:
        self.cache = cache
        self.mode = mode
        self.max_size = max_size

    def place(self, sha256: str, dest: Path, fill: Filler) -> Placement:
        return self.cache.place(sha256, dest, fill, self.mode, self.max_size,
                                note=lambda message: print(f"warning: {message}", file=sys.stderr, flush=True))


def node_cache_dir(args) -> str | None:
    """``--node-cache DIR``, else ``VENVSMITH_NODE_CACHE``, else None (also for commands without the option)."""
    return getattr(args, "node_cache", None) or os.environ.get("VENVSMITH_NODE_CACHE") or None


def requested(args) -> NodeCacheRequest | None:
    """The node cache of ``venv``'s options (or environment), None without one; ValueError (bad input) names what
    is wrong with it."""
    directory = node_cache_dir(args)
    if not directory:
        return None
    from venvsmith.clients.node_cache import NodeCache, NodeCacheError, parse_max_size

    mode = args.node_cache_mode or os.environ.get("VENVSMITH_NODE_CACHE_MODE") or "auto"
    if mode not in MODES:
        raise ValueError(f"VENVSMITH_NODE_CACHE_MODE={mode!r}: not one of {', '.join(MODES)}")
    try:
        cache = NodeCache(Path(directory)).open()
    except NodeCacheError as exc:
        raise ValueError(str(exc)) from None
    size = args.node_cache_max_size or os.environ.get("VENVSMITH_NODE_CACHE_MAX_SIZE") or DEFAULT_MAX_SIZE
    try:
        max_size = parse_max_size(size, cache.root)
    except ValueError as exc:
        raise ValueError(f"--node-cache-max-size: {exc}") from None
    return NodeCacheRequest(cache, mode, max_size)


def _prune(cache: NodeCache, max_size: int) -> None:
    removed = cache.evict(max_size)
    for entry in cache.entries():  # records of deleted venvs, also of the entries kept
        cache.users(entry, prune=True)
    cleaned = cache.clean_staging()
    print(f"evicted {len(removed)} environment(s); the node cache holds {cache.usage()} bytes "
          f"(limit {max_size})" + (f"; removed {cleaned} left-over staging dir(s)" if cleaned else ""), flush=True)
    for sha in removed:
        print(f"  evicted {sha}", flush=True)


# -- venvsmith node-cache ----------------------------------------------------------------------------------------


def add_command(sub) -> None:
    command = sub.add_parser("node-cache", help="list or prune a node cache (venv --node-cache DIR): what a "
                                                "DaemonSet that owns the directory runs")
    actions = command.add_subparsers(dest="node_cache_action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="the environments, least recently used first: size, last use, the "
                                              "layered venvs that depend on each")
    listing.add_argument("dir", metavar="DIR")
    listing.add_argument("--format", choices=["text", "json"], default="text")
    prune = actions.add_parser("prune", help="evict least recently used environments no venv depends on down to "
                                             "SIZE; stale in-use records and dead fillers' staging are dropped "
                                             "(an empty DIR is made a node cache: what a DaemonSet starts with)")
    prune.add_argument("dir", metavar="DIR")
    prune.add_argument("--max-size", metavar="SIZE", default=DEFAULT_MAX_SIZE,
                       help=f"20GiB, 500MB, 10%% of DIR's filesystem (default {DEFAULT_MAX_SIZE})")
    prune.add_argument("--every", metavar="SECONDS", type=float, default=None,
                       help="prune again every SECONDS, until stopped (a DaemonSet's container)")


def cmd_node_cache(args) -> int:
    import json
    import time

    from venvsmith.cli.exits import EXIT_BAD_INPUT, EXIT_OK
    from venvsmith.clients.node_cache import NodeCache, NodeCacheError, parse_max_size

    root = Path(args.dir)
    if not (root / "envs").is_dir() and not (args.node_cache_action == "prune" and root.is_dir()):
        print(f"error: {root} is not a node cache (no envs/ in it)", file=sys.stderr)
        return EXIT_BAD_INPUT
    cache = NodeCache(root)
    if args.node_cache_action == "prune":
        try:
            cache.open()
            max_size = parse_max_size(args.max_size, cache.root)
        except (NodeCacheError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        if args.every is not None and not 1 <= args.every <= 86400:
            print("error: --every: between 1 and 86400 seconds", file=sys.stderr)
            return EXIT_BAD_INPUT
        while True:
            _prune(cache, max_size)
            if args.every is None:
                return EXIT_OK
            time.sleep(args.every)
    rows: list[dict] = [{"sha256": e.sha256, "bytes": e.size(), "last_used": e.last_used(),
             "users": [os.fspath(p) for p in cache.users(e)]} for e in cache.entries()]
    if args.format == "json":
        print(json.dumps({"root": os.fspath(cache.root), "bytes": cache.usage(), "environments": rows}, indent=2))
        return EXIT_OK
    for row in rows:
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(row["last_used"]))
        print(f"{row['sha256']}  {row['bytes']:>12}  {when}  {len(row['users'])} layered venv(s)")
    print(f"# {len(rows)} environment(s), {cache.usage()} bytes")
    return EXIT_OK
