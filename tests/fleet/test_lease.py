"""The lease against a real redis-server: expiry, fencing-token order, renewal, release by the holder only."""

import threading

from hypothesis import given, settings
from hypothesis import strategies as st

from venvsmith.core.fleet import lease


def _wait_gone(client, key):
    """Block (on Redis' own expiry, no sleeps of ours) until ``key`` is gone: BLPOP on a list nobody pushes to,
    with a 0.1 s timeout, until the key no longer exists."""
    while client.exists(key):
        client.blpop(["never-pushed"], timeout=0.1)


def test_a_held_lease_refuses_a_second_holder_until_released(redis_server):
    client = redis_server.client()
    first = lease.acquire(client, "t:", "job", 5000)
    assert first is not None
    assert lease.acquire(client, "t:", "job", 5000) is None
    assert first.release()
    second = lease.acquire(client, "t:", "job", 5000)
    assert second is not None and second.token > first.token
    second.release()


def test_an_unrenewed_lease_lapses_and_the_next_waiter_takes_over(redis_server):
    client = redis_server.client()
    crashed = lease.acquire(client, "t:", "job", 300, renew=False)  # a holder that renews nothing: a crash
    assert crashed is not None
    _wait_gone(client, crashed.key)
    successor = lease.acquire(client, "t:", "job", 5000)
    assert successor is not None and successor.token > crashed.token
    # The lapsed holder can neither release nor extend nor write under its successor's lease.
    assert not crashed.release()
    assert not crashed.renew() and crashed.lost.is_set()
    assert not crashed.set_if_holder("t:result:job", b"stale", None)
    assert client.get("t:result:job") is None
    assert successor.set_if_holder("t:result:job", b"fresh", None)
    assert client.get("t:result:job") == b"fresh"
    assert lease.holder(client, "t:", "job")[0] == successor.token
    successor.release()
    assert lease.holder(client, "t:", "job") == (None, 0)


def test_renewal_keeps_a_lease_past_its_lifetime(redis_server):
    client = redis_server.client()
    held = lease.acquire(client, "t:", "job", 300)
    assert held is not None
    for _ in range(12):  # four lifetimes pass (Redis' own BLPOP timeout) while the renewals run
        client.blpop(["never-pushed"], timeout=0.1)
    assert lease.holder(client, "t:", "job")[0] == held.token
    assert not held.lost.is_set()
    assert held.release()


@settings(max_examples=20, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=12))
def test_fencing_tokens_strictly_increase_whoever_wins(redis_server_session, releases):
    client = redis_server_session.client()
    client.flushdb()
    tokens = []
    held = []
    for release in releases:
        got = lease.acquire(client, "t:", "job", 5000, renew=False)
        if got is not None:
            tokens.append(got.token)
            held.append(got)
        if release and held:
            assert held.pop().release()
    assert tokens == sorted(set(tokens))
    for h in held:
        h.release()


def test_concurrent_acquirers_get_one_lease(redis_server):
    client = redis_server.client()
    won = []
    barrier = threading.Barrier(8)

    def race():
        barrier.wait()
        got = lease.acquire(redis_server.client(), "t:", "race", 5000, renew=False)
        if got is not None:
            won.append(got)

    threads = [threading.Thread(target=race) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1
    assert lease.holder(client, "t:", "race")[0] == won[0].token


def test_the_fence_counter_expires_and_a_new_one_still_gives_larger_tokens(redis_server):
    client = redis_server.client()
    first = lease.acquire(client, "t:", "fenced", 5000, renew=False)
    assert first is not None
    left_ms = client.pttl("t:fence:fenced")
    assert 0 < left_ms <= lease.FENCE_KEEP_MS  # one key per distinct name does not stay for ever
    first.release()
    client.delete("t:fence:fenced")  # as if it had expired while nothing used the name
    second = lease.acquire(client, "t:", "fenced", 5000, renew=False)
    assert second is not None and second.token > first.token
    second.release()
