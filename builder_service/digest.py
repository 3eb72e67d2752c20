"""Content digests (sha256 + size, as in Bazel's remote-apis ``Digest``); content that fails one is a
:class:`~builder_service.errors.DigestMismatch`."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import InvalidDigest

if TYPE_CHECKING:
    from venvsmith.core.distfile import DistFile

__all__ = ["CHUNK_SIZE", "Digest", "Hasher", "file_sha256"]

#: Read size for streaming hashes and copies.
CHUNK_SIZE = 1 << 20

_HEX = re.compile(r"[0-9a-f]{64}")
_TEXT = re.compile(r"sha256:([0-9a-f]{64})/(0|[1-9][0-9]*)")


@dataclass(frozen=True, order=True)
class Digest:
    """The identity of a blob: lowercase sha256 hex of its content and its size in bytes."""

    hash: str
    size_bytes: int

    def __post_init__(self) -> None:
        if not isinstance(self.hash, str) or not _HEX.fullmatch(self.hash):
            raise InvalidDigest(self.hash, "hash must be 64 lowercase hex characters")
        if isinstance(self.size_bytes, bool) or not isinstance(self.size_bytes, int) or self.size_bytes < 0:
            raise InvalidDigest(self.size_bytes, "size_bytes must be a non-negative int")

    @classmethod
    def of_bytes(cls, data: bytes | bytearray | memoryview) -> Digest:
        """Digest of an in-memory blob."""
        return cls(hashlib.sha256(data).hexdigest(), len(data))

    @classmethod
    def of_file(cls, path: str | os.PathLike[str]) -> Digest:
        """Digest of a file, read in :data:`CHUNK_SIZE` chunks."""
        hasher = Hasher()
        buf = bytearray(CHUNK_SIZE)
        view = memoryview(buf)
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(buf):
                hasher.update(view[:n])
        return hasher.digest()

    @classmethod
    def parse(cls, text: str) -> Digest:
        """Inverse of ``str()``: ``"sha256:<hex>/<size>"``."""
        m = _TEXT.fullmatch(text) if isinstance(text, str) else None
        if m is None:
            raise InvalidDigest(text, 'expected "sha256:<64 lowercase hex>/<size>"')
        return cls(m.group(1), int(m.group(2)))

    def __str__(self) -> str:
        return f"sha256:{self.hash}/{self.size_bytes}"


class Hasher:
    """Incremental digest: ``update()`` chunks, then ``digest()``."""

    __slots__ = ("_sha", "size")

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self.size = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._sha.update(data)
        self.size += len(data)

    def digest(self) -> Digest:
        return Digest(self._sha.hexdigest(), self.size)


def file_sha256(file: DistFile) -> str:
    """The sha256 a pinned file is known by (a pin from a request always has one: it is checked on the way in)."""
    if not file.sha256:
        raise InvalidDigest(file.filename, "a pinned file needs its sha256")
    return file.sha256
