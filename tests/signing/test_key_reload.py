"""Signing keys and trusted keys are re-read when their files change (rotation without restart); a bad new file
keeps the previous key and logs an error."""

from __future__ import annotations

import logging
import os
import subprocess

import pytest

from tests.fixtures.builder_server import ResolverProcess, cli, hermetic_env
from tests.signing.keys import write_keypair
from venvsmith.core.signing import KeyFileError, SigningKeyFile, TrustedKeyFiles, load_signer


def _rotate(src, dest) -> None:
    """Replace ``dest`` by ``src``'s content the way a mounted Secret changes: a new file renamed over it."""
    tmp = dest.with_suffix(".new")
    tmp.write_bytes(src.read_bytes())
    os.replace(tmp, dest)


def test_a_changed_signing_key_file_is_used_and_a_bad_one_keeps_the_old_key(tmp_path, caplog):
    (a_priv, _), (b_priv, _) = write_keypair(tmp_path, "a"), write_keypair(tmp_path, "b")
    live = tmp_path / "live.key"
    _rotate(a_priv, live)
    signer = SigningKeyFile(str(live))
    assert signer.sign(b"x")[0] == load_signer(str(a_priv)).key_id
    _rotate(b_priv, live)
    b_id = load_signer(str(b_priv)).key_id
    assert signer.sign(b"x")[0] == b_id and signer.key_id == b_id
    live.with_suffix(".new").write_text("half-written\n")
    os.replace(live.with_suffix(".new"), live)
    with caplog.at_level(logging.ERROR):
        assert signer.sign(b"x")[0] == b_id
    assert "live.key" in caplog.text and "keeping" in caplog.text
    live.unlink()
    assert signer.sign(b"x")[0] == b_id  # gone: still the last good key


def test_a_bad_signing_key_file_at_start_is_an_error():
    with pytest.raises(KeyFileError):
        SigningKeyFile("/nonexistent/venvsmith.key")


def test_trusted_key_files_follow_their_files(tmp_path, caplog):
    (a_priv, a_pub), (b_priv, b_pub) = write_keypair(tmp_path, "a"), write_keypair(tmp_path, "b")
    live = tmp_path / "live.pub"
    _rotate(a_pub, live)
    trusted = TrustedKeyFiles([str(live)])
    a, b = load_signer(str(a_priv)), load_signer(str(b_priv))
    assert trusted.accepts(b"p", *a.sign(b"p")) and not trusted.accepts(b"p", *b.sign(b"p"))
    _rotate(b_pub, live)
    assert trusted.accepts(b"p", *b.sign(b"p")) and not trusted.accepts(b"p", *a.sign(b"p"))
    live.write_text("nonsense\n")
    os.utime(live, ns=(1, 1))
    with caplog.at_level(logging.ERROR):
        assert trusted.accepts(b"p", *b.sign(b"p"))
    assert "live.pub" in caplog.text
    assert trusted.key_ids == (b.key_id,)


@pytest.mark.slow
def test_a_running_resolver_signs_with_the_rotated_key(tmp_path, index_server, index_builder):
    index_builder.add("beta", "1.0")
    index = index_server()
    (old_priv, old_pub), (new_priv, new_pub) = write_keypair(tmp_path, "old"), write_keypair(tmp_path, "new")
    live = tmp_path / "signing.key"
    _rotate(old_priv, live)
    home = tmp_path / "client"
    home.mkdir()

    def resolve(server, *trusted):
        argv = cli("resolve", "beta", "--server", server.address, "--index-url", index.url)
        for key in trusted:
            argv += ["--trusted-key", str(key)]
        return subprocess.run(argv, env=hermetic_env(home), capture_output=True, text=True, timeout=120)

    with ResolverProcess(tmp_path / "srv", "--signing-key", str(live), allow=[index.base_url]) as server:
        assert resolve(server, old_pub).returncode == 0
        _rotate(new_priv, live)
        overlap = resolve(server, old_pub, new_pub)  # clients trusting both keys during the overlap
        assert overlap.returncode == 0, overlap.stderr
        only_old = resolve(server, old_pub)
        assert only_old.returncode == 1 and "not a trusted key" in only_old.stderr, only_old.stderr
        live.write_text("broken\n")
        kept = resolve(server, new_pub)
        assert kept.returncode == 0, kept.stderr + server.log()
        assert "signing.key" in server.log()
