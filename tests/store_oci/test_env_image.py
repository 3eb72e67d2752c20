"""A built environment as an OCI image: pulled by skopeo, looked up by another builder's store."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import tarfile

import pytest
import zstandard

from builder_service.action_cache import OutputRef
from builder_service.archive import pack
from builder_service.env_image import (
    INDEX_MEDIA,
    LAYER_MEDIA,
    MANIFEST_MEDIA,
    WHEELS_ARTIFACT,
    EnvironmentImages,
    architecture,
)
from builder_service.store.oci import RegistryStore
from builder_service.store.registry import RegistryClient

LOCK_KEY = "ab" * 32
VENV_KEY = "venv:" + "cd" * 32


def _published(tmp_path, registry):
    tree = tmp_path / "venv"
    (tree / "bin").mkdir(parents=True)
    (tree / "bin" / "tool").write_text("#!/bin/sh\necho hi\n")
    (tree / "pyvenv.cfg").write_text("home = /usr/bin\n")
    pack(tree, tmp_path / "venv.tar.zst")
    store = RegistryStore(tmp_path / "a", RegistryClient(f"oci://{registry.host}/acme"))
    archive = OutputRef(store.put_file(tmp_path / "venv.tar.zst"), "application/zstd", "venv_archive", "venv.tar.zst")
    wheel = OutputRef(store.put_bytes(b"PK fake wheel"), "application/zip", "wheel", "a-1.0-py3-none-any.whl")
    image = EnvironmentImages(store).publish(LOCK_KEY, VENV_KEY, archive, [wheel], "/usr/bin/python3")
    return store, archive, wheel, image


def _skopeo(*args: str) -> bytes:
    if shutil.which("skopeo") is None:
        pytest.fail("skopeo is not installed: run `make registry-tools`")
    return subprocess.run(["skopeo", *args], check=True, capture_output=True, timeout=120).stdout


def test_skopeo_pulls_the_environment_image_and_its_layer_is_the_venv_archive(registry, tmp_path):
    _store, archive, _wheel, image = _published(tmp_path, registry)
    index = json.loads(_skopeo("inspect", "--tls-verify=false", "--raw",
                               f"docker://{registry.host}/acme/envs:{LOCK_KEY}"))
    assert index["mediaType"] == INDEX_MEDIA
    [entry] = index["manifests"]
    assert entry["digest"] == f"sha256:{image.hash}" and entry["mediaType"] == MANIFEST_MEDIA
    assert entry["platform"] == {"os": "linux", "architecture": architecture()}
    assert entry["annotations"]["io.venvsmith.venv-key"] == VENV_KEY
    assert entry["annotations"]["io.venvsmith.interpreter"] == "/usr/bin/python3"
    raw = _skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{registry.host}/acme/envs@sha256:{image.hash}")
    manifest = json.loads(raw)
    assert hashlib.sha256(raw).hexdigest() == image.hash
    assert manifest["mediaType"] == MANIFEST_MEDIA
    assert [(lay["mediaType"], lay["digest"]) for lay in manifest["layers"]] == [
        (LAYER_MEDIA, f"sha256:{archive.digest.hash}")]
    assert manifest["annotations"]["io.venvsmith.lock-key"] == LOCK_KEY
    out = tmp_path / "pulled"
    # the lock key's tag, resolved through its index to this platform's image, as a runtime does
    _skopeo("copy", "--src-tls-verify=false", "--override-arch", architecture(),
            f"docker://{registry.host}/acme/envs:{LOCK_KEY}", f"dir:{out}")
    layer = (out / archive.digest.hash).read_bytes()
    assert hashlib.sha256(layer).hexdigest() == archive.digest.hash
    # a valid tar+zstd layer: the config's diff_id is the uncompressed tar's digest, and it unpacks to the tree
    tar_bytes = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(layer)).read()
    config = json.loads((out / manifest["config"]["digest"].removeprefix("sha256:")).read_bytes())
    assert config["rootfs"]["diff_ids"] == [f"sha256:{hashlib.sha256(tar_bytes).hexdigest()}"]
    assert config["os"] == "linux" and config["architecture"]
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        names = tar.getnames()
        assert tar.extractfile("bin/tool").read() == b"#!/bin/sh\necho hi\n"
    assert all(not n.startswith(("/", "..")) for n in names)


def test_another_builder_finds_the_environment_and_its_wheels(registry, tmp_path):
    _store, archive, wheel, image = _published(tmp_path, registry)
    other = RegistryStore(tmp_path / "b", RegistryClient(f"oci://{registry.host}/acme"))
    images = EnvironmentImages(other)
    found = images.lookup(VENV_KEY)
    assert found is not None and found.archive == archive.digest and found.manifest == image
    assert images.lookup("venv:" + "ee" * 32) is None
    assert images.wheels(image) == [(wheel.filename, wheel.digest)]
    assert not other.cached(archive.digest)
    with other.open(archive.digest) as f:
        assert hashlib.sha256(f.read()).hexdigest() == archive.digest.hash
    referrers = json.loads(_skopeo("inspect", "--tls-verify=false", "--raw",
                                   f"docker://{registry.host}/acme/envs:sha256-{image.hash}"))
    assert referrers["mediaType"] == INDEX_MEDIA
    [entry] = [d for d in referrers["manifests"] if d["artifactType"] == WHEELS_ARTIFACT]
    referrer = json.loads(_skopeo("inspect", "--tls-verify=false", "--raw",
                                  f"docker://{registry.host}/acme/envs@{entry['digest']}"))
    assert referrer["artifactType"] == WHEELS_ARTIFACT and referrer["subject"]["digest"] == f"sha256:{image.hash}"
