"""Two builder processes sharing one OCI registry (``serve builder --store oci://...``): B serves the environment
A built without building it; standard tools (skopeo) pull the environment image; registry down -> UNAVAILABLE
naming the registry for what the local cache lacks."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.builder_server import BuilderProcess, free_port
from tests.fixtures.index import IndexBuilder, IndexServer
from venvsmith.v1 import artifact_pb2, builder_pb2, common_pb2, resolver_pb2

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Iterator[IndexServer]:
    b = IndexBuilder(tmp_path_factory.mktemp("oci-index"))
    b.add("small", "1.0")
    with IndexServer(b) as server:
        yield server


def build(server: BuilderProcess, index: IndexServer, *reqs: str, compile_bytecode: bool = False
          ) -> builder_pb2.BuildResult:
    config = common_pb2.IndexConfig(index_url=index.url)
    request = builder_pb2.ResolveAndBuildRequest(
        resolve=resolver_pb2.ResolveRequest(requirements=list(reqs), index=config),
        options=builder_pb2.BuildOptions(wheels=True, venv_archive=True, index=config,
                                         compile_bytecode=compile_bytecode),
    )
    result = None
    for event in server.stub.ResolveAndBuild(request, timeout=120):
        if event.WhichOneof("event") == "build" and event.build.WhichOneof("event") == "result":
            result = event.build.result
    assert result is not None
    return result


def venv_builds(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return sum(s.value for family in text_string_to_metric_families(text) for s in family.samples
               if s.name == "venvsmith_build_duration_seconds_count" and s.labels.get("kind") == "venv")


def read_all(server: BuilderProcess, digest: common_pb2.Digest) -> bytes:
    chunks = server.artifacts.GetArtifact(artifact_pb2.GetArtifactRequest(digest=digest), timeout=60)
    return b"".join(c.data for c in chunks)


def test_replica_b_serves_the_environment_replica_a_built(tmp_path, index, registry):
    store = f"oci://{registry.host}/fleet"
    port_a, port_b = free_port(), free_port()
    with BuilderProcess(tmp_path / "a", "--store", store, "--metrics-port", str(port_a),
                        allow=[index.base_url]) as a:
        built = build(a, index, "small")
        assert venv_builds(port_a) == 1 and built.stats.venv_built
    with BuilderProcess(tmp_path / "b", "--store", store, "--metrics-port", str(port_b),
                        allow=[index.base_url]) as b:
        served = build(b, index, "small")
        assert venv_builds(port_b) == 0, b.log()  # not rebuilt: the registry's image was used
        assert served.venv_archive.digest == built.venv_archive.digest
        # the stats tell the same: no venv built, no wheel downloaded from the index by B
        assert not served.stats.venv_built and served.stats.wheels_downloaded == 0, served.stats
        data = read_all(b, served.venv_archive.digest)
        assert len(data) == built.venv_archive.digest.size_bytes
    if shutil.which("skopeo") is None:
        pytest.fail("skopeo is not installed: run `make registry-tools`")
    index_doc = json.loads(subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--raw",
                                           f"docker://{registry.host}/fleet/envs:{built.lock_key}"],
                                          check=True, capture_output=True, timeout=120).stdout)
    [entry] = index_doc["manifests"]  # the lock key's index: one environment so far
    raw = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--raw",
                          f"docker://{registry.host}/fleet/envs@{entry['digest']}"],
                         check=True, capture_output=True, timeout=120).stdout
    layers = json.loads(raw)["layers"]
    assert [lay["digest"] for lay in layers] == [f"sha256:{built.venv_archive.digest.hash}"]
    assert layers[0]["mediaType"] == "application/vnd.oci.image.layer.v1.tar+zstd"


def test_registry_down_builds_locally_and_pushes_when_it_returns(tmp_path, index, registry):
    store = f"oci://{registry.host}/fleet"
    registry.stop()
    with BuilderProcess(tmp_path / "a", "--store", store, allow=[index.base_url]) as a:
        built = build(a, index, "small")  # the build succeeds locally
        assert read_all(a, built.venv_archive.digest)  # served from the local cache
        assert list((tmp_path / "a" / "store" / "pending-images").glob("*.json"))
    with BuilderProcess(tmp_path / "b", "--store", store, allow=[index.base_url]) as b:
        with pytest.raises(grpc.RpcError) as info:
            read_all(b, built.venv_archive.digest)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert registry.host in info.value.details()
        # the HTTP endpoint says the same (503 naming the registry), not that there is no such blob
        digest = built.venv_archive.digest
        with pytest.raises(urllib.error.HTTPError) as http_info:
            urllib.request.urlopen(f"{b.http_url}/blobs/{digest.hash}/{digest.size_bytes}/venv.tar.zst", timeout=30)
        assert http_info.value.code == 503 and registry.host in http_info.value.read().decode()
    registry.start()
    # A restarted: its queue (on disk) is flushed by the pusher's first round.
    with BuilderProcess(tmp_path / "a", "--store", store, allow=[index.base_url]):
        _wait_until_empty(tmp_path / "a" / "store" / "pending-images")
    with BuilderProcess(tmp_path / "c", "--store", store, allow=[index.base_url]) as c:
        assert read_all(c, built.venv_archive.digest)


def _wait_until_empty(directory) -> None:
    import time

    for _ in range(600):
        if not list(directory.glob("*.json")):
            return
        time.sleep(0.1)
    raise AssertionError(f"{directory} was never flushed")


def test_a_trusting_replica_uses_the_signed_image_and_builds_locally_when_its_lock_document_was_altered(
        tmp_path, index, registry):
    """Builders with --signing-key/--trusted-key: the image carries the lock document (pylock.toml from the
    resolution, both signatures); B uses it; after someone with write access to the registry alters the signed
    statement, C refuses the image and builds the environment itself."""
    import base64

    from builder_service.digest import Digest
    from builder_service.env_image import INDEX_MEDIA, LOCK_ARTIFACT, MANIFEST_MEDIA
    from builder_service.registry_actions import action_tag
    from builder_service.store.registry import RegistryClient
    from tests.signing.keys import write_keypair

    private, public = write_keypair(tmp_path / "keys", "builder")
    store = f"oci://{registry.host}/fleet"
    keys = ("--signing-key", str(private), "--trusted-key", str(public))
    ports = [free_port() for _ in range(3)]
    with BuilderProcess(tmp_path / "a", "--store", store, *keys, "--metrics-port", str(ports[0]),
                        allow=[index.base_url]) as a:
        built = build(a, index, "small")
    client = RegistryClient(store)
    found = client.get_manifest("fleet/envs", built.lock_key, (INDEX_MEDIA,))
    assert found is not None
    [entry] = json.loads(found[0])["manifests"]
    image = entry["digest"].removeprefix("sha256:")
    referrers = json.loads(client.get_manifest("fleet/envs", f"sha256-{image}", (INDEX_MEDIA,))[0])
    [lock_entry] = [d for d in referrers["manifests"] if d["artifactType"] == LOCK_ARTIFACT]
    lock = json.loads(client.get_manifest("fleet/envs", lock_entry["digest"], (MANIFEST_MEDIA,))[0])
    roles = {lay["annotations"].get("io.venvsmith.statement") for lay in lock["layers"]}
    assert roles >= {"build", "resolution"}  # the embedded resolver signed its answer too
    assert any(lay["annotations"]["org.opencontainers.image.title"] == "pylock.toml" for lay in lock["layers"])
    with BuilderProcess(tmp_path / "b", "--store", store, "--trusted-key", str(public), "--metrics-port",
                        str(ports[1]), allow=[index.base_url]) as b:
        assert build(b, index, "small").venv_archive.digest == built.venv_archive.digest
        assert venv_builds(ports[1]) == 0, b.log()  # the signed image was used
    # tamper: the build statement's signature replaced (a forged one under the trusted key id)
    for lay in lock["layers"]:
        if lay["annotations"].get("io.venvsmith.statement") == "build":
            lay["annotations"]["io.venvsmith.signature.ed25519"] = base64.b64encode(b"\0" * 64).decode()
    body = json.dumps(lock).encode()
    forged = client.put_manifest("fleet/envs", "sha256:" + __import__("hashlib").sha256(body).hexdigest(), body,
                                 MANIFEST_MEDIA)
    lock_entry.update(digest=f"sha256:{forged.hash}", size=forged.size_bytes)
    client.put_manifest("fleet/envs", f"sha256-{image}", json.dumps(referrers).encode(), INDEX_MEDIA)
    # and the venv's action result in REPO-PREFIX/actions (the other way a replica finds it): signature forged too
    venv_key = entry["annotations"]["io.venvsmith.venv-key"]
    action = json.loads(client.get_manifest("fleet/actions", action_tag(venv_key), (MANIFEST_MEDIA,))[0])
    config = bytearray()
    client.pull_blob("fleet/actions", Digest(action["config"]["digest"].removeprefix("sha256:"),
                                             action["config"]["size"]), config.extend)
    doc = json.loads(bytes(config))
    doc["signature"] = base64.b64encode(b"\0" * 64).decode()
    forged_config = client.push_bytes("fleet/actions", json.dumps(doc).encode())
    action["config"].update(digest=f"sha256:{forged_config.hash}", size=forged_config.size_bytes)
    client.put_manifest("fleet/actions", action_tag(venv_key), json.dumps(action).encode(), MANIFEST_MEDIA)
    with BuilderProcess(tmp_path / "c", "--store", store, "--trusted-key", str(public), "--metrics-port",
                        str(ports[2]), allow=[index.base_url]) as c:
        rebuilt = build(c, index, "small")
        assert venv_builds(ports[2]) == 1, c.log()  # refused the altered image: built here
        assert "bad signature" in c.log()
    assert rebuilt.venv_archive.digest == built.venv_archive.digest  # deterministic: the same archive


def test_one_lock_key_two_option_sets_one_index_and_skopeo_pulls_each_by_digest(tmp_path, index, registry):
    store = f"oci://{registry.host}/fleet"
    with BuilderProcess(tmp_path / "a", "--store", store, allow=[index.base_url]) as a:
        plain = build(a, index, "small")
    with BuilderProcess(tmp_path / "b", "--store", store, allow=[index.base_url]) as b:  # another replica
        compiled = build(b, index, "small", compile_bytecode=True)
    assert plain.lock_key == compiled.lock_key and plain.venv_archive.digest != compiled.venv_archive.digest
    if shutil.which("skopeo") is None:
        pytest.fail("skopeo is not installed: run `make registry-tools`")

    def skopeo(*args: str) -> bytes:
        return subprocess.run(["skopeo", *args], check=True, capture_output=True, timeout=120).stdout

    index_doc = json.loads(skopeo("inspect", "--tls-verify=false", "--raw",
                                  f"docker://{registry.host}/fleet/envs:{plain.lock_key}"))
    assert index_doc["mediaType"] == "application/vnd.oci.image.index.v1+json"
    entries = {d["annotations"]["io.venvsmith.compile-bytecode"]: d for d in index_doc["manifests"]}
    assert set(entries) == {"true", "false"}
    for flag, result in (("false", plain), ("true", compiled)):
        entry = entries[flag]
        assert entry["platform"]["os"] == "linux" and entry["platform"]["architecture"]
        assert entry["annotations"]["io.venvsmith.interpreter"] == result.interpreter.path
        assert entry["annotations"]["io.venvsmith.python-version"] == result.interpreter.version
        out = tmp_path / f"pulled-{flag}"
        skopeo("copy", "--src-tls-verify=false", f"docker://{registry.host}/fleet/envs@{entry['digest']}",
               f"dir:{out}")
        assert (out / result.venv_archive.digest.hash).stat().st_size == result.venv_archive.digest.size_bytes
