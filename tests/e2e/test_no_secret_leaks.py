"""Index credentials never leak: a whole resolve + build against a password-protected index on 127.0.0.1, through a
real ``venvsmith serve builder --log-format json`` and the real CLI, then a grep for the password (and its Basic
``user:pass`` base64 form) in every stdout/stderr, the server's log, its metrics, every file under the server's and
the client's ``VENVSMITH_HOME`` (SQLite files' raw bytes, lock documents, wheels unzipped, ``.zst`` archives
decompressed) and the produced venv. The credentials come once as URL user-info, once from a netrc file (``NETRC``).
"""

from __future__ import annotations

import base64
import io
import secrets
import subprocess
import tarfile
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.builder_server import BuilderProcess, cli, free_port, hermetic_env
from tests.fixtures.index import IndexBuilder, IndexServer
from venvsmith.v1 import artifact_pb2, builder_pb2, common_pb2, resolver_pb2

pytestmark = pytest.mark.slow

USER = "ci-leak-user"
PASSWORD = f"s3cr3t-DO-NOT-LEAK-{secrets.token_hex(8)}"
NEEDLES = (PASSWORD.encode(), base64.b64encode(f"{USER}:{PASSWORD}".encode()))


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Iterator[IndexServer]:
    b = IndexBuilder(tmp_path_factory.mktemp("secret-index"))
    b.add("beta", "1.0")
    b.add("alpha", "1.0", deps=["beta>=1"])
    b.add("delta", "1.0", kind="sdist", backend="intree")
    b.add("gamma", "1.0")  # its files fail with a 500 in test_failing_fetches_and_refused_credentials_leak_nowhere
    with IndexServer(b, auth=(USER, PASSWORD)) as server:
        yield server


def _expand(name: str, data: bytes, depth: int = 0) -> Iterator[tuple[str, bytes]]:
    """The bytes of a file and of whatever archive members it holds (zip, tar, zstd), recursively."""
    yield name, data
    if depth > 3:
        return
    if data[:4] == b"\x28\xb5\x2f\xfd":
        import zstandard

        try:
            inner = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
        except zstandard.ZstdError:
            return
        yield from _expand(f"{name}!zst", inner, depth + 1)
        return
    if data[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                for member in zf.namelist():
                    yield from _expand(f"{name}!{member}", zf.read(member), depth + 1)
        except zipfile.BadZipFile:
            pass
        return
    try:
        with tarfile.open(fileobj=io.BytesIO(data)) as tf:
            for member in tf.getmembers():
                if member.isfile() and (f := tf.extractfile(member)) is not None:
                    yield from _expand(f"{name}!{member.name}", f.read(), depth + 1)
    except (tarfile.TarError, EOFError, OSError):
        pass


def _leaks_in_tree(root: Path, scanned: list[str]) -> list[str]:
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            for name, data in _expand(str(path.relative_to(root)), path.read_bytes()):
                scanned.append(name)
                found += [f"{root.name}/{name}" for needle in NEEDLES if needle in data]
    return found


def _leaks_in_text(label: str, text: str) -> list[str]:
    return [label for needle in NEEDLES if needle in text.encode()]


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        return answer.read().decode()


def _server_netrc(tmp_path: Path) -> dict[str, str]:
    """The server's own credentials (a client's are not sent to it without --forward-credentials)."""
    rc = tmp_path / "server-netrc"
    rc.write_text(f"machine 127.0.0.1 login {USER} password {PASSWORD}\n")
    rc.chmod(0o600)
    return {"NETRC": str(rc)}


def _run_everything(tmp_path: Path, index: IndexServer, index_url: str, env_extra: dict[str, str],
                    server_env: dict[str, str] | None = None) -> list[str]:
    """Every command of a resolve + build, one failing; returns where a credential was seen."""
    port = free_port()
    server_home, client_home = tmp_path / "server-home", tmp_path / "client-home"
    server = BuilderProcess(server_home, "--log-format", "json", "--metrics-port", str(port),
                            allow=[index.base_url], env={**env_extra, **(server_env or {})})
    outputs: list[tuple[str, subprocess.CompletedProcess[str]]] = []
    env = {**hermetic_env(client_home), **env_extra}
    try:
        common = ["--server", server.address, "--index-url", index_url]
        runs = {
            "resolve-pylock": cli("resolve", *common, "--format", "pylock", "alpha", "delta"),
            "resolve-requirements": cli("resolve", *common, "--format", "requirements", "alpha", "delta"),
            "resolve-json": cli("resolve", *common, "--format", "json", "alpha", "delta"),
            "resolve-pylock-file": cli("resolve", *common, "--format", "pylock", "-o",
                                       str(client_home / "pylock.toml"), "alpha"),
            "build-json": cli("build", *common, "--format", "json", "alpha", "delta"),
            "venv": cli("venv", str(tmp_path / "venv"), *common, "alpha", "delta"),
            "resolve-missing": cli("resolve", *common, "--format", "json", "no-such-project-here"),
            "build-missing": cli("build", *common, "--format", "json", "no-such-project-here"),
            "resolve-local-missing": cli("resolve", "--index-url", index_url, "no-such-project-here"),
        }
        for label, argv in runs.items():
            outputs.append((label, subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)))
        config = common_pb2.IndexConfig(index_url=index_url)
        ask = resolver_pb2.ResolveRequest(requirements=["alpha", "delta"], index=config)
        answer = server.resolver_stub.Resolve(ask, timeout=120)
        events = list(server.stub.ResolveAndBuild(builder_pb2.ResolveAndBuildRequest(
            resolve=ask, options=builder_pb2.BuildOptions(wheels=True, wheelhouse=True, venv_archive=True,
                                                          index=config)), timeout=300))
        metrics = _scrape(port)
    finally:
        assert server.stop() == 0, server.log()
    by_label = dict(outputs)
    for label in ("resolve-pylock", "resolve-requirements", "resolve-json", "build-json", "venv"):
        assert by_label[label].returncode == 0, (label, by_label[label].stderr)
    assert "beta" in by_label["resolve-requirements"].stdout  # the index was reached, with the credentials
    for label in ("resolve-missing", "build-missing", "resolve-local-missing"):
        assert by_label[label].returncode != 0, (label, by_label[label].stdout)
        assert "no-such-project-here" in by_label[label].stdout + by_label[label].stderr
    assert (tmp_path / "venv").is_dir()
    leaks: list[str] = []
    for label, proc in outputs:
        leaks += _leaks_in_text(f"{label} stdout", proc.stdout) + _leaks_in_text(f"{label} stderr", proc.stderr)
    leaks += _leaks_in_text("server log", server.log()) + _leaks_in_text("metrics", metrics)
    assert sorted(p.name for p in answer.pins) == ["alpha", "beta", "delta"]
    assert len(events) > 1
    for n, message in enumerate([answer, *events]):
        data = message.SerializeToString()
        leaks += [f"gRPC message {n}" for needle in NEEDLES if needle in data]
    scanned: list[str] = []
    for root in (server_home, client_home, tmp_path / "venv"):
        leaks += _leaks_in_tree(root, scanned)
    # The scan looked inside what was built: wheels' members, the zstd venv archive's tar, the SQLite files.
    assert any(".whl!" in name and name.endswith("METADATA") for name in scanned), scanned[:50]
    assert any("!zst!" in name for name in scanned), scanned[:50]
    assert any(name.endswith((".sqlite3", ".db", ".sqlite")) for name in scanned), scanned[:50]
    return leaks


