"""Request bytes that are not a valid message, on every RPC of both servers, are INVALID_ARGUMENT; a request over
the 4 MiB cap is RESOURCE_EXHAUSTED (gRPC's own refusal, before any handler runs); each server then still answers
a good request.

Field-level bounds (oversized names and versions, too many requirements or pins) are in
``tests/e2e/test_bad_input.py``, ``test_bounded.py`` and ``test_builder_bad_input.py``."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from tests.fixtures.builder_server import BuilderProcess, ResolverProcess
from tests.fixtures.index import IndexBuilder, IndexServer
from venvsmith.core.resolution import CallError
from venvsmith.v1 import artifact_pb2, builder_pb2, common_pb2, resolver_pb2, resolver_pb2_grpc

#: Not a message: a field tag whose varint never ends.
GARBAGE = b"\xff\xff\xff"
#: Each server's services (the builder serves ResolverService too).
SERVICES = {
    "resolver": [resolver_pb2.DESCRIPTOR.services_by_name["ResolverService"]],
    "builder": [builder_pb2.DESCRIPTOR.services_by_name["BuilderService"],
                resolver_pb2.DESCRIPTOR.services_by_name["ResolverService"],
                artifact_pb2.DESCRIPTOR.services_by_name["ArtifactService"]],
}
METHODS = [(server, method) for server, services in SERVICES.items() for service in services
           for method in service.methods]


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Iterator[IndexServer]:
    builder = IndexBuilder(tmp_path_factory.mktemp("malformed-index"))
    builder.add("app", "1.0")
    with IndexServer(builder) as server:
        yield server


@pytest.fixture(scope="module")
def processes(tmp_path_factory, index) -> Iterator[dict[str, BuilderProcess]]:
    """A real ``serve resolver`` and ``serve builder`` (which also serves ResolverService)."""
    started: dict[str, BuilderProcess] = {}
    try:
        for name, process in (("resolver", ResolverProcess), ("builder", BuilderProcess)):
            started[name] = process(tmp_path_factory.mktemp(f"malformed-{name}"), allow=[index.base_url])
        yield started
    finally:
        for process in started.values():
            assert process.stop() == 0, process.log()


def raw_call(channel: grpc.Channel, method):
    """A callable of ``method`` taking and returning bytes, of its kind (unary or streaming either side)."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    kind = {(False, False): channel.unary_unary, (False, True): channel.unary_stream,
            (True, False): channel.stream_unary, (True, True): channel.stream_stream}
    call = kind[method.client_streaming, method.server_streaming](path, request_serializer=None,
                                                                 response_deserializer=None)

    def invoke(payload: bytes):
        request = iter([payload]) if method.client_streaming else payload
        answer = call(request, timeout=30)
        return list(answer) if method.server_streaming else answer

    return invoke


def resolve_app(channel: grpc.Channel, url: str) -> list[str]:
    stub = resolver_pb2_grpc.ResolverServiceStub(channel)
    request = resolver_pb2.ResolveRequest(requirements=["app"], index=common_pb2.IndexConfig(index_url=url),
                                          no_cache=True)
    return [p.name for p in stub.Resolve(request, timeout=60).pins]


@pytest.mark.parametrize(("server", "method"), METHODS,
                         ids=[f"{s}-{m.containing_service.name}.{m.name}" for s, m in METHODS])
def test_undecodable_request_bytes_are_invalid_argument(processes, index, server, method):
    with grpc.insecure_channel(processes[server].address) as channel:
        with pytest.raises(grpc.RpcError) as info:
            raw_call(channel, method)(GARBAGE)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
        assert resolve_app(channel, index.url) == ["app"]


@pytest.mark.parametrize("server", ["resolver", "builder"])
def test_a_request_over_4_mib_is_resource_exhausted(processes, index, server):
    index.reset_log()
    big = resolver_pb2.ResolveRequest(requirements=["x" * (5 << 20)],
                                      index=common_pb2.IndexConfig(index_url=index.url))
    options = [("grpc.max_send_message_length", 64 << 20)]
    with grpc.insecure_channel(processes[server].address, options=options) as channel:
        with pytest.raises(grpc.RpcError) as info:
            resolver_pb2_grpc.ResolverServiceStub(channel).Resolve(big, timeout=60)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, info.value.details()
        assert CallError.from_rpc(info.value).reason == ""  # gRPC's refusal: no handler ran, no details
        assert not index.requests, "refused before any index request"
        assert resolve_app(channel, index.url) == ["app"]
