"""ResolverService over a real gRPC server on an ephemeral port, against local indexes; every status code."""

from __future__ import annotations

import threading
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from resolver_service.engine import EngineSettings, ResolverEngine
from resolver_service.service import make_server
from venvsmith.core.config import PipIndexConfig
from venvsmith.v1 import common_pb2, resolver_pb2, resolver_pb2_grpc


@pytest.fixture
def engine(tmp_path: Path):
    # An empty pip configuration with no_index: nothing outside the test's own indexes is ever asked.
    pip = PipIndexConfig(index_url=(tmp_path / "no-default-index").as_uri())
    engine = ResolverEngine(EngineSettings(home=tmp_path / "home", pip=pip))
    yield engine
    engine.close()


@pytest.fixture
def stub(engine):
    server, port, _ = make_server("127.0.0.1:0", engine)
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield resolver_pb2_grpc.ResolverServiceStub(channel)
    channel.close()
    server.stop(0)


@pytest.fixture
def web_index(index_builder, index_server):
    b = index_builder
    b.add("webapp", "1.0", deps=["router>=1", 'winhelper; sys_platform == "win32"'],
          extras={"fast": ["speedups"]})
    b.add("router", "1.0", deps=["util<2"], upload_time=datetime(2024, 1, 1, tzinfo=UTC))
    b.add("router", "2.0", deps=["util>=2"], upload_time=datetime(2024, 6, 1, tzinfo=UTC))
    b.add("util", "1.5", upload_time=datetime(2023, 1, 1, tzinfo=UTC))
    b.add("util", "2.1", upload_time=datetime(2024, 5, 1, tzinfo=UTC))
    b.add("speedups", "0.9")
    b.add("winhelper", "1.0")
    b.add("left", "1.0", deps=["util>=2"])
    b.add("right", "1.0", deps=["util<2"])
    return index_server()


def request(index_url: str, *reqs: str, **kwargs) -> resolver_pb2.ResolveRequest:
    return resolver_pb2.ResolveRequest(
        requirements=list(reqs),
        index=common_pb2.IndexConfig(index_url=index_url),
        target=common_pb2.TargetSpec(
            shorthand=common_pb2.TargetShorthand(python_version="3.11", platform="x86_64-manylinux_2_28")
        ),
        **kwargs,
    )


def test_resolve_happy_path(stub, web_index):
    response = stub.Resolve(request(web_index.url, "webapp[fast]"))
    pins = {p.name: p for p in response.pins}
    assert {n: p.version for n, p in pins.items()} == {
        "webapp": "1.0", "router": "2.0", "util": "2.1", "speedups": "0.9"
    }
    assert [p.name for p in response.pins].index("util") < [p.name for p in response.pins].index("router")
    assert pins["webapp"].extras == ["fast"]
    util = pins["util"]
    assert len(util.sha256) == 64 and util.is_wheel and util.index == web_index.url
    assert util.url.startswith(web_index.base_url)
    assert any("router==2.0" in chain for chain in util.required_by)
    assert len(response.lock_key) == 64
    assert f"util==2.1 \\\n    --hash=sha256:{util.sha256}" in response.requirements_txt
    lock = tomllib.loads(response.pylock_toml)
    assert {p["name"] for p in lock["packages"]} == set(pins)
    assert response.environment.markers["python_full_version"] == "3.11.0"
    assert not response.stats.resolution_cache_hit


def test_repeat_is_a_cache_hit_and_exclude_newer_never_expires(stub, web_index, engine):
    first = stub.Resolve(request(web_index.url, "router"))
    second = stub.Resolve(request(web_index.url, "router"))
    assert second.stats.resolution_cache_hit and second.lock_key == first.lock_key
    assert first.expires_at
    pinned = stub.Resolve(request(web_index.url, "router",
                                  options=common_pb2.ResolutionOptions(exclude_newer="2024-03-01")))
    assert pinned.expires_at == ""
    assert {p.name: p.version for p in pinned.pins} == {"router": "1.0", "util": "1.5"}
    fresh = stub.Resolve(request(web_index.url, "router", no_cache=True))
    assert not fresh.stats.resolution_cache_hit


def test_stream_sends_progress_then_pins_in_install_order_then_summary(stub, web_index):
    events = list(stub.ResolveStream(request(web_index.url, "webapp")))
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds[-1] == "summary"
    first_pin = kinds.index("pin")
    assert "progress" in kinds[:first_pin]
    assert set(kinds[first_pin:-1]) == {"pin"}
    names = [e.pin.name for e in events if e.WhichOneof("event") == "pin"]
    seen: set[str] = set()
    for event in events[first_pin:-1]:
        assert set(event.pin.dependencies) <= seen, f"{event.pin.name} before its dependencies"
        seen.add(event.pin.name)
    assert events[-1].summary.pin_count == len(names)


