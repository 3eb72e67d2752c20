"""BuilderService failure paths end to end: tampered files, malicious wheels, builds over their time limit, a builder
killed mid-build and restarted; plus malformed Build streams against an in-process server.

Hermetic as ``test_builder_e2e.py``: local HTTP index, in-tree-backend sdists, own ``VENVSMITH_HOME`` per server.
"""

from __future__ import annotations

import hashlib
import io
import os
import signal
import sqlite3
import threading
import time
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import grpc
import pytest

from builder_service.engine import BuildEngine, BuilderSettings
from builder_service.service import make_server
from tests.fixtures.builder_server import BuilderProcess
from tests.fixtures.digests import sha256_file
from tests.fixtures.dists import ZIP_DATE_TIME, record_hash
from tests.fixtures.hermetic import isolate
from tests.fixtures.index import IndexBuilder, IndexServer
from venvsmith.v1 import artifact_pb2, builder_pb2, builder_pb2_grpc, common_pb2, resolver_pb2

State = builder_pb2.PinProgress.State


# ------------------------------------------------------------------------------------------------ helpers


def evil_wheel(name: str, evil: zipfile.ZipInfo, data: bytes) -> tuple[bytes, str]:
    """A wheel of ``name`` 1.0 that is valid (METADATA, WHEEL, a RECORD listing every member with its hash) but for
    the one member ``evil``; returns its bytes and file name."""
    dist_info = f"{name}-1.0.dist-info"
    members: list[tuple[zipfile.ZipInfo | str, bytes]] = [
        (f"{name}/__init__.py", b"VALUE = 1\n"),
        (evil, data),
        (f"{dist_info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n".encode()),
        (f"{dist_info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: evil\nRoot-Is-Purelib: true\nTag: py3-none-any\n"),
    ]
    record = "".join(
        f"{m.filename if isinstance(m, zipfile.ZipInfo) else m},{record_hash(d)},{len(d)}\n" for m, d in members
    )
    members.append((f"{dist_info}/RECORD", (record + f"{dist_info}/RECORD,,\n").encode()))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for member, content in members:
            info = member if isinstance(member, zipfile.ZipInfo) else zipfile.ZipInfo(member, ZIP_DATE_TIME)
            if not isinstance(member, zipfile.ZipInfo):
                info.external_attr = 0o100644 << 16
                info.create_system = 3
            zf.writestr(info, content)
    return buf.getvalue(), f"{name}-1.0-py3-none-any.whl"


def member(name: str, mode: int = 0o100644) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, ZIP_DATE_TIME)
    info.external_attr = mode << 16
    info.create_system = 3
    return info


def build_request(index: IndexServer, *reqs: str, venv: bool = True,
                  limits: builder_pb2.BuildLimits | None = None) -> builder_pb2.ResolveAndBuildRequest:
    config = common_pb2.IndexConfig(index_url=index.url)
    return builder_pb2.ResolveAndBuildRequest(
        resolve=resolver_pb2.ResolveRequest(requirements=list(reqs), index=config),
        options=builder_pb2.BuildOptions(wheels=True, venv_archive=venv, index=config, limits=limits),
    )


def run_build(stub, request, timeout: float = 120) -> tuple[list[builder_pb2.PinProgress], builder_pb2.BuildResult]:
    progress, result = [], None
    for event in stub.ResolveAndBuild(request, timeout=timeout):
        if event.WhichOneof("event") == "build":
            if event.build.WhichOneof("event") == "progress":
                progress.append(event.build.progress)
            else:
                result = event.build.result
    assert result is not None
    return progress, result


def build_error(stub, request, timeout: float = 120) -> tuple[grpc.RpcError, list[builder_pb2.PinProgress]]:
    """The error a build ends with, and the progress events before it."""
    progress = []
    with pytest.raises(grpc.RpcError) as info:
        for event in stub.ResolveAndBuild(request, timeout=timeout):
            if event.WhichOneof("event") == "build" and event.build.WhichOneof("event") == "progress":
                progress.append(event.build.progress)
    return info.value, progress


def cas_blobs(home: Path) -> dict[str, Path]:
    """Every blob file in the server's store, by its name (which must be its sha256)."""
    root = home / "store" / "cas" / "sha256"
    return {p.name: p for p in root.glob("*/*") if p.is_file()}


def action_keys(home: Path) -> list[str]:
    with sqlite3.connect(home / "actions" / "action_cache.sqlite3") as conn:
        return [row[0] for row in conn.execute("SELECT key FROM actions")]


