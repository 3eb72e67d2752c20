"""``resolve --format requirements`` strips extras from pinned lines (``web==1.0``, not ``web[email]==1.0``), as
uv and pip-tools do: what an extra pulls in is pinned on its own line. ``--no-strip-extras`` keeps them. Both
install with the real pip of this virtualenv under ``--require-hashes`` (hermetic: a local index, no config)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.test_cli import hermetic, hermetic_env, run  # noqa: F401 - hermetic: autouse fixture
from tests.fixtures.index import IndexBuilder, IndexServer

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Iterator[IndexServer]:
    b = IndexBuilder(tmp_path_factory.mktemp("extras-index"))
    b.add("web", "1.0", deps=["core>=1"], extras={"email": ["validator>=1"], "idn": ["idna"]})
    b.add("core", "1.0")
    b.add("validator", "1.0")
    b.add("idna", "3.0")
    with IndexServer(b) as server:
        yield server


def pinned_lines(text: str) -> list[str]:
    return [line.split(" ")[0] for line in text.splitlines() if line and not line.startswith((" ", "#"))]


def test_extras_are_stripped_by_default_and_kept_on_request(capsys, index):
    code, out, err = run(capsys, "resolve", "web[email,idn]", "--format", "requirements", "--index-url", index.url)
    assert code == 0, err
    assert pinned_lines(out) == ["core==1.0", "idna==3.0", "validator==1.0", "web==1.0"]
    code, kept, err = run(capsys, "resolve", "web[email,idn]", "--format", "requirements", "--no-strip-extras",
                          "--index-url", index.url)
    assert code == 0, err
    assert pinned_lines(kept) == ["core==1.0", "idna==3.0", "validator==1.0", "web[email,idn]==1.0"]
    assert re.sub(r"^web\[email,idn\]==", "web==", kept, flags=re.M) == out  # otherwise the same: hashes, via


def _pip_install(tmp_path: Path, reqs: Path, index: IndexServer) -> dict[str, str]:
    env = hermetic_env(tmp_path / "home")
    env.update(PIP_NO_CACHE_DIR="1", PIP_DISABLE_PIP_VERSION_CHECK="1", UV_NO_CONFIG="1",
               UV_CACHE_DIR=str(tmp_path / "uv-cache"), UV_PYTHON_DOWNLOADS="never")
    venv = tmp_path / f"venv-{reqs.stem}"
    subprocess.run([str(BIN / "uv"), "venv", "-q", "--python", sys.executable, str(venv)], check=True, env=env,
                   timeout=120)
    python = venv / "bin" / "python"
    done = subprocess.run([str(BIN / "pip"), "--python", str(python), "install", "--require-hashes",
                           "--index-url", index.url, "-r", str(reqs)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    code = "import importlib.metadata as m, json; print(json.dumps({d.name: d.version for d in m.distributions()}))"
    out = subprocess.run([str(python), "-I", "-c", code], check=True, capture_output=True, text=True, timeout=60)
    return {k: v for k, v in json.loads(out.stdout).items() if k not in ("pip", "setuptools")}


@pytest.mark.slow
@pytest.mark.parametrize("flags", [(), ("--no-strip-extras",)])
def test_pip_require_hashes_installs_the_output(capsys, tmp_path, index, flags):
    reqs = tmp_path / ("kept.txt" if flags else "stripped.txt")
    code, _, err = run(capsys, "resolve", "web[email]", "--format", "requirements", *flags, "-o", str(reqs),
                       "--index-url", index.url)
    assert code == 0, err
    assert _pip_install(tmp_path, reqs, index) == {"web": "1.0", "core": "1.0", "validator": "1.0"}
