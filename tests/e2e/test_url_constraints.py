"""URL constraints (``name @ url`` in constraints) over a real gRPC server, against real local indexes."""

from __future__ import annotations

import grpc
import pytest

from venvsmith.core.resolution import CallError
from venvsmith.v1 import common_pb2, resolver_pb2

from .test_resolver_grpc import engine, stub  # noqa: F401 - fixtures


def _request(index_url: str, reqs, constraints) -> resolver_pb2.ResolveRequest:
    return resolver_pb2.ResolveRequest(
        requirements=list(reqs),
        constraints=list(constraints),
        index=common_pb2.IndexConfig(index_url=index_url),
        target=common_pb2.TargetSpec(
            shorthand=common_pb2.TargetShorthand(python_version="3.11", platform="x86_64-manylinux_2_28")
        ),
        no_cache=True,
    )


@pytest.fixture
def indexes(index_builder, index_builder_factory, index_server):
    index_builder.add("app", "1.0", deps=["lib>=1"])
    index_builder.add("lib", "1.0")
    index_builder.add("lib", "3.0")
    index_builder.add("strict", "1.0", deps=["lib>=3"])
    elsewhere = index_builder_factory("elsewhere")
    local = elsewhere.add("lib", "2.0")
    served = elsewhere.add("lib", "2.5")
    windows = elsewhere.add("lib", "2.7", tag="cp311-cp311-win_amd64")
    return index_server(), index_server(elsewhere), local, served, windows


def test_url_constraint_picks_that_file_for_a_transitive_dependency(stub, indexes):  # noqa: F811
    index, other, local, served, _ = indexes
    for url, version in [(local.as_uri(), "2.0"), (other.file_url(served.name), "2.5")]:
        response = stub.Resolve(_request(index.url, ["app"], [f"lib @ {url}"]))
        lib = next(p for p in response.pins if p.name == "lib")
        assert (lib.version, lib.url) == (version, url)
        assert len(lib.sha256) == 64


def test_url_constraint_contradictions(stub, indexes):  # noqa: F811
    index, other, local, served, windows = indexes
    with pytest.raises(grpc.RpcError) as err:
        stub.Resolve(_request(index.url, ["strict"], [f"lib @ {local.as_uri()}"]))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "lib>=3" in err.value.details() and local.as_uri() in err.value.details()

    second = other.file_url(served.name)
    with pytest.raises(grpc.RpcError) as err:
        stub.Resolve(_request(index.url, ["app"], [f"lib @ {local.as_uri()}", f"lib @ {second}"]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert local.as_uri() in err.value.details() and second in err.value.details()

    with pytest.raises(grpc.RpcError) as err:
        stub.Resolve(_request(index.url, ["app"], [f"lib @ {windows.as_uri()}"]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert windows.as_uri() in err.value.details() and "does not fit the target" in err.value.details()


def test_a_bad_url_constraint_names_its_request_field(stub, indexes):  # noqa: F811
    """Found while resolving, not while parsing: the error still names the constraint's place in the request."""
    index, other, local, served, windows = indexes
    cases = [
        (["app"], [f"lib @ {local.as_uri()}", f"lib @ {other.file_url(served.name)}"], "constraints[1]"),
        (["app"], ["lib>=1", f"lib @ {windows.as_uri()}"], "constraints[1]"),
        ([f"lib @ {local.as_uri()}"], [f"lib @ {other.file_url(served.name)}"], "requirements[0]"),
    ]
    for reqs, constraints, field in cases:
        with pytest.raises(grpc.RpcError) as err:
            stub.Resolve(_request(index.url, reqs, constraints))
        error = CallError.from_rpc(err.value)
        assert (error.status, error.reason) == ("INVALID_ARGUMENT", "INVALID_INPUT")
        assert [v.field for v in error.details.field_violations] == [field], error.message