def eventually(condition, within: float = 10.0) -> bool:
    end = time.monotonic() + within
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.05)
    return True


def gone(pid: int, within: float = 10.0) -> bool:
    """Whether process ``pid`` has exited (it may stay a zombie of a dead parent only briefly)."""
    end = time.monotonic() + within
    while time.monotonic() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().split(")")[-1].split()[0] == "Z":
                    return True
        except OSError:
            return True
        time.sleep(0.05)
    return False


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def marks(tmp_path_factory) -> Path:
    """Where in-tree backends leave their pid (backends see a scrubbed environment, so the path is in their code)."""
    return tmp_path_factory.mktemp("marks")


#: The builders of this module run unsandboxed: their backends leave pid files in ``marks``, which a sandbox hides
#: (tests/builder/test_build_sandbox.py has the sandboxed time limit and builder death).
UNSANDBOXED = ("--sandbox", "none")


@pytest.fixture(scope="module")
def index_builder(tmp_path_factory, marks) -> IndexBuilder:
    b = IndexBuilder(tmp_path_factory.mktemp("failure-index"))
    b.add("okpkg", "1.0")
    b.add("tampered", "1.0")
    b.add("needstampered", "1.0", deps=["tampered"])
    b.add("sleepy", "1.0", kind="sdist", backend="intree", build_body=f"""
        import os, time
        with open({str(marks / "sleepy.pid")!r}, "w") as fh:
            fh.write(str(os.getpid()))
        time.sleep(120)
    """)
    b.add("failing", "1.0", kind="sdist", backend="intree",
          build_body="import sys; print('the backend says no'); sys.exit(3)")
    b.add("crashy", "1.0", kind="sdist", backend="intree", deps=["okpkg"], build_body=f"""
        import os, time
        marker = {str(marks / "crashy.pid")!r}
        if not os.path.exists(marker):
            with open(marker + ".tmp", "w") as fh:
                fh.write(str(os.getpid()))
            os.rename(marker + ".tmp", marker)
            time.sleep(120)
    """)
    outside = tmp_path_factory.mktemp("outside")
    for name, evil, data in (
        ("dotdot", member("dotdot/../../../../escaped-dotdot.py"), b"PWNED = 1\n"),
        ("absolute", member(str(outside / "escaped-absolute.py")), b"PWNED = 1\n"),
        ("symlinked", member("symlinked/passwd", 0o120777), b"../../../../../../../../etc/passwd"),
    ):
        b.add_file(*evil_wheel(name, evil, data))
    b.outside = outside  # type: ignore[attr-defined]
    return b


@pytest.fixture(scope="module")
def index(index_builder) -> Iterator[IndexServer]:
    with IndexServer(index_builder) as server:
        yield server


@pytest.fixture(scope="module")
def server(tmp_path_factory, index) -> Iterator[BuilderProcess]:
    process = BuilderProcess(tmp_path_factory.mktemp("failure-home"), *UNSANDBOXED, allow=[index.base_url])
    yield process
    assert process.stop() == 0, process.log()


# ------------------------------------------------------------------------------------------------ e2e


