"""``venvsmith venv PATH --server ADDR --node-cache DIR`` against a real builder server: hard links on the same
filesystem, a layered venv that stays usable (imports, console scripts, ``pip install`` of local packages and an
editable project, ``pip check``) while the shared copy stays read-only and unchanged, a corrupted entry refetched,
concurrent CLI processes filling once, bad input refused before anything is built.

Hermetic as tests/cli/test_cli_build.py: a temporary VENVSMITH_HOME, no pip configuration, a local HTTP index.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from builder_service import venv_template
from tests.fixtures.builder_server import BuilderProcess, cli, hermetic_env
from tests.fixtures.dists import build_wheel
from tests.fixtures.hermetic import isolate
from tests.fixtures.index import IndexBuilder, IndexServer
from venvsmith.cli import main
from venvsmith.clients.node_cache import NodeCache

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def hermetic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return isolate(monkeypatch, tmp_path / "home")


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Iterator[IndexServer]:
    b = IndexBuilder(tmp_path_factory.mktemp("node-cache-index"))
    b.add("app", "1.0", deps=["lib>=1"], console_scripts={"app": "app:main"})
    b.add("lib", "1.0")
    with IndexServer(b) as server:
        yield server


@pytest.fixture(scope="module")
def server(tmp_path_factory, index) -> Iterator[BuilderProcess]:
    process = BuilderProcess(tmp_path_factory.mktemp("node-cache-builder"), allow=[index.base_url])
    yield process
    assert process.stop() == 0, process.log()


def venv(capsys, server, index, path: Path, node: Path, *more: str) -> tuple[int, str, str]:
    code = main(["venv", str(path), "-q", "--server", server.address, "--index-url", index.url, "--seed",
                 "--node-cache", str(node), *more, "app"])
    out, err = capsys.readouterr()
    return code, out, err


#: The environment of the venvs' own processes: bytecode written (as root: into the shared copy too).
RUN_ENV = {"PATH": "/usr/bin:/bin"}


def python(venv_path: Path, *args: str, cwd: Path | None = None) -> str:
    proc = subprocess.run([str(venv_path / "bin" / "python"), *args], capture_output=True, text=True, timeout=120,
                          env=RUN_ENV, cwd=cwd)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def pip(venv_path: Path, *args: str, cwd: Path | None = None) -> str:
    return python(venv_path, "-m", "pip", "--disable-pip-version-check", "--no-input", *args, cwd=cwd)


def only_entry(node: Path) -> Path:
    entries = list((node / "envs").iterdir())
    assert len(entries) == 1, entries
    return entries[0]


def snapshot(entry: Path) -> dict[str, list[int]]:
    """The entry's files but bytecode (which imports may add), with their size, mtime, inode and mode."""
    return {k: v for k, v in venv_template.record(entry / "tree").items() if not k.endswith(".pyc")}


def test_same_filesystem_places_hard_links_to_the_read_only_copy(capsys, server, index, tmp_path):
    node = tmp_path / "node"
    code, out, err = venv(capsys, server, index, tmp_path / "first", node)
    assert code == 0, err
    assert "hardlink from the node cache (filled)" in out
    code, out, err = venv(capsys, server, index, tmp_path / "second", node)
    assert code == 0, err
    assert "hardlink from the node cache" in out and "(filled)" not in out
    entry = only_entry(node)
    module = next((tmp_path / "second").glob("lib/python*/site-packages/lib/__init__.py"))
    shared = entry / "tree" / module.relative_to(tmp_path / "second")
    assert os.path.samefile(module, shared) and not module.stat().st_mode & 0o222
    assert python(tmp_path / "second", "-c", "import app, lib; print(lib.__file__)").strip() == str(module)


