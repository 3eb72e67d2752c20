"""A process's own view of whether it can serve, followed by the gRPC health servicer.

A component that cannot work any more (a cache file that is corrupt and cannot be replaced) marks itself broken;
the servers' health service then answers NOT_SERVING until every component is well again. A component that works
less well (the shared Redis cache unreachable: the replica serves from its local caches) marks itself degraded:
still SERVING, and the health answer's ``venvsmith-health-details`` trailing metadata says why.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

__all__ = ["HealthState"]

log = logging.getLogger(__name__)


class HealthState:
    """Broken components by name, with listeners called on every change of :attr:`serving`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._broken: dict[str, str] = {}
        self._degraded: dict[str, str] = {}
        #: States followed (:meth:`follow`): their degraded components are reported as this one's.
        self._followed: list[HealthState] = []
        self._listeners: list[Callable[[bool], None]] = []

    @property
    def serving(self) -> bool:
        with self._lock:
            return not self._broken

    def broken(self) -> dict[str, str]:
        """Component -> why it is broken."""
        with self._lock:
            return dict(self._broken)

    def degraded(self) -> dict[str, str]:
        """Component -> how it is degraded (serving still)."""
        with self._lock:
            return dict(self._degraded)

    def details(self) -> str:
        """One line naming every broken and degraded component and why (empty when all is well)."""
        with self._lock:
            items = [*(f"{c}: {r}" for c, r in self._broken.items()),
                     *(f"{c}: {r}" for c, r in self._degraded.items())]
            followed = list(self._followed)
        items += [f"{c}: {r}" for other in followed for c, r in other.degraded().items()]
        return "; ".join(items)

    def set_degraded(self, component: str, reason: str) -> None:
        with self._lock:
            self._degraded[component] = reason
        log.warning("%s is degraded: %s", component, reason)

    def set_recovered(self, component: str) -> None:
        with self._lock:
            self._degraded.pop(component, None)

    def set_broken(self, component: str, reason: str) -> None:
        with self._lock:
            was = not self._broken
            self._broken[component] = reason
            listeners = list(self._listeners)
        log.error("%s cannot work: %s; health NOT_SERVING", component, reason)
        if was:
            for listener in listeners:
                listener(False)

    def set_ok(self, component: str) -> None:
        with self._lock:
            if self._broken.pop(component, None) is None:
                return
            now = not self._broken
            listeners = list(self._listeners)
        if now:
            for listener in listeners:
                listener(True)

    def subscribe(self, listener: Callable[[bool], None]) -> None:
        """Call ``listener(serving)`` now and on every change."""
        with self._lock:
            self._listeners.append(listener)
            serving = not self._broken
        listener(serving)

    def follow(self, other: HealthState, component: str) -> None:
        """Be broken (as ``component``) whenever ``other`` is: one server hosting two engines reports both."""

        def changed(serving: bool) -> None:
            if serving:
                self.set_ok(component)
            else:
                self.set_broken(component, "; ".join(other.broken().values()))

        with self._lock:
            self._followed.append(other)
        other.subscribe(changed)
