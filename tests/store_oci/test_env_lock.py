"""An environment image's lock document (a referrer: lock files and signed statements) and the lock key's index of
environments: fetched with skopeo, checked by a builder with trusted keys, merged across replicas."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import threading

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from builder_service.action_cache import OutputRef
from builder_service.archive import pack
from builder_service.env_image import INDEX_MEDIA, LOCK_ARTIFACT, MANIFEST_MEDIA, EnvironmentImages, venv_tag
from builder_service.env_lock import PYLOCK_MEDIA, REQUIREMENTS_MEDIA, STATEMENT_MEDIA, LockInputs, resolution_document
from builder_service.store.oci import RegistryStore
from builder_service.store.registry import RegistryClient
from builder_service.venv_key import VenvKey
from venvsmith.core.interpreters import BaseInterpreter
from venvsmith.core.signed_lock import response_payload, sign_response
from venvsmith.core.signing import Signer, TrustedKeys
from venvsmith.v1 import common_pb2, resolver_pb2

LOCK_KEY = "ab" * 32
BASE = BaseInterpreter("/usr/bin/python3", "3.11.2", "cpython", "ee" * 32)
BUILDER = Signer.from_private(Ed25519PrivateKey.generate())
RESOLVER = Signer.from_private(Ed25519PrivateKey.generate())
OTHER = Signer.from_private(Ed25519PrivateKey.generate())


def _skopeo(*args: str) -> bytes:
    if shutil.which("skopeo") is None:
        pytest.fail("skopeo is not installed: run `make registry-tools`")
    return subprocess.run(["skopeo", *args], check=True, capture_output=True, timeout=120).stdout


def _store(tmp_path, registry, name: str) -> RegistryStore:
    return RegistryStore(tmp_path / name, RegistryClient(f"oci://{registry.host}/acme"))


def _archive(tmp_path, store: RegistryStore, text: str) -> OutputRef:
    tree = tmp_path / f"venv-{text}"
    (tree / "bin").mkdir(parents=True, exist_ok=True)
    (tree / "bin" / "tool").write_text(f"#!/bin/sh\necho {text}\n")
    pack(tree, tmp_path / f"{text}.tar.zst")
    return OutputRef(store.put_file(tmp_path / f"{text}.tar.zst"), "application/zstd", "venv_archive",
                     f"{text}.tar.zst")


def _response() -> resolver_pb2.ResolveResponse:
    response = resolver_pb2.ResolveResponse(
        lock_key=LOCK_KEY, requirements_txt="a==1.0 --hash=sha256:" + "11" * 32 + "\n",
        pylock_toml='lock-version = "1.0"\n[[packages]]\nname = "a"\nversion = "1.0"\n',
        environment=common_pb2.TargetEnvironment(markers={"python_version": "3.11"}, tags=["py3-none-any"]))
    sign_response(response, RESOLVER)
    return response


def _publish(tmp_path, registry, *, signer=BUILDER, compile_bytecode=False, name="a", text="hi"):
    store = _store(tmp_path, registry, name)
    archive = _archive(tmp_path, store, text)
    wheel = OutputRef(store.put_bytes(b"PK fake wheel"), "application/zip", "wheel", "a-1.0-py3-none-any.whl")
    lock_file = OutputRef(store.put_bytes(b"a==1.0\n"), "text/plain; charset=utf-8", "lock_file",
                          f"requirements-{LOCK_KEY[:16]}.txt")
    key = VenvKey(LOCK_KEY, BASE, compile_bytecode)
    images = EnvironmentImages(store, signer=signer)
    images.publish_or_queue(key, archive, [wheel], target_digest="cd" * 32,
                            lock=LockInputs(lock_file, resolution_document(store, _response())))
    found = images.lookup(key.key())
    assert found is not None and found.archive == archive.digest
    return key, archive, found.manifest, store


def _reader(tmp_path, registry, trusted: TrustedKeys | None) -> EnvironmentImages:
    return EnvironmentImages(_store(tmp_path, registry, "reader"), trusted=trusted)


def _lock_referrer(registry, image) -> tuple[dict, str]:
    client = RegistryClient(f"oci://{registry.host}/acme")
    body, _ = client.get_manifest("acme/envs", f"sha256-{image.hash}", (INDEX_MEDIA,))
    [entry] = [d for d in json.loads(body)["manifests"] if d["artifactType"] == LOCK_ARTIFACT]
    doc, _ = client.get_manifest("acme/envs", entry["digest"], (MANIFEST_MEDIA,))
    return json.loads(doc), entry["digest"]


def test_skopeo_fetches_the_lock_document_and_its_signatures_verify(registry, tmp_path):
    _key, archive, image, _store_a = _publish(tmp_path, registry)
    host = registry.host
    referrers = json.loads(_skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{host}/acme/envs:sha256-{image.hash}"))
    [entry] = [d for d in referrers["manifests"] if d.get("artifactType") == LOCK_ARTIFACT]
    out = tmp_path / "lock"
    _skopeo("copy", "--src-tls-verify=false", f"docker://{host}/acme/envs@{entry['digest']}", f"dir:{out}")
    manifest = json.loads((out / "manifest.json").read_bytes())
    assert manifest["artifactType"] == LOCK_ARTIFACT and manifest["subject"]["digest"] == f"sha256:{image.hash}"
    by_media: dict[str, list[dict]] = {}
    for layer in manifest["layers"]:
        by_media.setdefault(layer["mediaType"], []).append(layer)

    def blob(layer: dict) -> bytes:
        return (out / layer["digest"].removeprefix("sha256:")).read_bytes()

    assert sorted(blob(lay) for lay in by_media[REQUIREMENTS_MEDIA]) == sorted(
        [b"a==1.0\n", _response().requirements_txt.encode()])
    assert blob(by_media[PYLOCK_MEDIA][0]) == _response().pylock_toml.encode()
    statements = {lay["annotations"]["io.venvsmith.statement"]: lay for lay in by_media[STATEMENT_MEDIA]}
    assert set(statements) == {"build", "resolution"}
    for role, signer in (("build", BUILDER), ("resolution", RESOLVER)):
        ann = statements[role]["annotations"]
        assert ann["io.venvsmith.signature.key-id"] == signer.key_id
        signer.private.public_key().verify(base64.b64decode(ann["io.venvsmith.signature.ed25519"]),
                                           blob(statements[role]))  # raises when it does not verify
    build = json.loads(blob(statements["build"]))
    assert build["format"] == "venvsmith-environment-signature/1"
    venv = next(a for a in build["result"]["artifacts"] if a["field"] == "venv_archive")
    assert (venv["sha256"], venv["size_bytes"]) == (archive.digest.hash, archive.digest.size_bytes)
    assert blob(statements["resolution"]) == response_payload(_response())  # what ResolveResponse.signature signs


def test_a_trusting_builder_uses_an_image_signed_by_a_trusted_key_only(registry, tmp_path):
    key, _archive_ref, _image, _ = _publish(tmp_path, registry)
    public = BUILDER.private.public_key()
    assert _reader(tmp_path, registry, TrustedKeys([public])).lookup(key.key()) is not None
    assert _reader(tmp_path, registry, None).lookup(key.key()) is not None  # no --trusted-key: no check
    assert _reader(tmp_path, registry, TrustedKeys([OTHER.private.public_key()])).lookup(key.key()) is None
    unsigned, _, _, _ = _publish(tmp_path, registry, signer=None, compile_bytecode=True, name="b")
    assert _reader(tmp_path, registry, TrustedKeys([public])).lookup(unsigned.key()) is None


def _tamper(layers: list[dict], store: RegistryStore, what: str) -> None:
    statement = next(lay for lay in layers if lay["annotations"].get("io.venvsmith.statement") == "build")
    ann = statement["annotations"]
    if what == "signature":  # re-signed by a key nobody trusts, under the trusted key's id
        payload = bytearray()
        store.registry.pull_blob("acme/envs", _digest(statement), payload.extend)
        ann["io.venvsmith.signature.ed25519"] = base64.b64encode(OTHER.sign(bytes(payload))[1]).decode()
    elif what == "statement":  # the signed bytes altered (another archive named), the signature kept
        payload = bytearray()
        store.registry.pull_blob("acme/envs", _digest(statement), payload.extend)
        doc = json.loads(payload)
        for a in doc["result"]["artifacts"]:
            if a["field"] == "venv_archive":
                a["sha256"] = "00" * 32
        data = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
        digest = store.registry.push_bytes("acme/envs", data)
        statement.update(digest=f"sha256:{digest.hash}", size=digest.size_bytes)
    elif what == "lock file":  # another requirements file than the one signed
        digest = store.registry.push_bytes("acme/envs", b"evil==6.6.6\n")
        for lay in layers:
            if lay["mediaType"] == REQUIREMENTS_MEDIA:
                lay.update(digest=f"sha256:{digest.hash}", size=digest.size_bytes)
    elif what == "removed":
        layers.remove(statement)


def _digest(layer: dict):
    from builder_service.digest import Digest

    return Digest(layer["digest"].removeprefix("sha256:"), layer["size"])


@pytest.mark.parametrize("what", ["signature", "statement", "lock file", "removed"])
def test_a_trusting_builder_rejects_an_image_whose_lock_document_was_altered(registry, tmp_path, what):
    key, _archive_ref, image, store = _publish(tmp_path, registry)
    trusted = TrustedKeys([BUILDER.private.public_key()])
    referrer, _digest_before = _lock_referrer(registry, image)
    _tamper(referrer["layers"], store, what)
    body = json.dumps(referrer).encode()
    digest = store.registry.put_manifest("acme/envs", f"sha256:{__import__('hashlib').sha256(body).hexdigest()}",
                                         body, MANIFEST_MEDIA)
    index_body, _ = store.registry.get_manifest("acme/envs", f"sha256-{image.hash}", (INDEX_MEDIA,))
    index = json.loads(index_body)
    for d in index["manifests"]:
        if d["artifactType"] == LOCK_ARTIFACT:
            d.update(digest=f"sha256:{digest.hash}", size=digest.size_bytes)
    store.registry.put_manifest("acme/envs", f"sha256-{image.hash}", json.dumps(index).encode(), INDEX_MEDIA)
    assert _reader(tmp_path, registry, trusted).lookup(key.key()) is None
    assert _reader(tmp_path, registry, None).lookup(key.key()) is not None  # the tampering is what was refused


def test_a_trusting_builder_rejects_an_image_whose_layer_was_swapped(registry, tmp_path):
    """The exact tag moved to a manifest naming another archive: the signed statement names the original one."""
    key, _archive_ref, image, store = _publish(tmp_path, registry)
    body, _ = store.registry.get_manifest("acme/envs", venv_tag(key.key()), (MANIFEST_MEDIA,))
    doc = json.loads(body)
    evil = _archive(tmp_path, store, "evil")
    store.registry.push_blob("acme/envs", evil.digest, store.blob_path(evil.digest))
    doc["layers"][0].update(digest=f"sha256:{evil.digest.hash}", size=evil.digest.size_bytes)
    swapped = json.dumps(doc).encode()
    store.registry.put_manifest("acme/envs", venv_tag(key.key()), swapped, MANIFEST_MEDIA)
    # the attacker also copies the original referrers index to the new manifest's referrers tag
    referrers, _ = store.registry.get_manifest("acme/envs", f"sha256-{image.hash}", (INDEX_MEDIA,))
    new_hex = __import__("hashlib").sha256(swapped).hexdigest()
    store.registry.put_manifest("acme/envs", f"sha256-{new_hex}", referrers, INDEX_MEDIA)
    trusted = TrustedKeys([BUILDER.private.public_key()])
    assert _reader(tmp_path, registry, trusted).lookup(key.key()) is None
    assert _reader(tmp_path, registry, None).lookup(key.key()).archive == evil.digest


def test_the_lock_keys_index_lists_each_option_set_and_skopeo_copies_a_chosen_one(registry, tmp_path):
    plain, plain_archive, plain_image, _ = _publish(tmp_path, registry, name="a", text="plain")
    compiled, compiled_archive, compiled_image, _ = _publish(tmp_path, registry, compile_bytecode=True, name="b",
                                                             text="compiled")
    index = json.loads(_skopeo("inspect", "--tls-verify=false", "--raw",
                               f"docker://{registry.host}/acme/envs:{LOCK_KEY}"))
    assert index["mediaType"] == INDEX_MEDIA
    entries = {d["annotations"]["io.venvsmith.compile-bytecode"]: d for d in index["manifests"]}
    assert set(entries) == {"true", "false"}
    assert entries["false"]["digest"] == f"sha256:{plain_image.hash}"
    assert entries["true"]["digest"] == f"sha256:{compiled_image.hash}"
    assert entries["true"]["annotations"]["io.venvsmith.venv-key"] == compiled.key()
    assert entries["true"]["annotations"]["io.venvsmith.python-version"] == BASE.version
    for flag, archive in (("false", plain_archive), ("true", compiled_archive)):
        out = tmp_path / f"pulled-{flag}"
        _skopeo("copy", "--src-tls-verify=false", f"docker://{registry.host}/acme/envs@{entries[flag]['digest']}",
                f"dir:{out}")
        assert (out / archive.digest.hash).is_file()
    assert plain.lock_key == compiled.lock_key


def _publish_plain(store: RegistryStore, tmp_path, n: int) -> str:
    archive = _archive(tmp_path / f"t{n}", store, f"v{n}")
    key = VenvKey(LOCK_KEY, BaseInterpreter(f"/opt/python{n}/bin/python3", f"3.{n}.0", "cpython", f"{n:02d}" * 32),
                  False)
    EnvironmentImages(store).publish_or_queue(key, archive, [])
    return key.key()


def _index_keys(store: RegistryStore) -> set[str]:
    return {d["annotations"]["io.venvsmith.venv-key"] for d in EnvironmentImages(store).index(LOCK_KEY)}


def test_a_lost_index_update_is_repaired_by_the_next_publication(registry, tmp_path):
    a, b = _store(tmp_path, registry, "a"), _store(tmp_path, registry, "b")
    first = _publish_plain(a, tmp_path, 1)
    # a replica that read the index before `first` landed writes it back without it
    stale = {"schemaVersion": 2, "mediaType": INDEX_MEDIA, "manifests": []}
    b.registry.put_manifest("acme/envs", LOCK_KEY, json.dumps(stale).encode(), INDEX_MEDIA)
    assert _index_keys(b) == set()
    second = _publish_plain(b, tmp_path, 2)
    assert _index_keys(b) == {first, second}


def test_concurrent_publications_of_one_lock_key_by_replicas_all_end_in_its_index(registry, tmp_path):
    stores = [_store(tmp_path, registry, f"r{n}") for n in range(6)]
    keys: list[str] = []
    threads = [threading.Thread(target=lambda s=s, n=n: keys.append(_publish_plain(s, tmp_path, n)))
               for n, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(keys) == 6
    keys.append(_publish_plain(stores[0], tmp_path, 7))  # repairs whatever a last concurrent write dropped
    assert _index_keys(stores[0]) == set(keys)
