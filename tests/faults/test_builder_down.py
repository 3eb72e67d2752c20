"""The resolver needs a builder for an sdist whose dependencies are dynamic (``serve resolver --builder ADDR``,
``RemoteMetadataPreparer``): a builder that is down is UNAVAILABLE (retry later), naming the builder's address and
the sdist; the resolver keeps answering what needs no builder."""

from __future__ import annotations

import socket

import grpc
import pytest

from tests.e2e.test_dynamic_metadata import _dynamic_sdist
from tests.fixtures.builder_server import ResolverProcess
from venvsmith.core.resolution import CallError
from venvsmith.v1 import common_pb2, resolver_pb2


def dead_address() -> str:
    """A loopback address nothing listens on (a port bound then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def index(tmp_path, index_builder, index_server):
    index_builder.add("dep", "2.5")
    index_builder.add("plain", "1.0", deps=["dep"])
    links = tmp_path / "links"
    links.mkdir()
    _dynamic_sdist(links)
    return index_server(), links


def request(index, *requirements: str) -> resolver_pb2.ResolveRequest:
    server, links = index
    return resolver_pb2.ResolveRequest(
        requirements=list(requirements), no_cache=True,
        index=common_pb2.IndexConfig(index_url=server.url, find_links=[str(links)]))


def test_a_builder_that_is_down_is_unavailable_naming_its_address(tmp_path, index):
    builder = dead_address()
    server, links = index
    with ResolverProcess(tmp_path / "home", "--builder", builder, allow=[server.base_url, str(links)]) as resolver:
        with pytest.raises(grpc.RpcError) as info:
            resolver.resolver_stub.Resolve(request(index, "dyn"), timeout=60)
        error = CallError.from_rpc(info.value)
        assert (error.status, error.reason) == ("UNAVAILABLE", "BUILDER_UNAVAILABLE"), error
        assert f"builder at {builder}" in error.message and "dyn-1.0.tar.gz" in error.message, error.message
        assert error.details.metadata["builder"] == builder
        assert error.details.metadata["filename"] == "dyn-1.0.tar.gz"
        assert error.details.retry_delay and error.details.retry_delay > 0
        # what needs no builder still resolves
        pins = resolver.resolver_stub.Resolve(request(index, "plain"), timeout=60).pins
        assert sorted(p.name for p in pins) == ["dep", "plain"]
