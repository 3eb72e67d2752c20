"""The distribution-API client against a real registry (Debian's docker-registry) on 127.0.0.1."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builder_service.digest import Digest
from builder_service.errors import BlobNotFound, DigestMismatch, RegistryUnavailable
from builder_service.store.registry import RegistryClient, RegistryError, RegistryURL
from tests.fixtures.registry import RegistryProcess, TokenService, self_signed_tls


def test_url_parsing_and_transport_choice():
    u = RegistryURL.parse("oci://ci:pw@127.0.0.1:5000/team/venvsmith")
    assert (u.host, u.prefix, u.username, u.password) == ("127.0.0.1:5000", "team/venvsmith", "ci", "pw")
    assert u.base == "http://127.0.0.1:5000" and str(u) == "127.0.0.1:5000/team/venvsmith"
    assert RegistryURL.parse("oci://registry.example:443/p").base == "https://registry.example:443"
    for bad in ("http://h/p", "oci:///p", "oci://h/UPPER", "oci://h/"):
        with pytest.raises(ValueError):
            RegistryURL.parse(bad)


def _blob(tmp_path, data: bytes):
    path = tmp_path / "blob"
    path.write_bytes(data)
    return Digest.of_bytes(data), path


def test_monolithic_push_head_and_verified_pull(registry, tmp_path):
    client = RegistryClient(f"oci://{registry.host}/acme")
    repo = client.repository("blobs")
    digest, path = _blob(tmp_path, b"hello wheel")
    assert not client.has_blob(repo, digest)
    assert client.push_blob(repo, digest, path)
    assert client.has_blob(repo, digest)
    assert not client.push_blob(repo, digest, path)  # already there: nothing sent
    got = bytearray()
    client.pull_blob(repo, digest, got.extend)
    assert bytes(got) == b"hello wheel"
    with pytest.raises(BlobNotFound):
        client.pull_blob(repo, Digest.of_bytes(b"other"), got.extend)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=st.integers(0, 3000), chunk=st.integers(1, 700))
def test_chunked_push_round_trips(registry, tmp_path, size, chunk):
    client = RegistryClient(f"oci://{registry.host}/acme", chunk_bytes=chunk)
    data = os.urandom(size)
    digest, path = _blob(tmp_path, data)
    client.push_blob(client.repository("blobs"), digest, path)
    got = bytearray()
    client.pull_blob(client.repository("blobs"), digest, got.extend)
    assert bytes(got) == data


def test_pull_verifies_the_digest(registry, tmp_path):
    client = RegistryClient(f"oci://{registry.host}/acme")
    repo = client.repository("blobs")
    digest, path = _blob(tmp_path, b"genuine bytes")
    client.push_blob(repo, digest, path)
    # the registry's own copy is corrupted on disk (same length)
    stored = (registry.root / "data").rglob("data")
    data_files = [p for p in stored if p.is_file() and p.read_bytes() == b"genuine bytes"]
    assert data_files
    data_files[0].write_bytes(b"GENUINE BYTES")
    with pytest.raises(DigestMismatch):
        client.pull_blob(repo, digest, bytearray().extend)


def test_manifest_round_trip(registry):
    client = RegistryClient(f"oci://{registry.host}/acme")
    repo = client.repository("envs")
    config = client.push_bytes(repo, b"{}")
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": f"sha256:{config.hash}", "size": config.size_bytes},
                           "layers": []}).encode()
    d = client.put_manifest(repo, "v1", manifest, "application/vnd.oci.image.manifest.v1+json")
    body, media = client.get_manifest(repo, "v1", ("application/vnd.oci.image.manifest.v1+json",))
    assert body == manifest and media == "application/vnd.oci.image.manifest.v1+json"
    assert client.get_manifest(repo, f"sha256:{d.hash}", ("application/vnd.oci.image.manifest.v1+json",))
    assert client.get_manifest(repo, "missing", ("application/vnd.oci.image.manifest.v1+json",)) is None


def test_basic_auth(tmp_path):
    with RegistryProcess(tmp_path / "reg", users={"ci": "s3cret"}) as registry:
        digest, path = _blob(tmp_path, b"private")
        anonymous = RegistryClient(f"oci://{registry.host}/acme")
        with pytest.raises(RegistryError, match="401"):
            anonymous.has_blob(anonymous.repository("blobs"), digest)
        wrong = RegistryClient(f"oci://ci:nope@{registry.host}/acme")
        with pytest.raises(RegistryError, match="401"):
            wrong.has_blob(wrong.repository("blobs"), digest)
        client = RegistryClient(f"oci://ci:s3cret@{registry.host}/acme")
        client.push_blob(client.repository("blobs"), digest, path)
        assert client.has_blob(client.repository("blobs"), digest)


def test_registry_down_is_unavailable_naming_it(tmp_path):
    registry = RegistryProcess(tmp_path / "reg")  # never started: nothing listens on its port
    client = RegistryClient(f"oci://{registry.host}/acme")
    with pytest.raises(RegistryUnavailable) as info:
        client.has_blob(client.repository("blobs"), Digest.of_bytes(b"x"))
    assert info.value.registry == f"{registry.host}/acme"
    assert info.value.details().metadata["registry"] == f"{registry.host}/acme"


def test_bearer_token_challenge(tmp_path):
    token = TokenService(tmp_path / "tokens", {"ci": "s3cret"}).start()
    try:
        with RegistryProcess(tmp_path / "reg", token=token) as registry:
            digest, path = _blob(tmp_path, b"behind a token service")
            wrong = RegistryClient(f"oci://ci:nope@{registry.host}/acme")
            with pytest.raises(RegistryError, match="401"):
                wrong.has_blob(wrong.repository("blobs"), digest)
            assert token.issued == []
            client = RegistryClient(f"oci://ci:s3cret@{registry.host}/acme")
            repo = client.repository("blobs")
            assert client.push_blob(repo, digest, path)
            got = bytearray()
            client.pull_blob(repo, digest, got.extend)
            assert bytes(got) == b"behind a token service"
            # the push went through a token the registry's challenge scoped to this repository, with push
            assert any(s.startswith(f"repository:{repo}:") and "push" in s.split(":")[-1].split(",")
                       for s in token.issued), token.issued
    finally:
        token.stop()


def test_https_with_a_ca_file(tmp_path):
    tls = self_signed_tls(tmp_path / "tls")
    with RegistryProcess(tmp_path / "reg", tls=tls) as registry:
        digest, path = _blob(tmp_path, b"over TLS")
        client = RegistryClient(f"oci://{registry.host}/acme", ca_file=tls[0])
        assert client.base == f"https://{registry.host}"
        client.push_blob(client.repository("blobs"), digest, path)
        got = bytearray()
        client.pull_blob(client.repository("blobs"), digest, got.extend)
        assert bytes(got) == b"over TLS"
        other_ca = self_signed_tls(tmp_path / "other")[0]
        untrusting = RegistryClient(f"oci://{registry.host}/acme", ca_file=other_ca)
        with pytest.raises(RegistryUnavailable, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
            untrusting.has_blob(untrusting.repository("blobs"), digest)
        plain = RegistryClient(f"oci://{registry.host}/acme")  # loopback without a CA file: plain HTTP, refused
        with pytest.raises((RegistryUnavailable, RegistryError)):
            plain.has_blob(plain.repository("blobs"), digest)
