"""``venvsmith build``, ``venvsmith venv`` and ``venvsmith fetch``: embedded (in-process ``main([...])``) and against
a builder server started with ``venvsmith serve builder --port 0 --http-port 0`` in a separate process.

Hermetic: VENVSMITH_HOME is a temporary directory, ``PIP_CONFIG_FILE=os.devnull`` and no other ``PIP_*`` variable,
every command names ``--index-url`` (a local HTTP index), and the sdist uses an in-tree backend.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.builder_server import BuilderProcess, cli, hermetic_env
from tests.fixtures.digests import sha256_file
from tests.fixtures.hermetic import isolate
from tests.fixtures.index import IndexBuilder, IndexServer
from venvsmith.cli import main

REF = re.compile(r"^sha256:([0-9a-f]{64})/(\d+)$")


@pytest.fixture(autouse=True)
def hermetic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """In-process runs see only this test's home and no pip configuration; returns the home."""
    return isolate(monkeypatch, tmp_path / "home")


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Iterator[IndexServer]:
    b = IndexBuilder(tmp_path_factory.mktemp("cli-build-index"))
    b.add("app", "1.0", deps=["lib>=1"], console_scripts={"app": "app:main"})
    b.add("lib", "1.0")
    b.add("srconly", "1.0", kind="sdist", backend="intree", deps=["lib"])
    b.add("slowsrc", "1.0", kind="sdist", backend="intree", build_body="import time; time.sleep(60)")
    with IndexServer(b) as server:
        yield server


@pytest.fixture(scope="module")
def server(tmp_path_factory, index) -> Iterator[BuilderProcess]:
    process = BuilderProcess(tmp_path_factory.mktemp("cli-builder-home"), allow=[index.base_url])
    yield process
    assert process.stop() == 0, process.log()


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def build_json(capsys, *argv: str) -> dict:
    code, out, err = run(capsys, "build", "--format", "json", "-q", *argv)
    assert code == 0, err
    return json.loads(out)


def by_kind(doc: dict) -> dict[str, list[dict]]:
    kinds: dict[str, list[dict]] = {}
    for artifact in doc["artifacts"]:
        kinds.setdefault(artifact["kind"], []).append(artifact)
    return kinds


# ------------------------------------------------------------------------------------------------ build


@pytest.mark.slow
def test_build_json_lists_every_artifact_remote(capsys, server, index):
    doc = build_json(capsys, "--server", server.address, "--index-url", index.url, "app", "srconly")
    kinds = by_kind(doc)
    assert sorted(kinds) == ["lock_file", "venv_archive", "wheel", "wheelhouse"]
    assert sorted(a["filename"] for a in kinds["wheel"]) == [
        "app-1.0-py3-none-any.whl", "lib-1.0-py3-none-any.whl", "srconly-1.0-py3-none-any.whl"]
    assert len(kinds["venv_archive"]) == len(kinds["wheelhouse"]) == len(kinds["lock_file"]) == 1
    assert kinds["venv_archive"][0]["media_type"] == "application/zstd"
    for artifact in doc["artifacts"]:
        assert REF.match(artifact["digest"]), artifact
        assert artifact["http_url"].startswith(server.http_url)
    assert len(doc["lock_key"]) == 64
    stats = doc["stats"]
    assert stats["wheels_built"] + stats["wheels_cached"] + stats["wheels_downloaded"] == 3
    assert {"cached", "shared_in_flight", "venv_built"} <= set(stats)
    # --no-venv / --no-wheelhouse leave those out; the same pins have the same lock key.
    slim = build_json(capsys, "--server", server.address, "--index-url", index.url, "--no-venv", "--no-wheelhouse",
                      "app", "srconly")
    assert sorted(by_kind(slim)) == ["lock_file", "wheel"] and slim["lock_key"] == doc["lock_key"]
    assert slim["stats"]["wheels_cached"] == 3 and slim["stats"]["cached"]


