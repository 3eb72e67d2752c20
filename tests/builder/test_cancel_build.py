"""A ResolveAndBuild whose caller cancels stops its sdist build (the build's process group is killed), unless
another caller shares that build: then it goes on for that caller."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest

from tests.fixtures.builder_server import BuilderProcess
from venvsmith.v1 import builder_pb2, common_pb2, resolver_pb2

pytestmark = pytest.mark.slow

#: Generous bound for things that take well under a second: polling, never asserting a duration.
BOUND_SECONDS = 60


def _body(markers: Path, release: Path) -> str:
    """Build-backend code: record this build's pid, then wait (up to 5 min) until ``release`` exists."""
    return (f"import os, pathlib, time\n"
            f"pathlib.Path({str(markers)!r}, str(os.getpid())).write_text('building')\n"
            f"end = time.monotonic() + 300\n"
            f"while not pathlib.Path({str(release)!r}).exists() and time.monotonic() < end:\n"
            f"    time.sleep(0.05)\n")


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has stopped


def _wait_for(condition, what: str) -> None:
    end = time.monotonic() + BOUND_SECONDS
    while not condition():
        assert time.monotonic() < end, f"not within {BOUND_SECONDS} s: {what}"
        time.sleep(0.05)


def _request(index_url: str) -> builder_pb2.ResolveAndBuildRequest:
    index = common_pb2.IndexConfig(index_url=index_url)
    return builder_pb2.ResolveAndBuildRequest(
        resolve=resolver_pb2.ResolveRequest(requirements=["slowsrc"], index=index),
        options=builder_pb2.BuildOptions(wheels=True, index=index))


@pytest.fixture
def slow_sdist(tmp_path, index_builder):
    markers, release = tmp_path / "pids", tmp_path / "release"
    markers.mkdir()
    index_builder.add("slowsrc", "1.0", kind="sdist", backend="intree", build_body=_body(markers, release))
    return index_builder, markers, release


def _pids(markers: Path) -> list[int]:
    return [int(p.name) for p in markers.iterdir()]


def test_cancelling_the_only_caller_kills_the_build(tmp_path, slow_sdist):
    index_builder, markers, release = slow_sdist
    with BuilderProcess(tmp_path / "srv", "--sandbox", "none", http=False,
                        allow=[str(index_builder.root)]) as server:
        call = server.stub.ResolveAndBuild(_request(index_builder.simple_url()))
        _wait_for(lambda: _pids(markers), "the build started")
        [pid] = _pids(markers)
        assert _alive(pid)
        call.cancel()
        _wait_for(lambda: not _alive(pid), f"the build process {pid} is gone after the cancel")
        with pytest.raises(grpc.RpcError) as caught:
            list(call)
        assert caught.value.code() == grpc.StatusCode.CANCELLED
        # The builder still serves: a new call builds it (and finishes once released).
        release.write_text("go")
        events = list(server.stub.ResolveAndBuild(_request(index_builder.simple_url()), timeout=300))
        results = [e.build.result for e in events if e.HasField("build") and e.build.HasField("result")]
        assert [w.filename for w in results[0].wheels] == ["slowsrc-1.0-py3-none-any.whl"], server.log()


def test_cancelling_one_of_two_sharing_callers_lets_the_other_finish(tmp_path, slow_sdist):
    index_builder, markers, release = slow_sdist
    with BuilderProcess(tmp_path / "srv", "--sandbox", "none", http=False,
                        allow=[str(index_builder.root)]) as server:
        first = server.stub.ResolveAndBuild(_request(index_builder.simple_url()))
        _wait_for(lambda: _pids(markers), "the build started")
        second = server.stub.ResolveAndBuild(_request(index_builder.simple_url()), timeout=300)
        seen = []
        for event in second:  # until the second call has joined the build in flight (BUILDING, shared)
            seen.append(event)
            if event.HasField("build") and event.build.progress.state == builder_pb2.PinProgress.BUILDING:
                break
        first.cancel()
        release.write_text("go")
        rest = list(second)
        results = [e.build.result for e in rest if e.HasField("build") and e.build.HasField("result")]
        assert [w.filename for w in results[0].wheels] == ["slowsrc-1.0-py3-none-any.whl"], server.log()
        assert len(_pids(markers)) == 1, "the shared build was not killed and started again"
        assert results[0].stats.shared_in_flight
