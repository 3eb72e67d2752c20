"""Content-addressed blob store (Bazel CAS model), one concept per module.

* :mod:`.protocol` — the :class:`Store` interface (what another backend implements; its errors are in
  :mod:`builder_service.errors`);
* :mod:`.filesystem` — :class:`FilesystemStore`, the local backend;
* :mod:`.writer` — the verified writer (temp file, digest check, atomic rename, single-flight);
* :mod:`.reader` — verified reads (a reader checking the digest at the end, chunked reads that hold back
  their last chunk until the whole blob matched);
* :mod:`.size_index` — the SQLite index of sizes and access times used for usage and LRU eviction.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ..errors import BlobNotFound, BlobTooLarge, InvalidRange, StoreError

if TYPE_CHECKING:
    from .filesystem import DEFAULT_STALE_TMP_SECONDS, FilesystemStore, StoreStats
    from .protocol import BlobWriter, Store
    from .writer import VerifiedWriter

#: Names imported from their module on first use: the CLI's parser reads the option helpers of
#: :mod:`.disk_guard` and :mod:`.choice`, and must not load the store (SQLite, hashing, temp files) for it.
_LAZY = {
    "DEFAULT_STALE_TMP_SECONDS": "filesystem",
    "FilesystemStore": "filesystem",
    "StoreStats": "filesystem",
    "BlobWriter": "protocol",
    "Store": "protocol",
    "VerifiedWriter": "writer",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


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
