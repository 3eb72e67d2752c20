"""An sdist that fails to build stops the call with its build error — naming the sdist's file, with the tail of its
build log — as pip and uv stop; the builder never falls back to an older version that has a wheel.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from builder_service.engine import BuildEngine, BuilderSettings
from builder_service.errors import status_of
from builder_service.orchestrate import resolve_and_build
from resolver_service.engine import EngineSettings, ResolverEngine
from tests.fixtures.index import IndexBuilder
from venvsmith.cli.compose import LazyBuilder
from venvsmith.clients.resolver import EmbeddedResolver
from venvsmith.core.config import PipIndexConfig
from venvsmith.core.errors import ErrorDetails
from venvsmith.core.resolution import CallError
from venvsmith.v1 import builder_pb2, common_pb2, resolver_pb2

pytestmark = pytest.mark.slow

FAIL = "import sys; print('the backend says no'); sys.exit(3)"


def failure(tmp_path: Path, **sdist) -> tuple[str, str, list[str], ErrorDetails]:
    """Status and message of building ``pkg`` whose 2.0 is the given failing sdist (1.0 has a wheel); the
    versions of pkg the resolver pinned on the way; the rich details a caller gets."""
    b = IndexBuilder(tmp_path / "index")
    b.add("pkg", "1.0")
    b.add("pkg", "2.0", kind="sdist", backend="intree", **sdist)
    url = b.simple_url()
    made: list[BuildEngine] = []  # the resolver prepares dynamic metadata with the build engine made below
    resolver = ResolverEngine(EngineSettings(home=tmp_path / "home", pip=PipIndexConfig(index_url=url)),
                              LazyBuilder(lambda: made[0]))
    engine = BuildEngine(BuilderSettings(home=tmp_path / "home"), EmbeddedResolver(resolver, close_engine=False))
    made.append(engine)
    config = common_pb2.IndexConfig(index_url=url)
    request = builder_pb2.ResolveAndBuildRequest(
        resolve=resolver_pb2.ResolveRequest(requirements=["pkg"], index=config),
        options=builder_pb2.BuildOptions(wheels=True, venv_archive=True, index=config),
    )
    pinned = []
    try:
        with pytest.raises(Exception) as err:  # noqa: PT011 - the error's status is checked below
            for event in resolve_and_build(engine, request, resolver.resolve_stream):
                if event.WhichOneof("event") == "resolve" and event.resolve.WhichOneof("event") == "pin":
                    pinned.append(event.resolve.pin.version)
                assert event.build.WhichOneof("event") != "result", "a build of pkg succeeded"
    finally:
        engine.close()
        resolver.close()
    known = status_of(err.value)
    assert known is not None, err.value
    return known[0], known[1], pinned, CallError.of(err.value).details


def test_a_failing_sdist_build_stops_the_build_naming_the_sdist(tmp_path):
    status, message, pinned, details = failure(tmp_path, build_body=FAIL)
    assert status == "FAILED_PRECONDITION"
    assert (details.reason, details.metadata["sdist"]) == ("BUILD_FAILED", "pkg-2.0.tar.gz")  # the cause's reason
    assert "pkg-2.0.tar.gz" in message and "exited with status 3" in message
    assert "the backend says no" in message  # the log's tail
    assert "1.0" not in pinned


def test_a_failing_metadata_preparation_stops_the_resolution_naming_the_sdist(tmp_path):
    # Dynamic dependencies: the resolver needs the backend to prepare metadata, whose build requirement is missing.
    status, message, pinned, details = failure(tmp_path, dynamic=["Requires-Dist"],
                                               build_requires=("no-such-backend",))
    assert status == "FAILED_PRECONDITION" and details.reason == "NO_SOLUTION"  # the build requirement's resolution
    assert "pkg-2.0.tar.gz" in message and "no-such-backend" in message
    assert pinned == []  # no pin at all, and certainly not pkg 1.0
