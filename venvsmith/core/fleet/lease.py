"""Lease-based locks in Redis: expiry, renewal, fencing tokens, release only by the holder.

A lease on a name is the key ``<prefix>lease:<name>`` set with ``SET NX PX`` to a fencing token, a number from
``INCR <prefix>fence:<name>`` (so a later holder always has a larger token than every earlier one). While held, a
background thread renews it (a compare-and-``PEXPIRE``) every third of its lifetime; a holder that crashes stops
renewing, the key lapses and the next one takes over. Release and renewal are Lua scripts that act only when the
key still holds the caller's token: a holder whose lease lapsed cannot release (or extend) its successor's.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
#: Set KEYS[2] to ARGV[2] (expiring after ARGV[3] ms, 0 = never) only while KEYS[1] holds the token ARGV[1].
_SET_IF_HOLDER = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if tonumber(ARGV[3]) > 0 then redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
else redis.call('SET', KEYS[2], ARGV[2]) end
return 1
"""


@dataclass
class Lease:
    """A held lease: its name, fencing token and lifetime; renewed by a thread until :meth:`release`."""

    client: Any  # redis.Redis
    key: str
    token: int
    ttl_ms: int
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    #: Set when a renewal found the lease no longer ours (lapsed, then taken): the work should not be published.
    lost: threading.Event = field(default_factory=threading.Event)

    def renew(self) -> bool:
        """Extend the lease by its lifetime if still held; False (and :attr:`lost`) when it is not."""
        held = bool(self.client.eval(_RENEW, 1, self.key, str(self.token), str(self.ttl_ms)))
        if not held:
            self.lost.set()
        return held

    def release(self) -> bool:
        """Stop renewing and delete the lease if still ours; True when it was."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        return bool(self.client.eval(_RELEASE, 1, self.key, str(self.token)))

    def set_if_holder(self, key: str, value: bytes, ttl_ms: int | None) -> bool:
        """Store ``value`` under ``key`` only while this lease is still held (fenced: a lapsed holder's late
        write is refused); True when stored."""
        return bool(self.client.eval(_SET_IF_HOLDER, 2, self.key, key, str(self.token), value, str(ttl_ms or 0)))

    def start_renewing(self) -> None:
        def loop() -> None:
            while not self._stop.wait(self.ttl_ms / 3000):
                try:
                    if not self.renew():
                        log.warning("lease %s (token %d) was lost before it was released", self.key, self.token)
                        return
                except Exception as exc:  # noqa: BLE001 - Redis gone: the lease lapses there by itself
                    log.warning("lease %s: cannot renew: %s", self.key, exc)
                    self.lost.set()
                    return

        self._thread = threading.Thread(target=loop, name=f"lease-renew-{self.key}", daemon=True)
        self._thread.start()

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


#: ``INCR`` the fence counter KEYS[1] and let it expire after ARGV[1] ms unused; a counter made anew (first use, or
#: expired) starts from ARGV[2], the caller's clock in microseconds, so tokens keep growing across its expiry.
_NEXT_TOKEN = """
local token = redis.call('INCR', KEYS[1])
if token == 1 then token = redis.call('INCRBY', KEYS[1], ARGV[2]) end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return token
"""
#: How long a fence counter outlives its last lease (at least): a day, or 100 lease lifetimes.
FENCE_KEEP_MS = 24 * 3600 * 1000


def acquire(client: Any, prefix: str, name: str, ttl_ms: int, *, renew: bool = True) -> Lease | None:
    """The lease on ``name`` if nobody holds it (renewed in the background unless ``renew`` is false), else
    None. The fencing token is taken first, so tokens grow with every attempt, won or not. The fence counter
    expires a day (or 100 lease lifetimes) after its last use, so one key per distinct name does not stay in
    Redis for ever; a new counter starts from the clock, above every token an earlier one gave."""
    keep = max(FENCE_KEEP_MS, 100 * ttl_ms)
    token = int(client.eval(_NEXT_TOKEN, 1, f"{prefix}fence:{name}", str(keep), str(time.time_ns() // 1000)))
    key = f"{prefix}lease:{name}"
    if not client.set(key, str(token), nx=True, px=ttl_ms):
        return None
    lease = Lease(client, key, token, ttl_ms)
    if renew:
        lease.start_renewing()
    return lease


def holder(client: Any, prefix: str, name: str) -> tuple[int | None, int]:
    """(token of the current holder or None, milliseconds left on its lease; 0 when none)."""
    key = f"{prefix}lease:{name}"
    with client.pipeline() as pipe:
        value, left = pipe.get(key).pttl(key).execute()
    return (int(value) if value is not None else None), max(int(left), 0)
