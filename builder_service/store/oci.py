""":class:`RegistryStore`: the store of ``--store oci://HOST:PORT/REPO-PREFIX``, an OCI registry with the local
filesystem store as a bounded read-through cache in front of it.

* Blobs live in the registry repository ``REPO-PREFIX/blobs`` under their ``sha256:`` digests (the same as our
  ArtifactRefs). A read of a blob the cache lacks pulls it (verified while it streams) into the cache first; every
  read from the cache is verified as in :class:`~builder_service.store.filesystem.FilesystemStore`.
* A blob written here (a build's output) is committed to the cache, then pushed. When the registry is down the
  push is recorded in a pending-push queue on disk (``pending-push/<hex>.<size>``, kept across restarts, and
  those blobs are never evicted) and :meth:`RegistryStore.flush_pending` sends them once it answers again.
* Registry down: reads are served from the cache where it has the blob, else
  :class:`~builder_service.errors.RegistryUnavailable` naming the registry (gRPC ``UNAVAILABLE``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from ..digest import Digest
from ..errors import RegistryUnavailable, StoreError
from .filesystem import FilesystemStore
from .registry import RegistryClient

__all__ = ["PUSH_BACKOFF_SECONDS", "RegistryStore"]

log = logging.getLogger(__name__)

#: After a failed push, writes only queue (no request) for this long; the flusher keeps trying.
PUSH_BACKOFF_SECONDS = 10.0


class RegistryStore(FilesystemStore):
    """A :class:`FilesystemStore` (the local cache, bounded by ``max_bytes``) that reads through to, and pushes
    to, ``registry``'s ``REPO-PREFIX/blobs`` repository."""

    def __init__(self, root: str | os.PathLike[str], registry: RegistryClient, **kwargs: Any) -> None:
        self.registry = registry
        self.repo = registry.repository("blobs")
        self._pending_dir = Path(root) / "pending-push"
        self._pending_dir.mkdir(parents=True, exist_ok=True)
        self._fetching: set[str] = set()
        self._fetch_lock = threading.Lock()
        self._down_until = 0.0
        self._pusher: threading.Event | None = None
        #: Counters for metrics and tests: blobs pulled from / pushed to the registry.
        self.pulled = 0
        self.pushed = 0
        #: Called after each :meth:`flush_pending` that reached the registry (environment publications).
        self.after_flush: list[Callable[[], object]] = []
        super().__init__(root, **kwargs)

    def __repr__(self) -> str:
        return f"RegistryStore({str(self.root)!r}, registry={str(self.registry.url)!r}, max_bytes={self.max_bytes})"

    # -- reads: the cache, else the registry -----------------------------------------------------------------------

    def contains(self, digest: Digest) -> bool:
        return super().contains(digest) or self._in_registry(digest)

    def stat(self, digests: Iterable[Digest]) -> dict[Digest, bool]:
        local = super().stat(digests)
        return {d: ok or self._in_registry(d) for d, ok in local.items()}

    def open(self, digest: Digest) -> BinaryIO:
        self.fetch(digest)
        return super().open(digest)

    def read_range(self, digest: Digest, offset: int, length: int) -> bytes:
        self.fetch(digest)
        return super().read_range(digest, offset, length)

    def path(self, digest: Digest) -> Path | None:
        try:
            self.fetch(digest)
        except StoreError:
            return None
        return super().path(digest)

    def cached(self, digest: Digest) -> bool:
        """Whether the local cache has the blob (no registry request)."""
        return self._present(digest)

    def fetch(self, digest: Digest) -> None:
        """Bring the blob into the local cache unless it is there: :class:`~builder_service.errors.BlobNotFound`
        when the registry lacks it, :class:`RegistryUnavailable` when it is down, ``DigestMismatch`` (nothing
        kept) when it serves other bytes."""
        if self._present(digest):
            return
        with self._fetch_lock:
            self._fetching.add(digest.hash)
        try:
            with self.writer(digest, name=f"{self.registry.url}/blobs") as w:
                if not w.already_present:
                    self.registry.pull_blob(self.repo, digest, w.write)
                    self.pulled += 1
        finally:
            with self._fetch_lock:
                self._fetching.discard(digest.hash)

    def _in_registry(self, digest: Digest) -> bool:
        """Whether the registry has the blob; :class:`RegistryUnavailable` when it cannot be asked (a down
        registry is not an absent blob: callers answer UNAVAILABLE, or count a miss without forgetting anything)."""
        return self.registry.has_blob(self.repo, digest)

    # -- writes: the cache, then the registry (or the pending-push queue) --------------------------------------

    def _stored(self, digest: Digest) -> None:
        with self._fetch_lock:
            fetched = digest.hash in self._fetching
        if not fetched:
            self._marker(digest).touch()  # before the cache may evict: a pending blob is protected
        super()._stored(digest)
        if not fetched and time.monotonic() >= self._down_until:
            self._push(digest)

    def push(self, digest: Digest) -> None:
        """Push a cached blob now (raises :class:`RegistryUnavailable`)."""
        path = self.blob_path(digest)
        sent = self.registry.push_blob(self.repo, digest, path)
        self._marker(digest).unlink(missing_ok=True)
        self.pushed += sent

    def _push(self, digest: Digest) -> bool:
        try:
            self.push(digest)
        except RegistryUnavailable as e:
            self._down_until = time.monotonic() + PUSH_BACKOFF_SECONDS
            log.warning("%s; %s stays queued for push", e, digest)
            return False
        return True

    def queue(self, digests: Iterable[Digest]) -> None:
        """Queue cached blobs for push (kept from eviction until pushed)."""
        for digest in digests:
            if self._present(digest):
                self._marker(digest).touch()

    def pending(self) -> list[Digest]:
        """The blobs written here that the registry has not received yet."""
        return list(_markers(self._pending_dir))

    def flush_pending(self) -> int:
        """Push the queued blobs (stops at the first registry failure); the number pushed."""
        sent = 0
        for digest in self.pending():
            if not self._present(digest):  # removed by hand: nothing left to push
                self._marker(digest).unlink(missing_ok=True)
                continue
            if not self._push(digest):
                return sent
            sent += 1
        self._down_until = 0.0
        for hook in self.after_flush:
            hook()
        return sent

    def start_pusher(self, interval: float = PUSH_BACKOFF_SECONDS) -> None:
        """A daemon thread flushing the queue at once (what a previous run left) and then every ``interval``
        seconds, until :meth:`close`; started once (later calls do nothing)."""
        with self._fetch_lock:
            if self._pusher is not None:
                return
            self._pusher = stop = threading.Event()

        def run() -> None:
            first = True
            while first or not stop.wait(interval):
                first = False
                try:
                    self.flush_pending()
                except Exception:  # noqa: BLE001 - a pusher bug must not end the thread
                    log.exception("pending pushes to %s", self.registry.url)

        threading.Thread(target=run, name="registry-pusher", daemon=True).start()

    def close(self) -> None:
        if self._pusher is not None:
            self._pusher.set()
        super().close()

    def evict(self, target_bytes: int, *, protect: Collection[str] = ()) -> list[Digest]:
        queued = {d.hash for d in self.pending()}
        return super().evict(target_bytes, protect=set(protect) | queued)

    def _marker(self, digest: Digest) -> Path:
        return self._pending_dir / f"{digest.hash}.{digest.size_bytes}"


def _markers(directory: Path) -> Iterator[Digest]:
    for entry in sorted(directory.iterdir()):
        hexpart, _, size = entry.name.partition(".")
        try:
            yield Digest(hexpart, int(size))
        except (ValueError, StoreError):
            continue
