"""Node-shared environments: one unpacked, verified, read-only copy of each venv archive per node, placed into
every pod's venv without copying its files (``venvsmith venv PATH --node-cache DIR``).

``DIR`` (a ``hostPath`` volume every CI pod of the node mounts, or a DaemonSet's directory) holds:

* ``envs/<archive sha256>/``: ``tree/`` (the venv, its files and directories made read-only), ``files.json``
  (the size, mtime, inode and mode of every file, :mod:`builder_service.venv_template`'s manifest) and
  ``last-used`` (touched by every placement: the order eviction follows);
* ``locks/<sha256>.lock``: ``fcntl.flock`` locks. A filler holds the exclusive lock while it fills
  ``staging/<sha256>/`` and renames it into ``envs/``; a placement holds the shared lock while it links or
  layers; eviction takes the exclusive lock, so it never removes an entry being placed. The kernel releases a
  killed process's lock; the staging directory it left is removed by the next filler. ``flock`` locks are
  only safe on a local filesystem: DIR must not be on NFS (or any network filesystem);
* ``users/<sha256>/<hash of PATH>``: the layered venvs that depend on an entry (each file holds its PATH); an
  entry is in use while one of those PATHs exists and its ``.pth`` still names the entry;
* ``client/``: left to the streaming client's own caches; counted in the size eviction keeps under its limit.

Every placement checks the entry against its manifest (one ``lstat`` per file, as the embedded templates are
checked: a hard-link placement checks each file just before linking it and undoes itself on a difference, a layered
one checks the whole tree first); a damaged entry is removed under the exclusive lock and filled again, with a
warning. The read-only modes make an in-place edit of a hard-linked venv fail rather than change the node's copy —
except for root, which ignores modes: then the manifest check finds the edit (a changed size or mtime) at the next
placement. Bytecode that imports write into a shared tree (root again) is no damage: ``__pycache__/*.pyc`` files
not in the manifest are allowed.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from builder_service import venv_template
from builder_service.trees import remove_sealed, seal
from venvsmith.clients import node_layer
from venvsmith.clients.node_entry import Entry, NodeCacheError

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_MAX_SIZE", "LOCK_TIMEOUT", "MODES", "Entry", "Filler", "NodeCache", "NodeCacheError", "Placement",
           "parse_max_size"]

#: The default of ``--node-cache-max-size`` (``VENVSMITH_NODE_CACHE_MAX_SIZE``).
DEFAULT_MAX_SIZE = "20GiB"
#: Seconds a placement waits for another process's fill of the same entry (or for the lock at all).
LOCK_TIMEOUT = 900.0
#: ``--node-cache-mode``: hard links where possible else a layered venv (auto), or one of the two.
MODES = ("auto", "hardlink", "layered")

#: ``fill(tree)`` of :meth:`NodeCache.place`: makes ``tree``; answers None, or the manifest of the tree it made
#: sealed (every file and directory without write permission): the stat of each regular file by relative path,
#: as :func:`builder_service.venv_template.record` would find it (:func:`builder_service.archive.unpack_stream`
#: with ``read_only`` answers just that, in the pass that writes the files).
Filler = Callable[[Path], Mapping[str, venv_template.FileStat] | None]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Placement:
    """What :meth:`NodeCache.place` did: ``how`` is ``hardlink`` or ``layered``; ``filled`` when this process
    filled the entry (``refilled``: because the one there was damaged); ``evicted`` the entries removed after."""

    entry: Entry
    how: str
    filled: bool
    refilled: bool = False
    evicted: tuple[str, ...] = ()


@contextmanager
def _flock(path: Path, kind: int, timeout: float) -> Iterator[None]:
    """``flock(kind)`` on ``path`` (created when absent), waiting at most ``timeout`` seconds (0: one try).
    ``flock`` has no timeout of its own: non-blocking tries, 5 ms apart at first, at most 100 ms."""
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)  # flock needs no write access
    try:
        deadline = time.monotonic() + timeout
        delay = 0.005
        while True:
            try:
                fcntl.flock(fd, kind | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{path} stayed locked for {timeout:g} s") from None
                time.sleep(min(delay, left))
                delay = min(delay * 2, 0.1)
        yield
    finally:
        os.close(fd)  # releases the lock


class NodeCache:
    """The node cache at ``root``: see the module docstring."""

    def __init__(self, root: Path, lock_timeout: float = LOCK_TIMEOUT) -> None:
        self.root = Path(os.path.abspath(root))
        self.lock_timeout = lock_timeout

    def open(self) -> NodeCache:
        """Make the layout (``envs``, ``locks``, ``users``, ``staging``); :class:`NodeCacheError` when ``root``
        cannot be written."""
        try:
            for name in ("envs", "locks", "users", "staging"):
                (self.root / name).mkdir(parents=True, exist_ok=True)
            probe = self.root / "locks" / f".probe-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise NodeCacheError(f"the node cache {self.root} cannot be used: "
                                 f"{exc.strerror or exc} ({exc.filename or self.root})") from None
        return self

    def entry(self, sha256: str) -> Entry:
        if not _SHA256.match(sha256):
            raise NodeCacheError(f"{sha256[:80]!r} is not a sha256 (64 lowercase hex digits)")
        return Entry(sha256, self.root / "envs" / sha256)

    def entries(self) -> list[Entry]:
        """Every entry, least recently used first."""
        try:
            names = [n for n in os.listdir(self.root / "envs") if _SHA256.match(n)]
        except FileNotFoundError:
            return []
        return sorted((Entry(n, self.root / "envs" / n) for n in names), key=Entry.last_used)

    def _lock(self, sha256: str) -> Path:
        return self.root / "locks" / f"{sha256}.lock"

    @contextmanager
    def _locked(self, sha256: str, kind: int, timeout: float | None = None) -> Iterator[None]:
        wait = self.lock_timeout if timeout is None else timeout
        try:
            with _flock(self._lock(sha256), kind, wait):
                yield
        except TimeoutError as exc:
            if timeout == 0:
                raise
            raise NodeCacheError(f"the node cache entry {sha256[:16]} is still being filled or placed by another "
                                 f"process after {wait:g} s ({exc})") from None

    # -- placing -------------------------------------------------------------------------------------------------

    def place(self, sha256: str, dest: Path, fill: Filler, mode: str = "auto",
              max_size: int | None = None, note: Callable[[str], None] | None = None) -> Placement:
        """The environment of the archive ``sha256`` at ``dest`` (absent or an empty directory), from the node's
        copy; when the node lacks it (or its copy is damaged), ``fill(tree)`` makes the tree first (``tree`` does
        not exist; ``fill`` creates it, from verified bytes) — once per node, however many processes ask at once.
        ``fill`` may answer the tree's manifest (:data:`Filler`); else the tree is sealed and recorded here.
        After a fill, entries are evicted (least recently used first, never one in use) until the cache holds at
        most ``max_size`` bytes."""
        if mode not in MODES:
            raise NodeCacheError(f"unknown node cache mode {mode!r} (one of {', '.join(MODES)})")
        entry = self.entry(sha256)
        dest = Path(os.path.abspath(dest))
        with self._locked(sha256, fcntl.LOCK_SH):
            if entry.tree.is_dir():
                how = self._place(entry, dest, mode)
                if how is not None:
                    return Placement(entry, how, filled=False)
        with self._locked(sha256, fcntl.LOCK_EX):  # missing, or found damaged: fill it once, under this lock
            refilled = filled = False
            how = self._place(entry, dest, mode) if entry.tree.is_dir() else None  # another process filled it
            if how is None:
                if entry.path.exists():
                    what = entry.damage() or "it changed while it was checked"
                    message = (f"the node cache entry {entry.path} was damaged ({what}); removed it and fetched "
                               f"the environment again")
                    log.warning("%s", message)
                    if note is not None:
                        note(message)
                    self._discard(entry)
                    refilled = True
                self._fill(entry, fill)
                filled = True
                how = self._place(entry, dest, mode, check=False)  # made and recorded just now, under this lock
                if how is None:  # damaged between the fill and the placement: someone writes into it
                    raise NodeCacheError(f"the node cache entry {entry.path} changed while it was placed")
        evicted: tuple[str, ...] = ()
        if filled and max_size is not None:
            evicted = tuple(self.evict(max_size, keep={sha256}))
        return Placement(entry, how, filled=filled, refilled=refilled, evicted=evicted)

    def _place(self, entry: Entry, dest: Path, mode: str, check: bool = True) -> str | None:
        how = node_layer.place(entry, dest, mode, self.root, check)
        if how == "layered":
            self.register(entry, dest)
        if how is not None:
            self.touch(entry)
        return how

    def _fill(self, entry: Entry, fill: Filler) -> None:
        """Under the exclusive lock: ``staging/<sha256>`` (a crashed filler's left first removed) filled, sealed,
        its manifest written, renamed to ``envs/<sha256>``."""
        staging = self.root / "staging" / entry.sha256
        remove_sealed(staging)
        staging.mkdir(parents=True)
        try:
            files = fill(staging / "tree")
            if not (staging / "tree").is_dir():
                raise NodeCacheError(f"filling {staging} made no tree")
            if files is None:
                seal(staging / "tree")
                files = venv_template.record(staging / "tree")
            (staging / "files.json").write_text(json.dumps(files, separators=(",", ":")))
            (staging / "last-used").write_bytes(b"")
            os.rename(staging, entry.path)
        except BaseException:
            remove_sealed(staging)
            raise

    def touch(self, entry: Entry) -> None:
        """The entry's last use is now (the order eviction follows); a stamp that cannot be touched (another uid's)
        only makes the entry look older."""
        try:
            os.utime(entry.stamp)
        except FileNotFoundError:
            entry.stamp.write_bytes(b"")
        except PermissionError as exc:
            log.debug("node cache: %s not touched: %s", entry.stamp, exc)

    def register(self, entry: Entry, dest: Path) -> None:
        """Record that the layered venv at ``dest`` depends on ``entry`` (``users/<sha256>/<hash of dest>``)."""
        users = self.root / "users" / entry.sha256
        users.mkdir(parents=True, exist_ok=True)
        text = os.fspath(dest)
        record = users / hashlib.sha256(os.fsencode(text)).hexdigest()[:32]
        tmp = record.with_name(f".{record.name}.{os.getpid()}")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, record)

    def users(self, entry: Entry, prune: bool = False) -> list[Path]:
        """The layered venvs that still depend on ``entry``; with ``prune``, stale records are removed."""
        found: list[Path] = []
        folder = self.root / "users" / entry.sha256
        try:
            records = [p for p in folder.iterdir() if not p.name.startswith(".")]
        except FileNotFoundError:
            return found
        for record in records:
            try:
                path = Path(record.read_text(encoding="utf-8")[:4096])
            except (OSError, UnicodeDecodeError):
                path = None
            if path is not None and node_layer.depends_on(path, entry):
                found.append(path)
            elif prune:
                record.unlink(missing_ok=True)
        return found

    def _discard(self, entry: Entry) -> None:
        """Remove ``entry`` (under its exclusive lock): moved aside in one rename, then deleted."""
        if not entry.path.exists():
            return
        aside = self.root / "staging" / f".discard-{entry.sha256}-{os.getpid()}-{time.monotonic_ns()}"
        os.rename(entry.path, aside)
        remove_sealed(aside)

    def clean_staging(self) -> int:
        """Remove what dead processes left in ``staging/``: a filler's directory whose lock is free (no filler
        holds it), an entry half deleted. How many were removed."""
        removed = 0
        try:
            items = list((self.root / "staging").iterdir())
        except FileNotFoundError:
            return 0
        for item in items:
            if _SHA256.match(item.name):
                try:
                    with self._locked(item.name, fcntl.LOCK_EX, timeout=0):
                        remove_sealed(item)
                except TimeoutError:
                    continue  # being filled
            elif item.name.startswith(".discard-"):
                remove_sealed(item)
            else:
                continue
            removed += 1
        return removed

    # -- eviction ------------------------------------------------------------------------------------------------

    def usage(self) -> int:
        """Bytes the node cache holds: its entries (from their manifests) and the client's ``client/`` folder."""
        total = sum(e.size() for e in self.entries())
        for dirpath, _, filenames in os.walk(self.root / "client"):
            for name in filenames:
                try:
                    total += os.lstat(os.path.join(dirpath, name)).st_size
                except OSError:
                    pass
        return total

    def evict(self, max_size: int, keep: Collection[str] = ()) -> list[str]:
        """Remove least recently used entries until the cache holds at most ``max_size`` bytes; never one in
        ``keep``, in use (a layered venv depends on it) or locked (being filled or placed). The removed shas.
        Space shared with hard-linked venvs is freed only when those venvs are deleted too."""
        entries = self.entries()
        sizes = {e.sha256: e.size() for e in entries}
        total = self.usage()
        removed: list[str] = []
        for entry in entries:
            if total <= max_size:
                break
            if entry.sha256 in keep:
                continue
            try:
                with self._locked(entry.sha256, fcntl.LOCK_EX, timeout=0):
                    if self.users(entry, prune=True):
                        continue
                    self._discard(entry)
                    shutil.rmtree(self.root / "users" / entry.sha256, ignore_errors=True)
            except TimeoutError:
                continue  # being filled or placed right now: in use
            removed.append(entry.sha256)
            total -= sizes[entry.sha256]
            log.info("node cache: evicted %s (%d bytes)", entry.sha256, sizes[entry.sha256])
        return removed


def parse_max_size(text: str, root: Path) -> int:
    """``--node-cache-max-size``: bytes with an optional unit (``20GiB``, ``500MB``) or a share of DIR's
    filesystem (``10%``); ValueError names what is wrong."""
    from builder_service.store.disk_guard import parse_free_space

    return parse_free_space(text).floor(root)
