"""A corrupt SQLite cache file is moved aside and rebuilt (logged, health SERVING); NOT_SERVING only when that fails."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from resolver_service.engine import EngineSettings, ResolverEngine
from resolver_service.service import SERVICE_NAME, make_server
from venvsmith.core.config import PipIndexConfig
from venvsmith.v1 import common_pb2, resolver_pb2, resolver_pb2_grpc


@pytest.fixture
def served(tmp_path: Path):
    pip = PipIndexConfig(index_url=(tmp_path / "no-default-index").as_uri())
    engine = ResolverEngine(EngineSettings(home=tmp_path / "home", pip=pip))
    server, port, _ = make_server("127.0.0.1:0", engine)
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield engine, resolver_pb2_grpc.ResolverServiceStub(channel), health_pb2_grpc.HealthStub(channel)
    channel.close()
    server.stop(0)
    engine.close()


@pytest.fixture
def index(index_builder, index_server):
    index_builder.add("app", "1.0", deps=["lib>=1"])
    index_builder.add("lib", "1.2")
    return index_server()


def resolve(stub, url: str, no_cache: bool = True) -> resolver_pb2.ResolveResponse:
    return stub.Resolve(resolver_pb2.ResolveRequest(
        requirements=["app"], index=common_pb2.IndexConfig(index_url=url), no_cache=no_cache,
        target=common_pb2.TargetSpec(
            shorthand=common_pb2.TargetShorthand(python_version="3.11", platform="x86_64-manylinux_2_28")),
    ))


def status(health) -> int:
    return health.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME)).status


def cache_files(engine: ResolverEngine) -> list[Path]:
    engine.index_cache.flush()
    return [engine.home / "index" / "index-cache.sqlite3", engine.home / "resolutions.sqlite3"]


def garbage(path: Path) -> None:
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.write(os.urandom(max(size, 8192)))


def truncate(path: Path) -> None:
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 3 or 100)


def corrupt_file(path: Path, corrupt) -> None:
    assert path.exists()
    corrupt(path)
    wal = path.with_name(path.name + "-wal")
    if wal.exists():
        corrupt(wal)


@pytest.mark.parametrize("corrupt", [garbage, truncate])
def test_corrupt_cache_is_moved_aside_and_rebuilt(served, index, caplog, corrupt):
    engine, stub, health = served
    assert {p.name for p in resolve(stub, index.url, no_cache=False).pins} == {"app", "lib"}
    for path in cache_files(engine):
        corrupt_file(path, corrupt)
    engine.cache._memory.clear()  # the answer held in memory would hide the file
    with caplog.at_level(logging.WARNING):
        assert {p.name for p in resolve(stub, index.url).pins} == {"app", "lib"}
        assert {p.name for p in resolve(stub, index.url, no_cache=False).pins} == {"app", "lib"}
    moved = [r.getMessage() for r in caplog.records if "moved aside" in r.getMessage()]
    assert any("index-cache.sqlite3" in m for m in moved), moved
    assert list((engine.home / "index").glob("index-cache.sqlite3.corrupt-*"))
    assert status(health) == health_pb2.HealthCheckResponse.SERVING
    # and the fresh cache works: a third answer comes from it
    assert {p.name for p in resolve(stub, index.url).pins} == {"app", "lib"}


def test_garbage_cache_file_at_start_is_replaced(tmp_path, index, caplog):
    home = tmp_path / "home"
    (home / "index").mkdir(parents=True)
    (home / "resolutions.sqlite3").write_bytes(b"not a database at all" * 100)
    (home / "index" / "index-cache.sqlite3").write_bytes(b"\x00garbage" * 1000)
    pip = PipIndexConfig(index_url=(tmp_path / "no-default-index").as_uri())
    with caplog.at_level(logging.WARNING):
        engine = ResolverEngine(EngineSettings(home=home, pip=pip))
        server, port, _ = make_server("127.0.0.1:0", engine)
        server.start()
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = resolver_pb2_grpc.ResolverServiceStub(channel)
                assert {p.name for p in resolve(stub, index.url).pins} == {"app", "lib"}
                assert status(health_pb2_grpc.HealthStub(channel)) == health_pb2.HealthCheckResponse.SERVING
        finally:
            server.stop(0)
            engine.close()
    assert sum("moved aside" in r.getMessage() for r in caplog.records) == 2


@contextlib.contextmanager
def read_only(directory: Path) -> Iterator[None]:
    """``directory`` cannot be written, even by root (the immutable attribute), until the block exits."""
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(directory)], check=True)
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(directory)], check=True)
    else:
        mode = directory.stat().st_mode
        directory.chmod(0o555)
        try:
            yield
        finally:
            directory.chmod(mode)


def test_unrecoverable_cache_sets_not_serving(served, index):
    engine, stub, health = served
    resolve(stub, index.url, no_cache=False)
    path = cache_files(engine)[0]
    corrupt_file(path, garbage)
    with read_only(path.parent):
        with contextlib.suppress(grpc.RpcError):
            resolve(stub, index.url)
        assert status(health) == health_pb2.HealthCheckResponse.NOT_SERVING
        assert health.Check(health_pb2.HealthCheckRequest(service="")).status == \
            health_pb2.HealthCheckResponse.NOT_SERVING
