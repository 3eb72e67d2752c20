"""Who prepares dynamic metadata, and who resolves build requirements: the composition of the two services.

The embedded CLI gives its resolver a (lazy) embedded builder; ``serve resolver`` has a builder only with
``--builder ADDR``; ``serve builder --resolver ADDR`` resolves build requirements through that resolver.
"""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest

from resolver_service.engine import EngineSettings, ResolverEngine
from resolver_service.service import make_server
from tests.fixtures.builder_server import BuilderProcess, ResolverProcess
from tests.fixtures.hermetic import isolate
from venvsmith.cli import main
from venvsmith.core.config import PipIndexConfig
from venvsmith.v1 import builder_pb2, common_pb2, resolver_pb2

NO_BUILDER = "this resolver server has no builder (start it with --builder ADDR)"


@pytest.fixture
def index(index_builder) -> str:
    """A file:// index: ``dyn`` is an sdist whose ``Requires-Dist`` is dynamic (its backend says ``dep>=2``)."""
    index_builder.add("dep", "1.0")
    index_builder.add("dep", "2.5")
    index_builder.add("dyn", "1.0", kind="sdist", backend="intree", deps=["dep>=2"], dynamic=["Requires-Dist"])
    return index_builder.simple_url()


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A hermetic environment for in-process CLI runs: own home, no pip configuration."""
    return isolate(monkeypatch, tmp_path / "home")


def _pins(text: str) -> dict[str, str]:
    return {p["name"]: p["version"] for p in json.loads(text)["pins"]}


@pytest.mark.slow
def test_embedded_resolve_prepares_dynamic_metadata_by_default(home, index, capsys):
    assert main(["resolve", "dep", "-i", index, "--format", "json"]) == 0
    assert not (home / "store").exists(), "a resolution without dynamic sdists made a builder"
    capsys.readouterr()
    assert main(["resolve", "dyn", "-i", index, "--format", "json"]) == 0
    assert _pins(capsys.readouterr().out) == {"dyn": "1.0", "dep": "2.5"}


def test_embedded_resolve_with_no_build_names_the_sdist(home, index, capsys):
    assert main(["resolve", "dyn", "-i", index, "--no-build", "-v"]) == 1
    err = capsys.readouterr().err
    assert "FAILED_PRECONDITION" in err and "dyn-1.0.tar.gz" in err and "--no-build" in err
    assert not (home / "store").exists(), "--no-build made a builder"


def test_embedded_resolve_with_only_binary_never_builds(home, index, capsys):
    assert main(["resolve", "dyn", "-i", index, "--only-binary", ":all:"]) == 1
    assert "dyn" in capsys.readouterr().err
    assert not (home / "store").exists(), "only-binary made a builder"


def test_embedded_env_names_its_metadata_builder(home, capsys):
    assert main(["env"]) == 0
    assert "metadata builder: embedded builder" in capsys.readouterr().out


def _dyn_request(index: str) -> resolver_pb2.ResolveRequest:
    return resolver_pb2.ResolveRequest(requirements=["dyn"], index=common_pb2.IndexConfig(index_url=index))


@pytest.mark.slow
def test_resolver_server_without_builder_says_so(tmp_path, index, index_builder):
    with ResolverProcess(tmp_path / "r", allow=[str(index_builder.root)]) as server:
        described = server.resolver_stub.DescribeEnvironment(resolver_pb2.DescribeEnvironmentRequest())
        assert described.metadata_builder == f"none: {NO_BUILDER}"
        with pytest.raises(grpc.RpcError) as err:
            server.resolver_stub.Resolve(_dyn_request(index), timeout=60)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "dyn-1.0.tar.gz" in err.value.details() and NO_BUILDER in err.value.details()


@pytest.mark.slow
def test_resolver_server_with_builder_prepares_metadata(tmp_path, index, index_builder):
    allow = [str(index_builder.root)]
    with BuilderProcess(tmp_path / "b", http=False, allow=allow) as builder, \
            ResolverProcess(tmp_path / "r", "--builder", builder.address, allow=allow) as server:
        described = server.resolver_stub.DescribeEnvironment(resolver_pb2.DescribeEnvironmentRequest())
        assert described.metadata_builder == f"builder at {builder.address}"
        response = server.resolver_stub.Resolve(_dyn_request(index), timeout=120)
    assert {p.name: p.version for p in response.pins} == {"dyn": "1.0", "dep": "2.5"}


@pytest.mark.slow
def test_builder_server_cohosts_a_resolver_whose_builder_is_itself(tmp_path, index, index_builder):
    with BuilderProcess(tmp_path / "b", http=False, allow=[str(index_builder.root)]) as server:
        described = server.resolver_stub.DescribeEnvironment(resolver_pb2.DescribeEnvironmentRequest())
        assert described.metadata_builder == "embedded builder"
        response = server.resolver_stub.Resolve(_dyn_request(index), timeout=120)
    assert {p.name: p.version for p in response.pins} == {"dyn": "1.0", "dep": "2.5"}


@pytest.mark.slow
def test_builder_with_remote_resolver_resolves_build_requirements_there(tmp_path, index_builder):
    index_builder.add("helper", "1.0")
    index_builder.add("srcpkg", "1.0", kind="sdist", backend="intree", build_requires=("helper",))
    index = index_builder.simple_url()
    engine = ResolverEngine(EngineSettings(home=tmp_path / "r", pip=PipIndexConfig()))
    server, port, _ = make_server("127.0.0.1:0", engine)
    server.start()
    try:
        with BuilderProcess(tmp_path / "b", "--resolver", f"127.0.0.1:{port}", http=False,
                            allow=[str(index_builder.root)]) as builder:
            request = builder_pb2.ResolveAndBuildRequest(
                resolve=resolver_pb2.ResolveRequest(requirements=["srcpkg"],
                                                    index=common_pb2.IndexConfig(index_url=index)),
                options=builder_pb2.BuildOptions(wheels=True, index=common_pb2.IndexConfig(index_url=index)),
            )
            events = list(builder.stub.ResolveAndBuild(request, timeout=300))
        result = [e.build.result for e in events if e.HasField("build") and e.build.HasField("result")]
        assert [w.filename for w in result[0].wheels] == ["srcpkg-1.0-py3-none-any.whl"]
        # One resolution for the request, one for srcpkg's build requirement (helper): both here.
        assert engine.resolutions_run == 2
    finally:
        server.stop(0)
        engine.close()
