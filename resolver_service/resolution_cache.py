"""The resolution cache: canonical request -> serialized answer, with honest expiry.

Kept in memory (answers a repeated request in microseconds) and in SQLite under ``$VENVSMITH_HOME`` (so a
new process, e.g. the next embedded CLI run, finds it too), and with ``--cache redis://...`` in a shared tier
(:mod:`venvsmith.core.fleet.shared_cache`) that every replica reads: a local miss asks it, a store writes through
to it with the same expiry. An answer for a request that pins an index snapshot (exclude-newer) never expires.
"""

from __future__ import annotations

import logging
import sqlite3
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from venvsmith.core.fleet.shared_cache import CacheTier
from venvsmith.core.health import HealthState
from venvsmith.core.sqlite_recovery import is_corruption, move_aside, open_checked

if TYPE_CHECKING:
    from venvsmith.core.fleet.lease import Lease

log = logging.getLogger(__name__)
T = TypeVar("T")

MEMORY_ENTRIES = 1024
#: The namespace of resolution answers in the shared tier.
NAMESPACE = "resolution"
#: A shared value: the expiry (Unix time, or -1 for never) as a big-endian double, then the answer's bytes.
_EXPIRY = struct.Struct(">d")


def shared_value(body: bytes, expires_at: float | None) -> bytes:
    return _EXPIRY.pack(-1.0 if expires_at is None else expires_at) + body


def from_shared(value: bytes) -> tuple[bytes, float | None] | None:
    if len(value) < _EXPIRY.size:
        return None
    (expires_at,) = _EXPIRY.unpack_from(value)
    return value[_EXPIRY.size :], None if expires_at < 0 else expires_at


class ResolutionCache:
    """Thread-safe key -> (bytes, expires_at) map; ``expires_at`` is a Unix time or ``None`` for never."""

    def __init__(self, path: Path | None, *, health: HealthState | None = None,
                 shared: CacheTier | None = None) -> None:
        self._lock = threading.Lock()
        self.shared = shared
        self._memory: OrderedDict[str, tuple[bytes, float | None]] = OrderedDict()
        self._db: sqlite3.Connection | None = None
        self._path = path
        self._health = health
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._db = open_checked(path, _init_schema, _connect)
            except (sqlite3.DatabaseError, OSError) as exc:
                self._give_up(exc)

    def _on_disk(self, operation: Callable[[sqlite3.Connection], T]) -> T | None:
        """``operation(db)`` (caller holds the lock); a corrupt file is moved aside, a fresh one opened and the
        operation retried once. None without a database (memory only, or the file could not be replaced)."""
        for attempt in (1, 2):
            if self._db is None:
                return None
            try:
                return operation(self._db)
            except sqlite3.DatabaseError as exc:
                if not is_corruption(exc) or attempt == 2 or self._path is None:
                    raise
                self._db.close()
                self._db = None
                try:
                    move_aside(self._path, exc)
                    self._db = open_checked(self._path, _init_schema, _connect)
                except (sqlite3.DatabaseError, OSError) as again:
                    self._give_up(again)
        return None

    def _give_up(self, exc: BaseException) -> None:
        log.error("resolution cache %s is unusable and cannot be replaced: %s", self._path, exc)
        if self._health is not None:
            self._health.set_broken(f"resolution cache {self._path}", str(exc))

    def get(self, key: str, now: float | None = None) -> tuple[bytes, float | None] | None:
        now = time.time() if now is None else now
        with self._lock:
            hit = self._memory.get(key)
            if hit is None:
                row = self._on_disk(
                    lambda db: db.execute("SELECT body, expires_at FROM resolutions WHERE key = ?", (key,)).fetchone()
                )
                if row is not None:
                    hit = (bytes(row[0]), row[1])
                    self._remember(key, hit)
            if hit is not None and hit[1] is not None and hit[1] <= now:
                self._memory.pop(key, None)
                hit = None
            if hit is not None:
                self._memory.move_to_end(key)
                return hit
        if self.shared is None:
            return None
        value = self.shared.get(NAMESPACE, key)  # outside the lock: a network call
        shared = from_shared(value) if value is not None else None
        if shared is None or (shared[1] is not None and shared[1] <= now):
            return None
        with self._lock:
            self._remember(key, shared)
            self._on_disk(lambda db: _store(db, key, shared[0], shared[1]))
        return shared

    def put(self, key: str, body: bytes, expires_at: float | None, *, share: bool = True, lease: Lease | None = None
            ) -> None:
        """Store locally and (unless ``share`` is false) in the shared tier; with ``lease`` (a cross-replica
        single-flight's), shared only while that lease holds (a holder whose lease lapsed and was taken over does
        not overwrite its successor's answer)."""
        with self._lock:
            self._remember(key, (body, expires_at))
            self._on_disk(lambda db: _store(db, key, body, expires_at))
        if share and self.shared is not None:
            ttl = None if expires_at is None else expires_at - time.time()
            if ttl is None or ttl > 0:
                self.shared.put(NAMESPACE, key, shared_value(body, expires_at), ttl, lease=lease)

    def _remember(self, key: str, entry: tuple[bytes, float | None]) -> None:
        self._memory[key] = entry
        self._memory.move_to_end(key)
        while len(self._memory) > MEMORY_ENTRIES:
            self._memory.popitem(last=False)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)


def _init_schema(db: sqlite3.Connection) -> None:
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE IF NOT EXISTS resolutions (key TEXT PRIMARY KEY, body BLOB, expires_at REAL)")


def _store(db: sqlite3.Connection, key: str, body: bytes, expires_at: float | None) -> None:
    db.execute("INSERT OR REPLACE INTO resolutions (key, body, expires_at) VALUES (?, ?, ?)", (key, body, expires_at))
    db.execute("DELETE FROM resolutions WHERE expires_at IS NOT NULL AND expires_at < ?", (time.time(),))
