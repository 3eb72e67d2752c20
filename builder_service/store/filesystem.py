"""The filesystem backend of the :class:`~builder_service.store.protocol.Store` protocol.

Invariants of :class:`FilesystemStore`:

* nothing unverified ever becomes visible: bytes go to ``tmp/`` in the same filesystem, are hashed while written,
  fsynced, checked against the expected digest and only then renamed atomically to ``cas/sha256/<hh>/<hash>``;
* reads are verified: :meth:`~FilesystemStore.open` hashes while reading and raises :class:`DigestMismatch`
  at the end of a corrupt blob, which it also removes so the next put can write it again;
* writes go through :class:`~builder_service.store.writer.VerifiedWriter`; concurrent writers of the same digest
  in one process are single-flighted (the first writes, the others wait and reuse the result); across processes
  the atomic rename makes duplicate writes harmless;
* the size index (``index.sqlite3``, :mod:`~builder_service.store.size_index`) only holds sizes and access
  times for LRU eviction; the blob files are the truth, and the index is rebuilt from them when it is missing
  or unreadable.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import stat as stat_mod
import threading
import time
from collections import Counter
from collections.abc import Collection, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

from ..digest import CHUNK_SIZE, Digest
from ..errors import BlobNotFound, InvalidRange
from .disk_guard import FreeSpaceFloor
from .protocol import Store
from .reader import VerifyingReader
from .size_index import SizeIndex
from .writer import VerifiedWriter

try:  # POSIX: advisory locks tell a live writer's temp file from a dead one's
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["DEFAULT_STALE_TMP_SECONDS", "FilesystemStore", "StoreStats"]

log = logging.getLogger(__name__)

#: Temp files younger than this are never cleaned at startup (even if unlocked).
DEFAULT_STALE_TMP_SECONDS = 300.0


@dataclass
class StoreStats:
    """Counters of one :class:`FilesystemStore` instance (this process only)."""

    writes: int = 0
    bytes_written: int = 0
    reused: int = 0
    evicted: int = 0
    evicted_bytes: int = 0
    corrupt_removed: int = 0
    tmp_cleaned: int = 0


class FilesystemStore(Store):
    """:class:`Store` on a local directory: ``cas/sha256/<hh>/<hash>``, ``tmp/``, ``index.sqlite3``.

    :param max_bytes: capacity; after a put that exceeds it, LRU unpinned blobs are evicted down to
        ``low_water * max_bytes``. None: unbounded.
    :param min_free: the free disk space a write must leave (evicting LRU blobs first), else StoreFull.
    :param stale_tmp_seconds: at startup, temp files older than this whose writer is gone are removed.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        max_bytes: int | None = None,
        low_water: float = 0.9,
        stale_tmp_seconds: float = DEFAULT_STALE_TMP_SECONDS,
        min_free: FreeSpaceFloor | None = None,
    ) -> None:
        if max_bytes is not None and max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        if not 0.0 <= low_water <= 1.0:
            raise ValueError(f"low_water must be within [0, 1], got {low_water}")
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.low_water = low_water
        #: The disk-space floor writes keep (:mod:`.disk_guard`); None: none.
        self.min_free = min_free
        self.stats = StoreStats()
        self._cas = self.root / "cas" / "sha256"
        self._tmp = self.root / "tmp"
        self._cas.mkdir(parents=True, exist_ok=True)
        self._tmp.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()  # guards _pins, _busy, stats, _last_ns and unlink-vs-pin decisions
        self._evict_lock = threading.Lock()
        self._pins: Counter[str] = Counter()
        self._busy: dict[str, tuple[threading.RLock, int]] = {}  # per-digest single-flight locks
        self._last_ns = 0
        self.clean_tmp(stale_tmp_seconds)
        self._index = SizeIndex(self.root / "index.sqlite3")
        if not self._index.complete():
            self.rebuild_index()

    def __repr__(self) -> str:
        return f"FilesystemStore({str(self.root)!r}, max_bytes={self.max_bytes})"

    def close(self) -> None:
        """Close the index connection."""
        self._index.close()

    # -- reads ---------------------------------------------------------------------------------------------------

    def contains(self, digest: Digest) -> bool:
        present = self._present(digest)
        if present:
            self._touch([digest])
        return present

    def stat(self, digests: Iterable[Digest]) -> dict[Digest, bool]:
        result = {d: self._present(d) for d in digests}
        self._touch([d for d, ok in result.items() if ok])
        return result

    def open(self, digest: Digest) -> BinaryIO:
        path = self.blob_path(digest)
        try:
            f = open(path, "rb", buffering=0)
        except FileNotFoundError:
            raise BlobNotFound(digest) from None
        st = os.fstat(f.fileno())
        if st.st_size != digest.size_bytes:
            f.close()
            raise BlobNotFound(digest)
        self._touch([digest])
        raw = VerifyingReader(f, digest, str(path), lambda: self._remove_corrupt(digest, st))
        return cast(BinaryIO, io.BufferedReader(raw, CHUNK_SIZE))

    def read_range(self, digest: Digest, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0 or offset > digest.size_bytes:
            raise InvalidRange(digest, offset, length)
        try:
            fd = os.open(self.blob_path(digest), os.O_RDONLY)
        except FileNotFoundError:
            raise BlobNotFound(digest) from None
        try:
            if os.fstat(fd).st_size != digest.size_bytes:
                raise BlobNotFound(digest)
            want = min(length, digest.size_bytes - offset)
            parts: list[bytes] = []
            got = 0
            while got < want:
                part = os.pread(fd, want - got, offset + got)
                if not part:  # shrank under us: corrupt, let a verifying read deal with it
                    raise BlobNotFound(digest)
                parts.append(part)
                got += len(part)
        finally:
            os.close(fd)
        if offset == 0:
            self._touch([digest])
        return b"".join(parts)

    def path(self, digest: Digest) -> Path | None:
        if not self._present(digest):
            return None
        self._touch([digest])
        return self.blob_path(digest)

    def blob_path(self, digest: Digest) -> Path:
        """Where ``digest`` lives (or would live) on disk."""
        return self._cas / digest.hash[:2] / digest.hash

    # -- writes --------------------------------------------------------------------------------------------------

    def writer(
        self, expected: Digest | None = None, *, max_bytes: int | None = None, name: str = ""
    ) -> VerifiedWriter:
        """Push-style write: ``with store.writer(d) as w: w.write(...)``; ``w.digest`` after the block.

        With ``expected``, entering waits for any other writer of that digest in this process, and sets
        ``w.already_present`` (ignoring writes) if the blob is stored by then.
        """
        return VerifiedWriter(self, expected, max_bytes, name)

    def put_stream(
        self,
        chunks: Iterable[bytes],
        expected: Digest | None = None,
        max_bytes: int | None = None,
        *,
        name: str = "",
    ) -> Digest:
        with self.writer(expected, max_bytes=max_bytes, name=name) as w:
            if not w.already_present:
                for chunk in chunks:
                    w.write(chunk)
        assert w.digest is not None
        return w.digest

    def put_bytes(self, data: bytes, expected: Digest | None = None, *, name: str = "") -> Digest:
        """Store an in-memory blob."""
        return self.put_stream([data], expected, name=name)

    def put_file(
        self,
        path: str | os.PathLike[str],
        expected: Digest | None = None,
        *,
        link: bool = False,
        max_bytes: int | None = None,
    ) -> Digest:
        """Store a file's content (copied; with ``link``, hard-linked when on the same filesystem).

        A linked file shares its inode with the store, which makes it read-only: hand over only files nobody
        rewrites in place (reads are verified either way).
        """
        src = Path(path)
        with self.writer(expected, max_bytes=max_bytes, name=src.name) as w:
            if not w.already_present and not (link and w._adopt_link(src)):
                buf = bytearray(CHUNK_SIZE)
                view = memoryview(buf)
                with open(src, "rb", buffering=0) as f:
                    while n := f.readinto(buf):
                        w.write(view[:n])
        assert w.digest is not None
        return w.digest

    # -- lifetime ------------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def pin(self, digests: Iterable[Digest]) -> Iterator[None]:
        """Pinned blobs are not evicted until the block exits. Pin first, then check presence."""
        hashes = [d.hash for d in digests]
        with self._lock:
            self._pins.update(hashes)
        try:
            yield
        finally:
            with self._lock:
                self._pins.subtract(hashes)
                for h in hashes:
                    if self._pins[h] <= 0:
                        del self._pins[h]

    @contextlib.contextmanager
    def hold_writes(self) -> Iterator[None]:
        """Every blob written (or found already stored by a write) in this context, by this thread, stays pinned
        until the block exits: an output lives until the action cache has recorded it, whatever another build
        evicts meanwhile."""
        held: list[str] = []
        token = _HELD.set(held)
        try:
            yield
        finally:
            _HELD.reset(token)
            with self._lock:
                self._pins.subtract(held)
                for h in held:
                    if self._pins[h] <= 0:
                        del self._pins[h]

    def _hold(self, digest: Digest) -> None:
        """Pin ``digest`` for the enclosing :meth:`hold_writes` (called holding the digest's lock, before the
        blob can be evicted)."""
        held = _HELD.get()
        if held is not None:
            with self._lock:
                self._pins[digest.hash] += 1
            held.append(digest.hash)

    def evict(self, target_bytes: int, *, protect: Collection[str] = ()) -> list[Digest]:
        """Evict LRU blobs until usage <= ``target_bytes``, skipping pinned, in-flight and ``protect``-ed hashes."""
        evicted: list[Digest] = []
        with self._evict_lock:
            usage = self._index.usage()
            if usage <= target_bytes:
                return evicted
            for h, size in self._index.lru():
                if usage <= target_bytes:
                    break
                with self._lock:
                    if h in protect or self._pins[h] > 0 or h in self._busy:
                        continue
                    self._unlink(self._cas / h[:2] / h)
                    self.stats.evicted += 1
                    self.stats.evicted_bytes += size
                self._index.remove([h])
                usage -= size
                evicted.append(Digest(h, size))
        if evicted:
            log.info("store %s: evicted %d blobs, usage now %d bytes", self.root, len(evicted), usage)
        return evicted

    def usage(self) -> int:
        return self._index.usage()

    def delete(self, digest: Digest) -> bool:
        with self._lock:
            removed = self._unlink(self.blob_path(digest))
        self._index.remove([digest.hash])
        return removed

    def clean_tmp(self, older_than: float = DEFAULT_STALE_TMP_SECONDS) -> int:
        """Remove temp files older than ``older_than`` seconds whose writer is gone; returns how many."""
        cutoff = time.time() - older_than
        removed = 0
        for entry in os.scandir(self._tmp):
            try:
                fd = os.open(entry.path, os.O_RDONLY)
            except OSError:
                continue
            try:
                if fcntl is not None:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        continue  # a live writer holds it
                if os.fstat(fd).st_mtime <= cutoff and self._unlink(Path(entry.path)):
                    removed += 1
            finally:
                os.close(fd)
        if removed:
            log.info("store %s: removed %d stale temp files", self.root, removed)
            with self._lock:
                self.stats.tmp_cleaned += removed
        return removed

    def rebuild_index(self) -> int:
        """Make the index match the blobs on disk (sizes; access time = mtime for new rows); returns the count."""
        rows: list[tuple[str, int, int]] = []
        for shard in os.scandir(self._cas):
            if not shard.is_dir(follow_symlinks=False):
                continue
            for entry in os.scandir(shard.path):
                name = entry.name
                if len(name) != 64 or name[:2] != shard.name or not _is_hex(name):
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if stat_mod.S_ISREG(st.st_mode):
                    rows.append((name, st.st_size, st.st_mtime_ns))
        self._index.replace_all(rows)
        log.info("store %s: index rebuilt from %d blobs", self.root, len(rows))
        return len(rows)

    # -- internals -----------------------------------------------------------------------------------------------

    def _present(self, digest: Digest) -> bool:
        """Stored with the right size (a wrong-sized file is treated as absent and gets overwritten by a put)."""
        try:
            return os.stat(self.blob_path(digest)).st_size == digest.size_bytes
        except FileNotFoundError:
            return False

    def _touch(self, digests: Iterable[Digest]) -> None:
        items = [(d.hash, d.size_bytes) for d in digests]
        if items:
            self._index.touch(items, self._now_ns())

    def _now_ns(self) -> int:
        with self._lock:  # strictly increasing, so LRU order is the order of accesses in this process
            self._last_ns = max(time.time_ns(), self._last_ns + 1)
            return self._last_ns

    @contextlib.contextmanager
    def _digest_lock(self, h: str) -> Iterator[None]:
        with self._lock:
            lock, refs = self._busy.get(h, (None, 0))
            if lock is None:
                lock = threading.RLock()
            self._busy[h] = (lock, refs + 1)
        try:
            with lock:
                yield
        finally:
            with self._lock:
                lock, refs = self._busy[h]
                if refs <= 1:
                    del self._busy[h]
                else:
                    self._busy[h] = (lock, refs - 1)

    def _remove_corrupt(self, digest: Digest, seen: os.stat_result) -> None:
        """Remove a blob that failed verification, unless it was replaced since it was opened."""
        path = self.blob_path(digest)
        with self._lock:
            try:
                cur = os.stat(path)
            except FileNotFoundError:
                return
            if (cur.st_ino, cur.st_dev) != (seen.st_ino, seen.st_dev):
                return
            self._unlink(path)
            self.stats.corrupt_removed += 1
        self._index.remove([digest.hash])
        log.error("store %s: removed corrupt blob %s", self.root, digest)

    def _reused(self, digest: Digest) -> None:
        """A write found its blob stored already (:class:`~builder_service.store.writer.WriteTarget`)."""
        self._hold(digest)
        with self._lock:
            self.stats.reused += 1

    def _stored(self, digest: Digest) -> None:
        """A write added ``digest``'s blob: counted, then the store is brought under its limit."""
        self._hold(digest)
        with self._lock:
            self.stats.writes += 1
            self.stats.bytes_written += digest.size_bytes
        self._after_put(digest)

    def _ensure_space(self, incoming: int, name: str) -> None:
        if self.min_free is not None:
            self.min_free.ensure(self.root, incoming, name, self._evict_bytes)

    def _evict_bytes(self, needed: int) -> int:
        """Evict LRU unpinned blobs totalling at least ``needed`` bytes (as far as there are); the bytes freed."""
        return sum(d.size_bytes for d in self.evict(max(0, self._index.usage() - needed)))

    def _after_put(self, digest: Digest) -> None:
        if self.max_bytes is not None and self._index.usage() > self.max_bytes:
            self.evict(int(self.max_bytes * self.low_water), protect={digest.hash})

    @staticmethod
    def _unlink(path: Path) -> bool:
        try:
            os.unlink(path)
        except FileNotFoundError:
            return False
        return True



#: The blobs pinned by the current :meth:`FilesystemStore.hold_writes` block (per thread and context).
_HELD: ContextVar[list[str] | None] = ContextVar("store_held_writes", default=None)


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)
