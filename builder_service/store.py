"""Content-addressed blob store (Bazel CAS model): the :class:`Store` protocol and its filesystem backend.

Invariants of :class:`FilesystemStore`:

* nothing unverified ever becomes visible: bytes go to ``tmp/`` in the same filesystem, are hashed while written,
  fsynced, checked against the expected digest and only then renamed atomically to ``cas/sha256/<hh>/<hash>``;
* reads are verified: :meth:`~FilesystemStore.open` hashes while reading and raises :class:`DigestMismatch`
  at the end of a corrupt blob, which it also removes so the next put can write it again;
* concurrent writers of the same digest in one process are single-flighted (the first writes, the others wait and
  reuse the result); across processes the atomic rename makes duplicate writes harmless;
* the index (``index.sqlite3``, WAL) only holds sizes and access times for LRU eviction; the blob files are the
  truth, and the index is rebuilt from them when it is missing or unreadable.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sqlite3
import stat as stat_mod
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, cast, runtime_checkable

from venvsmith.core.errors import ServiceError

from .digest import CHUNK_SIZE, Digest, DigestMismatch, Hasher

try:  # POSIX: advisory locks tell a live writer's temp file from a dead one's
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "BlobNotFound",
    "BlobTooLarge",
    "BlobWriter",
    "FilesystemStore",
    "InvalidRange",
    "Store",
    "StoreError",
    "StoreStats",
]

log = logging.getLogger(__name__)

#: Temp files younger than this are never cleaned at startup (even if unlocked).
DEFAULT_STALE_TMP_SECONDS = 300.0


class StoreError(ServiceError):
    """Base class for store errors."""


class BlobNotFound(StoreError, LookupError):
    """The store has no (intact-sized) blob for ``digest`` (gRPC ``NOT_FOUND``)."""

    status = "NOT_FOUND"
    error_reason = "BLOB_NOT_FOUND"

    def __init__(self, digest: Digest) -> None:
        super().__init__(f"blob not found: {digest}")
        self.digest = digest

    def facts(self) -> dict[str, str]:
        return {"digest": str(self.digest)}

    def __reduce__(self):
        return (type(self), (self.digest,))


class BlobTooLarge(StoreError):
    """A write exceeded its ``max_bytes`` limit (gRPC ``RESOURCE_EXHAUSTED``); nothing was stored."""

    status = "RESOURCE_EXHAUSTED"
    error_reason = "BLOB_TOO_LARGE"

    def __init__(self, name: str, max_bytes: int) -> None:
        super().__init__(f"{name or 'blob'}: larger than the limit of {max_bytes} bytes")
        self.name = name
        self.max_bytes = max_bytes

    def facts(self) -> dict[str, str]:
        return {"filename": self.name, "max_bytes": str(self.max_bytes)}

    def __reduce__(self):
        return (type(self), (self.name, self.max_bytes))


class InvalidRange(StoreError, ValueError):
    """``read_range`` outside the blob (gRPC ``OUT_OF_RANGE``)."""

    status = "OUT_OF_RANGE"
    error_reason = "INVALID_RANGE"

    def __init__(self, digest: Digest, offset: int, length: int) -> None:
        super().__init__(f"invalid range offset={offset} length={length} for {digest}")
        self.digest = digest
        self.offset = offset
        self.length = length

    def facts(self) -> dict[str, str]:
        return {"digest": str(self.digest), "offset": str(self.offset), "length": str(self.length)}

    def __reduce__(self):
        return (type(self), (self.digest, self.offset, self.length))


@runtime_checkable
class BlobWriter(Protocol):
    """Handle yielded by :meth:`Store.writer`; ``digest`` is set once the ``with`` block commits."""

    #: The stored digest, after commit (or at once when ``already_present``).
    digest: Digest | None
    #: True when the expected blob was already stored: writes are then ignored and nothing needs sending.
    already_present: bool

    def write(self, data: bytes | bytearray | memoryview) -> int: ...


@runtime_checkable
class Store(Protocol):
    """A content-addressed blob store; every method takes or returns :class:`Digest`."""

    def contains(self, digest: Digest) -> bool:
        """Whether the blob is stored (counts as an access for LRU)."""
        ...

    def stat(self, digests: Iterable[Digest]) -> dict[Digest, bool]:
        """Presence of each digest (missing ones map to False)."""
        ...

    def open(self, digest: Digest) -> BinaryIO:
        """A verifying reader; raises :class:`BlobNotFound`, or :class:`DigestMismatch` at the end of a corrupt blob."""
        ...

    def read_range(self, digest: Digest, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes from ``offset`` (chunked/resumable reads; the reader verifies the whole)."""
        ...

    def put_file(self, path: str | os.PathLike[str], expected: Digest | None = None) -> Digest:
        """Store a file's content after verifying it against ``expected``."""
        ...

    def put_stream(
        self, chunks: Iterable[bytes], expected: Digest | None = None, max_bytes: int | None = None
    ) -> Digest:
        """Store streamed content after verifying it; ``chunks`` is not consumed if ``expected`` is stored."""
        ...

    def writer(self, expected: Digest | None = None) -> AbstractContextManager[BlobWriter]:
        """Context manager for push-style writes; commits (verified) on a clean exit, discards on error."""
        ...

    def path(self, digest: Digest) -> Path | None:
        """Local path of a stored blob (for zero-copy serving/hard-linking; pin it while used), else None."""
        ...

    def pin(self, digests: Iterable[Digest]) -> AbstractContextManager[None]:
        """Protect blobs from eviction for the duration of the ``with`` block."""
        ...

    def evict(self, target_bytes: int) -> list[Digest]:
        """Evict least-recently-used unpinned blobs until usage <= ``target_bytes``; returns what was evicted."""
        ...

    def usage(self) -> int:
        """Total bytes of stored blobs."""
        ...

    def delete(self, digest: Digest) -> bool:
        """Remove a blob; True if it was there."""
        ...


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
    :param stale_tmp_seconds: at startup, temp files older than this whose writer is gone are removed.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        max_bytes: int | None = None,
        low_water: float = 0.9,
        stale_tmp_seconds: float = DEFAULT_STALE_TMP_SECONDS,
    ) -> None:
        if max_bytes is not None and max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        if not 0.0 <= low_water <= 1.0:
            raise ValueError(f"low_water must be within [0, 1], got {low_water}")
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.low_water = low_water
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
        self._index = _Index(self.root / "index.sqlite3")
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
        raw = _VerifyingReader(f, digest, str(path), lambda: self._remove_corrupt(digest, st))
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
    ) -> _FilesystemWriter:
        """Push-style write: ``with store.writer(d) as w: w.write(...)``; ``w.digest`` after the block.

        With ``expected``, entering waits for any other writer of that digest in this process, and sets
        ``w.already_present`` (ignoring writes) if the blob is stored by then.
        """
        return _FilesystemWriter(self, expected, max_bytes, name)

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


