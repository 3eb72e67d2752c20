"""A deadline that passes while the builder waits on a slow index is DEADLINE_EXCEEDED, and the builder builds the
next request in time. (The resolver's: ``test_index_faults.py``, ``tests/e2e/test_resolver_grpc.py``.)"""

from __future__ import annotations

import time

import grpc
import pytest

from tests.fixtures.inprocess import inprocess_builder  # noqa: F401 - the `builder` fixture
from venvsmith.core.resolution import CallError
from venvsmith.v1 import builder_pb2, builder_pb2_grpc, common_pb2, resolver_pb2


def request(url: str) -> builder_pb2.ResolveAndBuildRequest:
    config = common_pb2.IndexConfig(index_url=url)
    return builder_pb2.ResolveAndBuildRequest(
        resolve=resolver_pb2.ResolveRequest(requirements=["app"], index=config, no_cache=True),
        options=builder_pb2.BuildOptions(wheels=True, index=config))


def wheels(events) -> list[str]:
    return [w.filename for e in events if e.WhichOneof("event") == "build"
            and e.build.WhichOneof("event") == "result" for w in e.build.result.wheels]


#: Slow index pages (the resolution waits), or slow files: the PEP 658 metadata the resolution reads and the wheel
#: the build downloads.
@pytest.mark.parametrize("slow_path", ["/simple/", "/files/"], ids=["slow-pages", "slow-files"])
def test_resolve_and_build_past_its_deadline_is_deadline_exceeded(builder, index_builder, index_server, slow_path):
    address, _ = builder
    index_builder.add("app", "1.0")
    index = index_server()
    with grpc.insecure_channel(address) as channel:
        stub = builder_pb2_grpc.BuilderServiceStub(channel)
        index.delay, index.delay_match = 3.0, slow_path
        with pytest.raises(grpc.RpcError) as info:
            list(stub.ResolveAndBuild(request(index.url), timeout=1.0))
        error = CallError.from_rpc(info.value)
        # the client's own deadline fires about when the server's does: the server's reason may not arrive first
        assert error.status == "DEADLINE_EXCEEDED" and error.reason in ("", "DEADLINE_EXCEEDED"), error
        index.delay = 0.0
        assert wheels(stub.ResolveAndBuild(request(index.url), timeout=60)) == ["app-1.0-py3-none-any.whl"]


def test_an_identical_call_with_a_later_deadline_is_answered_when_the_first_one_runs_out(tmp_path, index_builder,
                                                                                        index_server):
    """Identical calls share one resolution, which runs within the first call's deadline: the second caller gets
    the answer within its own, not the first one's DEADLINE_EXCEEDED."""
    from resolver_service.engine import EngineSettings, ResolverEngine
    from resolver_service.service import make_server
    from venvsmith.core.config import PipIndexConfig
    from venvsmith.v1 import resolver_pb2_grpc

    index_builder.add("app", "1.0")
    index = index_server(delay=1.0, delay_match="/simple/")
    pip = PipIndexConfig(index_url=(tmp_path / "no-default-index").as_uri())
    engine = ResolverEngine(EngineSettings(home=tmp_path / "home", pip=pip))
    server, port, _ = make_server("127.0.0.1:0", engine)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = resolver_pb2_grpc.ResolverServiceStub(channel)
            resolve = request(index.url).resolve
            first = stub.Resolve.future(resolve, timeout=0.5)
            while not index.requests:  # the first resolution waits on the slow page
                time.sleep(0.01)
            second = stub.Resolve.future(resolve, timeout=60)
            with pytest.raises(grpc.RpcError) as info:
                first.result()
            assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert [p.name for p in second.result().pins] == ["app"]
    finally:
        server.stop(0)
        engine.close()