def test_credentials_in_the_index_url_leak_nowhere(tmp_path, index):
    assert PASSWORD in index.auth_url
    assert _run_everything(tmp_path, index, index.auth_url, {}, _server_netrc(tmp_path)) == []


def test_credentials_from_netrc_leak_nowhere(tmp_path, index):
    rc = tmp_path / "netrc"
    rc.write_text(f"machine 127.0.0.1 login {USER} password {PASSWORD}\n")
    rc.chmod(0o600)
    assert _run_everything(tmp_path, index, index.url, {"NETRC": str(rc)}) == []


def test_failing_fetches_and_refused_credentials_leak_nowhere(tmp_path, index):
    """Error paths naming URLs: a file download answered 500, and a wrong password (which contains the right one, so
    the grep catches either) refused with 401."""
    wrong = index.auth_url.replace(PASSWORD, f"wrong-{PASSWORD}")
    assert wrong != index.auth_url
    server = BuilderProcess(tmp_path / "server-home", "--log-format", "json", allow=[index.base_url],
                            env=_server_netrc(tmp_path))
    env = hermetic_env(tmp_path / "client-home")
    outputs = []
    index.fail_status, index.fail_match = 500, "/files/gamma"
    try:
        for url in (index.auth_url, wrong):
            for argv in (cli("resolve", "--server", server.address, "--index-url", url, "--format", "json", "gamma"),
                         cli("build", "--server", server.address, "--index-url", url, "--format", "json", "gamma"),
                         cli("resolve", "--index-url", url, "gamma")):
                outputs.append(subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300))
    finally:
        index.fail_status, index.fail_match = None, None
        assert server.stop() == 0, server.log()
    # The remote runs use the server's own credentials (the client's URL credentials are not sent to it).
    assert all(p.returncode != 0 and "HTTP 500" in p.stderr for p in outputs[:5]), [p.stderr for p in outputs]
    assert outputs[5].returncode != 0 and "401" in outputs[5].stderr, outputs[5].stderr
    leaks: list[str] = []
    for n, proc in enumerate(outputs):
        leaks += _leaks_in_text(f"run {n} stdout", proc.stdout) + _leaks_in_text(f"run {n} stderr", proc.stderr)
    leaks += _leaks_in_text("server log", server.log())
    for root in (tmp_path / "server-home", tmp_path / "client-home"):
        leaks += _leaks_in_tree(root, [])
    assert leaks == []


REGISTRY_USER = "ci-registry-user"
REGISTRY_PASSWORD = f"reg-pw-DO-NOT-LEAK-{secrets.token_hex(6)}"
REDIS_USER = "ci-redis-user"
REDIS_PASSWORD = f"redis-pw-DO-NOT-LEAK-{secrets.token_hex(6)}"
FLEET_NEEDLES = (REGISTRY_PASSWORD.encode(), REDIS_PASSWORD.encode(),
                 base64.b64encode(f"{REGISTRY_USER}:{REGISTRY_PASSWORD}".encode()))


