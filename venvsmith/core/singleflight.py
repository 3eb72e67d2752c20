"""Single-flight: concurrent callers asking for the same key share one computation."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Generic, TypeVar

T = TypeVar("T")

#: How often a waiting caller checks whether it is still active (seconds).
POLL_SECONDS = 0.05


class _Shared:
    """One shared flight: its future and the ``is_active`` tests of its callers (``None``: always active)."""

    def __init__(self) -> None:
        self.future: Future = Future()
        self.callers: list[Callable[[], bool] | None] = []

    def should_stop(self, lock: threading.Lock) -> bool:
        with lock:
            callers = list(self.callers)
        # Outside the lock: a caller's test may be another flight's should_stop (nested work of this SingleFlight).
        return not any(active is None or active() for active in callers)


class SingleFlight(Generic[T]):
    """``do(key, fn)`` runs ``fn`` once per key at a time; callers arriving meanwhile wait for its result.

    The result (or exception) is not kept once the flight lands: caching is the caller's business.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[Hashable, Future[T]] = {}
        self._shared: dict[Hashable, _Shared] = {}

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

    def do_shared(
        self, key: Hashable, fn: Callable[[Callable[[], bool]], T], is_active: Callable[[], bool] | None = None,
        on_join: Callable[[], None] | None = None,
    ) -> tuple[T, bool]:
        """As :meth:`do`, for work that may be cancelled: ``fn(should_stop)`` runs once per key at a time, and
        ``should_stop()`` is true once every caller sharing it is no longer active (``is_active`` false).

        A waiting caller that goes inactive stops waiting (:class:`~venvsmith.core.cancellation.Cancelled`); the
        work goes on for the others. A caller still active when the work stopped for lack of callers (it joined
        just then) runs it again, as does a caller whose work ended :class:`~venvsmith.core.errors.DeadlineExceeded`:
        that was the first caller's deadline (``fn`` is bound to it), this caller's may be later. ``on_join()`` is
        called once a caller has joined work another one runs.
        """
        from .cancellation import Cancelled
        from .errors import DeadlineExceeded

        while True:
            with self._lock:
                flight = self._shared.get(key)
                leader = flight is None
                if flight is None:
                    flight = self._shared[key] = _Shared()
                flight.callers.append(is_active)
            if leader:
                try:
                    result = fn(functools.partial(flight.should_stop, self._lock))
                except BaseException as exc:
                    flight.future.set_exception(exc)
                    raise
                else:
                    flight.future.set_result(result)
                    return result, False
                finally:
                    with self._lock:
                        del self._shared[key]
            if on_join is not None:
                on_join()
            while True:
                try:
                    return flight.future.result(timeout=POLL_SECONDS), True
                except TimeoutError:
                    if is_active is not None and not is_active():
                        with self._lock:
                            flight.callers.remove(is_active)
                        raise Cancelled("the caller cancelled while waiting for shared work") from None
                except Cancelled:
                    if is_active is not None and not is_active():
                        raise
                    break  # the work stopped as this caller joined: run it again
                except DeadlineExceeded:
                    break  # the leader's deadline, not this caller's: run it again (within this caller's)

    def in_flight(self) -> int:
        with self._lock:
            return len(self._flights) + len(self._shared)
