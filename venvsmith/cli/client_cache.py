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

- the **answer** of the server itself (``ResolveAndBuild``): kept in ``client/answers/<key>`` until the
  resolution's own expiry (``expires_at``, which the server's resolution cache keeps it for: within it the
  server answers the same from its cache; an answer for an index snapshot, ``--exclude-newer``, never expires).
  The key is the sha256 of the server's address, the request exactly as sent, the client's own request
  (credentials included) and the token (hashed with the rest, never stored). A next pod asking the same before
  the expiry, whose node still has the environment, places it without a call: no gRPC at all. Not kept with
  ``--trusted-key`` (the signatures are checked on every answer, from the server).

The directory is trusted as the node cache's environments are (the DaemonSet or ``hostPath`` owner writes it).
At most :data:`MAX_VERDICTS` files of each kind: past that, the oldest half is removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from venvsmith.v1 import builder_pb2

__all__ = ["MAX_ANSWER_BYTES", "MAX_VERDICTS", "VERDICT_TTL", "KeptAnswer", "client_dir", "keep_answer",
           "kept_answer", "known_valid", "probe_cache", "remember_valid"]

#: Seconds a valid verdict is reused.
VERDICT_TTL = 24 * 3600
#: Verdict files kept (each is empty: a few KiB of directory entries in all).
MAX_VERDICTS = 4096
_VERSION = b"venvsmith-verdict-1\0"
_ANSWER_VERSION = b"venvsmith-answer-1\0"
#: Bytes of one kept answer at most (its pins and build result; jupyter's 97 pins are about 0.3 MiB).
MAX_ANSWER_BYTES = 16 << 20


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
    return _key(_VERSION, [m.SerializeToString(deterministic=True) for m in (request, interpreter, *pins)])


def _key(version: bytes, parts: list[bytes]) -> str:
    """sha256 hex of ``version`` and ``parts``, each part length-prefixed (no two lists of parts collide)."""
    sha = hashlib.sha256(version)
    for data in parts:
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
    _keep(path, b"")


def _keep(path: Path, data: bytes) -> None:
    """Write ``path`` atomically, then bound its directory (best effort: a read-only or full node cache keeps
    nothing)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
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


# -- answers -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeptAnswer:
    """A server's answer kept by the node: the pins it streamed and its build result."""

    pins: list
    result: builder_pb2.BuildResult


def answer_key(args, request, own_request) -> str:
    """sha256 hex of what the answer depends on, from this side (see the module docstring)."""
    from venvsmith.cli.security_args import client_security

    token = client_security(args, args.server).token or ""
    return _key(_ANSWER_VERSION, [str(args.server).encode(), token.encode(),
                                  request.SerializeToString(deterministic=True),
                                  own_request.SerializeToString(deterministic=True)])


def _answer_path(args, request, own_request) -> Path | None:
    where = client_dir(args)
    if where is None or not getattr(args, "server", None) or getattr(args, "trusted_key", None):
        return None
    return where / "answers" / answer_key(args, request, own_request)


def kept_answer(args, request, own_request) -> KeptAnswer | None:
    """The answer kept for exactly this request, unless it expired (or is unreadable: then it is not there)."""
    path = _answer_path(args, request, own_request)
    if path is None:
        return None
    from venvsmith.v1 import builder_pb2, resolver_pb2

    try:
        with open(path, "rb") as fh:
            head = json.loads(fh.readline(4096))
            expires, sizes = head["expires"], head["sizes"]
            if expires is not None and time.time() >= float(expires):
                return None
            lengths = [int(size) for size in sizes]
            if len(lengths) != 2 or min(lengths) < 0 or sum(lengths) > MAX_ANSWER_BYTES:
                return None  # not what keep_answer writes: nothing is read (or allocated) for it
            blobs = [fh.read(n) for n in lengths]
            if [len(b) for b in blobs] != lengths or fh.read(1):
                return None  # cut short, or more than was written
            pins = resolver_pb2.ResolveResponse.FromString(blobs[0]).pins
            result = builder_pb2.BuildResult.FromString(blobs[1])
    except Exception:  # noqa: BLE001 - missing, damaged (bad JSON, protobuf's DecodeError): no answer kept
        return None
    if not result.HasField("venv_archive") or not result.HasField("interpreter"):
        return None
    return KeptAnswer(list(pins), result)


def keep_answer(args, request, own_request, pins, summaries, result) -> None:
    """Keep the server's answer until its resolution expires (best effort: nothing kept without a summary that
    says when, for a too large answer, or in a read-only node cache)."""
    path = _answer_path(args, request, own_request)
    if path is None or not summaries or not result.HasField("venv_archive"):
        return
    text = summaries[-1].expires_at
    try:
        expires = datetime.fromisoformat(text).timestamp() if text else None
    except ValueError:
        return
    if expires is not None and expires <= time.time():
        return
    from venvsmith.v1 import resolver_pb2

    blobs = [resolver_pb2.ResolveResponse(pins=pins).SerializeToString(), result.SerializeToString()]
    if sum(map(len, blobs)) > MAX_ANSWER_BYTES:
        return
    head = json.dumps({"expires": expires, "sizes": [len(b) for b in blobs]}).encode() + b"\n"
    _keep(path, head + b"".join(blobs))