def test_build_embedded_keeps_its_store_under_venvsmith_home(capsys, hermetic, index):
    first = build_json(capsys, "--index-url", index.url, "srconly")
    assert first["stats"]["wheels_built"] == 1 and not first["stats"]["cached"]
    assert all(a["http_url"] == "" for a in first["artifacts"])  # no HTTP endpoint in embedded mode
    for artifact in first["artifacts"]:
        digest = REF.match(artifact["digest"]).group(1)
        blob = hermetic / "store" / "cas" / "sha256" / digest[:2] / digest
        assert blob.is_file() and sha256_file(blob) == digest
    again = build_json(capsys, "--index-url", index.url, "srconly")
    assert again["stats"]["cached"] and again["stats"]["wheels_built"] == 0
    assert again["artifacts"] == first["artifacts"]
    code, out, _ = run(capsys, "build", "-q", "--index-url", index.url, "srconly")
    assert code == 0
    lines = out.splitlines()
    assert any(line.startswith("venv_archive") and "sha256:" in line for line in lines)
    assert lines[-1].startswith("# lock key") and "(cached)" in lines[-1]


def test_build_options_may_follow_requirements_and_precede_them(capsys, index):
    """argparse would give ``PATH``/requirements only the first run of positionals; venvsmith takes them all."""
    one = build_json(capsys, "srconly", "--index-url", index.url, "lib", "--no-venv")
    two = build_json(capsys, "--no-venv", "--index-url", index.url, "lib", "srconly")
    assert one["lock_key"] == two["lock_key"]
    assert sorted(a["filename"] for a in by_kind(one)["wheel"]) == [
        "lib-1.0-py3-none-any.whl", "srconly-1.0-py3-none-any.whl"]


@pytest.mark.slow
def test_build_timeout_flag_is_deadline_exceeded(capsys, server, index):
    code, _, err = run(capsys, "build", "-q", "--server", server.address, "--index-url", index.url,
                       "--build-timeout", "2", "slowsrc")
    assert code == 1
    assert "error (DEADLINE_EXCEEDED)" in err and "slowsrc" in err


# ------------------------------------------------------------------------------------------------ venv


