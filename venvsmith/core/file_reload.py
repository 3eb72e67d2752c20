"""A value read from files and read again when they change: TLS certificates, token files, signing and trusted keys.

A file counts as changed when its modification time, size or inode differ (an atomic replace by rename changes the
inode; an edit in place the time or size). The first read must succeed (the caller refuses to start otherwise). A
later read that fails — a renewal caught half-written, a file gone — keeps the previous value, logged once per
change: it is tried again when the files change again, not on every call.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

Stamp = tuple[tuple[int, int, int] | None, ...]


def stamp(paths: Sequence[str | os.PathLike[str]]) -> Stamp:
    """What tells a changed file: (modification time, size, inode) of each, None for one that is gone."""
    out: list[tuple[int, int, int] | None] = []
    for path in paths:
        try:
            st = os.stat(path)
            out.append((st.st_mtime_ns, st.st_size, st.st_ino))
        except OSError:
            out.append(None)
    return tuple(out)


class ReloadingFiles(Generic[T]):
    """``load()``'s value, loaded again by :meth:`current` when one of ``paths`` changed (checked at most every
    ``interval`` seconds); thread-safe.

    ``errors``: what a failed ``load`` raises (kept value, logged as ``"<what> changed but cannot be used ..."``);
    ``changed(old, new)``: called after a successful reload (to log what changed).
    """

    def __init__(self, paths: Sequence[str | os.PathLike[str]], load: Callable[[], T], what: str, *,
                 errors: tuple[type[Exception], ...], interval: float = 0.0,
                 changed: Callable[[T, T], None] | None = None) -> None:
        self.paths = list(paths)
        self.what = what
        self._load, self._errors, self._interval, self._changed = load, errors, interval, changed
        self._lock = threading.Lock()
        self._stamp = stamp(self.paths)
        self._value = load()  # the first read must succeed
        self._failed: Stamp | None = None
        self._checked = time.monotonic()

    def refresh(self) -> bool:
        """Read the files again if they changed since the last successful read; True when a new value was loaded."""
        with self._lock:
            now = time.monotonic()
            if self._interval and now - self._checked < self._interval:
                return False
            self._checked = now
            current = stamp(self.paths)
            if current == self._stamp or current == self._failed:
                return False
            try:
                value = self._load()
            except self._errors as exc:
                self._failed = current
                log.error("%s changed but cannot be used, keeping the previous one: %s", self.what, exc)
                return False
            old, self._value, self._stamp, self._failed = self._value, value, current, None
        if self._changed is not None:
            self._changed(old, value)
        return True

    def current(self) -> T:
        """The value of the files as last read successfully (reading them again first when they changed)."""
        self.refresh()
        with self._lock:
            return self._value
