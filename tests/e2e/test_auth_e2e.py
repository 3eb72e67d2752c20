"""Bearer tokens on a real ``venvsmith serve builder --auth-tokens FILE`` (gRPC and its HTTP endpoint).

The attack kept out: a pull-request job holds a ``resolve`` token; whatever it sends, it can never make the shared
builder build and store bytes (cache poisoning: a PR producing main's key would write a poisoned artifact).
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from tests.fixtures.builder_server import BuilderProcess, cli, hermetic_env
from tests.fixtures.index import IndexBuilder, IndexServer
from venvsmith.v1 import artifact_pb2, builder_pb2, common_pb2, resolver_pb2

pytestmark = pytest.mark.slow

BUILD = "ci-main-build-0123456789"
RESOLVE = "pull-request-resolve-0123456789"
ROTATED = "rotated-build-token-0123456789"


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Iterator[IndexServer]:
    b = IndexBuilder(tmp_path_factory.mktemp("auth-index"))
    b.add("beta", "1.0")
    b.add("alpha", "1.0", deps=["beta>=1"])
    b.add("delta", "1.0", kind="sdist", backend="intree")
    b.add("dep", "2.5")  # what the dynamic sdist of test_dynamic_metadata requires
    with IndexServer(b) as server:
        yield server


@pytest.fixture(scope="module")
def tokens(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("auth") / "tokens"
    path.write_text(f"# main's CI\n{BUILD} build main\n{RESOLVE} resolve\n")
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory, tokens, index) -> Iterator[BuilderProcess]:
    # Allowed: the index, and this run's temporary directories (the find-links a test makes).
    process = BuilderProcess(tmp_path_factory.mktemp("auth-home"), "--auth-tokens", str(tokens),
                             allow=[index.base_url, str(tmp_path_factory.getbasetemp())])
    yield process
    assert process.stop() == 0, process.log()


def bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


def request(index: IndexServer, *reqs: str) -> builder_pb2.ResolveAndBuildRequest:
    config = common_pb2.IndexConfig(index_url=index.url)
    return builder_pb2.ResolveAndBuildRequest(
        resolve=resolver_pb2.ResolveRequest(requirements=list(reqs), index=config),
        options=builder_pb2.BuildOptions(wheels=True, wheelhouse=True, venv_archive=False, index=config))


def result_of(events) -> builder_pb2.BuildResult:
    results = [e.build.result for e in events if e.WhichOneof("event") == "build"
               and e.build.WhichOneof("event") == "result"]
    assert len(results) == 1
    return results[0]


def error_info(exc: grpc.RpcError) -> error_details_pb2.ErrorInfo:
    status = rpc_status.from_call(exc)
    assert status is not None, "no rich details"
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    return info


def stored(home: Path) -> dict[str, int]:
    """Every file of the store and the action cache, with its size."""
    return {str(p.relative_to(home)): p.stat().st_size for d in ("store", "actions") if (home / d).exists()
            for p in sorted((home / d).rglob("*")) if p.is_file()}


def test_no_token_or_an_unknown_one_is_unauthenticated(server, index):
    for metadata in (None, bearer("not-a-known-token-0000"), [("authorization", "Basic abc")]):
        with pytest.raises(grpc.RpcError) as caught:
            server.resolver_stub.Resolve(resolver_pb2.ResolveRequest(requirements=["alpha"]), metadata=metadata)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        info = error_info(caught.value)
        assert (info.domain, info.reason) == ("venvsmith", "AUTH_TOKEN_INVALID")
        assert info.metadata["method"] == "/venvsmith.v1.ResolverService/Resolve"


def test_health_stays_open_for_probes(server):
    health = health_pb2_grpc.HealthStub(server.channel)
    assert health.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING


def test_a_resolve_token_resolves_but_cannot_build_or_store_anything(server, index):
    config = common_pb2.IndexConfig(index_url=index.url)
    answer = server.resolver_stub.Resolve(resolver_pb2.ResolveRequest(requirements=["alpha", "delta"], index=config),
                                          metadata=bearer(RESOLVE), timeout=60)
    assert sorted(p.name for p in answer.pins) == ["alpha", "beta", "delta"]
    before = stored(server.home)
    denied = []
    with pytest.raises(grpc.RpcError) as caught:
        list(server.stub.ResolveAndBuild(request(index, "alpha", "delta"), metadata=bearer(RESOLVE), timeout=60))
    denied.append(caught.value)
    delta = next(p for p in answer.pins if p.name == "delta")
    stream = [builder_pb2.BuildRequest(header=builder_pb2.BuildHeader(options=request(index).options)),
              builder_pb2.BuildRequest(pin=delta), builder_pb2.BuildRequest(end=builder_pb2.BuildEnd(pin_count=1))]
    with pytest.raises(grpc.RpcError) as caught:
        list(server.stub.Build(iter(stream), metadata=bearer(RESOLVE), timeout=60))
    denied.append(caught.value)
    prepare = builder_pb2.PrepareMetadataRequest(pin=delta, options=builder_pb2.BuildOptions(index=config))
    with pytest.raises(grpc.RpcError) as caught:
        server.stub.PrepareMetadata(prepare, metadata=bearer(RESOLVE), timeout=60)
    denied.append(caught.value)
    for exc in denied:
        assert exc.code() == grpc.StatusCode.PERMISSION_DENIED, exc.details()
        info = error_info(exc)
        assert info.reason == "AUTH_ROLE_INSUFFICIENT"
        assert (info.metadata["role"], info.metadata["required_role"]) == ("resolve", "build")
    assert stored(server.home) == before  # not one byte written


@pytest.fixture(scope="module")
def built(server, index) -> builder_pb2.BuildResult:
    return result_of(server.stub.ResolveAndBuild(request(index, "alpha", "delta"), metadata=bearer(BUILD),
                                                 timeout=120))


def test_a_build_token_builds_and_a_resolve_token_reads_the_artifacts(server, built):
    assert {w.filename.split("-")[0] for w in built.wheels} == {"alpha", "beta", "delta"}
    digest = built.wheels[0].digest
    chunks = list(server.artifacts.GetArtifact(artifact_pb2.GetArtifactRequest(digest=digest),
                                               metadata=bearer(RESOLVE)))
    assert sum(len(c.data) for c in chunks) == digest.size_bytes
    with pytest.raises(grpc.RpcError) as caught:
        list(server.artifacts.GetArtifact(artifact_pb2.GetArtifactRequest(digest=digest)))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


def http_status(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str]]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=30) as response:
            response.read()
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers)


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_http_endpoint_needs_a_token(server, built):
    wheel = built.wheels[0]
    blob = f"{server.http_url}blobs/{wheel.digest.hash}/{wheel.digest.size_bytes}/{wheel.filename}"
    status, headers = http_status(blob)
    assert status == 401 and headers["WWW-Authenticate"].startswith("Basic ")
    assert http_status(blob, {"Authorization": "Bearer not-a-known-token-0000"})[0] == 401
    assert http_status(blob, basic("ci", "wrong-password-0000000"))[0] == 401
    assert http_status(blob, {"Authorization": f"Bearer {RESOLVE}"})[0] == 200
    assert http_status(blob, basic("ci", RESOLVE))[0] == 200
    assert http_status(blob, basic(RESOLVE, ""))[0] == 200
    house = f"{server.http_url}wheelhouse/{built.lock_key}/simple/"
    assert http_status(house)[0] == 401
    assert http_status(house, basic("ci", BUILD))[0] == 200
    assert http_status(f"{server.http_url}healthz")[0] == 200


def _with_password(url: str, token: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme}://ci:{token}@{rest}"


def test_pip_downloads_from_the_wheelhouse_with_the_token_as_password(server, built, tmp_path):
    root = f"{server.http_url}wheelhouse/{built.lock_key}/simple/"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env["PIP_CONFIG_FILE"] = os.devnull
    argv = [sys.executable, "-m", "pip", "download", "--isolated", "--disable-pip-version-check", "--no-cache-dir",
            "--no-input", "--dest", str(tmp_path / "dl"), "alpha", "delta"]
    proc = subprocess.run([*argv, "--index-url", _with_password(root, RESOLVE)], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "dl").iterdir()) == sorted(w.filename for w in built.wheels)
    shutil.rmtree(tmp_path / "dl")
    refused = subprocess.run([*argv, "--index-url", root], capture_output=True, text=True, env=env, timeout=120)
    assert refused.returncode != 0 and "No matching distribution" in refused.stderr
    assert not (tmp_path / "dl").exists() or not list((tmp_path / "dl").iterdir())


@pytest.mark.skipif(shutil.which("uv", path=str(Path(sys.executable).parent)) is None, reason="needs uv")
def test_uv_installs_from_the_wheelhouse_with_the_token_as_password(server, built, tmp_path):
    uv = shutil.which("uv", path=str(Path(sys.executable).parent))
    assert uv is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(UV_NO_CONFIG="1", UV_CACHE_DIR=str(tmp_path / "uv-cache"), UV_PYTHON_DOWNLOADS="never")
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(tmp_path / "venv")], check=True, env=env,
                   capture_output=True, timeout=120)
    root = f"{server.http_url}wheelhouse/{built.lock_key}/simple/"
    proc = subprocess.run([uv, "pip", "install", "--python", str(tmp_path / "venv" / "bin" / "python"),
                           "--index-url", _with_password(root, RESOLVE), "alpha", "delta"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    check = subprocess.run([str(tmp_path / "venv" / "bin" / "python"), "-c", "import alpha, beta, delta"],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr


def test_the_cli_sends_the_token_from_the_environment(server, index, tmp_path):
    argv = cli("resolve", "--server", server.address, "--index-url", index.url, "alpha")
    env = hermetic_env(tmp_path / "client")
    missing = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "UNAUTHENTICATED" in missing.stderr  # a refused token: bad input, exit 2
    ok = subprocess.run(argv, env={**env, "VENVSMITH_TOKEN": RESOLVE}, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "beta==1.0" in ok.stdout, ok.stderr
    build = cli("build", "--server", server.address, "--index-url", index.url, "-q", "--token", RESOLVE, "gamma")
    denied = subprocess.run(build, env=env, capture_output=True, text=True, timeout=120)
    assert denied.returncode == 2 and "PERMISSION_DENIED" in denied.stderr  # a token too low: exit 2


def test_a_resolver_servers_calls_to_the_builder_carry_its_token(server, index, tmp_path):
    """``serve resolver --builder ADDR --token T``: PrepareMetadata needs a build token."""
    from tests.e2e.test_dynamic_metadata import _dynamic_sdist
    from tests.fixtures.builder_server import ResolverProcess

    links = tmp_path / "links"
    links.mkdir()
    _dynamic_sdist(links)
    ask = resolver_pb2.ResolveRequest(requirements=["dyn"], index=common_pb2.IndexConfig(
        index_url=index.url, find_links=[str(links)]))
    allow = [index.base_url, str(links)]
    with ResolverProcess(tmp_path / "ok", "--builder", server.address, "--token", BUILD, allow=allow) as resolver:
        assert {p.name for p in resolver.resolver_stub.Resolve(ask, timeout=120).pins} == {"dyn", "dep"}
    with ResolverProcess(tmp_path / "low", "--builder", server.address, "--token", RESOLVE, allow=allow) as resolver:
        with pytest.raises(grpc.RpcError) as caught:
            resolver.resolver_stub.Resolve(ask, timeout=120)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "needs a build token" in caught.value.details()


def test_a_rotated_token_file_takes_effect_without_a_restart(server, tokens):
    """Last in this module: it replaces the file (the old build token is revoked; the new one is stored hashed)."""
    ask = resolver_pb2.DescribeEnvironmentRequest()
    server.resolver_stub.DescribeEnvironment(ask, metadata=bearer(BUILD))
    tmp = tokens.with_suffix(".new")
    tmp.write_text(f"sha256:{hashlib.sha256(ROTATED.encode()).hexdigest()} build  # hashed at rest\n")
    os.replace(tmp, tokens)
    server.resolver_stub.DescribeEnvironment(ask, metadata=bearer(ROTATED))
    with pytest.raises(grpc.RpcError) as caught:
        server.resolver_stub.DescribeEnvironment(ask, metadata=bearer(BUILD))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_serve_refuses_a_bad_token_file(tmp_path):
    bad = tmp_path / "tokens"
    bad.write_text(f"{BUILD} build\n{RESOLVE} owner\n")
    proc = subprocess.run(cli("serve", "builder", "--port", "0", "--auth-tokens", str(bad)), capture_output=True,
                          text=True, env=hermetic_env(tmp_path / "home"), timeout=60)
    assert proc.returncode == 2 and "line 2: unknown role 'owner'" in proc.stderr
