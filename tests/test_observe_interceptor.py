"""The observing interceptor and the drain, on an in-process resolver server: streams are counted when they end,
the request id is the call's, and a draining server answers health NOT_SERVING and refuses new calls."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY

from resolver_service.engine import EngineSettings, ResolverEngine
from resolver_service.service import make_server
from venvsmith.core import lifecycle
from venvsmith.core.config import PipIndexConfig
from venvsmith.v1 import common_pb2, resolver_pb2, resolver_pb2_grpc

SERVICE = "venvsmith.v1.ResolverService"


def _count(method: str, code: str) -> float:
    value = REGISTRY.get_sample_value("venvsmith_rpc_requests_total",
                                      {"service": SERVICE, "method": method, "code": code})
    return value or 0.0


@pytest.fixture
def server(tmp_path):
    engine = ResolverEngine(EngineSettings(home=tmp_path / "home", pip=PipIndexConfig()))
    server, port, _ = make_server("127.0.0.1:0", engine)
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield server, channel
    channel.close()
    server.stop(0).wait()
    engine.close()


def test_a_stream_is_counted_with_its_status(server, index_builder):
    index_builder.add("dep", "1.0")
    _, channel = server
    stub = resolver_pb2_grpc.ResolverServiceStub(channel)
    request = resolver_pb2.ResolveRequest(requirements=["dep"],
                                          index=common_pb2.IndexConfig(index_url=index_builder.simple_url()))
    ok, bad = _count("ResolveStream", "OK"), _count("ResolveStream", "INVALID_ARGUMENT")
    events = list(stub.ResolveStream(request, timeout=60))
    assert events and events[-1].HasField("summary")
    with pytest.raises(grpc.RpcError):
        list(stub.ResolveStream(resolver_pb2.ResolveRequest(requirements=["!!"]), timeout=60))
    assert _count("ResolveStream", "OK") == ok + 1
    assert _count("ResolveStream", "INVALID_ARGUMENT") == bad + 1


def test_a_draining_server_says_not_serving_and_refuses_new_calls(server):
    grpc_server, channel = server
    health = health_pb2_grpc.HealthStub(channel)
    stub = resolver_pb2_grpc.ResolverServiceStub(channel)
    assert health.Check(health_pb2.HealthCheckRequest(service=SERVICE)).status == \
        health_pb2.HealthCheckResponse.SERVING
    drain = lifecycle._drains[grpc_server]
    drain.draining.set()  # what drain_and_stop does first, without stopping the server yet
    lifecycle.health_of(grpc_server).enter_graceful_shutdown()
    assert health.Check(health_pb2.HealthCheckRequest(service=SERVICE)).status == \
        health_pb2.HealthCheckResponse.NOT_SERVING
    with pytest.raises(grpc.RpcError) as refused:
        stub.DescribeEnvironment(resolver_pb2.DescribeEnvironmentRequest(), timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE and "shutting down" in refused.value.details()
    assert lifecycle.drain_and_stop(grpc_server, None, grace=5) is True
