"""TLS and mutual TLS on a real resolver server (``venvsmith.core.tls``), certificates made here with ``openssl``."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from resolver_service.engine import EngineSettings, ResolverEngine
from resolver_service.service import make_server
from tests.fixtures.builder_server import cli, hermetic_env
from venvsmith.clients.resolver import RemoteResolver
from venvsmith.core.config import PipIndexConfig
from venvsmith.core.grpc_util import ServerSecurity
from venvsmith.core.resolution import CallError
from venvsmith.core.tls import ClientSecurity, ServerTls, TlsConfigError
from venvsmith.v1 import common_pb2, resolver_pb2

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")


def make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed CA: (certificate, key)."""
    crt, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={name}",
                    "-keyout", str(key), "-out", str(crt)], check=True, capture_output=True)
    return crt, key


def make_leaf(directory: Path, name: str, ca: tuple[Path, Path], *, server: bool = True) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (or a client) signed by ``ca``: (certificate, key)."""
    crt, key, csr, ext = (directory / f"{name}.{s}" for s in ("crt", "key", "csr", "ext"))
    subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", str(key),
                    "-out", str(csr)], check=True, capture_output=True)
    ext.write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n" if server
                   else "extendedKeyUsage=clientAuth\n")
    subprocess.run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]),
                    "-CAcreateserial", "-days", "1", "-extfile", str(ext), "-out", str(crt)],
                   check=True, capture_output=True)
    return crt, key


@pytest.fixture
def pki(tmp_path):
    ca = make_ca(tmp_path, "ca")
    return {"ca": ca, "server": make_leaf(tmp_path, "server", ca),
            "client": make_leaf(tmp_path, "client", ca, server=False)}


@pytest.fixture
def engine(tmp_path: Path):
    pip = PipIndexConfig(index_url=(tmp_path / "no-default-index").as_uri())
    engine = ResolverEngine(EngineSettings(home=tmp_path / "home", pip=pip))
    yield engine
    engine.close()


@pytest.fixture
def serve(engine):
    servers = []

    def start(security: ServerSecurity) -> str:
        server, port, _ = make_server("127.0.0.1:0", engine, security=security)
        server.start()
        servers.append(server)
        return f"127.0.0.1:{port}"

    yield start
    for server in servers:
        server.stop(0)


@pytest.fixture
def index(index_builder, index_server):
    index_builder.add("alpha", "1.0", deps=["beta"])
    index_builder.add("beta", "2.0")
    return index_server()


def resolve(address: str, index, security: ClientSecurity | None) -> list[str]:
    request = resolver_pb2.ResolveRequest(requirements=["alpha"], index=common_pb2.IndexConfig(index_url=index.url))
    with RemoteResolver(address, security) as client:
        return sorted(f"{p.name}=={p.version}" for p in client.resolve(request, timeout=30).pins)


def test_resolve_over_tls_with_the_servers_ca(serve, pki, index):
    address = serve(ServerSecurity(tls=ServerTls(*pki["server"])))
    assert resolve(address, index, ClientSecurity(ca=str(pki["ca"][0]))) == ["alpha==1.0", "beta==2.0"]


def test_plaintext_client_against_a_tls_server_is_unavailable(serve, pki, index):
    address = serve(ServerSecurity(tls=ServerTls(*pki["server"])))
    with pytest.raises(CallError) as caught:
        resolve(address, index, None)
    assert caught.value.status == "UNAVAILABLE"
    # the server keeps serving TLS clients
    assert resolve(address, index, ClientSecurity(ca=str(pki["ca"][0]))) == ["alpha==1.0", "beta==2.0"]


def test_a_client_that_does_not_trust_the_servers_ca_is_refused(serve, pki, index, tmp_path):
    address = serve(ServerSecurity(tls=ServerTls(*pki["server"])))
    (tmp_path / "other").mkdir()
    other = make_ca(tmp_path / "other", "other")
    with pytest.raises(CallError) as caught:
        resolve(address, index, ClientSecurity(ca=str(other[0])))
    assert caught.value.status == "UNAVAILABLE"


def test_mutual_tls_refuses_a_client_without_a_certificate(serve, pki, index):
    address = serve(ServerSecurity(tls=ServerTls(*pki["server"], client_ca=pki["ca"][0])))
    ca = str(pki["ca"][0])
    with pytest.raises(CallError) as caught:
        resolve(address, index, ClientSecurity(ca=ca))
    assert caught.value.status == "UNAVAILABLE"
    cert, key = (str(p) for p in pki["client"])
    assert resolve(address, index, ClientSecurity(ca=ca, cert=cert, key=key)) == ["alpha==1.0", "beta==2.0"]


def test_a_renewed_certificate_is_served_to_new_connections(serve, pki, index, tmp_path):
    live = tmp_path / "live"
    live.mkdir()
    cert, key = live / "tls.crt", live / "tls.key"
    shutil.copy(pki["server"][0], cert)
    shutil.copy(pki["server"][1], key)
    address = serve(ServerSecurity(tls=ServerTls(cert, key)))
    old_ca = ClientSecurity(ca=str(pki["ca"][0]))
    assert resolve(address, index, old_ca)
    # The operator (cert-manager, a Secret update) replaces both files with a certificate from another CA.
    (tmp_path / "new").mkdir()
    new_ca = make_ca(tmp_path / "new", "newca")
    new_leaf = make_leaf(tmp_path / "new", "server2", new_ca)
    time.sleep(0.01)  # a distinct modification time even on coarse clocks
    for src, dst in zip(new_leaf, (cert, key), strict=True):
        tmp = dst.with_suffix(".tmp")
        shutil.copy(src, tmp)
        os.replace(tmp, dst)
    assert resolve(address, index, ClientSecurity(ca=str(new_ca[0]))) == ["alpha==1.0", "beta==2.0"]
    with pytest.raises(CallError) as caught:
        resolve(address, index, old_ca)
    assert caught.value.status == "UNAVAILABLE"


def test_server_tls_refuses_unusable_files(tmp_path, pki):
    with pytest.raises(TlsConfigError, match="--tls-key"):
        ServerTls(pki["server"][0], tmp_path / "missing.key")
    (tmp_path / "junk.crt").write_text("not a certificate")
    with pytest.raises(TlsConfigError, match="not a PEM"):
        ServerTls(tmp_path / "junk.crt", pki["server"][1])
    with pytest.raises(TlsConfigError, match="both"):
        ClientSecurity(ca=str(pki["ca"][0]), cert=str(pki["client"][0])).channel_credentials()


def test_the_cli_serves_and_calls_with_tls_and_the_env_ca(pki, index, tmp_path):
    """``serve resolver --tls-cert --tls-key`` and ``venvsmith resolve --server`` with VENVSMITH_TLS_CA."""
    from tests.fixtures.builder_server import ResolverProcess

    cert, key = (str(p) for p in pki["server"])
    with ResolverProcess(tmp_path / "srv", "--tls-cert", cert, "--tls-key", key, allow=[index.base_url]) as server:
        env = {**hermetic_env(tmp_path / "client"), "VENVSMITH_TLS_CA": str(pki["ca"][0])}
        argv = cli("resolve", "--server", server.address, "--index-url", index.url, "alpha")
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert "beta==2.0" in proc.stdout
        plain = subprocess.run(argv, env=hermetic_env(tmp_path / "client"), capture_output=True, text=True,
                               timeout=120)
        assert plain.returncode == 3 and "UNAVAILABLE" in plain.stderr  # unavailable: exit 3
    bad = subprocess.run(cli("serve", "resolver", "--port", "0", "--tls-cert", cert), capture_output=True,
                         text=True, env=hermetic_env(tmp_path / "x"), timeout=60)
    assert bad.returncode == 2 and "--tls-key" in bad.stderr


def test_the_builder_serves_grpc_and_http_over_tls_with_tokens(pki, index, tmp_path):
    """``serve builder --tls-cert --tls-key --auth-tokens --http-port``: TLS on both ports, pip with --cert."""
    import ssl
    import sys
    import urllib.error
    import urllib.request

    from tests.fixtures.builder_server import BuilderProcess
    from venvsmith.core.grpc_channel import open_channel
    from venvsmith.v1 import builder_pb2, builder_pb2_grpc

    token = "ci-main-build-0123456789"
    (tmp_path / "tokens").write_text(f"{token} build\n")
    cert, key = (str(p) for p in pki["server"])
    with BuilderProcess(tmp_path / "srv", "--tls-cert", cert, "--tls-key", key,
                        "--auth-tokens", str(tmp_path / "tokens"), allow=[index.base_url]) as server:
        assert server.http_url.startswith("https://127.0.0.1:")
        config = common_pb2.IndexConfig(index_url=index.url)
        build = builder_pb2.ResolveAndBuildRequest(
            resolve=resolver_pb2.ResolveRequest(requirements=["alpha"], index=config),
            options=builder_pb2.BuildOptions(wheels=True, wheelhouse=True, index=config))
        channel = open_channel(server.address, ClientSecurity(ca=str(pki["ca"][0]), token=token))
        try:
            events = list(builder_pb2_grpc.BuilderServiceStub(channel).ResolveAndBuild(build, timeout=120))
        finally:
            channel.close()
        result = events[-1].build.result
        assert result.wheels and result.wheels[0].http_url.startswith(server.http_url)
        root = f"{server.http_url}wheelhouse/{result.lock_key}/simple/"
        context = ssl.create_default_context(cafile=str(pki["ca"][0]))
        request = urllib.request.Request(root, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, context=context, timeout=30) as response:
            assert response.status == 200
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):  # one that does not trust it
            urllib.request.urlopen(request, timeout=30, context=ssl.create_default_context())
        authed = root.replace("https://", f"https://ci:{token}@")
        uv = shutil.which("uv", path=str(Path(sys.executable).parent))
        assert uv is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "SSL_"))}
        env.update(UV_NO_CONFIG="1", UV_CACHE_DIR=str(tmp_path / "uv-cache"), UV_PYTHON_DOWNLOADS="never",
                   SSL_CERT_FILE=str(pki["ca"][0]))
        proc = subprocess.run([uv, "pip", "install", "--target", str(tmp_path / "dl"), "--python", sys.executable,
                               "--index-url", authed, "alpha"], capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert (tmp_path / "dl" / "alpha" / "__init__.py").exists()
