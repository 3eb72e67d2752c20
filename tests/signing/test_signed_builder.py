"""``serve builder --signing-key/--trusted-key``: the resolution it streams is signed, clients check it, and its
action-cache entries are signed (its own count as hits; a forged one is rebuilt)."""

from __future__ import annotations

import json
import sqlite3
import subprocess

import pytest

from tests.fixtures.builder_server import BuilderProcess, cli, hermetic_env
from tests.signing.keys import write_keypair

pytestmark = pytest.mark.slow


def test_build_and_venv_require_a_trusted_signature(tmp_path, index_server, index_builder):
    index_builder.add("beta", "1.0")
    index = index_server()
    (private, public), (_, other) = (write_keypair(tmp_path / "keys", n) for n in ("builder", "other"))
    home = tmp_path / "client"
    home.mkdir()

    def run(*argv):
        return subprocess.run(cli(*argv), env=hermetic_env(home), capture_output=True, text=True, timeout=180,
                              cwd=tmp_path)

    with BuilderProcess(tmp_path / "srv", "--signing-key", str(private), "--trusted-key", str(public),
                        allow=[index.base_url]) as server:
        build = ("build", "beta", "--server", server.address, "--index-url", index.url, "-q", "--no-venv",
                 "--format", "json")
        first = run(*build, "--trusted-key", str(public))
        assert first.returncode == 0, first.stderr + server.log()
        again = run(*build, "--trusted-key", str(public))
        assert again.returncode == 0 and json.loads(again.stdout)["stats"]["cached"], again.stderr
        refused = run(*build, "--trusted-key", str(other))
        assert refused.returncode == 1 and "not a trusted key" in refused.stderr, refused.stderr
        dest = tmp_path / "venv"
        venv = run("venv", str(dest), "beta", "--server", server.address, "--index-url", index.url, "-q",
                   "--no-verify", "--trusted-key", str(other))
        assert venv.returncode == 1 and "not a trusted key" in venv.stderr, venv.stderr
        assert not dest.exists() or not any(dest.iterdir())
        db = tmp_path / "srv" / "actions" / "action_cache.sqlite3"
        with sqlite3.connect(db) as conn:  # every entry the builder wrote is signed
            keys = [k for (k,) in conn.execute("SELECT key FROM actions")]
            signed = {k for (k,) in conn.execute("SELECT key FROM signatures")}
        assert keys and set(keys) <= signed, (keys, signed)
        with sqlite3.connect(db) as conn:  # an attacker with write access drops the signatures
            conn.execute("DELETE FROM signatures")
        rebuilt = run(*build, "--trusted-key", str(public))
        assert rebuilt.returncode == 0, rebuilt.stderr
        assert not json.loads(rebuilt.stdout)["stats"]["cached"]  # a miss: unsigned entries never hit
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT count(*) FROM signatures").fetchone()[0] > 0  # re-signed


def test_bad_key_files_stop_the_builder_with_exit_2(tmp_path):
    bad = tmp_path / "nonsense.pub"
    bad.write_text("nonsense\n")
    for option in ("--signing-key", "--trusted-key"):
        proc = subprocess.run(cli("serve", "builder", "--port", "0", "--sandbox", "none", option, str(bad)),
                              env=hermetic_env(tmp_path), capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2 and option in proc.stderr and "nonsense.pub" in proc.stderr, proc.stderr


def test_an_unsigned_build_result_is_refused_even_when_the_resolution_is_signed(tmp_path, index_server,
                                                                                index_builder):
    """A builder without --signing-key in front of a signing resolver: the streamed resolution verifies, the
    builder's own answer (its artifacts) is unsigned, so nothing is used."""
    from tests.fixtures.builder_server import ResolverProcess

    index_builder.add("beta", "1.0")
    index = index_server()
    private, public = write_keypair(tmp_path / "keys", "resolver")
    home = tmp_path / "client"
    home.mkdir()

    def run(*argv):
        return subprocess.run(cli(*argv), env=hermetic_env(home), capture_output=True, text=True, timeout=180,
                              cwd=tmp_path)

    with ResolverProcess(tmp_path / "res", "--signing-key", str(private), allow=[index.base_url]) as resolver, \
            BuilderProcess(tmp_path / "srv", "--resolver", resolver.address, allow=[index.base_url]) as server:
        build = run("build", "beta", "--server", server.address, "--index-url", index.url, "-q", "--no-venv",
                    "--trusted-key", str(public))
        assert build.returncode == 1, build.stderr + server.log() + resolver.log()
        assert "build result" in build.stderr and "not signed" in build.stderr, build.stderr
        assert "wheel" not in build.stdout  # no artifact reference printed
        dest = tmp_path / "venv"
        venv = run("venv", str(dest), "beta", "--server", server.address, "--index-url", index.url, "-q",
                   "--no-verify", "--trusted-key", str(public))
        assert venv.returncode == 1 and "build result" in venv.stderr, venv.stderr
        assert not dest.exists() or not any(dest.iterdir())
        plain = run("build", "beta", "--server", server.address, "--index-url", index.url, "-q", "--no-venv")
        assert plain.returncode == 0, plain.stderr