def test_layered_venv_works_on_the_read_only_shared_copy_and_never_changes_it(capsys, server, index, tmp_path):
    node, layer = tmp_path / "node", tmp_path / "layer"
    code, out, err = venv(capsys, server, index, layer, node, "--node-cache-mode", "layered")
    assert code == 0, err
    assert "layered from the node cache (filled)" in out
    entry = only_entry(node)
    before = snapshot(entry)
    assert all(not v[3] & 0o222 for v in before.values())  # every shared file read-only
    site = next(layer.glob("lib/python*/site-packages"))
    assert [p.name for p in site.iterdir()] == ["_venvsmith_node_cache.pth"]
    # imports and a console script, run by the layer's interpreter: sys.prefix is the layer
    found = python(layer, "-c", "import sys, app, lib; print(sys.prefix); print(lib.__file__)").split()
    assert found[0] == str(layer) and found[1].startswith(str(entry / "tree"))
    proc = subprocess.run([str(layer / "bin" / "app")], capture_output=True, text=True, timeout=60, env=RUN_ENV)
    assert proc.returncode == 0, proc.stderr
    assert not (layer / "bin" / "app").is_symlink()
    # pip sees the shared distributions, installs into the layer only
    listed = pip(layer, "list", "--format", "freeze")
    assert "app==1.0" in listed and "lib==1.0" in listed
    wheels = tmp_path / "wheels"
    extra = build_wheel(wheels, "extra", "1.0", requires_dist=["lib>=1"], console_scripts={"extra": "extra:main"})
    pip(layer, "install", "--no-index", str(extra))  # its dependency is satisfied by the shared lib
    assert (site / "extra" / "__init__.py").is_file() and (layer / "bin" / "extra").is_file()
    proc = subprocess.run([str(layer / "bin" / "extra")], capture_output=True, text=True, timeout=60, env=RUN_ENV)
    assert proc.returncode == 0, proc.stderr
    newer = build_wheel(wheels, "lib", "2.0")  # an upgrade of a shared package shadows it, never removes it
    pip(layer, "install", "--no-index", "--upgrade", str(newer))
    assert python(layer, "-c", "import lib; print(lib.__version__, lib.__file__)").split() == \
        ["2.0", str(site / "lib" / "__init__.py")]
    project = editable_project(tmp_path / "proj")
    pip(layer, "install", "--no-index", "--no-build-isolation", "-e", str(project))
    assert python(layer, "-c", "import proj; print(proj.__file__)").strip() == str(project / "proj.py")
    assert "No broken requirements found" in pip(layer, "check")
    # the shared copy: the same files, unchanged, and intact for the next placement
    assert snapshot(entry) == before
    if os.geteuid() == 0:  # root's imports wrote bytecode into the read-only copy: allowed, not damage
        assert list((entry / "tree").rglob("__pycache__/*.pyc"))
    assert NodeCache(node).entry(entry.name).damage() is None
    code, out, err = venv(capsys, server, index, tmp_path / "again", node, "--node-cache-mode", "layered")
    assert code == 0 and "(filled)" not in out and "damaged" not in err, out + err


def editable_project(path: Path) -> Path:
    """A project with a PEP 660 in-tree backend (no build requirements): ``pip install -e`` works offline."""
    path.mkdir()
    (path / "proj.py").write_text("VALUE = 1\n")
    (path / "pyproject.toml").write_text(textwrap.dedent("""
        [build-system]
        requires = []
        build-backend = "backend"
        backend-path = ["."]
    """))
    (path / "backend.py").write_text(textwrap.dedent('''
        import base64, hashlib, os, zipfile

        NAME = "proj-1.0"
        FILES = {
            f"{NAME}.dist-info/METADATA": "Metadata-Version: 2.1\\nName: proj\\nVersion: 1.0\\n",
            f"{NAME}.dist-info/WHEEL": "Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: true\\n"
                                       "Tag: py3-none-any\\n",
        }

        def _wheel(directory, extra):
            files = {**FILES, **extra}
            name = f"{NAME}-py3-none-any.whl"
            record = []
            with zipfile.ZipFile(os.path.join(directory, name), "w") as zf:
                for member, text in files.items():
                    data = text.encode()
                    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
                    zf.writestr(member, data)
                    record.append(f"{member},sha256={digest},{len(data)}")
                record.append(f"{NAME}.dist-info/RECORD,,")
                zf.writestr(f"{NAME}.dist-info/RECORD", "\\n".join(record) + "\\n")
            return name

        def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
            return _wheel(wheel_directory, {"proj.py": open("proj.py").read()})

        def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
            return _wheel(wheel_directory, {"proj_editable.pth": os.path.abspath(".") + "\\n"})
    '''))
    return path


