"""Single-flight: concurrent callers asking for the same key share one computation."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """``do(key, fn)`` runs ``fn`` once per key at a time; callers arriving meanwhile wait for its result.

    The result (or exception) is not kept once the flight lands: caching is the caller's business.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[Hashable, Future[T]] = {}

    def do(self, key: Hashable, fn: Callable[[], T]) -> tuple[T, bool]:
        """Return ``(result, shared)``; ``shared`` is True when another caller did the work."""
        with self._lock:
            future = self._flights.get(key)
            leader = future is None
            if future is None:
                future = self._flights[key] = Future()
        if not leader:
            return future.result(), True
        try:
            result = fn()
        except BaseException as exc:
            future.set_exception(exc)
            raise
        else:
            future.set_result(result)
            return result, False
        finally:
            with self._lock:
                del self._flights[key]

    def in_flight(self) -> int:
        with self._lock:
            return len(self._flights)
