"""BuilderService errors with their rich details, and CallError the same over both transports."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import grpc
import pytest

from resolver_service.engine import EngineSettings, ResolverEngine
from resolver_service.service import make_server as make_resolver_server
from tests.fixtures.inprocess import inprocess_builder  # noqa: F401 - the `builder` fixture
from venvsmith.clients.builder import RemoteBuilder
from venvsmith.clients.resolver import EmbeddedResolver, RemoteResolver
from venvsmith.core.config import PipIndexConfig
from venvsmith.core.resolution import CallError
from venvsmith.v1 import artifact_pb2, artifact_pb2_grpc, builder_pb2, builder_pb2_grpc, common_pb2, resolver_pb2


def call_error(fn) -> CallError:
    with pytest.raises(grpc.RpcError) as info:
        fn()
    return CallError.from_rpc(info.value)


def test_a_pinned_file_that_cannot_be_read_is_unavailable_not_internal(builder, tmp_path):
    address, _ = builder
    missing = tmp_path / "gone" / "plain-1.0-py3-none-any.whl"
    pin = common_pb2.Pin(name="plain", version="1.0", url=missing.as_uri(), filename=missing.name, is_wheel=True,
                         sha256=hashlib.sha256(b"x").hexdigest(), size=1)
    requests = [builder_pb2.BuildRequest(header=builder_pb2.BuildHeader(options=builder_pb2.BuildOptions(wheels=True))),
                builder_pb2.BuildRequest(pin=pin), builder_pb2.BuildRequest(end=builder_pb2.BuildEnd(pin_count=1))]
    with grpc.insecure_channel(address) as channel:
        stub = builder_pb2_grpc.BuilderServiceStub(channel)
        error = call_error(lambda: list(stub.Build(iter(requests), timeout=60)))
    assert (error.status, error.reason) == ("UNAVAILABLE", "INDEX_UNAVAILABLE")
    assert error.details.retry_delay and error.details.metadata["index"] == missing.as_uri()


def test_blob_errors_carry_their_reason_and_field(builder):
    address, _ = builder
    with grpc.insecure_channel(address) as channel:
        stub = artifact_pb2_grpc.ArtifactServiceStub(channel)
        unknown = common_pb2.Digest(hash="0" * 64, size_bytes=3)
        error = call_error(lambda: list(stub.GetArtifact(artifact_pb2.GetArtifactRequest(digest=unknown))))
        assert (error.status, error.reason) == ("NOT_FOUND", "BLOB_NOT_FOUND")
        bad = common_pb2.Digest(hash="XYZ", size_bytes=3)
        error = call_error(lambda: list(stub.GetArtifact(artifact_pb2.GetArtifactRequest(digest=bad))))
        assert [v.field for v in error.details.field_violations] == ["digest"]
        error = call_error(lambda: list(stub.GetArtifact(artifact_pb2.GetArtifactRequest(digest=unknown, limit=-1))))
        assert (error.status, error.reason) == ("INVALID_ARGUMENT", "INVALID_BUILD_REQUEST")
        assert [v.field for v in error.details.field_violations] == ["limit"]
        error = call_error(lambda: stub.StatArtifacts(artifact_pb2.StatArtifactsRequest(digests=[unknown, bad])))
    assert (error.status, error.reason) == ("INVALID_ARGUMENT", "INVALID_DIGEST")
    assert [v.field for v in error.details.field_violations] == ["digests[1]"]


def test_resolve_and_build_names_the_field_inside_resolve(builder):
    address, _ = builder
    request = builder_pb2.ResolveAndBuildRequest(
        resolve=resolver_pb2.ResolveRequest(requirements=["fine", "broken ==="]))
    with RemoteBuilder(address) as client, pytest.raises(CallError) as info:
        list(client.resolve_and_build(request, timeout=60))
    assert info.value.status == "INVALID_ARGUMENT" and info.value.reason == "INVALID_INPUT"
    assert [v.field for v in info.value.details.field_violations] == ["resolve.requirements[1]"]


def test_prepare_metadata_names_the_bad_pin(builder):
    address, _ = builder
    with grpc.insecure_channel(address) as channel:
        stub = builder_pb2_grpc.BuilderServiceStub(channel)
        pin = common_pb2.Pin(name="a", version="1.0", filename="a-1.0.tar.gz", sha256="nothex")
        error = call_error(lambda: stub.PrepareMetadata(builder_pb2.PrepareMetadataRequest(pin=pin)))
    assert error.status == "INVALID_ARGUMENT" and error.details.field_violations[0].field == "pin"


@pytest.fixture
def resolvers(tmp_path, index_builder, index_server) -> Iterator[tuple[EmbeddedResolver, RemoteResolver, str]]:
    index_builder.add("left", "1.0", deps=["util>=2"])
    index_builder.add("right", "1.0", deps=["util<2"])
    index_builder.add("util", "1.5")
    index_builder.add("util", "2.1")
    url = index_server().url
    pip = PipIndexConfig(index_url=(tmp_path / "no-default-index").as_uri())
    engine = ResolverEngine(EngineSettings(home=tmp_path / "r", pip=pip))
    server, port, _ = make_resolver_server("127.0.0.1:0", engine)
    server.start()
    embedded = EmbeddedResolver(ResolverEngine(EngineSettings(home=tmp_path / "e", pip=pip)))
    remote = RemoteResolver(f"127.0.0.1:{port}")
    yield embedded, remote, url
    remote.close()
    embedded.close()
    server.stop(0)
    engine.close()


@pytest.mark.parametrize("reqs, reason", [(["left", "right"], "NO_SOLUTION"),
                                          (["left", "util >= >="], "INVALID_INPUT")])
def test_call_error_details_are_the_same_embedded_and_remote(resolvers, reqs, reason):
    embedded, remote, url = resolvers
    request = resolver_pb2.ResolveRequest(requirements=reqs, index=common_pb2.IndexConfig(index_url=url))
    errors = []
    for client in (embedded, remote):
        with pytest.raises(CallError) as info:
            client.resolve(request)
        errors.append(info.value)
    local, wire = errors
    assert local.reason == wire.reason == reason
    assert (local.status, local.details) == (wire.status, wire.details)
    if reason == "NO_SOLUTION":
        assert sorted(wire.details.chains) == [
            "left (required by you) -> util>=2 (required by left==1.0)",
            "right (required by you) -> util<2 (required by right==1.0)",
        ]
    else:
        assert wire.details.field_violations[0].field == "requirements[1]"


