"""Selection semantics through the ``venvsmith`` command, each checked against pip or uv run on the same local
index: Requires-Python upper bounds (pip honours them, the default; uv ignores them, a flag), yanked versions
pinned by a dependency (uv refuses, so do we), and URL constraints (pip restricts the project to the file)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.index import IndexBuilder

from .test_cli import hermetic, resolve_json, run, versions  # noqa: F401 - hermetic is an autouse fixture

TARGET_39 = ["--python-version", "3.9", "--platform", "x86_64-manylinux_2_28"]
UV = Path(sys.executable).parent / "uv"


def _tool_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(PIP_CONFIG_FILE=os.devnull, UV_NO_CONFIG="1", UV_CACHE_DIR=str(tmp_path / "uv-cache"))
    return env


def pip_picks(tmp_path: Path, index_url: str, *args: str) -> dict[str, str]:
    """What ``pip install --dry-run`` would install for Python 3.9 from ``index_url`` only."""
    out = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet", "--report", "-",
         "--isolated", "--disable-pip-version-check", "--no-cache-dir", "--python-version", "3.9",
         "--only-binary=:all:", "--index-url", index_url, *args],
        capture_output=True, text=True, env=_tool_env(tmp_path), timeout=120, check=True,
    ).stdout
    return {i["metadata"]["name"]: i["metadata"]["version"] for i in json.loads(out)["install"]}


def uv_compile(tmp_path: Path, index_url: str, requirement: str) -> subprocess.CompletedProcess:
    reqs = tmp_path / "uv-in.txt"
    reqs.write_text(requirement + "\n")
    return subprocess.run(
        [str(UV), "pip", "compile", "--offline", "--no-header", "--python-version", "3.9", "--index-url",
         index_url, str(reqs)],
        capture_output=True, text=True, env=_tool_env(tmp_path), timeout=120,
    )


@pytest.fixture
def index(index_builder: IndexBuilder) -> str:
    b = index_builder
    b.add("meta", "1.0")
    b.add("meta", "2.0", requires_python="<=3.8")
    b.add("a", "1.0", deps=["c==2.0.0"])
    b.add("c", "1.0.0")
    b.add("c", "2.0.0")
    b.yank("c-2.0.0-py3-none-any.whl", "broken")
    b.add("app", "1.0", deps=["lib>=1"])
    b.add("lib", "1.0")
    b.add("lib", "3.0")
    return b.simple_url()


def test_requires_python_upper_bound_honoured_like_pip_or_ignored_like_uv(capsys, index, tmp_path):
    assert versions(resolve_json(capsys, "--index-url", index, *TARGET_39, "meta")) == {"meta": "1.0"}
    assert pip_picks(tmp_path, index, "meta") == {"meta": "1.0"}
    flagged = resolve_json(capsys, "--index-url", index, *TARGET_39, "--ignore-requires-python-upper-bound", "meta")
    assert versions(flagged) == {"meta": "2.0"}
    uv = uv_compile(tmp_path, index, "meta")
    assert uv.returncode == 0 and "meta==2.0" in uv.stdout, uv.stderr


def test_yanked_version_pinned_by_a_dependency_is_refused_like_uv(capsys, index, tmp_path):
    code, out, err = run(capsys, "resolve", "--index-url", index, *TARGET_39, "a")
    assert code == 1 and out == ""
    assert "a==1.0 requires c==2.0.0" in err and "c 2.0.0 is yanked (broken)" in err
    uv = uv_compile(tmp_path, index, "a")
    assert uv.returncode != 0 and "yanked" in uv.stderr
    # The user's own pin opts in.
    assert versions(resolve_json(capsys, "--index-url", index, *TARGET_39, "a", "c==2.0.0")) == {
        "a": "1.0", "c": "2.0.0"}


def test_url_constraint_in_a_constraints_file_like_pip(capsys, index, tmp_path, index_builder_factory):
    wheel = index_builder_factory("elsewhere").add("lib", "2.0")
    cons = tmp_path / "cons.txt"
    cons.write_text(f"lib @ {wheel.as_uri()}\n")
    doc = resolve_json(capsys, "--index-url", index, *TARGET_39, "-c", str(cons), "app")
    assert versions(doc) == {"app": "1.0", "lib": "2.0"}
    assert next(p for p in doc["pins"] if p["name"] == "lib")["url"] == wheel.as_uri()
    assert pip_picks(tmp_path, index, "-c", str(cons), "app") == {"app": "1.0", "lib": "2.0"}
