"""The :class:`Store` protocol (a content-addressed blob store) and the errors every backend raises.

A backend (the local filesystem here; an OCI registry or a bucket elsewhere) implements only this; the builder, the
action cache and the artifact service talk to nothing else.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

from venvsmith.core.errors import ServiceError

from ..digest import Digest

__all__ = ["BlobNotFound", "BlobTooLarge", "BlobWriter", "InvalidRange", "Store", "StoreError"]


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

