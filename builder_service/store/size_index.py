"""The store's size index: SQLite (WAL) rows of blob sizes and last-access times, for usage and LRU eviction.

The blob files are the truth; the index only orders them for eviction and sums their sizes, and is rebuilt from
the files when it is missing or unreadable.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from venvsmith.core.sqlite_recovery import move_aside

__all__ = ["SizeIndex"]

log = logging.getLogger(__name__)


class SizeIndex:
    """SQLite (WAL) table of blob sizes and last-access times; thread-safe, shared between processes."""

    _SCHEMA = """
        CREATE TABLE IF NOT EXISTS blobs (
            hash TEXT PRIMARY KEY, size INTEGER NOT NULL, last_access INTEGER NOT NULL) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS blobs_lru ON blobs (last_access, hash);
        CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            self._conn = self._connect()
        except sqlite3.DatabaseError as e:  # unreadable: the blobs are the truth, start a new index
            move_aside(path, e)
            self._conn = self._connect()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(self._SCHEMA)
        except BaseException:
            conn.close()
            raise
        return conn

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def complete(self) -> bool:
        with self._lock:
            return self._conn.execute("SELECT 1 FROM meta WHERE key = 'complete'").fetchone() is not None

    def replace_all(self, rows: list[tuple[str, int, int]]) -> None:
        with self._lock, _transaction(self._conn) as c:
            c.execute("CREATE TEMP TABLE IF NOT EXISTS on_disk (hash TEXT PRIMARY KEY)")
            c.execute("DELETE FROM on_disk")
            c.executemany("INSERT OR IGNORE INTO on_disk VALUES (?)", [(h,) for h, _, _ in rows])
            c.execute("DELETE FROM blobs WHERE hash NOT IN (SELECT hash FROM on_disk)")
            c.executemany(
                "INSERT INTO blobs VALUES (?, ?, ?) ON CONFLICT (hash) DO UPDATE SET size = excluded.size", rows
            )
            c.execute("INSERT OR REPLACE INTO meta VALUES ('complete', '1')")

    def touch(self, items: list[tuple[str, int]], now_ns: int) -> None:
        with self._lock, _transaction(self._conn) as c:
            c.executemany(
                "INSERT INTO blobs VALUES (?, ?, ?) ON CONFLICT (hash) DO UPDATE SET"
                " size = excluded.size, last_access = max(last_access, excluded.last_access)",
                [(h, size, now_ns) for h, size in items],
            )

    def remove(self, hashes: list[str]) -> None:
        with self._lock, _transaction(self._conn) as c:
            c.executemany("DELETE FROM blobs WHERE hash = ?", [(h,) for h in hashes])

    def usage(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT coalesce(sum(size), 0) FROM blobs").fetchone()[0])

    def lru(self, page: int = 256) -> Iterator[tuple[str, int]]:
        """(hash, size), least recently used first; pages so callers may modify the table while iterating."""
        after: tuple[int, str] = (-1, "")
        while True:
            with self._lock:
                rows = self._conn.execute(
                    "SELECT hash, size, last_access FROM blobs WHERE (last_access, hash) > (?, ?)"
                    " ORDER BY last_access, hash LIMIT ?",
                    (*after, page),
                ).fetchall()
            if not rows:
                return
            for h, size, _ in rows:
                yield h, size
            after = (rows[-1][2], rows[-1][0])


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
