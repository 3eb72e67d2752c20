"""The venv archive's key covers its base interpreter and options (item: archives are not shared between builders
whose interpreters differ), ``--seed`` puts pip into the venv, and the client refuses an archive whose interpreter
this host lacks.

Two builders share one store (one ``VENVSMITH_HOME``): one builds with this test's base interpreter, the other with
a relocated copy of it (the same binary under another prefix whose ``lib`` links to the real one): the same version
at another path, as on two CI agents installed differently.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from builder_service.archive import unpack
from builder_service.engine import BuildEngine, BuilderSettings
from builder_service.orchestrate import resolve_and_build
from resolver_service.engine import EngineSettings, ResolverEngine
from tests.fixtures.index import IndexBuilder
from venvsmith.clients.builder import check_base_interpreter
from venvsmith.core.config import PipIndexConfig
from venvsmith.core.interpreters import identify
from venvsmith.core.resolution import CallError
from venvsmith.v1 import builder_pb2, common_pb2, resolver_pb2

BASE = Path(os.path.realpath(getattr(sys, "_base_executable", "") or sys.executable))

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def relocated_python(tmp_path_factory) -> Path:
    """This interpreter's binary under another prefix (``lib`` links to the real one): same version, other path."""
    prefix = tmp_path_factory.mktemp("alt-python")
    (prefix / "bin").mkdir()
    exe = prefix / "bin" / BASE.name
    shutil.copy2(BASE, exe)
    os.symlink(Path(sys.base_prefix) / "lib", prefix / "lib")
    probe = subprocess.run([exe, "-I", "-c", "import sys; print(sys.base_prefix)"], capture_output=True, text=True)
    if probe.returncode != 0 or probe.stdout.strip() != str(prefix):
        pytest.skip(f"this interpreter does not run from a copy: {probe.stderr[-300:]}")
    return exe


@pytest.fixture(scope="module")
def index_url(tmp_path_factory) -> str:
    b = IndexBuilder(tmp_path_factory.mktemp("venv-key-index"))
    b.add("lib", "1.0")
    return b.simple_url()


def engine_with(home: Path, python: Path, index_url: str, monkeypatch) -> BuildEngine:
    monkeypatch.setenv("VENVSMITH_PYTHONS", str(python))  # discovered first: builds for this Python use it
    resolver = ResolverEngine(EngineSettings(home=home, pip=PipIndexConfig(index_url=index_url)))
    engine = BuildEngine(BuilderSettings(home=home), resolver)
    engine.list_environments()  # discovery now, while the variable names this interpreter
    return engine


def build(engine: BuildEngine, index_url: str, *, seed: bool = False) -> builder_pb2.BuildResult:
    config = common_pb2.IndexConfig(index_url=index_url)
    request = builder_pb2.ResolveAndBuildRequest(
        resolve=resolver_pb2.ResolveRequest(requirements=["lib"], index=config),
        options=builder_pb2.BuildOptions(wheels=True, venv_archive=True, index=config, seed=seed),
    )
    results = [e.build.result for e in resolve_and_build(engine, request, engine.resolver.resolve_stream)
               if e.WhichOneof("event") == "build" and e.build.WhichOneof("event") == "result"]
    assert len(results) == 1
    return results[0]


@pytest.fixture
def engines(tmp_path, relocated_python, index_url, monkeypatch) -> Iterator[tuple[BuildEngine, BuildEngine]]:
    home = tmp_path / "shared-home"
    first = engine_with(home, BASE, index_url, monkeypatch)
    second = engine_with(home, relocated_python, index_url, monkeypatch)
    yield first, second
    first.close()
    second.close()


def home_of(venv: Path) -> str:
    lines = (venv / "pyvenv.cfg").read_text().splitlines()
    return next(line.split("=", 1)[1].strip() for line in lines if line.startswith("home"))


def test_builders_with_other_interpreters_do_not_share_venv_archives(tmp_path, engines, relocated_python, index_url):
    first, second = engines
    a = build(first, index_url)
    b = build(second, index_url)
    assert a.lock_key == b.lock_key  # the same pins and target environment ...
    assert b.stats.venv_built, "the second builder was served the first one's venv"  # ... but not the same venv
    assert a.venv_archive.digest.hash != b.venv_archive.digest.hash
    assert (a.interpreter.path, b.interpreter.path) == (str(BASE), str(relocated_python))
    assert a.interpreter.version == b.interpreter.version == identify(BASE).version
    assert a.interpreter.identity != b.interpreter.identity
    for result, engine, python in ((a, first, BASE), (b, second, relocated_python)):
        venv = tmp_path / f"venv-{result.interpreter.identity[:8]}"
        unpack(engine.store.path(_digest(result)), venv)
        assert home_of(venv) == str(python.parent)
        assert subprocess.run([venv / "bin" / "python", "-c", "import lib"]).returncode == 0
    # The same builder again is served from the store.
    assert not build(first, index_url).stats.venv_built


def _digest(result: builder_pb2.BuildResult):
    from builder_service.digest import Digest

    return Digest(result.venv_archive.digest.hash, result.venv_archive.digest.size_bytes)


def test_seed_puts_pip_into_the_venv_and_into_the_key(tmp_path, engines, index_url):
    first, _ = engines
    lean = build(first, index_url)
    seeded = build(first, index_url, seed=True)
    assert seeded.stats.venv_built and seeded.venv_archive.digest.hash != lean.venv_archive.digest.hash
    for result, pip_works in ((lean, False), (seeded, True)):
        venv = tmp_path / ("seeded" if pip_works else "lean")
        unpack(first.store.path(_digest(result)), venv)
        pip = subprocess.run([venv / "bin" / "python", "-m", "pip", "--version"], capture_output=True, text=True)
        assert (pip.returncode == 0) is pip_works, pip.stderr
        if pip_works:
            assert str(venv) in pip.stdout  # this venv's pip, not the base interpreter's


# ------------------------------------------------------------------------------------------------ client check


def proto_of(path: Path) -> builder_pb2.BaseInterpreter:
    base = identify(path)
    assert base is not None
    return builder_pb2.BaseInterpreter(path=base.path, version=base.version, implementation=base.implementation,
                                       identity=base.identity)


def test_the_client_accepts_an_interpreter_this_host_has(relocated_python):
    check_base_interpreter(proto_of(BASE))
    check_base_interpreter(proto_of(relocated_python))


def test_the_client_refuses_an_interpreter_this_host_lacks(tmp_path, relocated_python):
    missing = proto_of(relocated_python)
    missing.path = str(tmp_path / "gone" / "bin" / "python3")
    changed = proto_of(relocated_python)
    changed.identity = "0" * 64  # another build of the same version at that path
    other_version = proto_of(relocated_python)
    other_version.version = "3.0.1"
    for wanted, says in ((missing, "does not have"), (changed, "another build"), (other_version, "this host has")):
        with pytest.raises(CallError) as err:
            check_base_interpreter(wanted)
        assert err.value.status == "FAILED_PRECONDITION"
        assert wanted.path in err.value.message and says in err.value.message
