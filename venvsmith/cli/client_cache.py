"""What a ``venv --server`` client keeps for the next pod of the same node: ``<node cache dir>/client/``.

Only with a node cache (``--node-cache DIR`` or ``VENVSMITH_NODE_CACHE``; a new pod's ``$VENVSMITH_HOME`` is
empty, the node's directory is not). Two costs every pod of a node would pay again:

- the **probe** of the venv's base interpreter (a subprocess): kept in ``client/probes.json``, a
  :class:`~venvsmith.core.probe.ProbeCache`, valid while the interpreter binary is unchanged (its identity is
  the file's device, inode, size and mtime), as ``$VENVSMITH_HOME`` keeps it;
- the **verdict** of the client's own verification of a server's pins (``verify_answer``): only a *valid*
  verdict is kept, as an empty file ``client/verdicts/<key>`` whose name is the sha256 of everything the check
  read from this side: the client's own request (requirements, constraints, target, options and its full index
  configuration, credentials included), every pin as the server sent it (names, versions, files and their
  sha256) and the base interpreter (path, version, identity) the target was computed for. A pin's hash is
  immutable, so the same inputs give the same verdict; it is still trusted for :data:`VERDICT_TTL` only (an
  index that removes a compromised file is believed again after a day). An invalid verdict is never kept.

The directory is trusted as the node cache's environments are (the DaemonSet or ``hostPath`` owner writes it).
At most :data:`MAX_VERDICTS` files: past that, the oldest half is removed.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

__all__ = ["MAX_VERDICTS", "VERDICT_TTL", "client_dir", "known_valid", "probe_cache", "remember_valid"]

#: Seconds a valid verdict is reused.
VERDICT_TTL = 24 * 3600
#: Verdict files kept (each is empty: a few KiB of directory entries in all).
MAX_VERDICTS = 4096
_VERSION = b"venvsmith-verdict-1\0"


def client_dir(args) -> Path | None:
    """``<node cache dir>/client``, or None without a node cache."""
    from venvsmith.cli.node_cache import node_cache_dir

    root = node_cache_dir(args)
    return Path(root) / "client" if root else None


def probe_cache(args):
    """A :class:`~venvsmith.core.probe.ProbeCache` in the node's client directory, or None."""
    where = client_dir(args)
    if where is None:
        return None
    from venvsmith.core.probe import ProbeCache

    try:
        where.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return ProbeCache(where / "probes.json")


def verdict_key(request, pins, interpreter) -> str:
    """sha256 hex of the verification's inputs (protos, serialized deterministically, each length-prefixed)."""
    sha = hashlib.sha256(_VERSION)
    for message in (request, interpreter, *pins):
        data = message.SerializeToString(deterministic=True)
        sha.update(len(data).to_bytes(8, "big"))
        sha.update(data)
    return sha.hexdigest()


def _verdict_path(args, request, pins, interpreter) -> Path | None:
    where = client_dir(args)
    return None if where is None else where / "verdicts" / verdict_key(request, pins, interpreter)


def known_valid(args, request, pins, interpreter) -> bool:
    """A valid verdict for exactly these inputs was kept less than :data:`VERDICT_TTL` ago."""
    path = _verdict_path(args, request, pins, interpreter)
    if path is None:
        return False
    try:
        age = time.time() - path.stat().st_mtime
    except OSError:
        return False
    return 0 <= age < VERDICT_TTL


def remember_valid(args, request, pins, interpreter) -> None:
    """Keep a valid verdict for these inputs (best effort: a read-only or full node cache keeps nothing)."""
    path = _verdict_path(args, request, pins, interpreter)
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(b"")
        os.replace(tmp, path)
        _bound(path.parent)
    except OSError:
        pass


def _bound(directory: Path) -> None:
    entries = list(os.scandir(directory))
    if len(entries) <= MAX_VERDICTS:
        return
    by_age = sorted(entries, key=lambda e: e.stat(follow_symlinks=False).st_mtime)
    for entry in by_age[:len(by_age) // 2]:
        try:
            os.unlink(entry.path)
        except OSError:
            pass