@pytest.mark.parametrize(
    ("reqs", "options", "bad"),
    [
        (["requests>="], {}, "requests>="),
        (["ok; python_version >>> '3'"], {}, "python_version >>> '3'"),
        (["ok"], {"options": common_pb2.ResolutionOptions(exclude_newer="yesterday")}, "yesterday"),
        (["ok"], {"options": common_pb2.ResolutionOptions(no_binary=["bad name!"])}, "bad name!"),
    ],
)
def test_bad_input_is_invalid_argument_naming_the_string(stub, web_index, reqs, options, bad):
    with pytest.raises(grpc.RpcError) as err:
        stub.Resolve(request(web_index.url, *reqs, **options))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad in err.value.details()


def test_bad_target_and_url_are_invalid_argument(stub, web_index):
    bad_platform = request(web_index.url, "util")
    bad_platform.target.shorthand.platform = "amiga-os"
    with pytest.raises(grpc.RpcError) as err:
        stub.Resolve(bad_platform)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "amiga-os" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        stub.Resolve(request("not a url", "util"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "not a url" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        stub.Resolve(resolver_pb2.ResolveRequest())
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_conflict_is_failed_precondition_with_chains(stub, web_index):
    with pytest.raises(grpc.RpcError) as err:
        stub.Resolve(request(web_index.url, "left", "right"))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    text = err.value.details()
    assert "left==1.0 requires util>=2" in text and "right==1.0 requires util<2" in text
    # The server survives and answers the next request.
    assert stub.Resolve(request(web_index.url, "left")).pins


def test_unreachable_index_is_unavailable_and_redacted(stub, index_builder, index_server):
    index_builder.add("util", "1.0")
    failing = index_server(fail_status=503, fail_times=None)
    url = failing.url.replace("http://", "http://alice:s3cret@")
    with pytest.raises(grpc.RpcError) as err:
        stub.Resolve(request(url, "util"))
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "s3cret" not in err.value.details() and "127.0.0.1" in err.value.details()


def test_too_many_backtracks_is_resource_exhausted(stub, index_builder, index_server):
    for i in range(1, 15):
        index_builder.add("many", f"{i}.0", deps=["pinned==1.0"] if i < 3 else ["pinned==9.0"])
    index_builder.add("pinned", "1.0")
    server = index_server()
    req = request(server.url, "many", options=common_pb2.ResolutionOptions(max_backtracks=3))
    with pytest.raises(grpc.RpcError) as err:
        stub.Resolve(req)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    req.options.max_backtracks = 0
    assert {p.name: p.version for p in stub.Resolve(req).pins}["many"] == "2.0"


def test_deadline_exceeded(stub, index_builder, index_server):
    index_builder.add("slow", "1.0")
    server = index_server(delay=1.5)
    with pytest.raises(grpc.RpcError) as err:
        stub.Resolve(request(server.url, "slow"), timeout=0.5)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_identical_concurrent_requests_share_one_resolution(stub, engine, index_builder, index_server):
    index_builder.add("shared", "1.0")
    server = index_server(delay=0.3)
    results: list = []

    def call() -> None:
        results.append(stub.Resolve(request(server.url, "shared")))

    threads = [threading.Thread(target=call) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 10 and len({r.lock_key for r in results}) == 1
    assert engine.resolutions_run == 1


def test_describe_environment(stub):
    env = stub.DescribeEnvironment(resolver_pb2.DescribeEnvironmentRequest(
        target=common_pb2.TargetSpec(shorthand=common_pb2.TargetShorthand(python_version="3.12.1",
                                                                           platform="windows"))))
    assert env.markers["sys_platform"] == "win32" and env.python_version == "3.12.1"
    assert env.tags[0].startswith("cp312-cp312-win_amd64")
    local = stub.DescribeEnvironment(resolver_pb2.DescribeEnvironmentRequest())
    assert local.interpreter and local.tags


def test_reflection_lists_the_service(stub, engine):
    server, port, _ = make_server("127.0.0.1:0", engine)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            refl = reflection_pb2_grpc.ServerReflectionStub(channel)
            answer = next(refl.ServerReflectionInfo(iter([
                reflection_pb2.ServerReflectionRequest(list_services="")])))
            names = {s.name for s in answer.list_services_response.service}
            assert "venvsmith.v1.ResolverService" in names
    finally:
        server.stop(0)


def test_contradicting_user_pins_are_proven_without_reading_the_sdist(stub, index_builder, index_server):
    """The user pins x==1 (an sdist whose dependencies need a build) and y==2, whose wheel needs x>=3."""
    index_builder.add("x", "1", kind="sdist", dynamic=["dependencies"])
    index_builder.add("x", "3")
    index_builder.add("y", "2", deps=["x>=3"])
    index_builder.add("a", "1", deps=["b==1"])
    index_builder.add("a", "2", deps=["b==2"])
    index_builder.add("b", "1", deps=["a==2"])
    index_builder.add("b", "2", deps=["a==1"])
    server = index_server()
    with pytest.raises(grpc.RpcError) as err:
        stub.Resolve(request(server.url, "x==1", "y==2"))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "y==2 depends on x>=3" in err.value.details() and "you require x==1" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        stub.Resolve(request(server.url, "a", "b"))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "b==2 depends on a==1" in err.value.details()
