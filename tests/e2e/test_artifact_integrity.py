"""A corrupt blob in the builder's store (item 7): GetArtifact and HTTP verify while they stream, fail with
DATA_LOSS / no complete response, quarantine the blob, and the next build of the same pins makes it again.

The blobs are corrupted on the server's disk after a build (same size, one byte flipped), which is what a bad disk
or a stray write does: only the digest can tell.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.fixtures.builder_server import BuilderProcess
from tests.fixtures.index import IndexBuilder, IndexServer
from venvsmith.v1 import artifact_pb2, builder_pb2, common_pb2, resolver_pb2

pytestmark = pytest.mark.slow

BIG = 3 << 20  # several GetArtifact chunks / HTTP writes


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Iterator[IndexServer]:
    b = IndexBuilder(tmp_path_factory.mktemp("integrity-index"))
    b.add("small", "1.0")
    b.add("other", "1.0")
    b.add("big", "1.0", files={"big/__init__.py": b"", "big/data.bin": os.urandom(BIG)})
    b.add("fromsrc", "1.0", kind="sdist", backend="intree")
    with IndexServer(b) as server:
        yield server


@pytest.fixture(scope="module")
def server(tmp_path_factory, index) -> Iterator[BuilderProcess]:
    process = BuilderProcess(tmp_path_factory.mktemp("integrity-home"), allow=[index.base_url])
    yield process
    assert process.stop() == 0, process.log()


def build(server: BuilderProcess, index: IndexServer, *reqs: str) -> builder_pb2.BuildResult:
    config = common_pb2.IndexConfig(index_url=index.url)
    request = builder_pb2.ResolveAndBuildRequest(
        resolve=resolver_pb2.ResolveRequest(requirements=list(reqs), index=config),
        options=builder_pb2.BuildOptions(wheels=True, venv_archive=True, index=config),
    )
    result = None
    for event in server.stub.ResolveAndBuild(request, timeout=120):
        if event.WhichOneof("event") == "build" and event.build.WhichOneof("event") == "result":
            result = event.build.result
    assert result is not None
    return result


def blob_file(server: BuilderProcess, digest: common_pb2.Digest) -> Path:
    return server.home / "store" / "cas" / "sha256" / digest.hash[:2] / digest.hash


def corrupt(server: BuilderProcess, digest: common_pb2.Digest, at: int | None = None) -> None:
    """Flip one byte of the stored blob in place (same size, same inode)."""
    path = blob_file(server, digest)
    os.chmod(path, 0o644)
    at = digest.size_bytes // 2 if at is None else at
    with open(path, "r+b") as f:
        f.seek(at)
        byte = f.read(1)
        f.seek(at)
        f.write(bytes([byte[0] ^ 0xFF]))


def read(server: BuilderProcess, digest: common_pb2.Digest, offset: int = 0, limit: int = 0
         ) -> tuple[bytes, grpc.RpcError | None]:
    """What GetArtifact sent before it ended, and its error (None when it succeeded)."""
    received = bytearray()
    try:
        for chunk in server.artifacts.GetArtifact(
                artifact_pb2.GetArtifactRequest(digest=digest, offset=offset, limit=limit), timeout=60):
            received += chunk.data
    except grpc.RpcError as exc:
        return bytes(received), exc
    return bytes(received), None


def missing(server: BuilderProcess, digest: common_pb2.Digest) -> bool:
    answer = server.artifacts.StatArtifacts(artifact_pb2.StatArtifactsRequest(digests=[digest]))
    return list(answer.missing) == [digest]


def http_fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, bool]:
    """(status, body, complete): complete is False when the connection was cut before Content-Length bytes."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            try:
                return response.status, response.read(), True
            except http.client.IncompleteRead as exc:
                return response.status, exc.partial, False
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), True


def test_get_artifact_detects_a_corrupt_venv_archive_and_the_next_build_makes_it_again(server, index):
    first = build(server, index, "small")
    digest = first.venv_archive.digest
    good, error = read(server, digest)
    assert error is None and hashlib.sha256(good).hexdigest() == digest.hash
    corrupt(server, digest)
    data, error = read(server, digest)
    assert error is not None and error.code() == grpc.StatusCode.DATA_LOSS, error
    assert len(data) < digest.size_bytes  # never the whole (corrupt) blob
    assert not blob_file(server, digest).exists() and missing(server, digest)  # quarantined
    again = build(server, index, "small")
    assert again.venv_archive.digest == digest and again.stats.venv_built  # built again, same bytes
    data, error = read(server, digest)
    assert error is None and data == good


def test_a_range_read_verifies_the_whole_blob(server, index):
    """A corrupt byte outside the asked range still fails the read: the range is part of a blob that is wrong."""
    result = build(server, index, "other")
    wheel = result.wheels[0].digest
    corrupt(server, wheel, at=wheel.size_bytes - 1)
    data, error = read(server, wheel, 0, limit=10)
    assert error is not None and error.code() == grpc.StatusCode.DATA_LOSS and data == b""
    assert missing(server, wheel)
    again = build(server, index, "other")
    assert again.wheels[0].digest == wheel and again.stats.wheels_downloaded == 1  # fetched again
    assert read(server, wheel)[1] is None


