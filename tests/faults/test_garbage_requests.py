"""Hypothesis-made garbage requirements, constraints, target environments and options, sent over real gRPC to a
real ``serve resolver`` (Resolve) and ``serve builder`` (ResolveAndBuild): every answer is a pinned set or a
documented error status -- never INTERNAL, never UNKNOWN -- and the server answers a good request after each."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fixtures.builder_server import BuilderProcess, ResolverProcess
from tests.fixtures.index import IndexBuilder, IndexServer
from venvsmith.v1 import builder_pb2, common_pb2, resolver_pb2

#: Statuses that say the server has a bug (or crashed) rather than that the request was bad.
BUG = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
EXAMPLES = settings(max_examples=40, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

#: Pieces of PEP 508 put together at random: names the index has, operators, versions, markers, extras, URLs.
names = st.sampled_from(["app", "lib", "App", "a_p-p", "missing", "", "lib[", "app[x,y]", "ﬁ", "app @"])
pieces = st.sampled_from(["==", ">=", "<", "~=", "!=", "===", "1.0", "2", "*", ".", ",", ";", " and ", " or ",
                          "python_version", "sys_platform", "'linux'", '"3.11"', "(", ")", "[", "]", "@",
                          "file:///x", "http://127.0.0.1:9/x.whl", "extra == 'x'", "\\", "\x00", "#", "\n", "-e "])
requirement = st.one_of(
    st.text(max_size=40),
    st.builds(lambda n, ps: n + "".join(ps), names, st.lists(pieces, max_size=8)),
)
marker_keys = st.sampled_from(["python_version", "python_full_version", "sys_platform", "platform_machine",
                               "implementation_name", "os_name", "platform_system", "bogus", ""])
environment = st.builds(
    lambda markers, tags, version, platform: common_pb2.TargetSpec(environment=common_pb2.TargetEnvironment(
        markers=markers, tags=tags, python_version=version, platform=platform)),
    st.dictionaries(marker_keys, st.text(max_size=12), max_size=9),
    st.lists(st.one_of(st.sampled_from(["py3-none-any", "cp311-cp311-manylinux_2_28_x86_64", "--", "a-b"]),
                       st.text(max_size=20)), max_size=5),
    st.one_of(st.sampled_from(["3.11", "3.11.7", "3", "99.99", "3.x", ""]), st.text(max_size=10)),
    st.text(max_size=20),
)
shorthand = st.builds(
    lambda version, platform, implementation: common_pb2.TargetSpec(shorthand=common_pb2.TargetShorthand(
        python_version=version, platform=platform, implementation=implementation)),
    st.one_of(st.sampled_from(["3.11", "3.12.1", "2.7", "4", "", "3.11.7.8"]), st.text(max_size=10)),
    st.one_of(st.sampled_from(["x86_64-manylinux_2_28", "linux", "aarch64-apple-darwin", "windows", ""]),
              st.text(max_size=20)),
    st.one_of(st.sampled_from(["cpython", "pypy", ""]), st.text(max_size=8)),
)
targets = st.one_of(st.none(), environment, shorthand)
options = st.builds(
    lambda no_binary, exclude_newer, backtracks, prereleases: common_pb2.ResolutionOptions(
        no_binary=no_binary, exclude_newer=exclude_newer, max_backtracks=backtracks, prereleases=prereleases),
    st.lists(st.one_of(names, st.just(":all:")), max_size=2),
    st.one_of(st.just(""), st.sampled_from(["2024-06-01", "2024-13-45", "yesterday", "0"]), st.text(max_size=12)),
    st.integers(0, 5),
    st.integers(0, 3),
)


@st.composite
def resolve_requests(draw, url: str) -> resolver_pb2.ResolveRequest:
    request = resolver_pb2.ResolveRequest(
        requirements=draw(st.lists(requirement, max_size=4)), constraints=draw(st.lists(requirement, max_size=2)),
        index=common_pb2.IndexConfig(index_url=url), options=draw(options), no_cache=draw(st.booleans()))
    target = draw(targets)
    if target is not None:
        request.target.CopyFrom(target)
    return request


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Iterator[IndexServer]:
    builder = IndexBuilder(tmp_path_factory.mktemp("garbage-index"))
    builder.add("lib", "1.0")
    builder.add("app", "1.0", deps=["lib>=1"])
    with IndexServer(builder) as server:
        yield server


@pytest.fixture(scope="module")
def resolver(tmp_path_factory, index) -> Iterator[ResolverProcess]:
    with ResolverProcess(tmp_path_factory.mktemp("garbage-resolver"), allow=[index.base_url]) as process:
        yield process


@pytest.fixture(scope="module")
def builder(tmp_path_factory, index) -> Iterator[BuilderProcess]:
    with BuilderProcess(tmp_path_factory.mktemp("garbage-builder"), allow=[index.base_url]) as process:
        yield process


def good(index: IndexServer) -> resolver_pb2.ResolveRequest:
    return resolver_pb2.ResolveRequest(requirements=["app"], index=common_pb2.IndexConfig(index_url=index.url))


def answered(call) -> None:
    """Run ``call``; an error it ends with must be a documented one (not a bug status)."""
    try:
        call()
    except grpc.RpcError as exc:
        assert exc.code() not in BUG, f"{exc.code().name}: {exc.details()}"


@EXAMPLES
@given(data=st.data())
def test_garbage_resolve_requests_never_end_internal_or_unknown(resolver, index, data):
    request = data.draw(resolve_requests(index.url), label="request")
    answered(lambda: resolver.resolver_stub.Resolve(request, timeout=30))
    assert sorted(p.name for p in resolver.resolver_stub.Resolve(good(index), timeout=30).pins) == ["app", "lib"]


@EXAMPLES
@given(data=st.data())
def test_garbage_resolve_and_build_requests_never_end_internal_or_unknown(builder, index, data):
    resolve = data.draw(resolve_requests(index.url), label="resolve")
    request = builder_pb2.ResolveAndBuildRequest(resolve=resolve, options=builder_pb2.BuildOptions(
        wheels=True, venv_archive=False, index=resolve.index))
    answered(lambda: list(builder.stub.ResolveAndBuild(request, timeout=60)))
    assert sorted(p.name for p in builder.resolver_stub.Resolve(good(index), timeout=30).pins) == ["app", "lib"]
