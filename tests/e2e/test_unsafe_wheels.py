"""A wheels-only build checks every wheel on its way into the store: an unsafe one is refused and not stored."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

import grpc
import pytest

from builder_service.digest import Digest
from builder_service.engine import BuildEngine, BuilderSettings
from builder_service.service import make_server
from resolver_service.engine import EngineSettings, ResolverEngine
from venvsmith.clients.resolver import EmbeddedResolver
from venvsmith.core.config import PipIndexConfig
from venvsmith.core.resolution import CallError
from venvsmith.v1 import builder_pb2, builder_pb2_grpc, common_pb2, resolver_pb2


@pytest.fixture
def builder(tmp_path, monkeypatch) -> Iterator[tuple[str, BuildEngine]]:
    for var in list(os.environ):
        if var.startswith(("PIP_", "VENVSMITH_")):
            monkeypatch.delenv(var)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    pip = PipIndexConfig(index_url=(tmp_path / "no-default-index").as_uri())
    resolver = ResolverEngine(EngineSettings(home=tmp_path / "home", pip=pip))
    engine = BuildEngine(BuilderSettings(home=tmp_path / "home"), EmbeddedResolver(resolver, close_engine=False))
    server, port = make_server("127.0.0.1:0", engine)
    server.start()
    yield f"127.0.0.1:{port}", engine
    server.stop(0)
    engine.close()
    resolver.close()


@pytest.mark.parametrize("member", ["../x", "/etc/evil", "pkg/../../x"])
def test_wheels_only_build_refuses_an_unsafe_wheel_and_stores_nothing(builder, index_builder, index_server, member):
    address, engine = builder
    wheel = index_builder.add("evil", "1.0", files={member: b"owned", "evil/__init__.py": b""})
    index_builder.add("good", "1.0")
    index = index_server()
    config = common_pb2.IndexConfig(index_url=index.url)

    def build(name: str):
        request = builder_pb2.ResolveAndBuildRequest(
            resolve=resolver_pb2.ResolveRequest(requirements=[name], index=config),
            options=builder_pb2.BuildOptions(wheels=True, index=config))
        return list(stub.ResolveAndBuild(request, timeout=120))

    with grpc.insecure_channel(address) as channel:
        stub = builder_pb2_grpc.BuilderServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            build("evil")
        error = CallError.from_rpc(info.value)
        assert (error.status, error.reason) == ("FAILED_PRECONDITION", "UNSAFE_WHEEL"), error
        data = wheel.read_bytes()
        assert not engine.store.contains(Digest(hashlib.sha256(data).hexdigest(), len(data)))
        assert build("good")  # the server still works
