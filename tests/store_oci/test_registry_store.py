"""RegistryStore: the local filesystem store as a read-through cache in front of a real registry."""

from __future__ import annotations

import pytest

from builder_service.digest import Digest
from builder_service.errors import BlobNotFound, DigestMismatch, RegistryUnavailable
from builder_service.store.oci import RegistryStore
from builder_service.store.registry import RegistryClient
from tests.fixtures.registry import RegistryProcess


def _store(root, registry, **kw):
    return RegistryStore(root, RegistryClient(f"oci://{registry.host}/acme"), **kw)


def test_a_write_is_pushed_and_another_cache_reads_it_through(registry, tmp_path):
    a = _store(tmp_path / "a", registry)
    d = a.put_bytes(b"built on A")
    assert a.pushed == 1 and a.pending() == []
    b = _store(tmp_path / "b", registry)
    assert not b.cached(d) and b.contains(d)
    with b.open(d) as f:
        assert f.read() == b"built on A"
    assert b.cached(d) and b.pulled == 1
    assert b.read_range(d, 6, 4) == b"on A" and b.pulled == 1  # served from the cache now
    with pytest.raises(BlobNotFound):
        b.open(Digest.of_bytes(b"nobody wrote this"))


def test_registry_down_serves_the_cache_queues_pushes_and_flushes_when_back(registry, tmp_path):
    a = _store(tmp_path / "a", registry)
    cached = a.put_bytes(b"cached before the outage")
    registry.stop()
    with a.open(cached) as f:
        assert f.read() == b"cached before the outage"
    built = a.put_bytes(b"built during the outage")  # the build still succeeds locally
    assert a.pending() == [built]
    other = _store(tmp_path / "other", registry)
    with pytest.raises(RegistryUnavailable) as info:
        other.open(built)
    assert info.value.registry == f"{registry.host}/acme"
    assert info.value.details().reason == "REGISTRY_UNAVAILABLE"
    # the queue is on disk: a restarted builder still has it
    a.close()
    a = _store(tmp_path / "a", registry)
    assert a.pending() == [built]
    registry.start()
    assert a.flush_pending() == 1 and a.pending() == []
    with other.open(built) as f:
        assert f.read() == b"built during the outage"


def test_pending_blobs_are_not_evicted_from_the_bounded_cache(tmp_path):
    registry = RegistryProcess(tmp_path / "reg")  # not started: every push is queued
    store = _store(tmp_path / "a", registry, max_bytes=100)
    first = store.put_bytes(b"x" * 60)
    store.put_bytes(b"y" * 60)
    assert store.cached(first) and len(store.pending()) == 2


def test_a_pulled_blob_is_verified(registry, tmp_path):
    a = _store(tmp_path / "a", registry)
    d = a.put_bytes(b"genuine")
    for p in (registry.root / "data").rglob("data"):
        if p.is_file() and p.read_bytes() == b"genuine":
            p.write_bytes(b"GENUINE")
    b = _store(tmp_path / "b", registry)
    with pytest.raises(DigestMismatch):
        b.open(d)
    assert not b.cached(d)


def test_fetched_blobs_can_be_evicted_and_come_back(registry, tmp_path):
    a = _store(tmp_path / "a", registry)
    blobs = [a.put_bytes(bytes([i]) * 50) for i in range(4)]
    b = _store(tmp_path / "b", registry, max_bytes=120)
    for d in blobs:
        with b.open(d) as f:
            f.read()
    assert b.usage() <= 120 and not b.cached(blobs[0])
    with b.open(blobs[0]) as f:
        assert f.read() == bytes([0]) * 50
