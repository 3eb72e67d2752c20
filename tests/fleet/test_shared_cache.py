"""The Redis cache tier and the resolution cache in front of it, against a real redis-server."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resolver_service.resolution_cache import NAMESPACE, ResolutionCache, from_shared, shared_value
from tests.fixtures.redis_server import RedisServer
from venvsmith.core.fleet.cache_url import parse_cache_url
from venvsmith.core.fleet.shared_cache import MAX_VALUE_BYTES, RedisTier
from venvsmith.core.health import HealthState
from venvsmith.core.index.cache import IndexCache


def test_cache_urls():
    assert parse_cache_url("").redis_url is None and parse_cache_url("").directory is None
    assert str(parse_cache_url("sqlite:///var/cache/vs").directory) == "/var/cache/vs"
    located = parse_cache_url("rediss://:s3cret@cache.internal:6380/2")
    assert located.redis_url == "rediss://:s3cret@cache.internal:6380/2"
    assert located.describe() == "rediss://cache.internal:6380/2"  # no password in logs or health details
    for bad in ("sqlite://host/dir", "redis:///0", "redis://h:99999/0", "redis://h:1/x", "memcached://h:1"):
        with pytest.raises(ValueError):
            parse_cache_url(bad)


@given(st.binary(max_size=64), st.one_of(st.none(), st.floats(min_value=0, max_value=4e9)))
def test_shared_values_round_trip(body, expires_at):
    assert from_shared(shared_value(body, expires_at)) == (body, expires_at)


def test_a_password_protected_redis(tmp_path):
    with RedisServer(password="pw-1") as server:
        tier = RedisTier(server.url)
        tier.put("ns", "k", b"v", None)
        assert tier.get("ns", "k") == b"v"
        health = HealthState()
        wrong = RedisTier(server.url.replace("pw-1", "nope"), health=health, description="redis://wrong")
        assert wrong.get("ns", "k") is None  # refused: a miss, and the tier is counted as down
        assert "shared cache redis://wrong" in health.details() and health.serving
        tier.close()
        wrong.close()


def test_values_over_the_bound_stay_local(redis_server):
    tier = RedisTier(redis_server.url)
    tier.put("ns", "big", b"x" * (MAX_VALUE_BYTES + 1), None)
    tier.put("ns", "small", b"x" * 10, 60)
    client = redis_server.client()
    assert client.get("venvsmith:ns:big") is None
    assert 0 < client.pttl("venvsmith:ns:small") <= 60_000
    tier.close()


def test_the_resolution_cache_shares_answers_with_their_expiry(tmp_path, redis_server):
    a = ResolutionCache(tmp_path / "a.sqlite3", shared=RedisTier(redis_server.url))
    b = ResolutionCache(tmp_path / "b.sqlite3", shared=RedisTier(redis_server.url))
    now = time.time()
    a.put("expiring", b"answer-1", now + 100)
    a.put("snapshot", b"answer-2", None)  # exclude-newer: permanent
    a.put("stale", b"answer-3", now - 1)  # already expired: not shared
    client = redis_server.client()
    assert 0 < client.pttl(f"venvsmith:{NAMESPACE}:expiring") <= 100_000
    assert client.pttl(f"venvsmith:{NAMESPACE}:snapshot") == -1
    assert client.get(f"venvsmith:{NAMESPACE}:stale") is None
    assert b.get("expiring") == (b"answer-1", pytest.approx(now + 100))
    assert b.get("snapshot") == (b"answer-2", None)
    assert b.get("expiring", now=now + 101) is None  # B honours the expiry it was told
    assert b.get("stale") is None
    a.close()
    b.close()


def test_metadata_is_shared_by_file_sha256(tmp_path, redis_server):
    sha = "ab" * 32
    with IndexCache(tmp_path / "a", shared=RedisTier(redis_server.url)) as a:
        a.put_metadata(sha.upper(), b"Metadata-Version: 2.1\nName: x\nVersion: 1\n")
        a.put_metadata_fields(sha, '{"name": "x"}')
    with IndexCache(tmp_path / "b", shared=RedisTier(redis_server.url)) as b:
        assert b.get_metadata_fields(sha) == ('{"name": "x"}', None)
        assert b.get_metadata(sha) == b"Metadata-Version: 2.1\nName: x\nVersion: 1\n"
    with IndexCache(tmp_path / "b") as local:  # kept locally too
        assert local.get_metadata(sha) is not None


def test_pages_are_shared_with_their_validators_and_no_credentials(tmp_path, redis_server):
    from venvsmith.core.index.cache import CachedPage, shared_page_key

    secret = "pw-NEVER-IN-REDIS"
    page = CachedPage(f"https://u:{secret}@i.internal/simple/a/#credential=f00d", b"<html>a</html>", "text/html",
                      f"https://u:{secret}@i.internal/simple/a/", '"e1"', "Tue, 01 Dec 2026 00:00:00 GMT", 100.0, 60.0)
    big = CachedPage("https://i.internal/simple/big/", b"x" * (MAX_VALUE_BYTES + 1), "text/html",
                     "https://i.internal/simple/big/")
    with IndexCache(tmp_path / "a", shared=RedisTier(redis_server.url)) as a:
        stored = a.put_page(page)
        a.put_page(big)
        a.refresh_page(stored, 500.0, 30.0)  # a revalidation writes the new freshness through
    client = redis_server.client()
    everything = b"".join(k + (client.get(k) or b"") for k in client.keys("venvsmith:*"))
    assert secret.encode() not in everything
    assert all(b"i.internal" not in key for key in client.keys("venvsmith:*"))  # keys are hashes, not URLs
    assert len(client.keys("venvsmith:index-page:*")) == 1  # the oversized page stayed local
    # The key is the credential-free URL's (and the credential fingerprint's): with or without user-info alike.
    assert shared_page_key(page.url) == shared_page_key("https://i.internal/simple/a/#credential=f00d")
    assert shared_page_key(page.url) != shared_page_key("https://i.internal/simple/a/#credential=beef")
    assert shared_page_key(page.url) != shared_page_key("https://i.internal/simple/a/")
    with IndexCache(tmp_path / "b", shared=RedisTier(redis_server.url)) as b:
        head = b.get_page(page.url, body=False)
        assert head is not None and head.body == b"" and head.etag == '"e1"'
        got = b.get_page(page.url)
        assert got is not None and got.body == page.body and got.digest == stored.digest
        assert (got.fetched_at, got.max_age, got.last_modified) == (500.0, 30.0, page.last_modified)
        assert got.final_url == "https://i.internal/simple/a/"
        assert b.get_page(big.url) is None
    with IndexCache(tmp_path / "b") as local:  # kept locally too
        assert local.get_page(page.url) is not None
