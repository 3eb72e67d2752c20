"""Single-flight across replicas: one replica does the work for a key, the others wait for its result.

The replica that takes the key's lease (:mod:`.lease`) does the work and stores the result where ``lookup``
finds it (fenced: only while its lease holds), then publishes on the key's channel. A replica that finds the lease
taken subscribes to that channel and waits: woken by the message (not by polling), it reads the result through
``lookup``. If the holder crashes, its lease lapses (no renewal) and a waiter takes it over and does the work; if
the holder failed (no result stored), a waiter does the work itself. Redis unreachable: the work is done here (the
caller's in-process single-flight still shares it between this replica's callers).

Resolutions use it now (:mod:`resolver_service.engine`); builds can through the same :meth:`FleetFlight.do`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar, cast

from .. import engine_counts
from . import lease as leases
from .shared_cache import RedisTier

log = logging.getLogger(__name__)
T = TypeVar("T")

PREFIX = "venvsmith:flight:"
DEFAULT_LEASE_SECONDS = 15.0
#: How often a waiter checks that its caller still waits (the result itself wakes it at once).
ACTIVE_CHECK_SECONDS = 0.1


class FleetFlight:
    """``do(name, work, lookup)`` over one Redis tier; thread-safe (each call uses its own subscription)."""

    def __init__(self, tier: RedisTier, lease_seconds: float = DEFAULT_LEASE_SECONDS) -> None:
        self.tier = tier
        self.lease_ms = max(int(lease_seconds * 1000), 100)
        #: Works done here under the lease, and works answered by another replica's result (also in /metrics:
        #: ``venvsmith_fleet_flights_total{outcome="led"|"joined"|"local"}``, local = done without Redis).
        self.led = 0
        self.joined = 0

    def do(self, name: str, work: Callable[[leases.Lease | None], T], lookup: Callable[[], T | None],
           is_active: Callable[[], bool] | None = None) -> tuple[T, bool]:
        """``(result, shared)``: ``work(lease)`` run here under the lease (``lease`` None when Redis is down), or
        the result another replica stored (``lookup()``), ``shared`` True then."""
        import redis

        from ..cancellation import Cancelled

        while True:
            if not self.tier.available():
                return self._local(work), False
            try:
                held = leases.acquire(self.tier.client, PREFIX, name, self.lease_ms)
            except (redis.RedisError, OSError) as exc:
                self.tier.failed(exc)
                return self._local(work), False
            if held is not None:
                return self._lead(name, held, work, lookup)
            try:
                found = self._wait(name, lookup, is_active)
            except (redis.RedisError, OSError) as exc:
                self.tier.failed(exc)
                return self._local(work), False
            if found is not None:
                self._count("joined")
                return cast("T", found), True
            if is_active is not None and not is_active():
                raise Cancelled("the caller cancelled while waiting for another replica")

    def _count(self, outcome: str) -> None:
        if outcome == "led":
            self.led += 1
        elif outcome == "joined":
            self.joined += 1
        engine_counts.fleet_flight(outcome)

    def _local(self, work: Callable[[leases.Lease | None], T]) -> T:
        self._count("local")
        return work(None)

    def _lead(self, name: str, held: leases.Lease, work, lookup) -> tuple:
        import redis

        try:
            found = lookup()  # the previous holder may have finished just before this lease was taken
            if found is not None:
                self._count("joined")
                return found, True
            self._count("led")
            return work(held), False
        finally:
            try:
                held.release()
                # A lost lease's result was not stored (fenced): waking the waiters would only make them look.
                if not held.lost.is_set():
                    self.tier.client.publish(f"{PREFIX}done:{name}", str(held.token))
            except (redis.RedisError, OSError) as exc:
                self.tier.failed(exc)  # the lease lapses by itself; waiters take over then

    def _wait(self, name: str, lookup, is_active) -> object | None:
        """Wait for the holder of ``name``: its result, or None once its lease is gone without one (crashed,
        failed) or the caller stopped waiting."""
        pubsub = self.tier.client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(f"{PREFIX}done:{name}")
            while True:
                found = lookup()  # subscribed first, then looked: a result landing in between is not missed
                if found is not None:
                    return found
                token, left_ms = leases.holder(self.tier.client, PREFIX, name)
                if token is None:
                    return None
                until = time.monotonic() + left_ms / 1000 + 0.01
                while time.monotonic() < until:
                    if is_active is not None and not is_active():
                        return None
                    message = pubsub.get_message(timeout=min(ACTIVE_CHECK_SECONDS, max(until - time.monotonic(), 0)))
                    if message is not None:
                        return lookup()
                # the lease's time is up: renewed (look again) or lapsed (take it over)
        finally:
            pubsub.close()
