"""BuilderService end to end: ``venvsmith serve builder`` in a separate process, driven by the CLI and the stubs.

Hermetic: a local HTTP index (:class:`~tests.fixtures.index.IndexServer`) named in every request, sdists with an
in-tree backend (:mod:`tests.fixtures.intree`, no setuptools needed), servers with their own ``VENVSMITH_HOME``
and ``PIP_CONFIG_FILE=os.devnull``. One server per module (per xdist worker); each test uses its own
requirement set, so tests do not depend on each other's order.
"""

from __future__ import annotations

import hashlib
import io
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import grpc
import pytest
import zstandard
from packaging.version import Version

from tests.fixtures.builder_server import BuilderProcess, cli, hermetic_env
from tests.fixtures.concurrent import at_once
from tests.fixtures.index import IndexBuilder, IndexServer
from venvsmith.v1 import artifact_pb2, builder_pb2, common_pb2, resolver_pb2

pytestmark = pytest.mark.slow

State = builder_pb2.PinProgress.State

CLITOOL_INIT = b'"""Test package clitool."""\n'
CLITOOL_CLI = b"""import sys

import alpha


def main():
    print("clitool", alpha.VALUE, sys.prefix, sep="\\n")
    return 0
"""


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Iterator[IndexServer]:
    """The module's index, built once (tests must not change it)."""
    b = IndexBuilder(tmp_path_factory.mktemp("builder-index"))
    b.add("beta", "1.0", files={"beta/__init__.py": b"VALUE = 'beta'\n"})
    b.add("alpha", "1.0", deps=["beta>=1"],
          files={"alpha/__init__.py": b"from beta import VALUE as BETA\nVALUE = 'alpha'\n"})
    b.add("srcpkg", "1.0", kind="sdist", backend="intree", deps=["beta"],
          files={"srcpkg/__init__.py": b"import beta\n\n\ndef main():\n    print('srcpkg', beta.VALUE)\n"},
          console_scripts={"srcpkg-hello": "srcpkg:main"})
    b.add("clitool", "1.0", deps=["alpha"],
          files={"clitool/__init__.py": CLITOOL_INIT, "clitool/cli.py": CLITOOL_CLI},
          console_scripts={"clitool": "clitool.cli:main"})
    # Built slowly on purpose, so that concurrent identical builds overlap.
    b.add("conc", "1.0", kind="sdist", backend="intree", deps=["epsilon"],
          build_body="import time; time.sleep(1.5)")
    b.add("epsilon", "1.0")
    b.add("gamma", "1.0")
    b.add("delta", "1.0", kind="sdist", backend="intree")
    # Its build needs a build requirement from the index, which the builder resolves and installs itself.
    b.add("buildhelper", "2.0", files={"buildhelper/__init__.py": b"TOOL = 'helper'\n"})
    b.add("needsbuilddep", "1.0", kind="sdist", backend="intree", build_requires=("buildhelper>=2",),
          build_body="import buildhelper; assert buildhelper.TOOL == 'helper'")
    with IndexServer(b) as server:
        yield server


@pytest.fixture(scope="module")
def server(tmp_path_factory, index) -> Iterator[BuilderProcess]:
    process = BuilderProcess(tmp_path_factory.mktemp("builder-home"), allow=[index.base_url])
    yield process
    assert process.stop() == 0, process.log()  # SIGTERM is a clean shutdown


def build_request(index: IndexServer, *reqs: str, venv: bool = True, wheelhouse: bool = False,
                  compile_bytecode: bool = False) -> builder_pb2.ResolveAndBuildRequest:
    config = common_pb2.IndexConfig(index_url=index.url)
    return builder_pb2.ResolveAndBuildRequest(
        resolve=resolver_pb2.ResolveRequest(requirements=list(reqs), index=config),
        options=builder_pb2.BuildOptions(wheels=True, wheelhouse=wheelhouse, venv_archive=venv,
                                         compile_bytecode=compile_bytecode, index=config),
    )


def run_build(stub, request, timeout: float = 120) -> tuple[list[builder_pb2.PinProgress], builder_pb2.BuildResult]:
    """The build's progress events and its result."""
    progress, result = [], None
    for event in stub.ResolveAndBuild(request, timeout=timeout):
        if event.WhichOneof("event") != "build":
            continue
        if event.build.WhichOneof("event") == "progress":
            progress.append(event.build.progress)
        else:
            result = event.build.result
    assert result is not None, "the stream ended without a result"
    return progress, result