def test_big_corrupt_blob_sends_everything_but_its_last_chunk(server, index):
    result = build(server, index, "big")
    wheel = next(w for w in result.wheels if w.filename.startswith("big-"))
    assert wheel.digest.size_bytes > BIG
    corrupt(server, wheel.digest, at=0)  # found only at the end: chunks before it went out
    data, error = read(server, wheel.digest)
    assert error is not None and error.code() == grpc.StatusCode.DATA_LOSS
    assert 0 < len(data) < wheel.digest.size_bytes


def test_http_never_answers_a_complete_200_with_a_corrupt_blob(server, index):
    result = build(server, index, "small", "big")
    small = next(w for w in result.wheels if w.filename.startswith("small-"))
    big = next(w for w in result.wheels if w.filename.startswith("big-"))
    status, body, _ = http_fetch(small.http_url)
    assert status == 200 and hashlib.sha256(body).hexdigest() == small.digest.hash
    corrupt(server, small.digest)
    status, body, _ = http_fetch(small.http_url)
    assert status == 500 and b"corrupt" in body  # one chunk: verified before the headers
    assert missing(server, small.digest)
    corrupt(server, big.digest, at=0)
    status, body, complete = http_fetch(big.http_url)
    assert status == 200 and not complete and len(body) < big.digest.size_bytes  # cut before the last bytes
    assert missing(server, big.digest)
    again = build(server, index, "small", "big")
    assert again.stats.wheels_downloaded == 2
    status, body, complete = http_fetch(big.http_url)
    assert status == 200 and complete and hashlib.sha256(body).hexdigest() == big.digest.hash


def test_http_range_of_a_corrupt_blob_is_not_served(server, index):
    result = build(server, index, "other")
    wheel = result.wheels[0]
    corrupt(server, wheel.digest, at=wheel.digest.size_bytes - 1)
    status, body, _ = http_fetch(wheel.http_url, {"Range": "bytes=0-9"})
    assert status == 500 and missing(server, wheel.digest)


def test_a_corrupt_wheel_fails_one_venv_build_with_data_loss_and_is_fetched_again(server, index):
    """A venv built from a stored wheel reads it verified: the corrupt wheel is DATA_LOSS (not a confusing
    "unsafe wheel") and quarantined, so the next build of those pins fetches it again and succeeds."""
    small = build(server, index, "small").wheels[0]
    corrupt(server, small.digest)
    with pytest.raises(grpc.RpcError) as error:
        build(server, index, "small", "other")  # a venv not built yet: it needs the wheel's bytes
    assert error.value.code() == grpc.StatusCode.DATA_LOSS, error.value.details()
    assert small.filename in error.value.details() or small.digest.hash in error.value.details()
    assert missing(server, small.digest)
    again = build(server, index, "small", "other")
    assert again.stats.wheels_downloaded == 1 and again.stats.venv_built
    assert read(server, again.venv_archive.digest)[1] is None


def test_a_corrupt_sdist_is_data_loss_once_and_fetched_again(server, index):
    first = build(server, index, "fromsrc")
    sdist = next(p for p in index.builder.files_dir.iterdir() if p.name.startswith("fromsrc-") and p.suffix == ".gz")
    data = sdist.read_bytes()
    digest = common_pb2.Digest(hash=hashlib.sha256(data).hexdigest(), size_bytes=len(data))
    assert blob_file(server, digest).exists()
    corrupt(server, digest)
    with pytest.raises(grpc.RpcError) as error:
        build(server, index, "fromsrc", "other")
    assert error.value.code() == grpc.StatusCode.DATA_LOSS, error.value.details()
    assert missing(server, digest)
    again = build(server, index, "fromsrc", "other")
    assert again.wheels[0].digest == first.wheels[0].digest or again.wheels[1].digest == first.wheels[0].digest


def test_documented_http_paths_serve(server, index):
    """artifact.proto documents <base>blobs/<hex>/<size>/<filename> and <base>wheelhouse/<lock key>/simple/."""
    result = build(server, index, "other")
    assert result.http_base_url == server.http_url
    wheel = result.wheels[0]
    blob = f"{result.http_base_url}blobs/{wheel.digest.hash}/{wheel.digest.size_bytes}/{wheel.filename}"
    assert wheel.http_url == blob
    status, body, complete = http_fetch(blob)
    assert status == 200 and complete and hashlib.sha256(body).hexdigest() == wheel.digest.hash
    status, body, _ = http_fetch(f"{result.http_base_url}wheelhouse/{result.lock_key}/simple/")
    assert status == 200 and b'href="other/"' in body


def test_artifact_service_is_its_own_service_with_health_and_reflection(server, index):
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    health = health_pb2_grpc.HealthStub(server.channel)
    answer = health.Check(health_pb2.HealthCheckRequest(service="venvsmith.v1.ArtifactService"), timeout=10)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING
    refl = reflection_pb2_grpc.ServerReflectionStub(server.channel)
    listed = next(refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
    names = {s.name for s in listed.list_services_response.service}
    assert {"venvsmith.v1.ArtifactService", "venvsmith.v1.BuilderService"} <= names
    methods = {m.name for m in builder_pb2.DESCRIPTOR.services_by_name["BuilderService"].methods}
    assert not methods & {"GetArtifact", "StatArtifacts"}  # moved, not duplicated


def test_stat_artifacts_is_bounded(server):
    digest = common_pb2.Digest(hash=hashlib.sha256(b"").hexdigest(), size_bytes=0)
    with pytest.raises(grpc.RpcError) as error:
        server.artifacts.StatArtifacts(artifact_pb2.StatArtifactsRequest(digests=[digest] * 10_001), timeout=30)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "10000" in error.value.details()
