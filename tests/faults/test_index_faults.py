"""A dead, failing or slow index, behind a real resolver server: retryable failures are retried (the index's own
request log counts the tries, and the backoff between them), then the call is UNAVAILABLE (``INDEX_UNAVAILABLE``,
``RetryInfo``) naming the index without its credentials; the server answers a good request afterwards.

The backoff's jitter and bounds are measured with a recording sleeper in ``tests/index/test_http_retry.py``."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import grpc
import pytest

from resolver_service.engine import EngineSettings, ResolverEngine
from resolver_service.service import make_server
from venvsmith.core.config import PipIndexConfig
from venvsmith.core.index.settings import IndexSettings
from venvsmith.core.resolution import CallError
from venvsmith.v1 import common_pb2, resolver_pb2, resolver_pb2_grpc

#: Tries of each GET (IndexSettings' default, which the servers use) and the backoff factor of the HTTP client.
TRIES = IndexSettings.retries
BACKOFF = 0.2
SECRET = "s3cret-password"


@pytest.fixture
def stub(tmp_path) -> Iterator[resolver_pb2_grpc.ResolverServiceStub]:
    pip = PipIndexConfig(index_url=(tmp_path / "no-default-index").as_uri())
    engine = ResolverEngine(EngineSettings(home=tmp_path / "home", pip=pip))
    server, port, _ = make_server("127.0.0.1:0", engine)
    server.start()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield resolver_pb2_grpc.ResolverServiceStub(channel)
    server.stop(0)
    engine.close()


@pytest.fixture
def healthy(index_builder, index_server):
    index_builder.add("app", "1.0")
    return index_server()


def request(url: str) -> resolver_pb2.ResolveRequest:
    return resolver_pb2.ResolveRequest(requirements=["app"], index=common_pb2.IndexConfig(index_url=url),
                                       no_cache=True)


def with_credentials(url: str) -> str:
    return url.replace("http://", f"http://alice:{SECRET}@")


def unavailable(stub, url: str) -> CallError:
    with pytest.raises(grpc.RpcError) as info:
        stub.Resolve(request(with_credentials(url)), timeout=60)
    error = CallError.from_rpc(info.value)
    assert (error.status, error.reason) == ("UNAVAILABLE", "INDEX_UNAVAILABLE"), error
    assert error.details.retry_delay and error.details.retry_delay > 0
    text = f"{error.message} {error.details.metadata}"
    assert SECRET not in text and "alice" not in text, text
    return error


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
def test_an_index_that_keeps_failing_is_retried_then_unavailable_naming_it(stub, healthy, index_server, status):
    failing = index_server(fail_status=status, fail_times=None)
    error = unavailable(stub, failing.url)
    pages = [r for r in failing.requests if r.path.startswith("/simple/app/")]
    assert len(pages) == TRIES, [r.path for r in failing.requests]
    assert f"127.0.0.1:{failing.port}" in error.details.metadata["index"]
    assert f"HTTP {status}" in error.message and f"gave up after {TRIES} tries" in error.message, error.message
    if status in (500, 502, 504):  # no Retry-After: exponential backoff (the first retry is immediate)
        assert pages[2].at - pages[1].at >= BACKOFF * 2
    assert [p.name for p in stub.Resolve(request(healthy.url), timeout=60).pins] == ["app"]


def test_an_index_that_fails_fewer_times_than_the_tries_resolves(stub, index_builder, index_server):
    index_builder.add("app", "1.0")
    flaky = index_server(fail_status=503, fail_times=TRIES - 1)
    assert [p.name for p in stub.Resolve(request(flaky.url), timeout=60).pins] == ["app"]
    assert len([r for r in flaky.requests if r.path.startswith("/simple/app/")]) == TRIES


def test_a_dead_index_is_unavailable_naming_it(stub, healthy):
    with socket.socket() as sock:  # a port bound and closed: nothing listens there
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/simple/"
    error = unavailable(stub, dead)
    assert error.details.metadata["index"].endswith(dead.removeprefix("http://"))  # user-info redacted
    assert f"gave up after {TRIES} tries" in error.message, error.message
    assert [p.name for p in stub.Resolve(request(healthy.url), timeout=60).pins] == ["app"]


def test_a_slow_index_past_the_deadline_is_deadline_exceeded_and_answers_in_time_after(stub, index_builder,
                                                                                       index_server):
    index_builder.add("app", "1.0")
    slow = index_server(delay=2.0)
    with pytest.raises(grpc.RpcError) as info:
        stub.Resolve(request(slow.url), timeout=0.5)
    error = CallError.from_rpc(info.value)
    # the client's own deadline fires about when the server's does: the server's reason may not arrive first
    assert error.status == "DEADLINE_EXCEEDED" and error.reason in ("", "DEADLINE_EXCEEDED"), error
    slow.delay = 0.3  # slow, but within the deadline
    assert [p.name for p in stub.Resolve(request(slow.url), timeout=60).pins] == ["app"]
