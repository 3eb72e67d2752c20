"""Interpreter discovery: PATH, pyenv and configured candidates, de-duplication, ordering, matching."""

from __future__ import annotations

import os
import platform
import stat
import sys
from pathlib import Path

import pytest
from packaging.version import Version

from venvsmith.core.interpreters import (
    ENV_VAR,
    Interpreter,
    candidate_paths,
    discover_interpreters,
    find_interpreter,
    query,
)

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="shell-script fake interpreters")


def fake(path: Path, answer: str = "", *, body: str | None = None) -> Path:
    """A shell script that answers the probe's discovery questions like an interpreter would.

    ``answer`` is "3 12 1 final 0 cpython" (version_info fields and implementation name); the script adds its
    own path as ``sys.executable``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if body is None:
        major, minor, micro, level, serial, implementation = answer.split()
        report = (f'{{"version_info": [{major}, {minor}, {micro}, "{level}", {serial}], '
                  f'"implementation": "{implementation}", "executable": "%s"}}')
        body = f"printf '{report}' \"$0\""
    script = body
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@pytest.fixture
def machine(tmp_path: Path) -> dict[str, str]:
    """A fake machine: two PATH directories, a pyenv root, a configured list, and some bad interpreters."""
    bin1, bin2, pyenv = tmp_path / "bin1", tmp_path / "bin2", tmp_path / "pyenv"
    fake(bin1 / "python3.12", "3 12 1 final 0 cpython")
    (bin1 / "python3").symlink_to(bin1 / "python3.12")  # same interpreter twice
    fake(bin1 / "python", "2 7 18 final 0 python2")  # Python 2: skipped
    fake(bin1 / "python3-config", body="echo not an interpreter")  # not a candidate name
    fake(bin2 / "python3.10", "3 10 4 final 0 cpython")
    fake(bin2 / "python3.9", body="echo boom >&2; exit 1")  # broken
    fake(bin2 / "python3.8", body="echo hello")  # answers nonsense
    fake(bin2 / "pypy3", "3 10 14 final 0 pypy")
    (bin2 / "python3.7").write_text("#!/bin/sh\n")  # not executable
    fake(pyenv / "versions" / "3.11.9" / "bin" / "python", "3 11 9 final 0 cpython")
    fake(
        pyenv / "versions" / "3.12.1" / "bin" / "python", "3 12 1 final 0 cpython"
    )  # same version, other path
    fake(pyenv / "versions" / "broken" / "bin" / "python", body="exit 2")
    (pyenv / "versions" / "empty").mkdir()
    fake(pyenv / "shims" / "python3", "3 99 0 final 0 cpython")  # pyenv shims are not asked
    extra = fake(tmp_path / "opt" / "py314" / "python", "3 14 0 candidate 1 cpython")
    return {
        "PATH": os.pathsep.join([str(bin1), str(pyenv / "shims"), str(bin2), str(tmp_path / "missing")]),
        "PYENV_ROOT": str(pyenv),
        ENV_VAR: os.pathsep.join([str(extra), str(tmp_path / "nowhere" / "python")]),
        "HOME": str(tmp_path / "home"),
    }


def describe(found: list[Interpreter], root: Path) -> list[tuple[str, str, str]]:
    return [(str(i.version), i.implementation, i.path.relative_to(root).as_posix()) for i in found]


@posix_only
def test_discovery_on_a_fake_machine(machine: dict[str, str], tmp_path: Path) -> None:
    found = discover_interpreters(machine, timeout=5)
    assert describe(found, tmp_path) == [
        ("3.14.0rc1", "cpython", "opt/py314/python"),
        ("3.12.1", "cpython", "bin1/python3.12"),
        ("3.12.1", "cpython", "pyenv/versions/3.12.1/bin/python"),
        ("3.11.9", "cpython", "pyenv/versions/3.11.9/bin/python"),
        ("3.10.14", "pypy", "bin2/pypy3"),
        ("3.10.4", "cpython", "bin2/python3.10"),
    ]
    assert all(isinstance(i.version, Version) for i in found)


@posix_only
def test_candidates_are_unique_by_real_path_and_in_priority_order(
    machine: dict[str, str], tmp_path: Path
) -> None:
    paths = [p.relative_to(tmp_path).as_posix() for p in candidate_paths(machine)]
    assert paths[0] == "opt/py314/python"  # configured first
    assert "bin1/python3" not in paths and "bin1/python3.12" in paths  # symlink folded into its target
    assert "bin1/python3-config" not in paths and "bin2/python3.7" not in paths
    assert not any(p.startswith("pyenv/shims") for p in paths)
    assert (
        paths.index("bin1/python3.12")
        < paths.index("bin2/python3.10")
        < paths.index("pyenv/versions/3.11.9/bin/python")
    )


@posix_only
def test_pyenv_defaults_to_home(tmp_path: Path) -> None:
    fake(tmp_path / "home" / ".pyenv" / "versions" / "3.13.1" / "bin" / "python", "3 13 1 final 0 cpython")
    found = discover_interpreters({"PATH": "", "HOME": str(tmp_path / "home")})
    assert [str(i.version) for i in found] == ["3.13.1"]


@posix_only
def test_reported_executable_folds_wrappers(tmp_path: Path) -> None:
    real = fake(tmp_path / "real" / "python3.12", "3 12 1 final 0 cpython")
    wrapper = fake(tmp_path / "wrap" / "python3", body=f'exec "{real}" "$@"')
    path = os.pathsep.join([str(wrapper.parent), str(real.parent)])
    found = discover_interpreters({"PATH": path, "PYENV_ROOT": str(tmp_path / "no-pyenv")})
    assert [i.path for i in found] == [real]


@posix_only
def test_hanging_interpreter_is_skipped(tmp_path: Path) -> None:
    slow = fake(tmp_path / "python3", body="exec sleep 10")
    assert query(slow, timeout=0.3) is None
    assert query(tmp_path / "does-not-exist") is None


@posix_only
def test_find_interpreter(machine: dict[str, str]) -> None:
    found = discover_interpreters(machine, timeout=5)
    by = {
        spec: find_interpreter(spec, found)
        for spec in ["3.12", "3.12.1", "3.12.2", "3.10", "3", "3.14", "2.7"]
    }
    assert by["3.12"] is not None and str(by["3.12"].version) == "3.12.1"
    assert by["3.12.1"] == by["3.12"]
    assert by["3.12.2"] is None and by["2.7"] is None
    assert by["3.10"] is not None and str(by["3.10"].version) == "3.10.14"  # newest 3.10, whatever the impl
    assert by["3"] is not None and str(by["3"].version) == "3.12.1"  # finals before pre-releases
    assert by["3.14"] is not None and str(by["3.14"].version) == "3.14.0rc1"  # only a pre-release: taken
    assert str(find_interpreter(">=3.10,<3.12", found).version) == "3.11.9"  # type: ignore[union-attr]
    assert find_interpreter("3.11", environ=machine) is not None
    with pytest.raises(ValueError):
        find_interpreter("three", found)


def test_the_current_interpreter_is_found() -> None:
    found = discover_interpreters({ENV_VAR: sys.executable, "PATH": "", "PYENV_ROOT": os.devnull})
    assert len(found) == 1
    me = found[0]
    assert os.path.realpath(me.path) == os.path.realpath(sys.executable)
    assert me.version == Version(platform.python_version())
    assert me.implementation == sys.implementation.name
    mine = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert find_interpreter(mine, found) == me


def _pyenv_root() -> Path:
    return Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv").expanduser()


def _base_interpreter() -> Path:
    """The interpreter running the tests, seen through its virtual environment (if any)."""
    return Path(os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable))


@posix_only
def test_this_machines_discovery_finds_the_running_interpreter() -> None:
    base = _base_interpreter()
    path_dirs = {os.path.realpath(d) for d in os.environ.get("PATH", "").split(os.pathsep) if d}
    versions = os.path.realpath(_pyenv_root() / "versions")
    on_path = str(base.parent) in path_dirs
    under_pyenv = str(base).startswith(versions + os.sep)
    if not (on_path or under_pyenv):
        pytest.skip(f"the running interpreter {base} is neither on PATH nor under pyenv: nothing to discover")
    found = discover_interpreters()
    assert found, "discovery found no interpreter at all on this machine"
    mine = [i for i in found if i.version == Version(platform.python_version())]
    assert mine, f"no Python {platform.python_version()} among {[str(i) for i in found]}"
    if under_pyenv:
        prefix = Path(versions, base.relative_to(versions).parts[0])
        assert any(Path(os.path.realpath(i.path)).is_relative_to(prefix) for i in mine), (base, found)


@posix_only
def test_this_machines_pyenv_versions_are_all_discovered() -> None:
    versions = _pyenv_root() / "versions"
    expected = {}
    for prefix in sorted(versions.iterdir()) if versions.is_dir() else ():
        try:
            version = Version(prefix.name)
        except ValueError:
            continue
        if version.major >= 3 and (prefix / "bin" / "python").exists():
            expected[prefix.name] = version
    if not expected:
        pytest.skip(f"no Python 3 installed by pyenv under {versions}")
    interpreters = discover_interpreters({"PATH": "", "PYENV_ROOT": str(versions.parent)})
    found = {i.version for i in interpreters}
    missing = {name for name, version in expected.items() if version not in found}
    assert not missing, f"pyenv versions not discovered: {sorted(missing)}"
    for version in expected.values():  # and each is matched by its minor version
        match = find_interpreter(f"{version.major}.{version.minor}", interpreters)
        assert match is not None and match.version.release[:2] == version.release[:2]
