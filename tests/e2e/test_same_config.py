"""Configuration means the same thing with and without ``--server``: the client sends its effective index
configuration (pip's config files and ``PIP_*`` included), pip's constraints apply, and credentials stay on the
client unless forwarded over TLS on request."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from tests.e2e.test_tls import make_ca, make_leaf
from tests.fixtures.builder_server import ResolverProcess, cli, hermetic_env
from tests.fixtures.index import IndexBuilder, IndexServer
from venvsmith.v1 import resolver_pb2, resolver_pb2_grpc

pytestmark = pytest.mark.slow

USER, PASSWORD = "ci-agent", "s3cret-Pa55word-xyz"


@pytest.fixture(scope="module")
def indexes(tmp_path_factory) -> Iterator[tuple[IndexServer, IndexServer]]:
    """(the client's index: six 1.16.0 only; the server's: six 1.16.0 and 1.17.0)."""
    old, new = IndexBuilder(tmp_path_factory.mktemp("client-index")), IndexBuilder(tmp_path_factory.mktemp("srv"))
    old.add("six", "1.16.0")
    new.add("six", "1.16.0")
    new.add("six", "1.17.0")
    with IndexServer(old) as client_index, IndexServer(new) as server_index:
        yield client_index, server_index


def _run(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


def _pins(proc: subprocess.CompletedProcess[str]) -> list[str]:
    assert proc.returncode == 0, proc.stderr
    return [line.split()[0] for line in proc.stdout.splitlines() if "==" in line and not line.startswith("#")]


def _pip_conf(path: Path, **values: str) -> Path:
    path.write_text("[global]\n" + "".join(f"{k} = {v}\n" for k, v in values.items()))
    return path


@pytest.mark.parametrize("how", ["PIP_INDEX_URL", "PIP_CONFIG_FILE"])
def test_remote_run_resolves_with_the_clients_configuration(tmp_path, indexes, how):
    client_index, server_index = indexes
    server_env = {"PIP_CONFIG_FILE": str(_pip_conf(tmp_path / "server.conf", **{"index-url": server_index.url}))}
    client_env = hermetic_env(tmp_path / "client-home")
    if how == "PIP_INDEX_URL":
        client_env["PIP_INDEX_URL"] = client_index.url
    else:
        client_env["PIP_CONFIG_FILE"] = str(_pip_conf(tmp_path / "client.conf", **{"index-url": client_index.url}))
    with ResolverProcess(tmp_path / "server-home", env=server_env,
                         allow=[client_index.base_url, server_index.base_url]) as server:
        embedded = _run(cli("resolve", "--format", "requirements", "six"), client_env, tmp_path)
        remote = _run(cli("resolve", "--server", server.address, "--format", "requirements", "six"),
                      client_env, tmp_path)
        # The server's own configuration is still its default for a client that configures nothing.
        bare = _run(cli("resolve", "--server", server.address, "--format", "requirements", "six"),
                    hermetic_env(tmp_path / "client-home"), tmp_path)
    assert _pins(embedded) == ["six==1.16.0"]
    assert _pins(remote) == _pins(embedded)
    assert _pins(bare) == ["six==1.17.0"]


@pytest.mark.parametrize("how", ["PIP_CONSTRAINT", "pip.conf"])
def test_pips_constraint_applies_embedded_and_remote(tmp_path, indexes, how):
    _, server_index = indexes
    (tmp_path / "c.txt").write_text("six<1.17\n")
    env = hermetic_env(tmp_path / "client-home")
    if how == "PIP_CONSTRAINT":
        env.update(PIP_CONSTRAINT="c.txt", PIP_INDEX_URL=server_index.url)
    else:
        env["PIP_CONFIG_FILE"] = str(_pip_conf(tmp_path / "pip.conf", constraint="c.txt",
                                               **{"index-url": server_index.url}))
    with ResolverProcess(tmp_path / "server-home", allow=[server_index.base_url]) as server:
        embedded = _run(cli("resolve", "--format", "requirements", "six"), env, tmp_path)
        remote = _run(cli("resolve", "--server", server.address, "--format", "requirements", "six"), env, tmp_path)
    assert _pins(embedded) == ["six==1.16.0"]
    assert _pins(remote) == ["six==1.16.0"]


def test_config_shows_what_is_sent_and_notes_ignored_settings(tmp_path, indexes):
    client_index, _ = indexes
    (tmp_path / "c.txt").write_text("six<1.17\n")
    env = {**hermetic_env(tmp_path / "home"), "PIP_INDEX_URL": client_index.url.replace("//", f"//{USER}:{PASSWORD}@"),
           "PIP_CONSTRAINT": "c.txt", "PIP_REQUIRE_VIRTUALENV": "1"}
    proc = _run(cli("config"), env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert PASSWORD not in proc.stdout and USER not in proc.stdout
    assert f"  index_url:        {client_index.url}" in proc.stdout
    assert "constraints:      c.txt" in proc.stdout
    assert "ignored:          require-virtualenv (from :env:.require-virtualenv (PIP_REQUIRE_VIRTUALENV))" \
        in proc.stdout
    verbose = _run(cli("-v", "resolve", "--format", "requirements", "six"), env, tmp_path)
    assert "require-virtualenv" in verbose.stderr and "ignored" in verbose.stderr


def test_a_client_index_the_server_does_not_allow_is_permission_denied(tmp_path, indexes):
    client_index, server_index = indexes
    env = {**hermetic_env(tmp_path / "client-home"), "PIP_INDEX_URL": client_index.url}
    with ResolverProcess(tmp_path / "server-home", allow=[server_index.base_url]) as server:
        proc = _run(cli("resolve", "--server", server.address, "six"), env, tmp_path)
    assert proc.returncode == 2
    assert "PERMISSION_DENIED" in proc.stderr
    assert "index.index_url" in proc.stderr and "--allow-index" in proc.stderr, proc.stderr


class _Capture(resolver_pb2_grpc.ResolverServiceServicer):
    """A test resolver that records each request's bytes and answers with no pins."""

    def __init__(self) -> None:
        self.seen: list[bytes] = []

    def Resolve(self, request, context):
        self.seen.append(request.SerializeToString())
        return resolver_pb2.ResolveResponse()