class _FilesystemWriter:
    """One write into a :class:`FilesystemStore`: temp file, hashed as written, verified, renamed on commit."""

    def __init__(self, store: FilesystemStore, expected: Digest | None, max_bytes: int | None, name: str) -> None:
        self.digest: Digest | None = None
        self.already_present = False
        self._store = store
        self._expected = expected
        self._max_bytes = max_bytes
        self._name = name or (str(expected) if expected else "blob")
        self._hasher = Hasher()
        self._file: BinaryIO | None = None
        self._tmp_path: Path | None = None
        self._error: BaseException | None = None
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> _FilesystemWriter:
        try:
            if self._expected is not None:
                self._stack.enter_context(self._store._digest_lock(self._expected.hash))
                if self._store._present(self._expected):
                    self._store._touch([self._expected])
                    self.already_present = True
                    self.digest = self._expected
                    with self._store._lock:
                        self._store.stats.reused += 1
                    return self
            self._open_temp()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None and not self.already_present:
                self.digest = self._commit()
        finally:
            self._discard()
            self._stack.close()

    def write(self, data: bytes | bytearray | memoryview) -> int:
        n = len(data)
        if self.already_present:
            return n
        if self._error is not None:
            raise self._error
        if self._file is None:
            raise ValueError(f"{self._name}: writer is not open")
        try:
            self._check_size(self._hasher.size + n)
            self._file.write(data)
            self._hasher.update(data)
        except BaseException as e:
            self._error = e
            raise
        return n

    def _check_size(self, size: int) -> None:
        if self._max_bytes is not None and size > self._max_bytes:
            raise BlobTooLarge(self._name, self._max_bytes)
        if self._expected is not None and size > self._expected.size_bytes:
            raise DigestMismatch(self._name, self._expected, None)

    def _open_temp(self) -> None:
        fd, name = tempfile.mkstemp(prefix="w-", dir=self._store._tmp)
        self._tmp_path = Path(name)
        self._file = os.fdopen(fd, "wb")
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # tells clean_tmp() we are alive

    def _adopt_link(self, src: Path) -> bool:
        """Replace the empty temp file by a hard link to ``src`` and hash it; False if linking is impossible."""
        link = self._store._tmp / f"l-{os.urandom(8).hex()}"
        try:
            os.link(src, link)
        except OSError:
            return False
        self._discard()
        self._tmp_path = link
        self._file = f = open(link, "rb", buffering=0)
        if fcntl is not None:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        try:
            self._check_size(os.fstat(f.fileno()).st_size)
            buf = bytearray(CHUNK_SIZE)
            view = memoryview(buf)
            while n := f.readinto(buf):
                self._hasher.update(view[:n])
        except BaseException as e:
            self._error = e
            raise
        return True

    def _commit(self) -> Digest:
        if self._error is not None:
            raise self._error
        f, tmp = self._file, self._tmp_path
        assert f is not None and tmp is not None
        f.flush()
        os.fsync(f.fileno())
        actual = self._hasher.digest()
        if self._expected is not None and actual != self._expected:
            raise DigestMismatch(self._name, self._expected, actual)
        store = self._store
        with store._digest_lock(actual.hash):  # re-entrant when actual == expected
            if store._present(actual):
                store._touch([actual])
                with store._lock:
                    store.stats.reused += 1
                return actual
            os.fchmod(f.fileno(), 0o444)
            final = store.blob_path(actual)
            if not final.parent.is_dir():
                final.parent.mkdir(parents=True, exist_ok=True)
                _fsync_dir(final.parent.parent)
            os.replace(tmp, final)  # while still open and locked, so clean_tmp() never races us
            self._tmp_path = None
            _fsync_dir(final.parent)
            store._touch([actual])
            with store._lock:
                store.stats.writes += 1
                store.stats.bytes_written += actual.size_bytes
            store._after_put(actual)
        return actual

    def _discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._tmp_path is not None:
            FilesystemStore._unlink(self._tmp_path)
            self._tmp_path = None


