"""Calls to a server that may not be up yet: wait for the channel (gRPC wait-for-ready), with backoff and jitter.

A remote client first waits for its channel to be READY, at most ``retries + 1`` times, each wait longer than the
last (``BASE_DELAY * 2**attempt``, at most ``MAX_DELAY``, times a random factor in [0.5, 1.5)); meanwhile gRPC
reconnects at least every ``RECONNECT_MS``. The call itself is made with ``wait_for_ready=True``, and a call that
fails UNAVAILABLE before anything came back (a server that is draining, a connection that broke) is made again,
within the same budget of retries. When the channel never got ready, one last call without wait-for-ready says
why (connection refused, TLS handshake), and the error names the address tried and that the server may not be
running.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from venvsmith.core.resolution import CallError

T = TypeVar("T")
log = logging.getLogger(__name__)

#: ``--retries`` default: waits for the channel after the first (about 4 s in all before giving up).
DEFAULT_RETRIES = 3
BASE_DELAY = 0.25
MAX_DELAY = 5.0
#: Channel options: reconnect quickly while a caller waits for a server that is starting.
RECONNECT_MS = 1000
CHANNEL_OPTIONS = (("grpc.initial_reconnect_backoff_ms", 100), ("grpc.min_reconnect_backoff_ms", 100),
                   ("grpc.max_reconnect_backoff_ms", RECONNECT_MS))


def backoff(attempt: int, rng: Callable[[], float] = random.random) -> float:
    """Seconds of wait ``attempt`` (0-based): exponential, capped, with jitter."""
    return min(MAX_DELAY, BASE_DELAY * 2 ** attempt) * (0.5 + rng())


class Reconnecting:
    """The calls of one remote client to ``address`` (the ``what``: "resolver", "builder") over ``channel``."""

    def __init__(self, channel: Any, address: str, what: str, retries: int = DEFAULT_RETRIES, *,
                 rng: Callable[[], float] = random.random, sleep: Callable[[float], None] = time.sleep) -> None:
        import grpc

        self._grpc = grpc
        self.channel, self.address, self.what = channel, address, what
        self.retries = max(0, retries)
        self._rng, self._sleep = rng, sleep
        self._ready = False
        self.attempts = 0  # channel waits and calls made, for -v and tests

    def _wait_ready(self, attempt: int, deadline: float | None) -> bool:
        """Wait (bounded) for the channel to be READY: gRPC's wait-for-ready, at the channel."""
        if self._ready:
            return True
        budget = backoff(attempt, self._rng)
        if deadline is not None:
            budget = min(budget, max(0.0, deadline - time.monotonic()))
        future = self._grpc.channel_ready_future(self.channel)
        try:
            future.result(timeout=budget)
        except self._grpc.FutureTimeoutError:
            future.cancel()
            log.info("waiting for the %s at %s: not ready after %.1f s (attempt %d of %d)", self.what, self.address,
                     budget, attempt + 1, self.retries + 1)
            return False
        self._ready = True
        return True

    def _unreachable(self, started: float, why: str) -> CallError:
        tries = self.attempts
        return CallError("UNAVAILABLE", (
            f"cannot reach the {self.what} at {self.address} ({tries} attempt{'s' if tries != 1 else ''} in "
            f"{time.monotonic() - started:.1f} s): {why}\n"
            f"hint: the {self.what} may not be running there: start it (venvsmith serve {self.what}), check "
            "--server, or retry (--retries N)"))

    def call(self, fn: Callable[[bool, float | None], T], timeout: float | None = None) -> T:
        """``fn(wait_for_ready, timeout)``: one unary call (or the start of a download) with the retries above;
        a ``grpc.RpcError`` becomes a :class:`CallError`."""
        return next(iter(self._run(lambda ready, left: iter([fn(ready, left)]), timeout, stream=False)))

    def stream(self, fn: Callable[[bool, float | None], Iterator[T]], timeout: float | None = None) -> Iterator[T]:
        """``fn(wait_for_ready, timeout)`` returns a response stream; made again on UNAVAILABLE only while nothing
        of it was received."""
        yield from self._run(fn, timeout, stream=True)

    def _run(self, fn, timeout: float | None, *, stream: bool) -> Iterator[Any]:
        started = time.monotonic()
        deadline = None if timeout is None else started + timeout
        attempt = 0
        # First the call itself, when the channel is not known to be ready: on a channel not yet connected it
        # connects and waits for that, failing fast only when the connection fails. Only then the bounded
        # channel waits: their channel_ready_future starts gRPC's connectivity polling thread, which makes the
        # channel's close() wait up to 0.2 s (a third of a remote cache hit's whole run).
        direct = not self._ready
        while True:
            self.attempts += 1
            ready = direct or self._wait_ready(attempt, deadline)
            left = None if deadline is None else max(0.0, deadline - time.monotonic())  # after the wait
            if not ready:
                if attempt < self.retries and (deadline is None or time.monotonic() < deadline):
                    attempt += 1
                    continue
                yield from self._last_try(fn, left, started)
                return
            received = False
            try:
                for item in fn(not direct, left):
                    received = True
                    self._ready = True
                    yield item
                self._ready = True
                return
            except self._grpc.RpcError as exc:
                code = exc.code().name if exc.code() is not None else "UNKNOWN"
                if code == "UNAVAILABLE":
                    # The server went away, or is draining: the next call (this retry, or a caller's resume of a
                    # broken stream) waits for the channel again, within its budget, instead of for ever.
                    self._ready = False
                if code != "UNAVAILABLE" or received:  # (a unary call has received nothing when it fails)
                    raise CallError.from_rpc(exc) from None
                out_of_time = deadline is not None and time.monotonic() >= deadline
                if direct:  # that was the first attempt; the retries wait for the channel
                    if self.retries == 0 or out_of_time:
                        raise self._unreachable(started, exc.details() or "unavailable") from None
                    direct, attempt = False, 1
                    continue
                if attempt >= self.retries or out_of_time:
                    raise CallError.from_rpc(exc) from None
                self._sleep(backoff(attempt, self._rng))
                attempt += 1

    def _last_try(self, fn, left: float | None, started: float) -> Iterator[Any]:
        """The channel never got ready: one call that fails fast says why (or, should the server be up by
        now, is the answer)."""
        try:
            yield from fn(False, 5.0 if left is None else max(0.5, min(left, 5.0)))
        except self._grpc.RpcError as exc:
            code = exc.code()
            if code in (self._grpc.StatusCode.UNAVAILABLE, self._grpc.StatusCode.DEADLINE_EXCEEDED):
                raise self._unreachable(started, exc.details() or code.name.lower()) from None
            raise CallError.from_rpc(exc) from None
