"""Host name lookups shared by every connection of a process: one DNS query per host, not one per connection.

urllib3 resolves the host name each time it opens a connection. A resolution opens up to
:data:`~.http.MAX_CONNECTIONS` connections to the index at once; a burst of that many simultaneous queries to
one resolver was seen to lose some of them, each such connection then waiting out the resolver timeout (5 s)
before its retry. The addresses of a host are looked up once (concurrent lookups of one host wait for the
first) and kept for :data:`TTL` seconds; the connection then tries them in the order ``getaddrinfo`` gave,
as urllib3 does, with urllib3's own connect and errors.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections import OrderedDict
from typing import Any

#: Seconds a lookup's answer is used (a long-lived server follows DNS changes within this).
TTL = 60.0
#: Hosts remembered at most (least recently used dropped first).
MAX_HOSTS = 256


class AddressCache:
    """``getaddrinfo`` answers (IP addresses in order) per (host, port, family), single-flight, with a TTL.

    :param lookup: the resolver (``socket.getaddrinfo``; tests pass a counting one).
    :param clock: seconds, monotonic.
    """

    def __init__(self, lookup: Any = socket.getaddrinfo, clock: Any = time.monotonic) -> None:
        self._lookup = lookup
        self._clock = clock
        self._lock = threading.Lock()
        self._held: OrderedDict[tuple, tuple[float, tuple[str, ...]]] = OrderedDict()
        self._flights: dict[tuple, threading.Event] = {}

    def addresses(self, host: str, port: int, family: int) -> tuple[str, ...]:
        """The IP addresses of ``host`` to connect to, in order; ``()`` when there is nothing to remember (an IP
        literal, or an answer with an IPv6 scope that a bare address string would lose): connect as usual.
        A failed lookup raises :class:`socket.gaierror` and is not remembered."""
        host = host.strip("[]")
        if not host or _is_ip(host):
            return ()
        key = (host, port, family)
        while True:
            with self._lock:
                held = self._held.get(key)
                if held is not None and held[0] > self._clock():
                    self._held.move_to_end(key)
                    return held[1]
                flight = self._flights.get(key)
                if flight is None:  # this thread asks
                    flight = self._flights[key] = threading.Event()
                    break
            flight.wait()  # another thread is asking: take its answer, or ask in turn if it failed
        try:
            found = self._resolve(host, port, family)
            with self._lock:
                self._held[key] = (self._clock() + TTL, found)
                self._held.move_to_end(key)
                while len(self._held) > MAX_HOSTS:
                    self._held.popitem(last=False)
            return found
        finally:
            with self._lock:
                self._flights.pop(key, None)
            flight.set()

    def _resolve(self, host: str, port: int, family: int) -> tuple[str, ...]:
        out: list[str] = []
        for _, _, _, _, sockaddr in self._lookup(host, port, family, socket.SOCK_STREAM):
            if len(sockaddr) >= 4 and sockaddr[3]:  # an IPv6 scope id: leave such hosts to urllib3
                return ()
            address = str(sockaddr[0])
            if address not in out:
                out.append(address)
        return tuple(out)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


#: The process's cache (every client's connections share it).
ADDRESSES = AddressCache()


def resolving(connection_cls: type) -> type:
    """A subclass of a urllib3 connection class that looks its host up through :data:`ADDRESSES`."""
    from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
    from urllib3.util.connection import allowed_gai_family

    class Resolving(connection_cls):
        def _new_conn(self) -> socket.socket:
            name: str = getattr(self, "_dns_host")  # noqa: B009 - set by urllib3, unknown to mypy
            try:
                found = ADDRESSES.addresses(name, self.port, allowed_gai_family())
            except socket.gaierror as exc:
                raise NameResolutionError(self.host, self, exc) from exc
            if not found:
                return super()._new_conn()
            failure: Exception | None = None
            for address in found:
                # urllib3 connects to ``_dns_host``; ``host`` (TLS server name, Host header) reads it too, so it
                # is set back before the socket is handed on.
                self._dns_host = address
                try:
                    return super()._new_conn()
                except (NewConnectionError, ConnectTimeoutError) as exc:
                    failure = exc
                finally:
                    self._dns_host = name
            assert failure is not None
            raise failure

    Resolving.__name__ = Resolving.__qualname__ = f"Resolving{connection_cls.__name__}"
    return Resolving