class _VerifyingReader(io.RawIOBase):
    """Reads a blob, hashing as it goes; on a mismatch at the end, calls ``on_corrupt`` and raises."""

    def __init__(self, f: io.FileIO, digest: Digest, name: str, on_corrupt: Callable[[], None]) -> None:
        super().__init__()
        self._f = f
        self._digest = digest
        self._name = name
        self._on_corrupt = on_corrupt
        self._hasher = Hasher()
        self._verified = False
        self._error: DigestMismatch | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        if self._error is not None:
            raise self._error
        n = self._f.readinto(b) or 0
        if n:
            if self._verified:  # bytes beyond a verified end: the file grew
                self._fail(None)
            self._hasher.update(memoryview(b)[:n])
        if not self._verified and (n == 0 or self._hasher.size >= self._digest.size_bytes):
            self._verified = True
            actual = self._hasher.digest()
            if actual != self._digest:
                self._fail(actual)
        return n

    def _fail(self, actual: Digest | None) -> None:
        self._error = DigestMismatch(self._name, self._digest, actual)
        self._on_corrupt()
        raise self._error

    def close(self) -> None:
        if not self.closed:
            self._f.close()
        super().close()


class _Index:
    """SQLite (WAL) table of blob sizes and last-access times; thread-safe, shared between processes."""

    _SCHEMA = """
        CREATE TABLE IF NOT EXISTS blobs (
            hash TEXT PRIMARY KEY, size INTEGER NOT NULL, last_access INTEGER NOT NULL) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS blobs_lru ON blobs (last_access, hash);
        CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            self._conn = self._connect()
        except sqlite3.DatabaseError as e:  # unreadable: the blobs are the truth, start a new index
            log.warning("store index %s unreadable (%s); rebuilding", path, e)
            for suffix in ("", "-wal", "-shm"):
                side = path.with_name(path.name + suffix)
                if side.exists():
                    side.replace(side.with_name(f"{side.name}.corrupt-{int(time.time())}"))
            self._conn = self._connect()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(self._SCHEMA)
        except BaseException:
            conn.close()
            raise
        return conn

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def complete(self) -> bool:
        with self._lock:
            return self._conn.execute("SELECT 1 FROM meta WHERE key = 'complete'").fetchone() is not None

    def replace_all(self, rows: list[tuple[str, int, int]]) -> None:
        with self._lock, _transaction(self._conn) as c:
            c.execute("CREATE TEMP TABLE IF NOT EXISTS on_disk (hash TEXT PRIMARY KEY)")
            c.execute("DELETE FROM on_disk")
            c.executemany("INSERT OR IGNORE INTO on_disk VALUES (?)", [(h,) for h, _, _ in rows])
            c.execute("DELETE FROM blobs WHERE hash NOT IN (SELECT hash FROM on_disk)")
            c.executemany(
                "INSERT INTO blobs VALUES (?, ?, ?) ON CONFLICT (hash) DO UPDATE SET size = excluded.size", rows
            )
            c.execute("INSERT OR REPLACE INTO meta VALUES ('complete', '1')")

    def touch(self, items: list[tuple[str, int]], now_ns: int) -> None:
        with self._lock, _transaction(self._conn) as c:
            c.executemany(
                "INSERT INTO blobs VALUES (?, ?, ?) ON CONFLICT (hash) DO UPDATE SET"
                " size = excluded.size, last_access = max(last_access, excluded.last_access)",
                [(h, size, now_ns) for h, size in items],
            )

    def remove(self, hashes: list[str]) -> None:
        with self._lock, _transaction(self._conn) as c:
            c.executemany("DELETE FROM blobs WHERE hash = ?", [(h,) for h in hashes])

    def usage(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT coalesce(sum(size), 0) FROM blobs").fetchone()[0])

    def lru(self, page: int = 256) -> Iterator[tuple[str, int]]:
        """(hash, size), least recently used first; pages so callers may modify the table while iterating."""
        after: tuple[int, str] = (-1, "")
        while True:
            with self._lock:
                rows = self._conn.execute(
                    "SELECT hash, size, last_access FROM blobs WHERE (last_access, hash) > (?, ?)"
                    " ORDER BY last_access, hash LIMIT ?",
                    (*after, page),
                ).fetchall()
            if not rows:
                return
            for h, size, _ in rows:
                yield h, size
            after = (rows[-1][2], rows[-1][0])


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)