def test_venv_embedded_second_time_comes_from_the_store(capsys, index, tmp_path):
    first = tmp_path / "one"
    code, out, err = run(capsys, "venv", str(first), "-q", "--index-url", index.url, "app", "srconly")
    assert code == 0, err
    assert "venv ready at" in out and "from the store" not in out
    second = tmp_path / "two"
    code, out, err = run(capsys, "venv", str(second), "--index-url", index.url, "app", "srconly")
    assert code == 0, err
    assert "from the store" in out
    assert "cached" in err  # progress on stderr
    for venv in (first, second):
        proc = subprocess.run([str(venv / "bin" / "app")], capture_output=True, timeout=60,
                              env={"PATH": "/usr/bin:/bin"})
        assert proc.returncode == 0, proc.stderr
        proc = subprocess.run([str(venv / "bin" / "python"), "-c", "import app, lib, srconly"],
                              capture_output=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
        assert proc.returncode == 0, proc.stderr
    code, _, err = run(capsys, "venv", str(second), "--index-url", index.url, "app")
    assert code == 2 and "not an empty directory" in err


@pytest.mark.slow
def test_venv_remote_in_a_subprocess(server, index, tmp_path):
    dest = tmp_path / "remote-venv"
    proc = subprocess.run(cli("venv", str(dest), "--server", server.address, "--index-url", index.url, "app"),
                          env=hermetic_env(tmp_path / "client-home"), cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (dest / "bin" / "app").is_file()
    assert not (tmp_path / "client-home").exists()
    assert not list(tmp_path.glob("*.part")) and sorted(p.name for p in tmp_path.iterdir()) == ["remote-venv"]


# ------------------------------------------------------------------------------------------------ fetch


def test_fetch_embedded(capsys, hermetic, index, tmp_path):
    doc = build_json(capsys, "--index-url", index.url, "--no-venv", "lib")
    ref = by_kind(doc)["wheel"][0]["digest"]
    digest = REF.match(ref).group(1)
    dest = tmp_path / "lib.whl"
    code, out, err = run(capsys, "fetch", ref, str(dest))
    assert code == 0, err
    assert out.strip() == str(dest) and sha256_file(dest) == digest
    folder = tmp_path / "into"
    folder.mkdir()
    name = by_kind(doc)["wheel"][0]["filename"]
    assert name.startswith("lib-1.0-") and name.endswith(".whl")
    code, out, _ = run(capsys, "fetch", ref, str(folder))  # into a directory: the artifact's own file name
    assert code == 0 and out.strip() == str(folder / name) and sha256_file(folder / name) == digest
    assert [p.name for p in folder.iterdir()] == [name]
    code, _, err = run(capsys, "fetch", "sha256:" + "0" * 64 + "/3", str(tmp_path / "none"))
    assert code == 1 and "NOT_FOUND" not in err  # embedded: the status name only with -v
    code, _, err = run(capsys, "-v", "fetch", "sha256:" + "0" * 64 + "/3", str(tmp_path / "none"))
    assert code == 1 and "NOT_FOUND" in err
    code, _, err = run(capsys, "fetch", "md5:abc", str(tmp_path / "none"))
    assert code == 2 and "md5:abc" in err
    assert not (tmp_path / "none").exists() and not (tmp_path / "none.part").exists()


@pytest.mark.slow
def test_fetch_remote_resumes_and_verifies(capsys, server, index, tmp_path):
    doc = build_json(capsys, "--server", server.address, "--index-url", index.url, "app")
    archive = by_kind(doc)["venv_archive"][0]
    ref = archive["digest"]
    digest, size = REF.match(ref).group(1), int(REF.match(ref).group(2))
    dest = tmp_path / "venv.tar.zst"
    code, _, err = run(capsys, "fetch", "--server", server.address, ref, str(dest))
    assert code == 0, err
    folder = tmp_path / "into"
    folder.mkdir()
    code, out, err = run(capsys, "fetch", "--server", server.address, ref, str(folder))
    assert code == 0, err
    assert archive["filename"].startswith("venv-") and out.strip() == str(folder / archive["filename"])
    assert (folder / archive["filename"]).read_bytes() == dest.read_bytes()
    whole = dest.read_bytes()
    assert hashlib.sha256(whole).hexdigest() == digest and len(whole) == size
    # A partial download is resumed from its offset ...
    resumed = tmp_path / "resumed.tar.zst"
    (tmp_path / "resumed.tar.zst.part").write_bytes(whole[: size // 2])
    code, _, err = run(capsys, "fetch", "--server", server.address, ref, str(resumed))
    assert code == 0, err
    assert resumed.read_bytes() == whole and not (tmp_path / "resumed.tar.zst.part").exists()
    # ... and a corrupt one is detected, thrown away, and not left at DEST.
    corrupt = tmp_path / "corrupt.tar.zst"
    (tmp_path / "corrupt.tar.zst.part").write_bytes(b"\0" * (size // 2))
    code, _, err = run(capsys, "fetch", "--server", server.address, ref, str(corrupt))
    assert code == 1 and "DATA_LOSS" in err
    assert not corrupt.exists() and not (tmp_path / "corrupt.tar.zst.part").exists()
    code, _, err = run(capsys, "fetch", "--server", server.address, ref, str(corrupt))
    assert code == 0 and corrupt.read_bytes() == whole
    code, _, err = run(capsys, "fetch", "--server", server.address, "sha256:" + "1" * 64 + "/9", str(tmp_path / "x"))
    assert code == 1 and "NOT_FOUND" in err
    assert not (tmp_path / "x").exists() and not (tmp_path / "x.part").exists()


@pytest.mark.slow
def test_venv_is_lean_by_default_and_seed_puts_pip_in(capsys, index, tmp_path):
    lean, seeded = tmp_path / "lean", tmp_path / "seeded"
    code, _, err = run(capsys, "venv", str(lean), "-q", "--index-url", index.url, "lib")
    assert code == 0, err
    code, _, err = run(capsys, "venv", str(seeded), "-q", "--seed", "--index-url", index.url, "lib")
    assert code == 0, err
    for venv, works in ((lean, False), (seeded, True)):
        proc = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "--version"], capture_output=True,
                              text=True, timeout=60)
        assert (proc.returncode == 0) is works, proc.stderr
    assert str(seeded) in proc.stdout


class _OtherHostBuilder:
    """The real builder servicer, reporting the venv's base interpreter at a path this host lacks: what a builder
    on another machine (its Python installed elsewhere) answers. Nothing else is changed."""

    def __init__(self, real, path: str) -> None:
        self.real = real
        self.path = path

    def __getattr__(self, name):
        return getattr(self.real, name)

    def ResolveAndBuild(self, request, context):  # noqa: N802 - the gRPC method's name
        for event in self.real.ResolveAndBuild(request, context):
            if event.WhichOneof("event") == "build" and event.build.WhichOneof("event") == "result":
                event.build.result.interpreter.path = self.path
            yield event


@pytest.mark.slow
def test_venv_refuses_an_archive_whose_interpreter_this_host_lacks(capsys, hermetic, index, tmp_path):
    from builder_service.artifact_service import ArtifactServicer
    from builder_service.engine import BuildEngine, BuilderSettings
    from builder_service.service import BuilderServicer
    from resolver_service.engine import EngineSettings, ResolverEngine
    from venvsmith.clients.resolver import EmbeddedResolver
    from venvsmith.core.grpc_util import build_server
    from venvsmith.v1 import artifact_pb2_grpc, builder_pb2_grpc

    resolver = EmbeddedResolver(ResolverEngine(EngineSettings(home=tmp_path / "server-home")))
    engine = BuildEngine(BuilderSettings(home=tmp_path / "server-home"), resolver)
    missing = str(tmp_path / "elsewhere" / "bin" / "python3")
    servicer = _OtherHostBuilder(BuilderServicer(engine), missing)
    server, port = build_server([(builder_pb2_grpc.add_BuilderServiceServicer_to_server, servicer),
                                 (artifact_pb2_grpc.add_ArtifactServiceServicer_to_server,
                                  ArtifactServicer(engine.store))],
                                ["venvsmith.v1.BuilderService", "venvsmith.v1.ArtifactService"], "127.0.0.1:0")
    server.start()
    try:
        dest = tmp_path / "env"
        code, _, err = run(capsys, "venv", str(dest), "-q", "--server", f"127.0.0.1:{port}",
                           "--index-url", index.url, "lib")
    finally:
        server.stop(0)
        engine.close()
        resolver.close()
    assert code == 2  # NO_INTERPRETER: the host lacks what the venv needs (exit 2)
    assert "FAILED_PRECONDITION" in err and missing in err
    assert not dest.exists() or not any(dest.iterdir())  # nothing unpacked


def test_fetch_names_a_blob_of_no_build_by_its_hash_and_never_uses_a_name_as_a_path(capsys, hermetic, tmp_path):
    from hypothesis import given
    from hypothesis import strategies as st

    from builder_service.engine import BuildEngine, BuilderSettings
    from venvsmith.cli.build import safe_filename

    engine = BuildEngine(BuilderSettings(home=hermetic))
    try:
        digest = engine.store.put_bytes(b"not from a build")
    finally:
        engine.close()
    folder = tmp_path / "into"
    folder.mkdir()
    code, out, err = run(capsys, "fetch", str(digest), str(folder))
    assert code == 0, err
    assert out.strip() == str(folder / digest.hash) and (folder / digest.hash).read_bytes() == b"not from a build"

    @given(st.text(max_size=40))
    def plain_names_only(name: str) -> None:
        safe = safe_filename(name)
        if safe is not None:
            assert safe == name and Path(name).name == name and not name.startswith(".")
            assert (tmp_path / name).parent == tmp_path

    plain_names_only()
    for bad in ("../x.whl", "a/b.whl", ".hidden", "..", "", "x\n.whl"):
        assert safe_filename(bad) is None
    assert safe_filename("pkg-1.0-py3-none-any.whl") == "pkg-1.0-py3-none-any.whl"
