"""The end of a server's life: on SIGTERM, drain (health NOT_SERVING, new work refused UNAVAILABLE, work in flight
finishes) for at most a grace period, then stop (work still running is cancelled: handed back to its callers).

:func:`drain_and_stop` is the one place that does it, for both serve commands.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # grpc and the metrics are a server's: `serve --help` and the CLI's parser read the defaults here
    import grpc

log = logging.getLogger(__name__)

#: Services that keep answering while the server drains (probes and tools must see NOT_SERVING).
ALWAYS_SERVED = ("grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
                 "grpc.reflection.v1alpha.ServerReflection")
#: Default seconds a draining server waits for work in flight.
DEFAULT_GRACE_SECONDS = 20.0


@dataclass
class Drain:
    """A server's draining state, shared with its interceptor: whether it drains, and the work in flight."""

    draining: threading.Event = field(default_factory=threading.Event)
    _active: int = 0
    _idle: threading.Condition = field(default_factory=threading.Condition)

    def begin(self, service: str) -> bool:
        """Count one call in; False (refuse it) while draining, except for :data:`ALWAYS_SERVED` services."""
        if service in ALWAYS_SERVED:
            return True
        with self._idle:
            if self.draining.is_set():
                return False
            self._active += 1
            return True

    def end(self, service: str) -> None:
        if service in ALWAYS_SERVED:
            return
        with self._idle:
            self._active -= 1
            if self._active <= 0:
                self._idle.notify_all()

    @property
    def active(self) -> int:
        with self._idle:
            return self._active

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is in flight (True) or ``timeout`` seconds passed (False)."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._active > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
            return True


_health: weakref.WeakKeyDictionary[grpc.Server, object] = weakref.WeakKeyDictionary()
_drains: weakref.WeakKeyDictionary[grpc.Server, Drain] = weakref.WeakKeyDictionary()
_companions: weakref.WeakKeyDictionary[grpc.Server, list[grpc.Server]] = weakref.WeakKeyDictionary()


def register(server: grpc.Server, health: object, drain: Drain) -> None:
    """Remember ``server``'s health servicer and drain state (``build_server`` calls this)."""
    _health[server] = health
    _drains[server] = drain


def health_of(server: grpc.Server) -> object | None:
    return _health.get(server)


def add_companion(server: grpc.Server, companion: grpc.Server) -> None:
    """Stop ``companion`` (the plaintext health port) when ``server`` stops, after its drain: probes on it see
    NOT_SERVING for as long as the drain lasts."""
    _companions.setdefault(server, []).append(companion)


def drain_and_stop(server: grpc.Server, health: object | None = None, grace: float = DEFAULT_GRACE_SECONDS) -> bool:
    """Drain ``server`` for at most ``grace`` seconds, then stop it; True when no call had to be cancelled.

    Health turns NOT_SERVING for every service (and stays so), new calls are refused UNAVAILABLE, calls in flight
    run to their end within the grace; what still runs then is cancelled by ``server.stop``.
    """
    health = health if health is not None else health_of(server)
    from . import observe

    drain = _drains.get(server)
    observe.DRAINING.set(1)
    if health is not None:
        health.enter_graceful_shutdown()  # type: ignore[attr-defined]
    started = time.monotonic()
    finished = True
    if drain is not None:
        drain.draining.set()
        log.info("draining: %d call(s) in flight, grace %.1f s", drain.active, grace)
        finished = drain.wait_idle(grace)
        if not finished:
            log.warning("grace period of %.1f s over: cancelling %d call(s) still in flight", grace, drain.active)
    left = max(0.0, grace - (time.monotonic() - started)) if finished else 0.0
    server.stop(grace=min(left, 1.0)).wait()
    for companion in _companions.pop(server, []):
        companion.stop(None).wait()
    log.info("stopped after %.1f s", time.monotonic() - started)
    return finished
