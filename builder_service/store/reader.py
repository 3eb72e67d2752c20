"""Verified reads: a file-like reader that checks the digest at the end of a blob, and chunked range reads that
send nothing unverified as their last chunk."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator

from ..digest import CHUNK_SIZE, Digest, Hasher
from ..errors import DigestMismatch, InvalidRange
from .protocol import Store

__all__ = ["VerifyingReader", "verified_chunks", "verify_blobs"]


def verify_blobs(store: Store, digests: Iterable[Digest]) -> None:
    """Read each blob whole through :meth:`Store.open`: :class:`DigestMismatch` for the first corrupt one (which
    the store has then removed, so the action that made it misses and runs again)."""
    for digest in digests:
        with store.open(digest) as src:
            while src.read(CHUNK_SIZE):
                pass


def verified_chunks(
    store: Store, digest: Digest, offset: int = 0, limit: int = 0, chunk: int = CHUNK_SIZE
) -> Iterator[tuple[int, bytes]]:
    """``(offset, bytes)`` pieces of the blob from ``offset`` (``limit`` bytes, 0 = to the end), verified.

    The whole blob is read through :meth:`Store.open` (which hashes it) even when only a range is wanted, and
    each piece is yielded only once the next one was read: the last piece goes out only after the digest matched.
    A corrupt blob raises :class:`DigestMismatch` instead of its last piece (the store has removed it by then);
    :class:`BlobNotFound` when absent, :class:`InvalidRange` for an offset past the end or a negative value.
    """
    if offset < 0 or limit < 0 or offset > digest.size_bytes:
        raise InvalidRange(digest, offset, limit)
    end = digest.size_bytes if not limit else min(digest.size_bytes, offset + limit)
    pending: tuple[int, bytes] | None = None
    position = 0
    with store.open(digest) as src:
        while data := src.read(chunk):  # raises DigestMismatch on the read that reaches a corrupt end
            start, position = position, position + len(data)
            lo, hi = max(start, offset), min(position, end)
            if lo < hi:
                if pending is not None:
                    yield pending
                pending = (lo, data[lo - start:hi - start] if (lo, hi) != (start, position) else data)
    if pending is not None:
        yield pending


class VerifyingReader(io.RawIOBase):
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

    def readinto(self, b) -> int:
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

