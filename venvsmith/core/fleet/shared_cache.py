"""The shared cache tier: a protocol every backend speaks, and its Redis backend.

A cache tier maps (namespace, key) to bytes with an optional lifetime. The local SQLite caches
(:mod:`resolver_service.resolution_cache`, :mod:`venvsmith.core.index.cache`) put a tier behind themselves: a
local miss asks it, a store writes through to it. Values are bounded (:data:`MAX_VALUE_BYTES`): a larger one is
not shared (it stays local).

Redis down is not an error: a failed call marks the tier down (``health`` degraded, a log line), and from then on it
answers misses and drops stores at once, without touching the socket (no call waits on a dead Redis), while a thread
pings Redis every :data:`RETRY_SECONDS` until it answers; then it says so and the tier is used again (with no
request needed to notice). The client itself does not retry: one failed attempt marks the tier down.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Protocol

from ..health import HealthState

if TYPE_CHECKING:
    from .lease import Lease

log = logging.getLogger(__name__)

#: The largest value the shared tier takes (a resolution answer, a METADATA file are far smaller).
MAX_VALUE_BYTES = 4 * 1024 * 1024
#: Seconds between attempts to reach a Redis that did not answer.
RETRY_SECONDS = 1.0
#: Seconds a Redis call may take before the tier counts it as down.
SOCKET_TIMEOUT = 2.0


class CacheTier(Protocol):
    """What a cache backend offers: bytes by (namespace, key), optionally expiring."""

    def get(self, namespace: str, key: str) -> bytes | None: ...

    def put(self, namespace: str, key: str, value: bytes, ttl_seconds: float | None, *,
            lease: Lease | None = None) -> None: ...


class RedisTier:
    """A :class:`CacheTier` in one Redis database, keys ``venvsmith:<namespace>:<key>``; thread-safe."""

    PREFIX = "venvsmith:"

    def __init__(self, url: str, *, health: HealthState | None = None, description: str | None = None,
                 ca_file: str | None = None) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        from .cache_url import describe_url

        self.url = url
        #: How logs and health details name it: never with its password.
        self.description = description or describe_url(url)
        options: dict[str, Any] = {}
        if url.startswith("rediss:") and ca_file:
            options["ssl_ca_certs"] = ca_file
        self.client: Any = redis.Redis.from_url(url, socket_timeout=SOCKET_TIMEOUT,
                                                socket_connect_timeout=SOCKET_TIMEOUT, health_check_interval=30,
                                                retry=Retry(NoBackoff(), 0), **options)
        self._health = health
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._closed = threading.Event()

    @property
    def component(self) -> str:
        return f"shared cache {self.description}"

    def available(self) -> bool:
        """False from a failed call until the probe thread has seen Redis answer again."""
        with self._lock:
            return self._down_since is None

    def failed(self, exc: BaseException) -> None:
        """Count Redis as down (after a failed call); the first failure is logged and put in health details."""
        with self._lock:
            first = self._down_since is None
            if first:
                self._down_since = time.monotonic()
        if first:
            threading.Thread(target=self._probe, name="shared-cache-probe", daemon=True).start()
            log.warning("%s is unreachable (%s): serving from the local caches and single-flight", self.component, exc)
            if self._health is not None:
                self._health.set_degraded(self.component, f"unreachable ({exc}); serving from local caches")

    def _probe(self) -> None:
        """While down: ping every :data:`RETRY_SECONDS` until Redis answers (or the tier is closed)."""
        import redis

        while not self._closed.wait(RETRY_SECONDS):
            with self._lock:
                if self._down_since is None:
                    return
            try:
                self.client.ping()
            except (redis.RedisError, OSError):
                continue
            self.succeeded()
            return

    def succeeded(self) -> None:
        with self._lock:
            was_down = self._down_since is not None
            self._down_since = None
        if was_down:
            log.warning("%s is reachable again", self.component)
            if self._health is not None:
                self._health.set_recovered(self.component)

    def call(self, operation, default=None):
        """``operation(client)``, or ``default`` when Redis is down (then marked so)."""
        import redis

        if not self.available():
            return default
        try:
            result = operation(self.client)
        except (redis.RedisError, OSError) as exc:
            self.failed(exc)
            return default
        self.succeeded()
        return result

    def key(self, namespace: str, key: str) -> str:
        return f"{self.PREFIX}{namespace}:{key}"

    def get(self, namespace: str, key: str) -> bytes | None:
        value = self.call(lambda c: c.get(self.key(namespace, key)))
        return bytes(value) if value is not None else None

    def put(self, namespace: str, key: str, value: bytes, ttl_seconds: float | None, *,
            lease: Lease | None = None) -> None:
        """Store ``value`` (over :data:`MAX_VALUE_BYTES`: not shared); with ``lease``, fenced: only while that
        lease is held (:meth:`~.lease.Lease.set_if_holder`), so a holder whose lease lapsed does not overwrite
        its successor's value."""
        if len(value) > MAX_VALUE_BYTES:
            return
        px = None if ttl_seconds is None else max(int(ttl_seconds * 1000), 1)
        if lease is not None:
            self.call(lambda c: lease.set_if_holder(self.key(namespace, key), value, px))
        else:
            self.call(lambda c: c.set(self.key(namespace, key), value, px=px))

    def ping(self) -> bool:
        return bool(self.call(lambda c: c.ping(), False))

    def close(self) -> None:
        self._closed.set()
        self.client.close()
