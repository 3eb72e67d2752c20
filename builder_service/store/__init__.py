"""Content-addressed blob store (Bazel CAS model), one concept per module.

* :mod:`.protocol` — the :class:`Store` interface (what another backend implements; its errors are in
  :mod:`builder_service.errors`);
* :mod:`.filesystem` — :class:`FilesystemStore`, the local backend;
* :mod:`.writer` — the verified writer (temp file, digest check, atomic rename, single-flight);
* :mod:`.reader` — verified reads (a reader checking the digest at the end, chunked reads that hold back
  their last chunk until the whole blob matched);
* :mod:`.size_index` — the SQLite index of sizes and access times used for usage and LRU eviction.
"""

from ..errors import BlobNotFound, BlobTooLarge, InvalidRange, StoreError
from .filesystem import DEFAULT_STALE_TMP_SECONDS, FilesystemStore, StoreStats
from .protocol import BlobWriter, Store
from .writer import VerifiedWriter

__all__ = [
    "DEFAULT_STALE_TMP_SECONDS",
    "BlobNotFound",
    "BlobTooLarge",
    "BlobWriter",
    "FilesystemStore",
    "InvalidRange",
    "Store",
    "StoreError",
    "StoreStats",
    "VerifiedWriter",
]