def states(progress: list[builder_pb2.PinProgress], name: str) -> list[str]:
    return [State.Name(p.state) for p in progress if p.name == name and p.state != State.DOWNLOADING]


def read_blob(stub, digest: common_pb2.Digest, offset: int = 0, limit: int = 0) -> tuple[bytes, list[int]]:
    """The bytes GetArtifact sends from ``offset`` and the offsets of its chunks."""
    chunks = list(stub.GetArtifact(artifact_pb2.GetArtifactRequest(digest=digest, offset=offset, limit=limit)))
    return b"".join(c.data for c in chunks), [c.offset for c in chunks]


def run(argv: list[str], home: Path, *, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=hermetic_env(home), cwd=cwd, capture_output=True, text=True, timeout=timeout)


def cli_venv(server: BuilderProcess, index: IndexServer, dest: Path, *reqs: str, tmp: Path) -> str:
    """``venvsmith venv DEST --server ADDR --index-url URL REQ...``; returns stdout."""
    proc = run(cli("venv", str(dest), "--server", server.address, "--index-url", index.url, *reqs),
               tmp / "client-home", cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def in_venv(venv: Path, *argv: str, cwd: Path) -> str:
    """Run ``argv`` (a path relative to the venv, or a command) with no inherited Python environment."""
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"{argv}: {proc.stdout}{proc.stderr}"
    return proc.stdout


# ------------------------------------------------------------------------------------------- venvs


def test_pure_wheels_give_a_working_venv(server, index, tmp_path):
    dest = tmp_path / "venv"
    out = cli_venv(server, index, dest, "alpha", tmp=tmp_path)
    assert "venv ready at" in out and "2 packages" in out
    printed = in_venv(dest, str(dest / "bin" / "python"), "-c",
                      "import alpha, beta, sys; print(alpha.VALUE, alpha.BETA, sys.prefix)", cwd=tmp_path)
    assert printed.split() == ["alpha", "beta", str(dest)]
    assert not (tmp_path / "client-home").exists()  # remote mode: the client keeps no state


def test_sdist_is_built_once_then_served_from_the_store(server, index, tmp_path):
    request = build_request(index, "srcpkg")
    first_progress, first = run_build(server.stub, request)
    assert states(first_progress, "srcpkg")[-2:] == ["BUILDING", "DONE"]
    assert first.stats.wheels_built == 1  # beta may be in the store already (another test of this module)
    assert first.stats.wheels_downloaded + first.stats.wheels_cached == 1
    assert not first.stats.cached and first.stats.venv_built and not first.stats.shared_in_flight
    built = {w.filename: w for w in first.wheels}
    assert set(built) == {"srcpkg-1.0-py3-none-any.whl", "beta-1.0-py3-none-any.whl"}

    again_progress, again = run_build(server.stub, request)
    assert "BUILDING" not in states(again_progress, "srcpkg")  # no build started: found in the store
    assert states(again_progress, "srcpkg")[-1] == "CACHED"
    assert again.stats.wheels_built == 0 and again.stats.wheels_downloaded == 0 and again.stats.wheels_cached == 2
    assert again.stats.cached and not again.stats.venv_built
    assert again.venv_archive.digest == first.venv_archive.digest
    assert [w.digest for w in again.wheels] == [w.digest for w in first.wheels]
    # The wheel built from the sdist is a stored artifact like any other.
    data, _ = read_blob(server.artifacts, built["srcpkg-1.0-py3-none-any.whl"].digest)
    assert hashlib.sha256(data).hexdigest() == built["srcpkg-1.0-py3-none-any.whl"].digest.hash


def test_console_scripts_run_and_the_venv_is_relocatable(server, index, tmp_path):
    dest = tmp_path / "first" / "venv"
    cli_venv(server, index, dest, "clitool", "srcpkg", tmp=tmp_path)
    assert in_venv(dest, str(dest / "bin" / "clitool"), cwd=tmp_path).splitlines() == ["clitool", "alpha", str(dest)]
    assert in_venv(dest, str(dest / "bin" / "srcpkg-hello"), cwd=tmp_path).split() == ["srcpkg", "beta"]

    moved = tmp_path / "elsewhere" / "deeper" / "renamed venv"
    moved.parent.mkdir(parents=True)
    shutil.move(dest, moved)
    assert not dest.exists()
    scripted = in_venv(moved, str(moved / "bin" / "clitool"), cwd=tmp_path).splitlines()
    assert scripted == ["clitool", "alpha", str(moved)]
    assert in_venv(moved, str(moved / "bin" / "srcpkg-hello"), cwd=tmp_path).split() == ["srcpkg", "beta"]
    code = "import alpha, beta, clitool.cli, srcpkg, sys; print(sys.prefix); print(srcpkg.__file__)"
    prefix, module = in_venv(moved, str(moved / "bin" / "python"), "-c", code, cwd=tmp_path).splitlines()
    assert prefix == str(moved) and module.startswith(str(moved) + "/")
    # The activate script finds the venv where it is now, too.
    activated = in_venv(moved, "bash", "-c", f'source "{moved}/bin/activate" && echo "$VIRTUAL_ENV" && clitool',
                        cwd=tmp_path).splitlines()
    assert activated == [str(moved), "clitool", "alpha", str(moved)]


def test_same_pins_give_the_same_digests_on_another_builder(server, index, tmp_path):
    request = build_request(index, "srcpkg", "clitool", wheelhouse=True, compile_bytecode=True)
    _, first = run_build(server.stub, request)
    with BuilderProcess(tmp_path / "other-home", allow=[index.base_url]) as other:
        _, second = run_build(other.stub, request)
        assert second.stats.wheels_built == 1 and second.stats.venv_built  # really built again, elsewhere
        assert second.http_base_url != first.http_base_url
    assert second.lock_key == first.lock_key
    assert second.venv_archive.digest == first.venv_archive.digest
    assert second.wheelhouse.digest == first.wheelhouse.digest
    assert second.lock_file.digest == first.lock_file.digest
    assert [(w.filename, w.digest) for w in second.wheels] == [(w.filename, w.digest) for w in first.wheels]


def test_venv_for_another_python_the_builder_has(server, index, tmp_path):
    """The target names a Python version: the venv is built with (and runs on) the builder's interpreter of it."""
    mine = f"{sys.version_info.major}.{sys.version_info.minor}"
    environments = server.stub.ListEnvironments(builder_pb2.ListEnvironmentsRequest()).environments
    others = [e for e in environments if e.markers["implementation_name"] == "cpython"
              and e.markers["python_version"] != mine and Version(e.markers["python_version"]) >= Version("3.8")]
    if not others:
        pytest.skip("the builder found no other CPython >= 3.8 on this machine")
    other = others[0].markers["python_version"]
    dest = tmp_path / "venv"
    proc = run(cli("venv", str(dest), "--server", server.address, "--index-url", index.url,
                   "--python-version", other, "clitool", "srcpkg"), tmp_path / "client-home", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    version = in_venv(dest, str(dest / "bin" / "python"), "-c",
                      "import sys, srcpkg; print('%d.%d' % sys.version_info[:2])", cwd=tmp_path)
    assert version.strip() == other
    assert in_venv(dest, str(dest / "bin" / "clitool"), cwd=tmp_path).splitlines()[:2] == ["clitool", "alpha"]
    assert (dest / "lib" / f"python{other}" / "site-packages" / "srcpkg" / "__init__.py").is_file()


# ------------------------------------------------------------------------------------------- single-flight


def test_twenty_concurrent_identical_builds_do_the_work_once(server, index):
    request = build_request(index, "conc")
    results, errors = at_once(20, lambda _: run_build(server.stub, request)[1], join_timeout=120)
    assert not errors, errors
    assert len(results) == 20
    assert len({r.venv_archive.digest.hash for r in results}) == 1
    assert len({r.lock_key for r in results}) == 1
    assert sum(r.stats.venv_built for r in results) == 1  # one venv build
    assert sum(r.stats.wheels_built for r in results) == 1  # one sdist build
    assert sum(r.stats.wheels_downloaded for r in results) == 1  # one download of epsilon
    assert sum(r.stats.wheels_built + r.stats.wheels_downloaded + r.stats.wheels_cached for r in results) == 40
    # The builds overlapped (conc takes 1.5 s to build): the waiters say they shared a flight, not "cached".
    assert any(r.stats.shared_in_flight for r in results)
    assert not any(r.stats.cached and r.stats.shared_in_flight for r in results)


# ------------------------------------------------------------------------------------------- serving blobs


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []
        self._href: str | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self._href = dict(attrs).get("href")

    def handle_data(self, data):
        if self._href is not None:
            self.links.append((self._href, data.strip()))
            self._href = None


def links(url: str) -> list[tuple[str, str]]:
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.headers.get_content_type() == "text/html"
        parser = _Links()
        parser.feed(response.read().decode())
    return parser.links


def http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@pytest.fixture(scope="module")
def built(server, index) -> builder_pb2.BuildResult:
    """alpha + beta with every artifact, built once for the serving tests."""
    return run_build(server.stub, build_request(index, "alpha", "gamma", "delta", wheelhouse=True))[1]


def test_get_artifact_reads_resumably_and_reports_bad_ranges(server, built):
    digest = built.venv_archive.digest
    whole, offsets = read_blob(server.artifacts, digest)
    assert len(whole) == digest.size_bytes and hashlib.sha256(whole).hexdigest() == digest.hash
    assert offsets[0] == 0
    for offset in (1, digest.size_bytes // 2, digest.size_bytes - 1):
        tail, offsets = read_blob(server.artifacts, digest, offset)
        assert tail == whole[offset:] and offsets[0] == offset
    part, _ = read_blob(server.artifacts, digest, 10, limit=100)
    assert part == whole[10:110]
    assert read_blob(server.artifacts, digest, digest.size_bytes) == (b"", [])  # resuming a complete download
    with pytest.raises(grpc.RpcError) as past:
        read_blob(server.artifacts, digest, digest.size_bytes + 1)
    assert past.value.code() == grpc.StatusCode.OUT_OF_RANGE
    unknown = common_pb2.Digest(hash=hashlib.sha256(b"never stored").hexdigest(), size_bytes=12)
    with pytest.raises(grpc.RpcError) as missing:
        read_blob(server.artifacts, unknown)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    for bad in (common_pb2.Digest(hash="xyz", size_bytes=1), common_pb2.Digest(hash=digest.hash, size_bytes=-1)):
        with pytest.raises(grpc.RpcError) as invalid:
            read_blob(server.artifacts, bad)
        assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as negative:
        read_blob(server.artifacts, digest, -1)
    assert negative.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_stat_artifacts(server, built):
    present = [built.venv_archive.digest, built.wheelhouse.digest, built.lock_file.digest,
               *(w.digest for w in built.wheels)]
    unknown = common_pb2.Digest(hash=hashlib.sha256(b"nope").hexdigest(), size_bytes=4)
    venv = built.venv_archive.digest
    wrong_size = common_pb2.Digest(hash=venv.hash, size_bytes=venv.size_bytes + 1)
    answer = server.artifacts.StatArtifacts(artifact_pb2.StatArtifactsRequest(digests=[*present, unknown, wrong_size]))
    assert list(answer.present) == present
    assert list(answer.missing) == [unknown, wrong_size]
    with pytest.raises(grpc.RpcError) as invalid:
        server.artifacts.StatArtifacts(artifact_pb2.StatArtifactsRequest(digests=[common_pb2.Digest(hash="0" * 63)]))
    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_artifacts_have_kinds_and_http_urls(server, built):
    assert built.http_base_url == server.http_url
    kinds = {common_pb2.ArtifactKind.Name(w.kind) for w in built.wheels}
    assert kinds == {"WHEEL"}
    assert built.venv_archive.kind == common_pb2.VENV_ARCHIVE and built.venv_archive.media_type == "application/zstd"
    assert built.wheelhouse.kind == common_pb2.WHEELHOUSE and built.lock_file.kind == common_pb2.LOCK_FILE
    for ref in (built.venv_archive, built.wheelhouse, built.lock_file, *built.wheels):
        assert ref.http_url.startswith(server.http_url) and ref.lock_key == built.lock_key
    lock, _ = read_blob(server.artifacts, built.lock_file.digest)
    text = lock.decode()
    assert all(f"{name}==1.0" in text for name in ("alpha", "beta", "gamma", "delta"))
    assert text.count("--hash=sha256:") == 4
    # The wheelhouse archive holds wheels/ and simple/ pages linking them with their sha256.
    house, _ = read_blob(server.artifacts, built.wheelhouse.digest)
    tar_bytes = zstandard.ZstdDecompressor().decompress(house, max_output_size=1 << 26)
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        names = set(tar.getnames())
    assert {f"wheels/{w.filename}" for w in built.wheels} <= names
    assert {"simple/index.html", "simple/delta/index.html"} <= names


def test_http_serves_blobs_with_ranges(server, built):
    ref = built.venv_archive
    whole, _ = read_blob(server.artifacts, ref.digest)
    status, headers, body = http_get(ref.http_url)
    assert status == 200 and body == whole and headers.get("Accept-Ranges") == "bytes"
    status, headers, body = http_get(ref.http_url, {"Range": "bytes=10-19"})
    assert status == 206 and body == whole[10:20]
    assert headers["Content-Range"] == f"bytes 10-19/{ref.digest.size_bytes}"
    status, _, body = http_get(ref.http_url, {"Range": "bytes=-7"})
    assert status == 206 and body == whole[-7:]
    status, _, body = http_get(ref.http_url, {"Range": "bytes=100-"})
    assert status == 206 and body == whole[100:]
    status, headers, _ = http_get(ref.http_url, {"Range": f"bytes={ref.digest.size_bytes}-"})
    assert status == 416 and headers["Content-Range"] == f"bytes */{ref.digest.size_bytes}"
    status, _, _ = http_get(f"{server.http_url}blobs/{hashlib.sha256(b'x').hexdigest()}/1/x.whl")
    assert status == 404
    status, _, _ = http_get(f"{server.http_url}nothing/here")
    assert status == 404


def test_http_wheelhouse_is_a_pep503_index(server, built):
    root = f"{server.http_url}wheelhouse/{built.lock_key}/simple/"
    projects = links(root)
    assert sorted(text for _, text in projects) == ["alpha", "beta", "delta", "gamma"]
    expected = {w.filename: w.digest.hash for w in built.wheels}
    seen = {}
    for href, _ in projects:
        project_url = urljoin(root, href)
        for file_href, filename in links(project_url):
            url = urljoin(project_url, file_href)
            fragment = urlsplit(url).fragment
            assert fragment.startswith("sha256=")
            status, _, data = http_get(url.split("#", 1)[0])
            assert status == 200
            assert hashlib.sha256(data).hexdigest() == fragment.removeprefix("sha256=") == expected[filename]
            seen[filename] = fragment
    assert set(seen) == set(expected)  # every wheel, including the one built from the delta sdist
    status, _, _ = http_get(f"{root}Alpha/")
    assert status == 200  # redirected to the canonical name
    assert http_get(f"{root}nothere/")[0] == 404
    assert http_get(f"{server.http_url}wheelhouse/{'0' * 64}/simple/")[0] == 404


def test_list_environments_includes_this_python(server):
    answer = server.stub.ListEnvironments(builder_pb2.ListEnvironmentsRequest())
    assert answer.environments
    versions = [env.markers["python_full_version"] for env in answer.environments]
    assert platform.python_version() in versions
    mine = next(e for e in answer.environments if e.markers["python_full_version"] == platform.python_version())
    assert mine.tags and mine.markers["implementation_name"] == platform.python_implementation().lower()
    assert mine.markers["sys_platform"] and mine.interpreter


def test_pip_installs_from_the_wheelhouse_index_unchanged(server, built, tmp_path):
    """pip (only as a client here) downloads a build's wheels from the HTTP wheelhouse index, hashes checked."""
    root = f"{server.http_url}wheelhouse/{built.lock_key}/simple/"
    dest = tmp_path / "dl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--isolated", "--disable-pip-version-check", "--no-cache-dir",
         "--index-url", root, "--dest", str(dest), "alpha", "gamma", "delta"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in dest.iterdir()) == sorted(w.filename for w in built.wheels)


def test_sdist_with_build_requirements_from_the_index(server, index, tmp_path):
    """Build requirements are resolved by our resolver and installed with our installer into the build env."""
    progress, result = run_build(server.stub, build_request(index, "needsbuilddep"))
    assert result.stats.wheels_built == 1
    assert "BUILDING" in states(progress, "needsbuilddep")
    out = cli_venv(server, index, tmp_path / "venv", "needsbuilddep", tmp=tmp_path)
    assert "venv ready" in out
    venv_python = str(tmp_path / "venv" / "bin" / "python")
    assert in_venv(tmp_path, venv_python, "-c", "import needsbuilddep; print(1)", cwd=tmp_path).strip() == "1"
