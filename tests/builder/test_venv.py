"""Building relocatable venvs for a target interpreter: create, install, run, move, run again."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from builder_service.errors import NotRelocatable, UnsafeWheel, VenvError
from builder_service.relocate import check_relocatable, find_references, relocatable_script
from builder_service.venv import VenvLayout, build_venv, create_venv
from tests.fixtures.dists import build_wheel

INTERPRETER = Path(sys.executable)
VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"


def wheels(out: Path) -> list[Path]:
    """``dep`` then ``pkg`` (install order), ``pkg`` with a console script ``hello = pkg:main``."""
    dep = build_wheel(out, "dep", "0.1", files={"dep/__init__.py": b"VALUE = 42\n"})
    pkg = build_wheel(
        out,
        "pkg",
        "1.0",
        requires_dist=["dep"],
        files={"pkg/__init__.py": b"import dep\n\n\ndef main():\n    print('hello', dep.VALUE)\n    return 0\n"},
        console_scripts={"hello": "pkg:main"},
    )
    return [dep, pkg]


def run(*cmd: object, cwd: Path | None = None) -> str:
    proc = subprocess.run([os.fspath(c) for c in cmd], capture_output=True, text=True, timeout=60, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def assert_works(root: Path) -> None:
    assert run(root / "bin/hello") == "hello 42\n"
    assert run(root / "bin/python", "-c", "import pkg, sys; print(pkg.__file__.startswith(sys.prefix))") == "True\n"
    # activate from another directory, relative path, as a user would
    out = run("bash", "-c", f". {root.name}/bin/activate && echo $VIRTUAL_ENV && command -v hello", cwd=root.parent)
    assert out.split() == [str(root), str(root / "bin/hello")]


def test_create_venv_reports_the_target_interpreters_layout(tmp_path: Path) -> None:
    layout = create_venv(INTERPRETER, tmp_path / "v")

    assert layout == VenvLayout(
        root=tmp_path / "v",
        python_version=VERSION,
        implementation=sys.implementation.name,
        scripts="bin",
        purelib=f"lib/python{VERSION}/site-packages",
        platlib=f"lib/python{VERSION}/site-packages",
    )
    assert layout.site_packages.is_dir()
    assert layout.python.is_symlink()
    assert os.path.realpath(layout.python) == os.path.realpath(sys._base_executable)
    assert not list(layout.site_packages.iterdir())  # --without-pip


def test_create_venv_refuses_a_non_empty_destination(tmp_path: Path) -> None:
    (tmp_path / "v").mkdir()
    (tmp_path / "v/file").write_text("x")
    with pytest.raises(VenvError) as info:
        create_venv(INTERPRETER, tmp_path / "v")
    assert info.value.path == tmp_path / "v"


def test_create_venv_reports_a_broken_interpreter(tmp_path: Path) -> None:
    with pytest.raises(VenvError, match="could not run"):
        create_venv(tmp_path / "no-such-python", tmp_path / "v")


@pytest.mark.slow
def test_built_venv_runs_and_still_runs_after_a_move(tmp_path: Path) -> None:
    layout = build_venv(INTERPRETER, wheels(tmp_path / "wheels"), tmp_path / "build" / "venv", compile_bytecode=True)
    root = layout.root
    assert_works(root)

    cfg = (root / "pyvenv.cfg").read_text()
    assert f"home = {os.path.dirname(sys._base_executable)}\n" in cfg
    assert "command" not in cfg and "relocatable = true" in cfg
    assert not (root / "bin/activate.csh").exists()
    assert (root / "bin/hello").read_bytes().startswith(b"#!/bin/sh\n'''exec' ")

    moved = tmp_path / "elsewhere" / "renamed-venv"
    moved.parent.mkdir()
    root.rename(moved)
    assert_works(moved)


@pytest.mark.slow
def test_built_venv_mentions_no_build_path(tmp_path: Path) -> None:
    build = tmp_path / "some-build-dir-3f9a"
    build_venv(INTERPRETER, wheels(tmp_path / "wheels"), build, compile_bytecode=True)
    assert find_references(build, [os.fspath(build), build.name]) == []

    # and the check does notice one
    (build / "lib/leak.txt").write_text(f"built in {build}\n")
    with pytest.raises(NotRelocatable) as info:
        check_relocatable(build)
    assert info.value.path == build / "lib/leak.txt"


def test_find_references_needs_the_whole_path(tmp_path: Path) -> None:
    root = tmp_path / "b"
    root.mkdir()
    (root / "similar.txt").write_text(f"{root}ar/x and {root}.old and {root}-2\n")
    (root / "link").symlink_to(f"{root}ar")
    assert find_references(root) == []
    big = root / "big.bin"
    with open(big, "wb") as f:  # a mention across the 1 MiB read boundary, then one at the very end
        f.write(b"x" * ((1 << 20) - 5) + os.fsencode(root) + b"/lib")
    assert find_references(root) == [big]
    big.write_bytes(b"x" * (1 << 20) + os.fsencode(root))
    assert find_references(root) == [big]
    (root / "link2").symlink_to(root / "lib")
    assert find_references(root) == [big, root / "link2"]


def test_unsafe_wheel_stops_the_build_before_the_venv_exists(tmp_path: Path) -> None:
    good = wheels(tmp_path / "wheels")
    bad = build_wheel(tmp_path / "bad", "bad", "1.0", files={"../../escape.py": b""})
    dest = tmp_path / "venv"
    with pytest.raises(UnsafeWheel):
        build_venv(INTERPRETER, [*good, bad], dest)
    assert not dest.exists()
    assert not list(tmp_path.rglob("escape.py"))


def test_a_failed_build_removes_the_venv(tmp_path: Path) -> None:
    twice = wheels(tmp_path / "wheels")[:1] * 2  # the second install finds its files already there
    dest = tmp_path / "venv"
    with pytest.raises(FileExistsError):
        build_venv(INTERPRETER, twice, dest)
    assert not dest.exists()


def test_relocatable_script_only_rewrites_python_shebangs() -> None:
    assert relocatable_script(b"#!python\nprint(1)\n").endswith(b"\n' '''\nprint(1)\n")
    assert relocatable_script(b"#!pythonw\nprint(1)\n").startswith(b"#!/bin/sh\n")
    assert relocatable_script(b"#!/bin/sh\necho\n") == b"#!/bin/sh\necho\n"


@pytest.mark.slow
def test_scheme_comes_from_the_target_interpreter(tmp_path: Path) -> None:
    from venvsmith.core.interpreters import discover_interpreters

    others = [
        i
        for i in discover_interpreters()
        if i.implementation == "cpython" and (i.version.major, i.version.minor) not in ((3, 6), sys.version_info[:2])
    ]
    if not others:
        pytest.skip("no interpreter of another minor version found")
    other = others[0]
    version = f"{other.version.major}.{other.version.minor}"
    layout = build_venv(other.path, wheels(tmp_path / "wheels"), tmp_path / "venv", compile_bytecode=True)
    assert layout.python_version == version
    assert layout.purelib == f"lib/python{version}/site-packages"
    assert run(layout.root / "bin/hello") == "hello 42\n"
    assert list((layout.site_packages / "pkg/__pycache__").glob(f"*{version.replace('.', '')}.pyc"))


@pytest.mark.slow
def test_create_venv_reports_what_the_old_scheme_probe_did(tmp_path: Path) -> None:
    from tests.fixtures.old_probes import old_create
    from venvsmith.core.interpreters import discover_interpreters

    interpreters = [i for i in discover_interpreters() if i.implementation == "cpython"]
    assert interpreters
    for n, interpreter in enumerate(interpreters):
        layout = create_venv(interpreter.path, tmp_path / f"new{n}")
        old = old_create(interpreter.path, tmp_path / f"old{n}")
        assert (layout.python_version, layout.implementation) == (old["version"], old["implementation"])
        assert {"purelib": layout.purelib, "platlib": layout.platlib, "scripts": layout.scripts} == old["paths"]
        assert sorted(p.relative_to(layout.root).as_posix() for p in layout.root.rglob("*")) == sorted(
            p.relative_to(tmp_path / f"old{n}").as_posix() for p in (tmp_path / f"old{n}").rglob("*")
        ), interpreter


@pytest.mark.parametrize("stop_after", [1, 2, 3])
def test_a_venv_build_whose_callers_all_left_stops_and_leaves_nothing(tmp_path: Path, stop_after: int) -> None:
    from venvsmith.core import cancellation

    checks = []

    def should_stop() -> bool:  # the callers leave after the build's ``stop_after``-th check
        checks.append(1)
        return len(checks) >= stop_after

    dest = tmp_path / "venv"
    with cancellation.stopping_when(should_stop), pytest.raises(cancellation.Cancelled):
        build_venv(INTERPRETER, wheels(tmp_path / "wheels"), dest, compile_bytecode=True)
    assert not dest.exists()
    assert len(checks) == stop_after