def test_a_corrupted_entry_is_detected_and_refetched(capsys, server, index, tmp_path):
    node = tmp_path / "node"
    code, _, err = venv(capsys, server, index, tmp_path / "first", node, "--node-cache-mode", "layered")
    assert code == 0, err
    entry = only_entry(node)
    module = next((entry / "tree").glob("lib/python*/site-packages/lib/__init__.py"))
    pristine = module.read_bytes()
    os.chmod(module, 0o644)
    module.write_bytes(b"raise SystemExit('corrupted')\n")  # what a root process in some pod could do
    code, out, err = venv(capsys, server, index, tmp_path / "second", node, "--node-cache-mode", "layered")
    assert code == 0, err
    assert "damaged" in err and "lib/__init__.py" in err and "(filled)" in out
    assert module.read_bytes() == pristine and not module.stat().st_mode & 0o222
    python(tmp_path / "first", "-c", "import lib")  # the layered venv placed before works again too


def test_concurrent_cli_processes_fill_the_node_cache_once(server, index, tmp_path):
    node = tmp_path / "node"
    procs = [subprocess.Popen(cli("venv", str(tmp_path / f"venv{i}"), "--server", server.address, "--index-url",
                                  index.url, "--node-cache", str(node), "-q", "app"),
                              env=hermetic_env(tmp_path / f"home{i}"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(3)]
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
        outs.append(out)
    assert sum("(filled)" in out for out in outs) == 1, outs
    only_entry(node)
    for i in range(3):
        assert (tmp_path / f"venv{i}" / "bin" / "app").is_file()


def test_bad_input_is_refused_before_anything_is_built(capsys, server, index, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, _, err = venv(capsys, server, index, tmp_path / "v", blocker / "node")
    assert code == 2 and "cannot be used" in err
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep").write_text("mine")
    code, _, err = venv(capsys, server, index, occupied, tmp_path / "node")
    assert code == 2 and "not an empty directory" in err and (occupied / "keep").read_text() == "mine"
    code, _, err = venv(capsys, server, index, tmp_path / "v", tmp_path / "node", "--node-cache-max-size", "big")
    assert code == 2 and "--node-cache-max-size" in err
    monkeypatch.setenv("VENVSMITH_NODE_CACHE_MODE", "copy")
    code, _, err = venv(capsys, server, index, tmp_path / "v", tmp_path / "node")
    assert code == 2 and "VENVSMITH_NODE_CACHE_MODE" in err
    assert not (tmp_path / "v").exists() and not list((tmp_path / "node" / "envs").iterdir())


def test_the_environment_variable_names_the_node_cache(capsys, server, index, tmp_path, monkeypatch):
    monkeypatch.setenv("VENVSMITH_NODE_CACHE", str(tmp_path / "node"))
    monkeypatch.setenv("VENVSMITH_NODE_CACHE_MODE", "layered")
    code = main(["venv", str(tmp_path / "v"), "-q", "--server", server.address, "--index-url", index.url, "app"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "layered from the node cache (filled)" in out
    assert (tmp_path / "v" / "bin" / "app").is_file()


@pytest.mark.skipif(os.stat("/dev/shm").st_dev == os.stat(sys.prefix).st_dev if os.path.isdir("/dev/shm")
                    else True, reason="needs two filesystems (/dev/shm and the test's tmp)")
def test_auto_layers_across_filesystems(capsys, server, index, tmp_path):
    import shutil
    import tempfile

    other = Path(tempfile.mkdtemp(dir="/dev/shm"))
    try:
        if os.stat(other).st_dev == os.stat(tmp_path).st_dev:
            pytest.skip("/dev/shm is the filesystem of the test's tmp")
        code, out, err = venv(capsys, server, index, other / "v", tmp_path / "node")
        assert code == 0, err
        assert "layered from the node cache" in out
    finally:
        shutil.rmtree(other, ignore_errors=True)


def test_the_embedded_path_uses_the_node_cache_too(capsys, index, tmp_path):
    node = tmp_path / "node"
    for name in ("first", "second"):
        code = main(["venv", str(tmp_path / name), "-q", "--index-url", index.url, "--node-cache", str(node),
                     "--node-cache-mode", "layered", "app"])
        out, err = capsys.readouterr()
        assert code == 0, err
        assert "layered from the node cache" in out and ("(filled)" in out) is (name == "first")
    assert python(tmp_path / "second", "-c", "import app, lib; print(lib.__file__)").startswith(
        str(only_entry(node) / "tree"))


def _kept(node: Path) -> list[Path]:
    folder = node / "client" / "answers"
    return sorted(folder.iterdir()) if folder.is_dir() else []


def test_the_next_pod_uses_the_kept_answer_without_the_server(capsys, index, tmp_path):
    """The answer stays with the node until the resolution's expiry: a next pod asking the same places the
    environment with no call at all (even with its server stopped); an expired or damaged answer, or an entry the
    node lost, sends the pod to the server again."""
    import json
    import time

    own = BuilderProcess(tmp_path / "builder", allow=[index.base_url])
    node = tmp_path / "node"
    try:
        code, out, err = venv(capsys, own, index, tmp_path / "first", node)
        assert code == 0 and "(filled)" in out and "kept answer" not in out, err
        assert len(_kept(node)) == 1
        code, out, err = venv(capsys, own, index, tmp_path / "second", node)
        assert code == 0 and "the node's kept answer" in out, err
        answer = _kept(node)[0]
        head, _, rest = answer.read_bytes().partition(b"\n")
        fields = json.loads(head)
        assert fields["expires"] is not None and fields["expires"] > time.time()
        # expired: the server is asked (and its answer kept again)
        answer.write_bytes(json.dumps({**fields, "expires": 1.0}).encode() + b"\n" + rest)
        code, out, err = venv(capsys, own, index, tmp_path / "third", node)
        assert code == 0 and "kept answer" not in out, err
        # the answer names an interpreter this host no longer has as it was (another build at that path): the
        # server is asked again instead of refusing
        from venvsmith.v1 import builder_pb2, resolver_pb2

        head, _, rest = answer.read_bytes().partition(b"\n")
        fields = json.loads(head)
        pins_blob, result_blob = rest[:fields["sizes"][0]], rest[fields["sizes"][0]:]
        result = builder_pb2.BuildResult.FromString(result_blob)
        assert resolver_pb2.ResolveResponse.FromString(pins_blob).pins
        result.interpreter.identity = "0" * 64
        changed = result.SerializeToString()
        answer.write_bytes(json.dumps({**fields, "sizes": [len(pins_blob), len(changed)]}).encode() + b"\n"
                           + pins_blob + changed)
        code, out, err = venv(capsys, own, index, tmp_path / "rebuilt-python", node)
        assert code == 0 and "kept answer" not in out, err
        # the node lost the environment: the server is asked and the entry filled again
        assert len(NodeCache(node).open().evict(0)) == 1
        code, out, err = venv(capsys, own, index, tmp_path / "fourth", node)
        assert code == 0 and "(filled)" in out and "kept answer" not in out, err
        # a different request is another answer
        code, out, err = venv(capsys, own, index, tmp_path / "other", node, "--compile")
        assert code == 0 and "kept answer" not in out, err
        assert len(_kept(node)) == 2
        assert own.stop() == 0, own.log()
        # the server is gone: the kept answer still places the environment (its pins verified before)
        code, out, err = venv(capsys, own, index, tmp_path / "fifth", node)
        assert code == 0 and "the node's kept answer" in out, err
        python(tmp_path / "fifth", "-c", "import app, lib")
        # a damaged answer is no answer: with the server gone, that pod fails, nothing placed
        for kept in _kept(node):
            kept.write_bytes(b"{not json")
        code, out, err = venv(capsys, own, index, tmp_path / "sixth", node, "--retries", "0")
        assert code != 0 and not any((tmp_path / "sixth").iterdir() if (tmp_path / "sixth").exists() else []), out
    finally:
        own.stop()