@pytest.mark.slow
def test_hash_mismatch_is_data_loss_and_nothing_is_stored(server, index, index_builder):
    entry = index_builder.get("tampered-1.0-py3-none-any.whl")
    original = entry.path.read_bytes()
    tampered = bytearray(original)
    tampered[len(tampered) // 2] ^= 0xFF  # same size, other bytes: only the sha256 can tell
    index_builder.tamper(entry.filename, bytes(tampered))
    bad = hashlib.sha256(tampered).hexdigest()
    assert bad != entry.sha256

    error, progress = build_error(server.stub, build_request(index, "needstampered"))
    assert error.code() == grpc.StatusCode.DATA_LOSS
    assert entry.filename in error.details() and entry.sha256 in error.details()
    failed = [p for p in progress if p.state == State.FAILED]
    assert [p.name for p in failed] == ["tampered"] and entry.filename in failed[0].detail

    digests = [common_pb2.Digest(hash=h, size_bytes=entry.size) for h in (entry.sha256, bad)]
    answer = server.artifacts.StatArtifacts(artifact_pb2.StatArtifactsRequest(digests=digests))
    assert list(answer.missing) == digests
    blobs = cas_blobs(server.home)
    assert entry.sha256 not in blobs and bad not in blobs
    assert not any(sha256_file(p) == bad for p in blobs.values())
    assert not any(k.startswith(f"file:{entry.sha256}") for k in action_keys(server.home))
    # No leftover temp file either (once the other pin's download, still in flight at the error, has landed).
    assert eventually(lambda: not list((server.home / "store" / "tmp").iterdir()))
    # The server is fine, and the same request with the honest bytes back works.
    index_builder.tamper(entry.filename, original)
    _, result = run_build(server.stub, build_request(index, "needstampered"))
    assert {w.filename for w in result.wheels} == {entry.filename, "needstampered-1.0-py3-none-any.whl"}


@pytest.mark.slow
@pytest.mark.parametrize(("project", "why"), [
    ("dotdot", "'..' component"), ("absolute", "absolute path"), ("symlinked", "symlink"),
])
def test_malicious_wheel_is_refused(server, index, index_builder, project, why):
    error, _ = build_error(server.stub, build_request(index, project))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert f"{project}-1.0-py3-none-any.whl" in error.details() and why in error.details()
    assert not list(index_builder.outside.iterdir())  # nothing was written outside
    assert not list(server.home.parent.glob("escaped-*")) and not list(server.home.glob("**/escaped-*"))


@pytest.mark.slow
def test_build_over_its_time_limit_is_killed_and_reported(server, index, marks):
    started = time.monotonic()
    request = build_request(index, "sleepy", limits=builder_pb2.BuildLimits(timeout_seconds=2))
    error, progress = build_error(server.stub, request)
    elapsed = time.monotonic() - started
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED, error.details()
    assert "sleepy" in error.details()
    assert elapsed < 30
    assert State.BUILDING in [p.state for p in progress if p.name == "sleepy"]
    pid = int((marks / "sleepy.pid").read_text())
    assert gone(pid), f"the timed-out build process {pid} still runs"
    assert not any(k.startswith("wheel-build:") for k in action_keys(server.home))
    # The server keeps serving: another build, and the environment list.
    _, result = run_build(server.stub, build_request(index, "okpkg"))
    assert [w.filename for w in result.wheels] == ["okpkg-1.0-py3-none-any.whl"]
    assert server.stub.ListEnvironments(builder_pb2.ListEnvironmentsRequest()).environments


@pytest.mark.slow
def test_failing_build_is_failed_precondition_with_its_log(server, index):
    error, _ = build_error(server.stub, build_request(index, "failing"))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "failing" in error.details() and "the backend says no" in error.details()


@pytest.mark.slow
def test_builder_killed_mid_build_leaves_no_partial_blob_and_recovers(tmp_path, index, marks):
    home = tmp_path / "home"
    request = build_request(index, "crashy")
    marker = marks / "crashy.pid"
    with BuilderProcess(home, *UNSANDBOXED, allow=[index.base_url]) as first:
        stream = first.stub.ResolveAndBuild(request, timeout=120)
        seen_building = threading.Event()

        def consume() -> None:
            try:
                for event in stream:
                    if event.WhichOneof("event") == "build" and event.build.progress.state == State.BUILDING:
                        seen_building.set()
            except grpc.RpcError:
                pass

        reader = threading.Thread(target=consume, daemon=True)
        reader.start()
        assert seen_building.wait(60), first.log()
        end = time.monotonic() + 30
        while not marker.exists() and time.monotonic() < end:
            time.sleep(0.05)
        assert marker.exists(), "the backend never started"
        assert first.kill() == -signal.SIGKILL
        reader.join(30)
    backend = int(marker.read_text())
    try:
        # The build does not outlive its builder (its time limit was the builder's to enforce).
        assert gone(backend), f"the build process {backend} outlived its builder"
    finally:
        try:
            os.killpg(backend, signal.SIGKILL)  # in any case, ours to end (by id)
        except ProcessLookupError:
            pass
    left_behind = [p for p in (home / "tmp").iterdir() if p.name.startswith("proc-")]
    assert left_behind and any(left_behind[0].rglob("*")), "expected the dead builder's work directory"

    blobs = cas_blobs(home)
    for name, path in blobs.items():
        assert sha256_file(path) == name, f"partial or corrupt blob {path}"
    assert not any(k.startswith("wheel-build:") for k in action_keys(home))

    with BuilderProcess(home, *UNSANDBOXED, allow=[index.base_url]) as second:
        # The dead builder's work directory (its half-done build tree) is gone once a builder starts again.
        assert not any(p.exists() for p in left_behind)
        progress, result = run_build(second.stub, request)
        assert result.stats.wheels_built == 1 and result.stats.venv_built
        assert {w.filename for w in result.wheels} == {"crashy-1.0-py3-none-any.whl", "okpkg-1.0-py3-none-any.whl"}
        present = second.artifacts.StatArtifacts(artifact_pb2.StatArtifactsRequest(
            digests=[result.venv_archive.digest, *(w.digest for w in result.wheels)]))
        assert not present.missing
    for name, path in cas_blobs(home).items():
        assert sha256_file(path) == name


# ------------------------------------------------------------------------------------------------ in-process


@pytest.fixture
def local(tmp_path, monkeypatch) -> Iterator[tuple[builder_pb2_grpc.BuilderServiceStub, BuildEngine]]:
    """A builder server in this process (cheap error paths)."""
    isolate(monkeypatch, tmp_path / "home")
    engine = BuildEngine(BuilderSettings(home=tmp_path / "home"))
    server, port = make_server("127.0.0.1:0", engine)
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield builder_pb2_grpc.BuilderServiceStub(channel), engine
    channel.close()
    server.stop(0)
    engine.close()


@pytest.fixture
def wheel_pin(tmp_path) -> common_pb2.Pin:
    from tests.fixtures.dists import build_wheel

    path = build_wheel(tmp_path / "wheels", "plain", "1.0")
    data = path.read_bytes()
    return common_pb2.Pin(name="plain", version="1.0", url=path.as_uri(), filename=path.name, is_wheel=True,
                          sha256=hashlib.sha256(data).hexdigest(), size=len(data))


def header() -> builder_pb2.BuildRequest:
    return builder_pb2.BuildRequest(header=builder_pb2.BuildHeader(
        target=common_pb2.TargetSpec(), options=builder_pb2.BuildOptions(wheels=True)))


def end(**fields) -> builder_pb2.BuildRequest:
    return builder_pb2.BuildRequest(end=builder_pb2.BuildEnd(**fields))


def pin(msg: common_pb2.Pin) -> builder_pb2.BuildRequest:
    return builder_pb2.BuildRequest(pin=msg)


def stream_error(stub, requests: Sequence[builder_pb2.BuildRequest]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        list(stub.Build(iter(requests), timeout=60))
    return info.value


def test_build_stream_happy_path(local, wheel_pin):
    stub, _ = local
    events = list(stub.Build(iter([header(), pin(wheel_pin), end(pin_count=1)]), timeout=60))
    result = events[-1].result
    assert [w.filename for w in result.wheels] == [wheel_pin.filename]
    assert result.wheels[0].digest.hash == wheel_pin.sha256 and len(result.lock_key) == 64
    again = list(stub.Build(iter([header(), pin(wheel_pin), end(pin_count=1, lock_key=result.lock_key)]), timeout=60))
    assert again[-1].result.stats.cached and again[-1].result.lock_key == result.lock_key


@pytest.mark.parametrize(("case", "needle"), [
    ("no header", "must start with a header"),
    ("pin before header", "must start with a header"),
    ("two headers", "second header"),
    ("pin after end", "after the end"),
    ("no end", "without an end"),
    ("no pins", "without pins"),
    ("count mismatch", "2 pins"),
    ("lock key mismatch", "lock key"),
    ("pin without sha256", "sha256"),
    ("empty request", "empty"),
])
def test_malformed_build_streams_are_invalid_argument(local, wheel_pin, case, needle):
    stub, _ = local
    no_hash = common_pb2.Pin()
    no_hash.CopyFrom(wheel_pin)
    no_hash.sha256 = ""
    requests = {
        "no header": [end(pin_count=0)],
        "pin before header": [pin(wheel_pin), header(), end()],
        "two headers": [header(), header(), end()],
        "pin after end": [header(), pin(wheel_pin), end(), pin(wheel_pin)],
        "no end": [header(), pin(wheel_pin)],
        "no pins": [header(), end()],
        "count mismatch": [header(), pin(wheel_pin), end(pin_count=2)],
        "lock key mismatch": [header(), pin(wheel_pin), end(pin_count=1, lock_key="0" * 64)],
        "pin without sha256": [header(), pin(no_hash), end()],
        "empty request": [header(), builder_pb2.BuildRequest(), end()],
    }[case]
    error = stream_error(stub, requests)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert needle in error.details()