@pytest.fixture
def capture() -> Iterator[tuple[_Capture, str]]:
    servicer = _Capture()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    resolver_pb2_grpc.add_ResolverServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, f"127.0.0.1:{port}"
    server.stop(None)


def test_credentials_stay_on_the_client_without_opt_in(tmp_path, capture, indexes):
    servicer, address = capture
    client_index, _ = indexes
    rc = tmp_path / "netrc"
    rc.write_text(f"machine 127.0.0.1 login {USER}-netrc password {PASSWORD}-netrc\n")
    rc.chmod(0o600)
    secret_url = client_index.url.replace("//", f"//{USER}:{PASSWORD}@")
    env = {**hermetic_env(tmp_path / "home"), "NETRC": str(rc), "PIP_EXTRA_INDEX_URL": secret_url}
    proc = _run(cli("resolve", "--server", address, "--index-url", secret_url, "six"), env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert len(servicer.seen) == 1
    wire = servicer.seen[0]
    assert client_index.url.encode() in wire  # the index is sent ...
    assert PASSWORD.encode() not in wire and USER.encode() not in wire  # ... without any credential
    assert "not sent to the server" in proc.stderr and PASSWORD not in proc.stderr


def test_forwarding_credentials_over_plaintext_is_a_usage_error(tmp_path, capture, indexes):
    servicer, address = capture
    client_index, _ = indexes
    secret_url = client_index.url.replace("//", f"//{USER}:{PASSWORD}@")
    proc = _run(cli("resolve", "--server", address, "--forward-credentials", "--index-url", secret_url, "six"),
                hermetic_env(tmp_path / "home"), tmp_path)
    assert proc.returncode == 2
    assert "--forward-credentials" in proc.stderr and "TLS" in proc.stderr
    assert servicer.seen == []


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_forwarded_credentials_over_tls_reach_a_password_protected_index(tmp_path):
    b = IndexBuilder(tmp_path / "private")
    b.add("six", "1.16.0")
    ca = make_ca(tmp_path, "ca")
    cert, key = make_leaf(tmp_path, "server", ca)
    with IndexServer(b, auth=(USER, PASSWORD)) as private:
        env = hermetic_env(tmp_path / "client-home")
        with ResolverProcess(tmp_path / "server-home", "--tls-cert", str(cert), "--tls-key", str(key),
                             allow=[private.base_url]) as server:
            common = ["resolve", "--server", server.address, "--tls-ca", str(ca[0]), "--index-url", private.auth_url,
                      "--format", "requirements", "six"]
            kept = _run(cli(*common), env, tmp_path)
            forwarded = _run(cli(*common, "--forward-credentials"), env, tmp_path)
    assert kept.returncode == 3 and "401" in kept.stderr, kept.stderr  # the server has no credentials of its own
    assert _pins(forwarded) == ["six==1.16.0"]
    assert PASSWORD not in forwarded.stdout + forwarded.stderr
