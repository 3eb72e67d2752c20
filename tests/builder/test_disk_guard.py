"""The store's disk-space floor: a write that would go below it evicts first, and is refused STORE_FULL when that
is not enough (nothing partial is kept). No disk is filled: the floor is set relative to the free space now."""

from __future__ import annotations

import hashlib
import os
import shutil

import grpc
import pytest

from builder_service.digest import Digest
from builder_service.errors import StoreFull
from builder_service.store import FilesystemStore
from builder_service.store.disk_guard import FreeSpaceFloor, parse_free_space

GIB = 1 << 30


def free(path) -> int:
    return shutil.disk_usage(path).free


def test_a_write_below_the_floor_is_refused_and_nothing_is_kept(tmp_path):
    store = FilesystemStore(tmp_path / "store", min_free=FreeSpaceFloor(min_bytes=free(tmp_path) + GIB))
    data = b"x" * 1000
    with pytest.raises(StoreFull) as info:
        store.put_bytes(data)
    assert info.value.status == "RESOURCE_EXHAUSTED" and info.value.error_reason == "STORE_FULL"
    with pytest.raises(StoreFull):  # the size known in advance: refused before a byte is written
        store.put_bytes(data, Digest(hashlib.sha256(data).hexdigest(), len(data)))
    assert store.usage() == 0
    assert not os.listdir(tmp_path / "store" / "tmp")


def test_a_share_of_the_file_system_above_the_free_space_is_refused(tmp_path):
    usage = shutil.disk_usage(tmp_path)
    store = FilesystemStore(tmp_path / "store", min_free=FreeSpaceFloor(fraction=min(0.999, usage.free / usage.total
                                                                                      + 0.01)))
    with pytest.raises(StoreFull):
        store.put_bytes(b"y" * 100)


def test_the_store_evicts_least_recently_used_blobs_before_refusing(tmp_path):
    store = FilesystemStore(tmp_path / "store")
    blob = 32 << 20
    old = [store.put_bytes(bytes([i]) * blob) for i in range(3)]
    store.min_free = FreeSpaceFloor(min_bytes=free(tmp_path) + blob // 2)  # short of half a blob
    new = store.put_bytes(b"new")
    assert store.contains(new)
    gone = [d for d in old if not store.contains(d)]
    assert gone and gone[0] == old[0], "the least recently used blob goes first"
    assert store.stats.evicted >= 1


def test_pinned_blobs_are_not_evicted_and_then_the_write_is_refused(tmp_path):
    store = FilesystemStore(tmp_path / "store")
    kept = store.put_bytes(b"k" * (1 << 20))
    store.min_free = FreeSpaceFloor(min_bytes=free(tmp_path) + GIB)
    with store.pin([kept]), pytest.raises(StoreFull):
        store.put_bytes(b"new")
    assert store.contains(kept)


@pytest.mark.parametrize(("text", "floor"), [
    ("1GiB", FreeSpaceFloor(min_bytes=GIB)), ("500MB", FreeSpaceFloor(min_bytes=500 * 10**6)),
    ("1073741824", FreeSpaceFloor(min_bytes=GIB)), ("5%", FreeSpaceFloor(fraction=0.05)),
    ("0", FreeSpaceFloor()), (" 2 gib ", FreeSpaceFloor(min_bytes=2 * GIB)),
])
def test_parse_free_space(text, floor):
    assert parse_free_space(text) == floor


@pytest.mark.parametrize("text", ["", "lots", "1 parsec", "100%", "-1GiB", "5%%"])
def test_parse_free_space_refuses_garbage(text):
    with pytest.raises(ValueError):
        parse_free_space(text)


def test_a_build_on_a_full_store_is_resource_exhausted_store_full(tmp_path, monkeypatch, index_builder, index_server):
    from builder_service.engine import BuildEngine, BuilderSettings
    from builder_service.service import make_server
    from resolver_service.engine import EngineSettings, ResolverEngine
    from venvsmith.clients.resolver import EmbeddedResolver
    from venvsmith.core.config import PipIndexConfig
    from venvsmith.core.resolution import CallError
    from venvsmith.v1 import builder_pb2, builder_pb2_grpc, common_pb2, resolver_pb2

    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    index_builder.add("good", "1.0")
    index = index_server()
    pip = PipIndexConfig(index_url=(tmp_path / "no-default-index").as_uri())
    resolver = ResolverEngine(EngineSettings(home=tmp_path / "home", pip=pip))
    settings = BuilderSettings(home=tmp_path / "home", min_free_space=str(free(tmp_path) + GIB))
    engine = BuildEngine(settings, EmbeddedResolver(resolver, close_engine=False))
    server, port = make_server("127.0.0.1:0", engine)
    server.start()
    config = common_pb2.IndexConfig(index_url=index.url)
    request = builder_pb2.ResolveAndBuildRequest(resolve=resolver_pb2.ResolveRequest(requirements=["good"],
                                                                                    index=config),
                                                 options=builder_pb2.BuildOptions(wheels=True, index=config))
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = builder_pb2_grpc.BuilderServiceStub(channel)
            with pytest.raises(grpc.RpcError) as info:
                list(stub.ResolveAndBuild(request, timeout=120))
            error = CallError.from_rpc(info.value)
            assert (error.status, error.reason) == ("RESOURCE_EXHAUSTED", "STORE_FULL"), error
            assert error.details.retry_delay is not None
            engine.store.min_free = None  # room again: the same build works
            assert list(stub.ResolveAndBuild(request, timeout=120))
    finally:
        server.stop(0)
        engine.close()
        resolver.close()
