"""Bounded servers: request size and count caps, admission (SERVER_BUSY + RetryInfo instead of an unbounded queue),
keep-alive policy; each refusal has its exact status and a good request still works after."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from resolver_service.engine import EngineSettings, ResolverEngine
from resolver_service.service import make_server
from venvsmith.core.admission import KEEPALIVE_OPTIONS, ServerLimits
from venvsmith.core.config import PipIndexConfig
from venvsmith.core.resolution import CallError
from venvsmith.v1 import common_pb2, resolver_pb2, resolver_pb2_grpc

TARGET = common_pb2.TargetSpec(
    shorthand=common_pb2.TargetShorthand(python_version="3.11", platform="x86_64-manylinux_2_28"))


def request(url: str, requirements=("app",), constraints=()) -> resolver_pb2.ResolveRequest:
    return resolver_pb2.ResolveRequest(requirements=list(requirements), constraints=list(constraints),
                                       index=common_pb2.IndexConfig(index_url=url), target=TARGET, no_cache=True)


def serve(tmp_path: Path, limits: ServerLimits | None = None):
    pip = PipIndexConfig(index_url=(tmp_path / "no-default-index").as_uri())
    engine = ResolverEngine(EngineSettings(home=tmp_path / "home", pip=pip))
    server, port, _ = make_server("127.0.0.1:0", engine, limits=limits)
    server.start()
    return server, engine, f"127.0.0.1:{port}"


@pytest.fixture
def resolver(tmp_path):
    server, engine, address = serve(tmp_path)
    channel = grpc.insecure_channel(address, options=[("grpc.max_send_message_length", 64 << 20)])
    yield resolver_pb2_grpc.ResolverServiceStub(channel)
    channel.close()
    server.stop(0)
    engine.close()


@pytest.fixture
def index(index_builder, index_server):
    index_builder.add("app", "1.0")
    return index_server()


@pytest.mark.parametrize("field", ["requirements", "constraints"])
def test_too_many_requirements_is_invalid_argument_naming_the_field(resolver, index, field):
    many = [f"p{i}" for i in range(1001)]
    req = request(index.url, many) if field == "requirements" else request(index.url, ["app"], many)
    with pytest.raises(grpc.RpcError) as info:
        resolver.Resolve(req, timeout=60)
    error = CallError.from_rpc(info.value)
    assert (error.status, error.reason) == ("INVALID_ARGUMENT", "INVALID_INPUT"), error
    assert [v.field for v in error.details.field_violations] == [field]
    assert not index.requests, "refused before any index request"
    assert [p.name for p in resolver.Resolve(request(index.url), timeout=60).pins] == ["app"]


def test_a_request_larger_than_4_mib_is_refused_and_the_server_still_works(resolver, index):
    with pytest.raises(grpc.RpcError) as info:
        resolver.Resolve(request(index.url, ["x" * (5 << 20)]), timeout=60)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, info.value.details()
    assert not index.requests
    assert [p.name for p in resolver.Resolve(request(index.url), timeout=60).pins] == ["app"]


def test_beyond_max_concurrent_calls_an_expensive_call_is_refused_busy_with_retry_info(tmp_path, index):
    index.delay = 0.5  # every index request is slow: the first resolution holds its slot for a while
    server, engine, address = serve(tmp_path, ServerLimits(max_concurrent_calls=1))
    channel = grpc.insecure_channel(address)
    stub = resolver_pb2_grpc.ResolverServiceStub(channel)
    try:
        outcome: dict = {}
        first = threading.Thread(target=lambda: outcome.setdefault("pins", stub.Resolve(request(index.url),
                                                                                         timeout=60).pins))
        first.start()
        deadline = time.monotonic() + 30
        while not index.requests and time.monotonic() < deadline:
            time.sleep(0.02)
        assert index.requests, "the first resolution never reached the index"
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as info:
            stub.Resolve(request(index.url, ["app", "other"]), timeout=60)
        assert time.monotonic() - started < 0.4, "refused at once, not queued behind the first"
        error = CallError.from_rpc(info.value)
        assert (error.status, error.reason) == ("RESOURCE_EXHAUSTED", "SERVER_BUSY"), error
        assert error.details.retry_delay and error.details.retry_delay > 0
        assert error.details.metadata["max_concurrent_calls"] == "1"
        # a cheap call is not counted
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        first.join(60)
        assert [p.name for p in outcome["pins"]] == ["app"]
        # the slot is free again
        assert [p.name for p in stub.Resolve(request(index.url), timeout=60).pins] == ["app"]
    finally:
        channel.close()
        server.stop(0)
        engine.close()


def test_a_stream_frees_its_slot_when_it_ends(tmp_path, index):
    server, engine, address = serve(tmp_path, ServerLimits(max_concurrent_calls=1))
    try:
        with grpc.insecure_channel(address) as channel:
            stub = resolver_pb2_grpc.ResolverServiceStub(channel)
            for _ in range(3):
                events = list(stub.ResolveStream(request(index.url), timeout=60))
                assert events[-1].WhichOneof("event") == "summary"
    finally:
        server.stop(0)
        engine.close()


def test_keepalive_policy_lets_long_calls_ping_and_closes_idle_connections():
    options = dict(KEEPALIVE_OPTIONS)
    assert options["grpc.keepalive_permit_without_calls"] == 1
    assert options["grpc.http2.min_ping_interval_without_data_ms"] <= options["grpc.keepalive_time_ms"]
    assert options["grpc.keepalive_timeout_ms"] < options["grpc.keepalive_time_ms"]
    assert options["grpc.max_connection_idle_ms"] > 0


def test_a_build_stream_with_too_many_pins_is_invalid_argument_naming_pins(tmp_path, monkeypatch):
    import hashlib

    from builder_service import build_run
    from builder_service.engine import BuildEngine, BuilderSettings
    from builder_service.service import make_server as make_builder
    from venvsmith.clients.resolver import EmbeddedResolver
    from venvsmith.v1 import builder_pb2, builder_pb2_grpc

    monkeypatch.setattr(build_run, "MAX_BUILD_PINS", 1)  # the real cap (5000) takes as long to hit, only slower
    pip = PipIndexConfig(index_url=(tmp_path / "no-default-index").as_uri())
    resolver = ResolverEngine(EngineSettings(home=tmp_path / "home", pip=pip))
    engine = BuildEngine(BuilderSettings(home=tmp_path / "home"), EmbeddedResolver(resolver, close_engine=False))
    server, port = make_builder("127.0.0.1:0", engine)
    server.start()
    import socket

    silent = socket.create_server(("127.0.0.1", 0))  # accepts connections, never answers: the first pin waits
    host = f"127.0.0.1:{silent.getsockname()[1]}"
    pins = [common_pb2.Pin(name=n, version="1.0", url=f"http://{host}/{n}-1.0-py3-none-any.whl",
                           filename=f"{n}-1.0-py3-none-any.whl", is_wheel=True,
                           sha256=hashlib.sha256(n.encode()).hexdigest(), size=1) for n in ("a", "b")]
    header = builder_pb2.BuildHeader(options=builder_pb2.BuildOptions(wheels=True))
    stream = [builder_pb2.BuildRequest(header=header), *(builder_pb2.BuildRequest(pin=p) for p in pins),
              builder_pb2.BuildRequest(end=builder_pb2.BuildEnd(pin_count=2))]
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            with pytest.raises(grpc.RpcError) as info:
                list(builder_pb2_grpc.BuilderServiceStub(channel).Build(iter(stream), timeout=60))
        error = CallError.from_rpc(info.value)
        assert error.status == "INVALID_ARGUMENT", error
        assert [v.field for v in error.details.field_violations] == ["pins"], error
    finally:
        silent.close()
        server.stop(0)
        engine.close()
        resolver.close()
