"""The interpreter probe: one bounded subprocess per interpreter answers discovery, identity, target and scheme."""

from __future__ import annotations

import os
import stat
import sys
import time
from pathlib import Path

import pytest
from packaging.version import Version

from venvsmith.core.errors import InvalidInput
from venvsmith.core.interpreters import (
    ENV_VAR,
    QueryCache,
    cached_identify,
    discover_interpreters,
    identify,
    query,
)
from venvsmith.core.probe import ProbeCache, ProbeError, probe
from venvsmith.core.target import TargetEnvironment

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="shell-script fake interpreters")


def _script(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def _only(exe: Path, tmp_path: Path) -> dict[str, str]:
    """An environment in which discovery finds ``exe`` and nothing else."""
    return {ENV_VAR: str(exe), "PATH": "", "PYENV_ROOT": str(tmp_path / "no-pyenv"), "HOME": str(tmp_path)}


def test_one_subprocess_answers_every_caller(tmp_path: Path) -> None:
    exe = Path(sys.executable)
    cache = QueryCache(tmp_path / "interpreters.json")
    assert isinstance(cache, ProbeCache)

    found = discover_interpreters(_only(exe, tmp_path), cache=cache)
    assert [str(i.version) for i in found] == [str(Version(".".join(map(str, sys.version_info[:3]))))]
    env = TargetEnvironment.from_interpreter(exe, cache=cache)
    base = cached_identify(exe, cache)
    assert query(exe, cache=cache) == found[0]
    assert cache.stats["runs"] == 1  # discovery, target environment and identity: one probe

    # the same answers as asking afresh, each caller on its own
    assert env == TargetEnvironment.from_interpreter(exe)
    assert env.tags == TargetEnvironment.from_local().tags
    assert base is not None and base == identify(exe)

    # and kept on disk while the binary is unchanged
    again = QueryCache(tmp_path / "interpreters.json")
    assert TargetEnvironment.from_interpreter(exe, cache=again) == env
    assert cached_identify(exe, again) == base
    assert again.stats == {"runs": 0, "hits": 2}


@posix_only
def test_a_changed_binary_is_probed_again(tmp_path: Path) -> None:
    report = '{"version_info": [3, 12, 1, "final", 0], "implementation": "cpython", "executable": ""}'
    fake = _script(tmp_path / "python3", f"printf '{report}'")
    cache = ProbeCache(tmp_path / "cache.json")
    assert query(fake, cache=cache) is not None
    assert query(fake, cache=cache) is not None
    assert cache.stats["runs"] == 1
    _script(fake, "printf '" + report.replace("12, 1", "13, 0") + "'")
    os.utime(fake, ns=(fake.stat().st_atime_ns, fake.stat().st_mtime_ns + 10**9))
    found = query(fake, cache=cache)
    assert found is not None and str(found.version) == "3.13.0"
    assert cache.stats["runs"] == 2


@posix_only
def test_an_interpreter_that_prints_10_mb_is_cut_off(tmp_path: Path) -> None:
    loud = _script(tmp_path / "loud" / "python3", "exec head -c 10000000 /dev/zero")
    with pytest.raises(ProbeError) as info:
        probe(loud)
    assert info.value.kind == "output"
    assert str(loud) in str(info.value) and "more than" in str(info.value)

    with pytest.raises(InvalidInput, match="more than") as target:
        TargetEnvironment.from_interpreter(loud)
    assert target.value.value == str(loud)
    assert query(loud) is None  # discovery skips it
    assert identify(loud) is None


@posix_only
def test_an_interpreter_that_sleeps_is_timed_out_with_its_children(tmp_path: Path) -> None:
    slow = _script(tmp_path / "slow" / "python3", "exec sleep 30")
    start = time.monotonic()
    with pytest.raises(ProbeError, match="within 0.3s") as info:
        probe(slow, timeout=0.3)
    assert info.value.kind == "timeout" and info.value.path == str(slow)
    # a child that keeps the output pipe open after the "interpreter" itself has answered and exited
    lingering = _script(tmp_path / "lingering" / "python3", "sleep 30 &\necho '{}'")
    with pytest.raises(ProbeError) as info:
        probe(lingering, timeout=0.5)
    assert str(lingering) in str(info.value)
    assert time.monotonic() - start < 5


@posix_only
def test_a_failure_is_remembered_while_the_binary_is_unchanged(tmp_path: Path) -> None:
    broken = _script(tmp_path / "python3", "echo boom >&2; exit 3")
    cache = ProbeCache(tmp_path / "cache.json")
    for _ in range(2):
        with pytest.raises(ProbeError, match="boom") as info:
            probe(broken, cache=cache)
        assert info.value.kind == "exit"
    assert cache.stats["runs"] == 1


def test_the_scheme_of_a_venv_prefix(tmp_path: Path) -> None:
    answer = probe(sys.executable, venv=tmp_path / "v")
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert answer.scheme == {"purelib": f"lib/python{version}/site-packages",
                             "platlib": f"lib/python{version}/site-packages", "scripts": "bin"}
    assert not (tmp_path / "v").exists()  # only asked, not created


def _pyenv_interpreters() -> list:
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    found = discover_interpreters({"PATH": "", "PYENV_ROOT": str(root), "HOME": str(Path.home())})
    return [i for i in found if i.implementation == "cpython"]


@pytest.mark.slow
@posix_only
def test_every_pyenv_interpreter_answers_as_the_three_old_probes_did(tmp_path: Path) -> None:
    from tests.fixtures.old_probes import old_environment, old_identify, old_query

    interpreters = _pyenv_interpreters()
    minors = {(i.version.major, i.version.minor) for i in interpreters}
    if not {(3, minor) for minor in range(8, 14)} <= minors:
        pytest.skip(f"pyenv does not have every Python 3.8 to 3.13 here: {sorted(minors)}")
    for interpreter in interpreters:
        cache = ProbeCache(tmp_path / f"{interpreter.version}.json")
        exe = interpreter.path
        found = query(exe, cache=cache)
        env = TargetEnvironment.from_interpreter(exe, cache=cache)
        base = identify(exe, cache=cache)
        assert cache.stats["runs"] == 1, interpreter

        info, implementation, executable = old_query(exe)
        assert found is not None and (found.implementation, str(found.path)) == (implementation, executable)
        major, minor, micro, _, _ = info.split(".")
        assert found.version.release == (int(major), int(minor), int(micro))
        markers, tags = old_environment(exe)
        assert dict(env.markers) == markers, interpreter
        assert [str(t) for t in env.tags] == tags, interpreter
        assert base is not None and base.__dict__ == old_identify(exe), interpreter


def test_a_probe_cache_removes_the_temp_file_a_killed_writer_left_but_not_a_live_ones(tmp_path):
    import subprocess
    import sys

    from venvsmith.core.probe import ProbeCache

    path = tmp_path / "interpreters.json"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    orphan = tmp_path / f"interpreters.json.{int(dead.stdout)}.1234.tmp"
    live = tmp_path / f"interpreters.json.{os.getppid()}.1234.tmp"
    orphan.write_text("{", encoding="utf-8")
    live.write_text("{", encoding="utf-8")
    ProbeCache(path)
    assert not orphan.exists() and live.exists()
