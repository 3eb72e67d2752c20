"""Verified reads: a file-like reader that checks the digest at the end of a blob."""

from __future__ import annotations

import io
from collections.abc import Callable

from ..digest import Digest, DigestMismatch, Hasher

__all__ = ["VerifyingReader"]


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

