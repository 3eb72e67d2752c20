"""The Redis tier's edges against a real redis-server: a down tier fails fast, fenced stores, URLs described
without their credentials, flights counted."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from venvsmith.core import observe
from venvsmith.core.fleet import lease as leases
from venvsmith.core.fleet import shared_cache
from venvsmith.core.fleet.cache_url import parse_cache_url
from venvsmith.core.fleet.flight import FleetFlight
from venvsmith.core.fleet.shared_cache import RedisTier

#: Bounded waits for the probe thread (it pings every RETRY_SECONDS).
WAIT_STEPS = 600


def _count_connections(monkeypatch, tier: RedisTier) -> list[str]:
    """The connections the calling thread takes from ``tier``'s pool (the probe thread's are not counted)."""
    taken: list[str] = []
    pool = tier.client.connection_pool
    real = pool.get_connection
    caller = threading.current_thread()

    def counting(*args, **kwargs):
        if threading.current_thread() is caller:
            taken.append("connection")
        return real(*args, **kwargs)

    monkeypatch.setattr(pool, "get_connection", counting)
    return taken


def test_a_down_tier_answers_without_touching_the_socket_until_the_probe_sees_redis(monkeypatch, redis_server):
    monkeypatch.setattr(shared_cache, "RETRY_SECONDS", 0.0)  # the probe pings without a pause: "retry due" always
    tier = RedisTier(redis_server.url)
    tier.put("ns", "k", b"v", None)
    assert tier.get("ns", "k") == b"v"
    redis_server.stop()
    taken = _count_connections(monkeypatch, tier)
    for i in range(50):
        assert tier.get("ns", f"k{i}") is None
        tier.put("ns", f"k{i}", b"v", None)
        assert not tier.ping()
    assert len(taken) == 1  # the first call found Redis gone; the 149 others did not wait on a socket
    redis_server.start()
    for _ in range(WAIT_STEPS):
        if tier.available():
            break
        threading.Event().wait(0.05)
    assert tier.available()
    tier.put("ns", "back", b"v", None)
    assert tier.get("ns", "back") == b"v" and len(taken) == 3
    tier.close()


def test_a_fenced_put_is_refused_once_the_lease_is_someone_elses(redis_server):
    tier = RedisTier(redis_server.url)
    client = redis_server.client()
    held = leases.acquire(client, "t:", "job", 5000, renew=False)
    assert held is not None
    tier.put("ns", "answer", b"first", 60, lease=held)
    assert client.get("venvsmith:ns:answer") == b"first" and 0 < client.pttl("venvsmith:ns:answer") <= 60_000
    client.delete(held.key)  # lapsed ...
    successor = leases.acquire(client, "t:", "job", 5000, renew=False)  # ... and taken over
    assert successor is not None
    tier.put("ns", "answer", b"late", None, lease=held)
    assert client.get("venvsmith:ns:answer") == b"first"
    tier.put("ns", "answer", b"x" * (shared_cache.MAX_VALUE_BYTES + 1), None, lease=successor)
    assert client.get("venvsmith:ns:answer") == b"first"  # over the bound: not shared, fenced or not
    successor.release()
    tier.close()


_hosts = st.sampled_from(["127.0.0.1", "cache.internal", "[::1]", "[2001:db8::7]", "localhost"])
_secrets = st.text("abcXYZ019-_", min_size=1, max_size=12)


@given(st.sampled_from(["redis", "rediss"]), _hosts, st.integers(1, 65535), st.integers(0, 15),
       st.sampled_from(["", "user"]), _secrets)
def test_a_redis_url_is_described_without_its_credentials(scheme, host, port, db, user, password):
    url = f"{scheme}://{user}:{password}-SECRET@{host}:{port}/{db}"
    described = parse_cache_url(url).describe()
    assert described == f"{scheme}://{host}:{port}/{db}"
    assert "SECRET" not in described and "@" not in described


def _flights(outcome: str) -> float:
    return observe.REGISTRY.get_sample_value("venvsmith_fleet_flights_total", {"outcome": outcome}) or 0.0


def test_flights_are_counted_by_outcome_and_a_lost_lease_publishes_nothing(redis_server):
    tier = RedisTier(redis_server.url)
    flight = FleetFlight(tier, lease_seconds=5)
    led, joined = _flights("led"), _flights("joined")
    stored: list[bytes] = []
    assert flight.do("a", lambda lease: stored.append(b"r") or b"r", lambda: None) == (b"r", False)
    assert flight.do("a", lambda lease: b"again", lambda: stored[0] if stored else None) == (b"r", True)
    assert (_flights("led") - led, _flights("joined") - joined) == (1, 1)
    assert (flight.led, flight.joined) == (1, 1)

    client = redis_server.client()
    listener = client.pubsub(ignore_subscribe_messages=True)
    listener.subscribe("venvsmith:flight:done:b")

    def lose_it(lease):
        lease.lost.set()  # what the renewing thread does when it finds the lease gone
        return b"stale"

    assert flight.do("b", lose_it, lambda: None) == (b"stale", False)
    assert listener.get_message(timeout=0.5) is None  # no wake-up for a result that was not fenced in
    assert flight.do("b", lambda lease: b"ok", lambda: None) == (b"ok", False)
    message = listener.get_message(timeout=5)
    assert message is not None and message["channel"] == b"venvsmith:flight:done:b"
    listener.close()

    redis_server.stop()
    local = _flights("local")
    assert flight.do("c", lambda lease: (lease, b"here")[1], lambda: None) == (b"here", False)
    assert _flights("local") - local == 1
    tier.close()


@pytest.mark.parametrize("text", ["redis://h:1/0", "rediss://u:p@h:1/0"])
def test_cache_urls_still_parse(text):
    assert parse_cache_url(text).redis_url == text


@pytest.mark.parametrize("bad", ["redis://u:SECRET-pw@h:99999/0", "rediss://:SECRET-pw@h:1/x", "redis://:SECRET-pw@/0",
                                 "memcached://u:SECRET-pw@h:1", "sqlite://u:SECRET-pw@host/dir"])
def test_a_bad_cache_url_is_refused_without_showing_its_password(bad):
    with pytest.raises(ValueError) as refused:
        parse_cache_url(bad)
    assert "SECRET" not in str(refused.value) and str(refused.value)
