"""The verified writer of a :class:`~builder_service.store.filesystem.FilesystemStore`.

Bytes go to a temp file in the store's ``tmp/`` (same filesystem), are hashed as written, fsynced, checked against
the expected digest and only then renamed atomically into place; writers of one digest are single-flighted by the
store's per-digest lock, so the same blob is never written twice at once in a process.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO, Protocol

from ..digest import CHUNK_SIZE, Digest, Hasher
from ..errors import BlobTooLarge, DigestMismatch

try:  # POSIX: advisory locks tell a live writer's temp file from a dead one's
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["VerifiedWriter", "WriteTarget", "fsync_dir"]


class WriteTarget(Protocol):
    """The write path of a :class:`~builder_service.store.filesystem.FilesystemStore`, which a
    :class:`VerifiedWriter` drives (typed here: the store imports the writer, never the other way)."""

    _tmp: Path

    def _digest_lock(self, h: str) -> AbstractContextManager[None]: ...

    def _present(self, digest: Digest) -> bool: ...

    def _touch(self, digests: Iterable[Digest]) -> None: ...

    def _ensure_space(self, incoming: int, name: str) -> None:
        """Room for ``incoming`` more bytes above the disk-space floor (evicting first), else StoreFull."""

    def blob_path(self, digest: Digest) -> Path: ...

    def _reused(self, digest: Digest) -> None:
        """A write found its blob stored already (called holding the digest's lock)."""

    def _stored(self, digest: Digest) -> None:
        """A write added ``digest``'s blob (called holding the digest's lock)."""


class VerifiedWriter:
    """One write into a store (:class:`WriteTarget`): temp file, hashed as written, verified, renamed on commit."""

    def __init__(self, store: WriteTarget, expected: Digest | None, max_bytes: int | None, name: str) -> None:
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

    def __enter__(self) -> VerifiedWriter:
        try:
            if self._expected is not None:
                self._stack.enter_context(self._store._digest_lock(self._expected.hash))
                if self._store._present(self._expected):
                    self._store._touch([self._expected])
                    self.already_present = True
                    self.digest = self._expected
                    self._store._reused(self._expected)
                    return self
            if self._expected is not None:  # the whole size is known: refuse before writing anything
                self._store._ensure_space(self._expected.size_bytes, self._name)
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
            self._store._ensure_space(n, self._name)
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
                store._reused(actual)
                return actual
            os.fchmod(f.fileno(), 0o444)
            final = store.blob_path(actual)
            if not final.parent.is_dir():
                final.parent.mkdir(parents=True, exist_ok=True)
                fsync_dir(final.parent.parent)
            os.replace(tmp, final)  # while still open and locked, so clean_tmp() never races us
            self._tmp_path = None
            fsync_dir(final.parent)
            store._touch([actual])
            store._stored(actual)
        return actual

    def _discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._tmp_path is not None:
            _unlink(self._tmp_path)
            self._tmp_path = None



def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def fsync_dir(path: Path) -> None:
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

