"""Admission control: a server takes at most N expensive calls at a time and refuses the rest at once.

Without a bound, every call beyond the worker pool waits in gRPC's queue, each holding its request in memory,
until its deadline passes: the server looks alive while every caller times out. With ``serve
--max-concurrent-calls N`` an expensive call (a resolution, a build, a metadata preparation) that finds N
others running is answered RESOURCE_EXHAUSTED at once, reason ``SERVER_BUSY``, with a ``RetryInfo`` saying
when to try again; cheap calls (health, reflection, artifact reads, listings) are never refused by it. gRPC's
own ``maximum_concurrent_rpcs`` (:func:`hard_limit`) bounds every call, cheap ones included, above that.

Keep-alive policy (:data:`KEEPALIVE_OPTIONS`) makes the server notice dead peers, so that a vanished client
does not hold a slot for ever.
"""

from __future__ import annotations

import argparse
import threading
from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_MAX_CONCURRENT_CALLS", "EXPENSIVE_METHODS", "KEEPALIVE_OPTIONS", "Admission", "ServerLimits",
           "add_limit_options"]

#: Expensive calls a server runs at once by default (the rest are refused, not queued): above the 32 concurrent
#: CI clients of the load test, whose identical calls share their work but each hold a call.
DEFAULT_MAX_CONCURRENT_CALLS = 64
#: Calls beyond the expensive ones that gRPC itself still accepts (cheap reads, health checks): the hard bound
#: is ``max_concurrent_calls`` plus this, beyond which gRPC answers RESOURCE_EXHAUSTED itself.
CHEAP_HEADROOM = 64

#: The calls that cost CPU, memory, index traffic or builds: those admission counts.
EXPENSIVE_METHODS = frozenset({
    "/venvsmith.v1.ResolverService/Resolve",
    "/venvsmith.v1.ResolverService/ResolveStream",
    "/venvsmith.v1.BuilderService/Build",
    "/venvsmith.v1.BuilderService/ResolveAndBuild",
    "/venvsmith.v1.BuilderService/PrepareMetadata",
})

#: gRPC server channel options: the keep-alive policy.
KEEPALIVE_OPTIONS: list[tuple[str, int]] = [
    # Ping an idle client every 60 s, and drop the connection when the ping is not answered in 20 s: a client
    # that vanished (a killed CI pod, a dropped NAT entry) frees its calls and slots.
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    # Pings are allowed while a call is open (a long build sends no data for minutes) ...
    ("grpc.keepalive_permit_without_calls", 1),
    # ... but a client may not ping more often than every 10 s without data (gRPC's default is 5 min, which
    # makes clients that keep alive every 30 s see GOAWAY "too_many_pings"); more often is abuse and is refused.
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.http2.max_ping_strikes", 2),
    # A connection with no call for 10 minutes is closed (clients reconnect transparently).
    ("grpc.max_connection_idle_ms", 600_000),
]


class Admission:
    """At most ``limit`` holders at once; :meth:`try_enter` never waits."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("the concurrency limit must be at least 1")
        self.limit = limit
        self._lock = threading.Lock()
        self._running = 0

    def try_enter(self) -> bool:
        with self._lock:
            if self._running >= self.limit:
                return False
            self._running += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self._running -= 1

    @property
    def running(self) -> int:
        with self._lock:
            return self._running


@dataclass(frozen=True)
class ServerLimits:
    """The bounds of a server (``serve --max-concurrent-calls``)."""

    max_concurrent_calls: int = DEFAULT_MAX_CONCURRENT_CALLS

    @classmethod
    def from_args(cls, args: Any) -> ServerLimits:
        value = getattr(args, "max_concurrent_calls", None)
        return cls(max_concurrent_calls=DEFAULT_MAX_CONCURRENT_CALLS if value is None else value)

    def hard_limit(self) -> int:
        """gRPC's ``maximum_concurrent_rpcs``: every call, cheap ones included (also the most worker threads,
        so that no accepted call waits for a thread in an unbounded queue)."""
        return self.max_concurrent_calls + CHEAP_HEADROOM


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def add_limit_options(serve: argparse.ArgumentParser) -> None:
    serve.add_argument("--max-concurrent-calls", type=_positive, default=DEFAULT_MAX_CONCURRENT_CALLS,
                       metavar="N",
                       help="expensive calls (resolutions, builds) run at once; more are refused at once with "
                            "RESOURCE_EXHAUSTED SERVER_BUSY and a retry delay "
                            f"(default {DEFAULT_MAX_CONCURRENT_CALLS})")
