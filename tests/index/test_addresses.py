"""One host name lookup per host for all connections (venvsmith.core.index.addresses)."""

from __future__ import annotations

import socket
import threading

import pytest

from venvsmith.core.index.addresses import ADDRESSES, TTL, AddressCache
from venvsmith.core.index.http import HttpClient


class Resolver:
    """A getaddrinfo stand-in that counts its calls; ``gate`` holds the answer until set."""

    def __init__(self, answers: list[tuple], fail: bool = False) -> None:
        self.answers = answers
        self.fail = fail
        self.calls = 0
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, host, port, family, kind):
        self.calls += 1
        self.gate.wait(10)
        if self.fail:
            raise socket.gaierror(socket.EAI_NONAME, "unknown host")
        return self.answers


def v4(address: str, port: int = 443) -> tuple:
    return (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))


def test_concurrent_connections_share_one_lookup() -> None:
    resolver = Resolver([v4("192.0.2.1"), v4("192.0.2.2"), v4("192.0.2.1")])
    cache = AddressCache(resolver)
    resolver.gate.clear()
    answers: list[tuple[str, ...]] = []
    threads = [threading.Thread(target=lambda: answers.append(cache.addresses("idx.test", 443, 0))) for _ in range(24)]
    for thread in threads:
        thread.start()
    resolver.gate.set()
    for thread in threads:
        thread.join(10)
    assert resolver.calls == 1
    assert answers == [("192.0.2.1", "192.0.2.2")] * 24  # in getaddrinfo's order, each address once


def test_answers_expire_and_are_per_port() -> None:
    now = [0.0]
    resolver = Resolver([v4("192.0.2.1")])
    cache = AddressCache(resolver, clock=lambda: now[0])
    cache.addresses("idx.test", 443, 0)
    cache.addresses("idx.test", 443, 0)
    assert resolver.calls == 1
    cache.addresses("idx.test", 8443, 0)
    assert resolver.calls == 2
    now[0] += TTL + 1
    cache.addresses("idx.test", 443, 0)
    assert resolver.calls == 3


def test_failures_are_not_remembered() -> None:
    resolver = Resolver([], fail=True)
    cache = AddressCache(resolver)
    for _ in range(2):
        with pytest.raises(socket.gaierror):
            cache.addresses("nowhere.test", 443, 0)
    assert resolver.calls == 2


def test_ip_literals_and_scoped_addresses_are_left_to_urllib3() -> None:
    resolver = Resolver([(socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("fe80::1", 443, 0, 2))])
    cache = AddressCache(resolver)
    assert cache.addresses("127.0.0.1", 443, 0) == ()
    assert cache.addresses("[::1]", 443, 0) == ()
    assert resolver.calls == 0
    assert cache.addresses("link.test", 443, 0) == ()  # a bare "fe80::1" would lose its scope


def test_a_client_reaches_a_named_host(index_builder, index_server) -> None:
    """Through a host name (``localhost``: maybe ``::1`` first, where nothing listens), the connection goes to
    the looked-up addresses in turn and is answered; the lookup is remembered for the next connections."""
    index_builder.add("foo", "1.0")
    server = index_server()
    url = server.project_url("foo").replace("127.0.0.1", "localhost")
    port = int(url.split("localhost:", 1)[1].split("/", 1)[0])
    with HttpClient(timeout=5, retries=1) as client:
        response = client.get(url, index="test", headers={"Accept": "text/html"})
        assert response.status_code == 200 and "foo-1.0" in response.text
    assert any(key[0] == "localhost" and key[1] == port for key in ADDRESSES._held)