def _fleet_leaks(label: str, data: str | bytes) -> list[str]:
    raw = data.encode() if isinstance(data, str) else data
    return [f"{label}: {needle[:12]!r}..." for needle in FLEET_NEEDLES if needle in raw]


def _health_details(server: BuilderProcess) -> str:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    _, call = health_pb2_grpc.HealthStub(server.channel).Check.with_call(health_pb2.HealthCheckRequest(), timeout=10)
    return dict(call.trailing_metadata() or ()).get("venvsmith-health-details", "")


def _build(server: BuilderProcess, index_url: str, requirement: str) -> builder_pb2.BuildResult:
    config = common_pb2.IndexConfig(index_url=index_url)
    request = builder_pb2.ResolveAndBuildRequest(
        resolve=resolver_pb2.ResolveRequest(requirements=[requirement], index=config),
        options=builder_pb2.BuildOptions(wheels=True, venv_archive=True, index=config))
    results = [e.build.result for e in server.stub.ResolveAndBuild(request, timeout=300)
               if e.WhichOneof("event") == "build" and e.build.WhichOneof("event") == "result"]
    assert results
    return results[-1]


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_registry_and_redis_passwords_leak_nowhere(tmp_path, index, log_format):
    """``VENVSMITH_STORE=oci://USER:PASSWORD@...`` (a registry with htpasswd users) and ``--cache
    redis://USER:PASSWORD@...`` (an ACL user): neither password appears in ``--help``, start-up lines, logs, health
    details (Redis down too), /metrics, nor the message and rich details of REGISTRY_UNAVAILABLE (registry down)."""
    import grpc

    from tests.fixtures.redis_server import RedisServer
    from tests.fixtures.registry import RegistryProcess, registry_available

    if not registry_available():
        pytest.fail("docker-registry is not installed: run `make registry-tools`")
    leaks: list[str] = []
    with RegistryProcess(tmp_path / "registry", users={REGISTRY_USER: REGISTRY_PASSWORD}) as registry, \
            RedisServer(REDIS_PASSWORD, user=REDIS_USER) as redis:
        assert REDIS_PASSWORD in redis.url
        env = {"VENVSMITH_STORE": f"oci://{REGISTRY_USER}:{REGISTRY_PASSWORD}@{registry.host}/leaks",
               "VENVSMITH_CACHE": redis.url, **_server_netrc(tmp_path)}
        helped = subprocess.run(cli("serve", "builder", "--help"), env={**hermetic_env(tmp_path / "h"), **env},
                                capture_output=True, text=True, timeout=120)
        assert "--cache-ca" in helped.stdout
        leaks += _fleet_leaks("--help", helped.stdout + helped.stderr)
        bad = subprocess.run(cli("serve", "builder", "--port", "0", "--cache", f"redis://:{REDIS_PASSWORD}@h:99999/0"),
                             env=hermetic_env(tmp_path / "h"), capture_output=True, text=True, timeout=120)
        assert bad.returncode == 2 and "redis://h/0" in bad.stderr
        leaks += _fleet_leaks("a refused --cache", bad.stdout + bad.stderr)
        port = free_port()
        a = BuilderProcess(tmp_path / "a", "--log-format", log_format, "--log-level", "debug",
                           "--metrics-port", str(port), allow=[index.base_url], env=env)
        try:
            built = _build(a, index.url, "beta")
            assert redis.client().keys("venvsmith:*")  # the cache was used, with the ACL user's password
            assert _health_details(a) == ""
            redis.stop()
            _build(a, index.url, "alpha")  # a new resolution: asks Redis, finds it gone
            details = _health_details(a)
            assert "shared cache redis://127.0.0.1" in details
            leaks += _fleet_leaks("health details (Redis down)", details)
            leaks += _fleet_leaks("metrics", _scrape(port))
        finally:
            assert a.stop() == 0, a.log()
        leaks += _fleet_leaks("replica A's log", a.log())
        registry.stop()
        b = BuilderProcess(tmp_path / "b", "--log-format", log_format, "--log-level", "debug",
                           allow=[index.base_url], env=env)
        try:
            with pytest.raises(grpc.RpcError) as refused:
                b.artifacts.GetArtifact(artifact_pb2.GetArtifactRequest(digest=built.venv_archive.digest),
                                        timeout=60).next()
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            assert registry.host in refused.value.details()
            leaks += _fleet_leaks("REGISTRY_UNAVAILABLE message", refused.value.details())
            trailing = refused.value.trailing_metadata() or ()
            assert any(key == "grpc-status-details-bin" for key, _ in trailing)
            for key, value in trailing:
                leaks += _fleet_leaks(f"REGISTRY_UNAVAILABLE {key}", value)
            leaks += _fleet_leaks("health details (registry down)", _health_details(b))
        finally:
            assert b.stop() == 0, b.log()
        leaks += _fleet_leaks("replica B's log", b.log())
    assert leaks == []
