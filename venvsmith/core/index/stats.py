"""Counters of what a source did: network fetches vs cache hits, for pages and metadata."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields


@dataclass
class SourceStats:
    """Thread-safe counters; read the fields directly or take a :meth:`snapshot`."""

    #: Index pages downloaded (HTTP 200), including find-links pages.
    pages_fetched: int = 0
    #: Index pages served from the page cache: fresh (no request), offline, or revalidated (HTTP 304).
    pages_cached: int = 0
    #: Of ``pages_cached``, those revalidated by a conditional request that answered 304.
    pages_revalidated: int = 0
    #: Index pages and directory listings read from the local filesystem.
    pages_local: int = 0
    #: Core metadata obtained other than from the metadata cache (network or local archive).
    metadata_fetched: int = 0
    #: Core metadata served from the metadata cache.
    metadata_cached: int = 0
    #: HTTP range requests made to read wheel metadata.
    range_requests: int = 0
    #: Whole distribution files downloaded (metadata fallback, sdists, direct URLs).
    downloads: int = 0
    #: Bytes of response bodies read from the network.
    bytes_downloaded: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, counter: str, amount: int = 1) -> None:
        with self._lock:
            setattr(self, counter, getattr(self, counter) + amount)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}
