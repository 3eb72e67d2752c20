"""The lock files ``venvsmith resolve`` writes, read by the real consumers: ``packaging.pylock`` and the real
``uv`` and ``pip`` of this virtualenv installing them into a fresh venv of the running Python.

The lock is made for the running interpreter's *minor* version (``--python-version X.Y``, checked as X.Y.0)
and must install on this X.Y.Z. Hermetic: the indexes are this test's (127.0.0.1 and file://), caches and
configuration point into tmp_path, pip runs with ``--no-index``, uv with ``--no-config`` (and ``--offline``
where the lock's URLs are file://).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.pylock import Pylock
from packaging.tags import sys_tags

from tests.cli.test_cli import hermetic, hermetic_env, run  # noqa: F401 - hermetic: autouse fixture
from tests.fixtures.index import IndexBuilder, IndexServer

BIN = Path(sys.executable).parent
UV = BIN / "uv"
PIP = BIN / "pip"
#: The running interpreter's minor version: the lock is for "3.11", this interpreter is 3.11.7.
MINOR = f"{sys.version_info.major}.{sys.version_info.minor}"
PINS = {"app": "1.0", "lib": "2.0", "tiny": "0.3"}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def builder(tmp_path_factory) -> IndexBuilder:
    b = IndexBuilder(tmp_path_factory.mktemp("lock-index"))
    b.add("app", "1.0", deps=["lib>=1", "tiny"], requires_python=">=3.8",
          upload_time=datetime(2024, 3, 1, 12, 0, tzinfo=UTC))
    b.add("app", "1.0", kind="sdist", deps=["lib>=1", "tiny"], upload_time=datetime(2024, 3, 1, 12, 1, tzinfo=UTC))
    b.add("lib", "1.0", upload_time=datetime(2023, 1, 1, tzinfo=UTC))
    b.add("lib", "2.0", requires_python=">=3.9", upload_time=datetime(2024, 1, 1, tzinfo=UTC))
    b.add("lib", "2.0", kind="sdist", requires_python=">=3.9", upload_time=datetime(2024, 1, 1, tzinfo=UTC))
    b.add("tiny", "0.3")  # no upload time listed, no sdist
    return b


@pytest.fixture(scope="module")
def index(builder: IndexBuilder) -> Iterator[IndexServer]:
    with IndexServer(builder) as server:
        yield server


def _env(tmp_path: Path) -> dict[str, str]:
    env = hermetic_env(tmp_path / "home")
    env.update(UV_CACHE_DIR=str(tmp_path / "uv-cache"), UV_NO_CONFIG="1", UV_PYTHON_DOWNLOADS="never",
               PIP_NO_CACHE_DIR="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


def fresh_venv(tmp_path: Path, name: str) -> Path:
    """A new, empty venv of the running Python; returns its interpreter."""
    subprocess.run([str(UV), "venv", "-q", "--python", sys.executable, str(tmp_path / name)], check=True,
                   env=_env(tmp_path), timeout=120)
    return tmp_path / name / "bin" / "python"


def installed(python: Path) -> dict[str, str]:
    code = "import importlib.metadata as m, json; print(json.dumps({d.name: d.version for d in m.distributions()}))"
    out = subprocess.run([str(python), "-I", "-c", code], check=True, capture_output=True, text=True, timeout=60)
    return {k: v for k, v in json.loads(out.stdout).items() if k not in ("pip", "setuptools")}


def tool(tmp_path: Path, *argv: str | Path) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in argv], env=_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{argv}\n{done.stdout}\n{done.stderr}"
    return done


def write_lock(capsys, tmp_path: Path, fmt: str, *index_args: str) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    out = tmp_path / ("pylock.toml" if fmt == "pylock" else "requirements.txt")
    code, _, err = run(capsys, "resolve", "app", "--python-version", MINOR, "--format", fmt, "-o", str(out),
                       *index_args)
    assert code == 0, err
    return out


# ------------------------------------------------------------------------------------------- pylock


def test_pylock_is_valid_and_selects_on_every_patch_release(capsys, tmp_path, index, builder):
    path = write_lock(capsys, tmp_path, "pylock", "--index-url", index.url)
    doc = tomllib.loads(path.read_text())
    lock = Pylock.from_dict(doc)  # validates
    assert str(lock.requires_python) == f"=={MINOR}.*"
    # On the running X.Y.Z, and on any other patch release of X.Y.
    for patch in (sys.version_info.micro, 0, 99):
        environment = {**default_environment(), "python_full_version": f"{MINOR}.{patch}"}
        selected = {p.name: (str(p.version), f.name) for p, f in lock.select(environment=environment,
                                                                             tags=list(sys_tags()))}
        assert {n: v for n, (v, _) in selected.items()} == PINS
        assert all(name.endswith(".whl") for _, name in selected.values())
    other_minor = {**default_environment(), "python_version": "3.99", "python_full_version": "3.99.0"}
    with pytest.raises(Exception, match="3.99"):
        list(lock.select(environment=other_minor))

    packages = {p["name"]: p for p in doc["packages"]}
    for package in packages.values():
        files = [*package.get("wheels", []), *([package["sdist"]] if "sdist" in package else [])]
        for entry in files:
            published = builder.get(entry["name"])
            assert entry["size"] == published.size
            assert entry["hashes"] == {"sha256": published.sha256}
            if published.upload_time is not None:
                assert entry["upload-time"] == published.upload_time
            else:
                assert "upload-time" not in entry
    # The release's sdist sits next to the wheel when the index lists one.
    assert packages["app"]["sdist"]["name"] == "app-1.0.tar.gz"
    assert packages["lib"]["sdist"]["name"] == "lib-2.0.tar.gz"
    assert "sdist" not in packages["tiny"]


def test_pylock_installs_with_uv_and_pip(capsys, tmp_path, index):
    lock = write_lock(capsys, tmp_path, "pylock", "--index-url", index.url)
    uv_python = fresh_venv(tmp_path, "uv-venv")
    tool(tmp_path, UV, "pip", "install", "--python", uv_python, "-r", lock)
    assert installed(uv_python) == PINS
    sync_python = fresh_venv(tmp_path, "uv-sync-venv")
    tool(tmp_path, UV, "pip", "sync", "--python", sync_python, lock)
    assert installed(sync_python) == PINS
    pip_python = fresh_venv(tmp_path, "pip-venv")
    tool(tmp_path, PIP, "--python", pip_python, "install", "--no-index", "-r", lock)
    assert installed(pip_python) == PINS


def test_pylock_from_file_index_and_find_links_installs_offline(capsys, tmp_path, builder):
    """Local listings have sizes too (the PEP 503 page has no size attribute; the file is on disk) and
    Requires-Python (the page's attribute, or for a find-links directory the wheel's own metadata)."""
    sources = {
        "file-index": ("--index-url", builder.simple_url()),
        "find-links": ("--no-index", "--find-links", str(builder.find_links_dir())),
    }
    for label, index_args in sources.items():
        lock = write_lock(capsys, tmp_path / label, "pylock", *index_args)
        packages = {p["name"]: p for p in tomllib.loads(lock.read_text())["packages"]}
        for package in packages.values():
            for entry in [*package["wheels"], *([package["sdist"]] if "sdist" in package else [])]:
                assert entry["size"] == builder.get(entry["name"]).size, (label, entry)
        assert packages["lib"]["requires-python"] == ">=3.9", label
        assert "requires-python" not in packages["tiny"], label
        python = fresh_venv(tmp_path / label, "venv")
        tool(tmp_path, UV, "pip", "install", "--offline", "--python", python, "-r", lock)
        assert installed(python) == PINS, label


# ------------------------------------------------------------------------------------- requirements


def test_requirements_install_with_require_hashes(capsys, tmp_path, index):
    reqs = write_lock(capsys, tmp_path, "requirements", "--index-url", index.url)
    pip_python = fresh_venv(tmp_path, "pip-venv")
    tool(tmp_path, PIP, "--python", pip_python, "install", "--require-hashes", "--index-url", index.url,
         "-r", reqs)
    assert installed(pip_python) == PINS
    uv_python = fresh_venv(tmp_path, "uv-venv")
    tool(tmp_path, UV, "pip", "install", "--require-hashes", "--index-url", index.url, "--python", uv_python,
         "-r", reqs)
    assert installed(uv_python) == PINS


def test_requirements_list_the_sdist_hash_next_to_the_wheel_hash(capsys, tmp_path, index, builder):
    """An installer that falls back to the release's sdist can still check it."""
    reqs = write_lock(capsys, tmp_path, "requirements", "--index-url", index.url)
    text = reqs.read_text()
    assert f"--hash=sha256:{builder.get('lib-2.0.tar.gz').sha256}" in text
    assert f"--hash=sha256:{builder.get('lib-2.0-py3-none-any.whl').sha256}" in text

