"""A total wall-clock budget per HTTP fetch that a trickling server cannot stretch.

Socket timeouts bound each ``recv``, and a server sending one byte every few seconds resets them forever. So
every fetch of the HTTP client runs as a :class:`Fetch` with an end time: the connections that send it attach
their sockets to it (:func:`watch_pools` makes urllib3's pools use such connections), and one watchdog thread
shuts those sockets down when the end passes, which ends any blocked read in the fetching thread at once
(urllib3 then reports a broken read, which the client turns into ``IndexUnavailable``). The socket is shut
down only while its fetch is still running, so a connection back in the pool is never touched.
"""

from __future__ import annotations

import heapq
import socket
import threading
import time
from typing import Any

_current = threading.local()


class Fetch:
    """One fetch's end (a ``time.monotonic()`` value) and the sockets it uses."""

    def __init__(self, end: float, allowed: float = 0.0, by_deadline: bool = False) -> None:
        self.end = end
        #: Seconds the fetch was given (for messages).
        self.allowed = allowed
        #: Whether ``end`` is the caller's deadline (running out is then DEADLINE_EXCEEDED, not the index's fault).
        self.by_deadline = by_deadline
        self.expired = False
        self._socks: list[socket.socket] = []
        self._done = False
        self._lock = threading.Lock()

    def attach(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            if self.expired:
                _shutdown(sock)
            elif not self._done:
                self._socks.append(sock)

    def expire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.expired = True
            for sock in self._socks:
                _shutdown(sock)

    def finish(self) -> None:
        with self._lock:
            self._done = True
            self._socks.clear()

    def __lt__(self, other: Fetch) -> bool:
        return self.end < other.end

    def __enter__(self) -> Fetch:
        self._outer = getattr(_current, "fetch", None)
        _current.fetch = self
        _watchdog.watch(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _current.fetch = self._outer
        self.finish()


def _shutdown(sock: socket.socket) -> None:
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the plain socket's: also ends a read inside TLS
    except OSError:
        pass


class _Watchdog:
    """One daemon thread expiring fetches in order of their ends."""

    def __init__(self) -> None:
        self._heap: list[Fetch] = []
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def watch(self, fetch: Fetch) -> None:
        with self._cond:
            heapq.heappush(self._heap, fetch)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="fetch-watchdog", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap or self._heap[0].end > time.monotonic():
                    if self._heap and self._heap[0]._done:
                        heapq.heappop(self._heap)
                        continue
                    self._cond.wait(None if not self._heap else max(0.0, self._heap[0].end - time.monotonic()))
                fetch = heapq.heappop(self._heap)
            fetch.expire()


_watchdog = _Watchdog()


def current() -> Fetch | None:
    """The fetch the calling thread runs, if any."""
    return getattr(_current, "fetch", None)


def _watched(connection_cls: type) -> type:
    class Watched(connection_cls):
        def getresponse(self, *args: Any, **kwargs: Any) -> Any:
            fetch = current()
            if fetch is not None:
                fetch.attach(self.sock)
            return super().getresponse(*args, **kwargs)

    Watched.__name__ = Watched.__qualname__ = f"Watched{connection_cls.__name__}"
    return Watched


_pool_classes: dict[str, type] = {}


def watch_pools(manager: Any) -> None:
    """Make ``manager`` (a urllib3 PoolManager or ProxyManager) send through connections that attach their
    sockets to the running :class:`Fetch` (a SOCKS manager keeps its own pools: reads are bounded per chunk), and
    that look host names up once per host (:mod:`.addresses`)."""
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    from .addresses import resolving

    if not _pool_classes:
        for scheme, base in (("http", HTTPConnectionPool), ("https", HTTPSConnectionPool)):
            _pool_classes[scheme] = type(
                f"Watched{base.__name__}", (base,), {"ConnectionCls": _watched(resolving(base.ConnectionCls))}
            )
    if set(manager.pool_classes_by_scheme.values()) <= {HTTPConnectionPool, HTTPSConnectionPool}:
        manager.pool_classes_by_scheme = dict(_pool_classes)
