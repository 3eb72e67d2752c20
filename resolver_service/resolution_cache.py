"""The resolution cache: canonical request -> serialized answer, with honest expiry.

Kept in memory (answers a repeated request in microseconds) and in SQLite under ``$VENVSMITH_HOME`` (so a
new process, e.g. the next embedded CLI run, finds it too). An answer for a request that pins an index
snapshot (exclude-newer) never expires.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import OrderedDict
from pathlib import Path

MEMORY_ENTRIES = 1024


class ResolutionCache:
    """Thread-safe key -> (bytes, expires_at) map; ``expires_at`` is a Unix time or ``None`` for never."""

    def __init__(self, path: Path | None) -> None:
        self._lock = threading.Lock()
        self._memory: OrderedDict[str, tuple[bytes, float | None]] = OrderedDict()
        self._db: sqlite3.Connection | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS resolutions (key TEXT PRIMARY KEY, body BLOB, expires_at REAL)"
            )

    def get(self, key: str, now: float | None = None) -> tuple[bytes, float | None] | None:
        now = time.time() if now is None else now
        with self._lock:
            hit = self._memory.get(key)
            if hit is None and self._db is not None:
                row = self._db.execute(
                    "SELECT body, expires_at FROM resolutions WHERE key = ?", (key,)
                ).fetchone()
                if row is not None:
                    hit = (bytes(row[0]), row[1])
                    self._remember(key, hit)
            if hit is None:
                return None
            if hit[1] is not None and hit[1] <= now:
                self._memory.pop(key, None)
                return None
            self._memory.move_to_end(key)
            return hit

    def put(self, key: str, body: bytes, expires_at: float | None) -> None:
        with self._lock:
            self._remember(key, (body, expires_at))
            if self._db is not None:
                self._db.execute(
                    "INSERT OR REPLACE INTO resolutions (key, body, expires_at) VALUES (?, ?, ?)",
                    (key, body, expires_at),
                )
                self._db.execute(
                    "DELETE FROM resolutions WHERE expires_at IS NOT NULL AND expires_at < ?", (time.time(),)
                )

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
