"""Recovery of corrupt SQLite cache files: detect, move the file aside, start a fresh one, say so.

Every SQLite file of venvsmith is a cache (the truth is the index, or the store's blobs), so a file that SQLite
calls malformed is moved aside as ``<name>.corrupt-<timestamp>`` (with its ``-wal`` and ``-shm`` companions) and a
new, empty one takes its place. Corruption is detected at open (``PRAGMA quick_check`` and the schema) and at use
(:func:`is_corruption` on the exception of any statement). When even that fails (the directory cannot be written),
the caller reports itself unhealthy through a :class:`~venvsmith.core.health.HealthState`.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["is_corruption", "move_aside", "open_checked"]

log = logging.getLogger(__name__)

#: What SQLite says about a file that is not (or no longer) a sound database.
_CORRUPTION_MARKERS = ("malformed", "not a database", "file is encrypted", "database corrupt", "disk i/o error")


def is_corruption(exc: BaseException) -> bool:
    """True for SQLite's "database disk image is malformed" / "file is not a database" / "disk I/O error" (a
    truncated file) errors; not for a lock."""
    return isinstance(exc, sqlite3.DatabaseError) and any(m in str(exc).lower() for m in _CORRUPTION_MARKERS)


def move_aside(path: Path, reason: object) -> Path:
    """Rename ``path`` and its ``-wal``/``-shm`` files to ``<name>.corrupt-<timestamp>``; log it; the new name.

    Raises :class:`OSError` when the files cannot be moved (the caller then cannot recover).
    """
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"-{time.time_ns() % 1_000_000_000:09d}"
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    for suffix in ("-wal", "-shm", ""):  # the main file last: a crash in between leaves it to be found again
        side = path.with_name(path.name + suffix)
        if side.exists():
            side.replace(target.with_name(target.name + suffix))
    log.warning("sqlite cache %s is corrupt (%s): moved aside to %s, starting a new one", path, reason, target)
    return target


def open_checked(path: Path, init: Callable[[sqlite3.Connection], None],
                 connect: Callable[[Path], sqlite3.Connection]) -> sqlite3.Connection:
    """``connect(path)`` checked with ``PRAGMA quick_check`` and set up by ``init``; a corrupt file is moved aside
    and a fresh one opened. Raises :class:`sqlite3.DatabaseError` or :class:`OSError` when that fails too."""
    try:
        return _open(path, init, connect)
    except sqlite3.DatabaseError as exc:
        if not is_corruption(exc):
            raise
        move_aside(path, exc)
    return _open(path, init, connect)


def _open(path: Path, init: Callable[[sqlite3.Connection], None],
          connect: Callable[[Path], sqlite3.Connection]) -> sqlite3.Connection:
    conn = connect(path)
    try:
        row = conn.execute("PRAGMA quick_check").fetchone()
        if row is None or row[0] != "ok":
            raise sqlite3.DatabaseError(f"database disk image is malformed (quick_check: {row and row[0]})")
        init(conn)
    except BaseException:
        conn.close()
        raise
    return conn
