"""Each sdist build's log is its own artifact: stored (bounded), referenced from the build's events, streamed as
progress to a caller that asks (``venvsmith build/venv --server ... -v``), its tail in a failed build's error —
and never in the server's own log, where concurrent builds' output would mix.

Hermetic: a local index of in-tree-backend sdists whose backends print known lines; a builder in a subprocess.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import grpc
import pytest
from grpc_status import rpc_status

from tests.fixtures.builder_server import BuilderProcess, cli, hermetic_env
from tests.fixtures.index import IndexBuilder, IndexServer
from venvsmith.core.errors import ErrorDetails
from venvsmith.v1 import artifact_pb2, builder_pb2, common_pb2, resolver_pb2

pytestmark = pytest.mark.slow

State = builder_pb2.PinProgress.State
LOG_MEDIA = "text/plain; charset=utf-8"


def _printing(tag: str, lines: int, *, fail: bool = False) -> str:
    """A backend body printing ``lines`` numbered lines on stdout and stderr, alternately (flushed), then failing
    or not."""
    return f"""
        import sys, time
        for i in range(1, {lines} + 1):
            stream = sys.stdout if i % 2 else sys.stderr
            print("{tag} line %02d" % i, file=stream, flush=True)
            time.sleep(0.01)
        {"sys.exit(3)" if fail else "pass"}
    """


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Iterator[IndexServer]:
    b = IndexBuilder(tmp_path_factory.mktemp("build-log-index"))
    b.add("chatty", "1.0", kind="sdist", backend="intree", build_body=_printing("chatty", 30))
    b.add("gossip", "1.0", kind="sdist", backend="intree", build_body=_printing("gossip", 30))
    b.add("broken", "1.0", kind="sdist", backend="intree", build_body=_printing("broken", 40, fail=True))
    b.add("flood", "1.0", kind="sdist", backend="intree", build_body="""
        import sys
        print("FLOOD-START", flush=True)
        block = ("y" * 1023 + "\\n") * 1024
        for _ in range(12):  # 12 MiB, far beyond the stored log's cap
            sys.stdout.write(block)
        print("FLOOD-END", flush=True)
    """)
    with IndexServer(b) as server:
        yield server


@pytest.fixture(scope="module")
def server(tmp_path_factory, index) -> Iterator[BuilderProcess]:
    process = BuilderProcess(tmp_path_factory.mktemp("build-log-home"), allow=[index.base_url])
    yield process
    assert process.stop() == 0, process.log()


def _request(index: IndexServer, *reqs: str, stream: bool) -> builder_pb2.ResolveAndBuildRequest:
    config = common_pb2.IndexConfig(index_url=index.url)
    return builder_pb2.ResolveAndBuildRequest(
        resolve=resolver_pb2.ResolveRequest(requirements=list(reqs), index=config),
        options=builder_pb2.BuildOptions(wheels=True, index=config, stream_build_log=stream))


def _progress(server: BuilderProcess, request) -> list[builder_pb2.PinProgress]:
    return [e.build.progress for e in server.stub.ResolveAndBuild(request, timeout=180)
            if e.WhichOneof("event") == "build" and e.build.WhichOneof("event") == "progress"]


def _fetch(server: BuilderProcess, ref: common_pb2.ArtifactRef) -> str:
    chunks = server.artifacts.GetArtifact(artifact_pb2.GetArtifactRequest(digest=ref.digest), timeout=60)
    return b"".join(c.data for c in chunks).decode()


def _streamed(progress: list[builder_pb2.PinProgress], name: str) -> list[str]:
    return [line for p in progress if p.name == name for line in p.log_lines]


def test_each_build_has_its_own_log_artifact_streamed_on_request_and_never_mixed(server, index):
    progress = _progress(server, _request(index, "chatty", "gossip", stream=True))
    for name, other in (("chatty", "gossip"), ("gossip", "chatty")):
        lines = _streamed(progress, name)
        mine = [line for line in lines if line.startswith(f"{name} line")]
        assert mine == [f"{name} line {i:02d}" for i in range(1, 31)]  # every line, in order, stdout and stderr
        assert not [line for line in lines if other in line]
        (done,) = [p for p in progress if p.name == name and p.state == State.DONE]
        ref = done.build_log
        assert ref.kind == common_pb2.BUILD_LOG and ref.media_type == LOG_MEDIA and ref.digest.size_bytes > 0
        assert ref.http_url.endswith(f"/blobs/{ref.digest.hash}/{ref.digest.size_bytes}/{ref.filename}")
        stored = _fetch(server, ref)
        assert [line for line in stored.splitlines() if line.startswith(f"{name} line")] == mine
        assert other not in stored
    assert "chatty line" not in server.log() and "gossip line" not in server.log()
    # A build answered from the store still names the log of the build that made its wheel; nothing is streamed.
    again = _progress(server, _request(index, "chatty", stream=True))
    (cached,) = [p for p in again if p.name == "chatty" and p.state == State.CACHED]
    assert cached.build_log.digest.hash and not _streamed(again, "chatty")


def test_lines_are_streamed_only_when_asked(server, index):
    progress = _progress(server, _request(index, "flood", stream=False))
    assert not _streamed(progress, "flood")
    (done,) = [p for p in progress if p.name == "flood" and p.state == State.DONE]
    # The stored log is bounded: its head and its tail, with a marker where output was left out.
    assert done.build_log.digest.size_bytes < 3 * 1024 * 1024
    stored = _fetch(server, done.build_log)
    assert "FLOOD-START" in stored and "FLOOD-END" in stored and "bytes of build output left out" in stored


def test_a_failed_build_shows_its_last_lines_and_its_stored_log(server, index):
    progress = []
    with pytest.raises(grpc.RpcError) as caught:
        for event in server.stub.ResolveAndBuild(_request(index, "broken", stream=False), timeout=180):
            if event.WhichOneof("event") == "build" and event.build.WhichOneof("event") == "progress":
                progress.append(event.build.progress)
    error = caught.value
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    message = error.details()
    assert "broken line 40" in message and "broken line 21" in message  # its last 20 lines
    assert "broken line 05" not in message
    details = ErrorDetails.from_status(rpc_status.from_call(error))
    assert details.metadata["sdist"] == "broken-1.0.tar.gz"
    assert details.metadata["log_tail"].rstrip().endswith("broken line 40")
    ref = details.metadata["build_log"]  # sha256:<hex>/<size> of the whole stored log
    digest, size = ref.removeprefix("sha256:").split("/")
    stored = _fetch(server, common_pb2.ArtifactRef(digest=common_pb2.Digest(hash=digest, size_bytes=int(size))))
    assert "broken line 01" in stored and "broken line 40" in stored
    (failed,) = [p for p in progress if p.name == "broken" and p.state == State.FAILED]
    assert failed.build_log.digest.hash == digest
    assert "broken line" not in server.log()


@pytest.mark.parametrize("command", ["build", "venv"])
def test_cli_shows_build_output_with_v_only(server, index, tmp_path, command):
    home = tmp_path / "client-home"
    home.mkdir()
    for verbose in (True, False):
        # A fresh project each time: a cached wheel has no build to show.
        name = f"{command}{'v' if verbose else 'q'}"
        index.builder.add(name, "1.0", kind="sdist", backend="intree", build_body=_printing(name, 3))
        argv = [command, *(["--no-venv"] if command == "build" else [str(tmp_path / name)]), name,
                "--server", server.address, "--index-url", index.url, *(["-v"] if verbose else [])]
        done = subprocess.run(cli(*argv), env=hermetic_env(home), capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr
        shown = [line for line in done.stderr.splitlines() if f"{name} line" in line]
        if verbose:
            assert [line.split(f"{name} line ")[1] for line in shown] == ["01", "02", "03"], done.stderr
            assert all(name in line.split(f"{name} line")[0] for line in shown)  # each line says whose it is
        else:
            assert not shown, done.stderr
        assert f"{name} line" not in done.stdout
