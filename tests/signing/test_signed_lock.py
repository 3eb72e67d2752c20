"""The resolver signs lock documents; a client with trusted keys refuses anything else."""

from __future__ import annotations

import subprocess

import pytest

from resolver_service.engine import EngineSettings, ResolverEngine
from tests.fixtures.builder_server import ResolverProcess, cli, hermetic_env
from tests.signing.keys import write_keypair
from venvsmith.core.config import PipIndexConfig
from venvsmith.core.signed_lock import check_response
from venvsmith.core.signing import KeyFileError, UntrustedAnswer, load_signer, load_trusted_keys
from venvsmith.v1 import common_pb2, resolver_pb2


@pytest.fixture
def keys(tmp_path):
    return write_keypair(tmp_path / "keys", "good"), write_keypair(tmp_path / "keys", "other")


def _signed_answer(tmp_path, index_builder, private):
    index_builder.add("beta", "1.0")
    index_builder.add("alpha", "1.0", deps=["beta>=1"])
    engine = ResolverEngine(EngineSettings(home=tmp_path / "home", pip=PipIndexConfig(),
                                           signer=load_signer(str(private))))
    try:
        return engine.resolve(resolver_pb2.ResolveRequest(
            requirements=["alpha"], index=common_pb2.IndexConfig(index_url=index_builder.simple_url())))
    finally:
        engine.close()


def test_a_signed_answer_verifies_and_a_tampered_one_is_refused(tmp_path, index_builder, keys):
    (private, public), (_, other_public) = keys
    response = _signed_answer(tmp_path, index_builder, private)
    assert response.signature.key_id and len(response.signature.ed25519) == 64
    check_response(response, load_trusted_keys([str(public)]))

    with pytest.raises(UntrustedAnswer, match="not a trusted key"):
        check_response(response, load_trusted_keys([str(other_public)]))

    tampered = resolver_pb2.ResolveResponse.FromString(response.SerializeToString())
    tampered.pins[0].sha256 = "0" * 64  # the evil build's hash
    with pytest.raises(UntrustedAnswer, match="bad signature"):
        check_response(tampered, load_trusted_keys([str(public)]))

    tampered = resolver_pb2.ResolveResponse.FromString(response.SerializeToString())
    tampered.pylock_toml += "\n# more\n"
    with pytest.raises(UntrustedAnswer, match="bad signature"):
        check_response(tampered, load_trusted_keys([str(public)]))

    unsigned = resolver_pb2.ResolveResponse.FromString(response.SerializeToString())
    unsigned.ClearField("signature")
    with pytest.raises(UntrustedAnswer, match="not signed"):
        check_response(unsigned, load_trusted_keys([str(public)]))


BAD_PEM = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"


@pytest.mark.parametrize("content", [b"", b"not a key\n", BAD_PEM])
def test_bad_key_files_name_the_file(tmp_path, content):
    path = tmp_path / "bad.key"
    path.write_bytes(content)
    with pytest.raises(KeyFileError, match="bad.key"):
        load_signer(str(path))
    with pytest.raises(KeyFileError, match="bad.key"):
        load_trusted_keys([str(path)])
    with pytest.raises(KeyFileError, match="missing.key"):
        load_signer(str(tmp_path / "missing.key"))


def test_raw_keys_are_accepted(tmp_path):
    from cryptography.hazmat.primitives import serialization

    signer = load_signer(str(write_keypair(tmp_path, "k")[0]))
    raw = signer.private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    (tmp_path / "raw.pub").write_bytes(raw)
    (tmp_path / "hex.pub").write_text(raw.hex() + "\n")
    trusted = load_trusted_keys([str(tmp_path / "raw.pub"), str(tmp_path / "hex.pub")])
    assert trusted.key_ids == (signer.key_id,)


@pytest.mark.slow
def test_cli_requires_a_trusted_signature_from_the_server(tmp_path, index_server, index_builder, keys):
    (private, public), (_, other_public) = keys
    index_builder.add("beta", "1.0")
    index = index_server()
    home = tmp_path / "client"
    home.mkdir()

    def resolve(server, *trusted):
        argv = cli("resolve", "beta", "--server", server.address, "--index-url", index.url, "--format", "json")
        for key in trusted:
            argv += ["--trusted-key", str(key)]
        return subprocess.run(argv, env=hermetic_env(home), capture_output=True, text=True, timeout=120)

    with ResolverProcess(tmp_path / "signed", "--signing-key", str(private), allow=[index.base_url]) as signed:
        ok = resolve(signed, other_public, public)
        assert ok.returncode == 0, ok.stderr
        assert '"beta"' in ok.stdout
        wrong = resolve(signed, other_public)
        assert wrong.returncode == 1 and "not a trusted key" in wrong.stderr, wrong.stderr
        assert wrong.stdout == ""
    with ResolverProcess(tmp_path / "unsigned", allow=[index.base_url]) as unsigned:
        refused = resolve(unsigned, public)
        assert refused.returncode == 1 and "not signed" in refused.stderr, refused.stderr
        assert resolve(unsigned).returncode == 0

    bad = tmp_path / "bad.pub"
    bad.write_text("nonsense\n")
    with ResolverProcess(tmp_path / "signed2", "--signing-key", str(private), allow=[index.base_url]) as signed:
        result = resolve(signed, bad)
        assert result.returncode == 2 and "bad.pub" in result.stderr, result.stderr
    served = subprocess.run(cli("serve", "resolver", "--port", "0", "--signing-key", str(bad)),
                            env=hermetic_env(home), capture_output=True, text=True, timeout=60)
    assert served.returncode == 2 and "--signing-key" in served.stderr and "bad.pub" in served.stderr, served.stderr
