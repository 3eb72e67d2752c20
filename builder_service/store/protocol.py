"""The :class:`Store` protocol (a content-addressed blob store); the errors every backend raises are in
:mod:`builder_service.errors` (:class:`~builder_service.errors.StoreError` and its subclasses).

A backend (the local filesystem here; an OCI registry or a bucket elsewhere) implements only this; the builder, the
action cache and the artifact service talk to nothing else.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

from ..digest import Digest

__all__ = ["BlobWriter", "Store"]


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

