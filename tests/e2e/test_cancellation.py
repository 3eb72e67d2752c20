"""A cancelled call stops its resolution, unless an identical call shares it (then that caller still gets the
answer). The index is slow and a chain of dependencies makes the resolution ask it many times."""

from __future__ import annotations

import time

import grpc
import pytest

from resolver_service.engine import EngineSettings, ResolverEngine
from resolver_service.service import make_server
from venvsmith.core.config import PipIndexConfig
from venvsmith.v1 import common_pb2, resolver_pb2, resolver_pb2_grpc

CHAIN = 12
DELAY = 0.15


@pytest.fixture
def chain_index(index_builder, index_server):
    for i in range(CHAIN):
        index_builder.add(f"link{i}", "1.0", deps=[f"link{i + 1}"] if i + 1 < CHAIN else [])
    return index_server(delay=DELAY)


@pytest.fixture
def served(tmp_path):
    pip = PipIndexConfig(index_url=(tmp_path / "no-default-index").as_uri())
    engine = ResolverEngine(EngineSettings(home=tmp_path / "home", pip=pip))
    server, port, _ = make_server("127.0.0.1:0", engine)
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield resolver_pb2_grpc.ResolverServiceStub(channel), engine
    channel.close()
    server.stop(0)
    engine.close()


def request(url: str) -> resolver_pb2.ResolveRequest:
    return resolver_pb2.ResolveRequest(
        requirements=["link0"], index=common_pb2.IndexConfig(index_url=url), no_cache=True,
        target=common_pb2.TargetSpec(
            shorthand=common_pb2.TargetShorthand(python_version="3.11", platform="x86_64-manylinux_2_28")))


def wait_for(condition, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)


def test_a_cancelled_call_stops_its_resolution(served, chain_index):
    stub, engine = served
    call = stub.Resolve.future(request(chain_index.url), timeout=120)
    wait_for(lambda: len(chain_index.requests) >= 2)
    call.cancel()
    wait_for(lambda: engine.flights.in_flight() == 0, timeout=10)  # the resolution ended
    time.sleep(2 * DELAY)  # a fetch a worker had already begun when the call was cancelled may still arrive
    settled = len(chain_index.requests)
    time.sleep(6 * DELAY)
    assert len(chain_index.requests) == settled, "the index is still asked after the call was cancelled"
    assert settled < 2 * CHAIN, f"{settled} requests: the whole chain was resolved anyway"


def test_a_resolution_shared_by_two_calls_goes_on_when_one_cancels(served, chain_index):
    stub, engine = served
    first = stub.Resolve.future(request(chain_index.url), timeout=120)
    wait_for(lambda: len(chain_index.requests) >= 2)
    second = stub.Resolve.future(request(chain_index.url), timeout=120)
    time.sleep(0.3)  # the second call joins the flight
    first.cancel()
    response = second.result(timeout=120)
    assert [p.name for p in response.pins] == [f"link{i}" for i in reversed(range(CHAIN))]
    assert engine.resolutions_run == 1 and response.stats.shared_in_flight
