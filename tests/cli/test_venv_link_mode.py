"""``venvsmith venv --link-mode hardlink|copy|symlink|reflink`` (or ``VENVSMITH_LINK_MODE``): how the files of a
venv are placed from the template of its archive, and that an in-place edit of one venv never reaches a venv
placed later, whatever the mode.

Hermetic as tests/cli/test_cli_build.py: a temporary VENVSMITH_HOME, no pip configuration, a local HTTP index.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.hermetic import isolate
from tests.fixtures.index import IndexBuilder, IndexServer
from venvsmith.cli import main

MODES = ["hardlink", "copy", "symlink", "reflink"]


@pytest.fixture(autouse=True)
def hermetic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return isolate(monkeypatch, tmp_path / "home")


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Iterator[IndexServer]:
    b = IndexBuilder(tmp_path_factory.mktemp("link-mode-index"))
    b.add("six", "1.0")
    with IndexServer(b) as server:
        yield server


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def module(venv: Path) -> Path:
    found = list(venv.glob("lib/python*/site-packages/six/__init__.py"))
    assert len(found) == 1, found
    return found[0]


def imports(venv: Path) -> str:
    proc = subprocess.run([str(venv / "bin" / "python"), "-c", "import six; print(six.__file__)"],
                          capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_hardlink_default_an_in_place_edit_does_not_reach_a_later_venv(capsys, index, tmp_path):
    first = tmp_path / "first"
    code, _, err = run(capsys, "venv", str(first), "-q", "--index-url", index.url, "six")
    assert code == 0, err
    pristine = module(first).read_bytes()
    with open(module(first), "ab") as f:  # `echo x >> site-packages/six.py`
        f.write(b"x = 1\n")
    second = tmp_path / "second"
    code, _, err = run(capsys, "venv", str(second), "-q", "--index-url", index.url, "six")
    assert code == 0, err
    assert module(second).read_bytes() == pristine
    assert "changed in place" in err and "rebuilt" in err  # said so
    third = tmp_path / "third"  # the rebuilt template is shared again, without a new warning
    code, _, err = run(capsys, "venv", str(third), "-q", "--index-url", index.url, "six")
    assert code == 0 and "changed in place" not in err, err
    assert os.path.samefile(module(second), module(third))
    assert not os.path.samefile(module(first), module(second))


def _reflinks_here(directory: Path) -> bool:
    import fcntl

    from builder_service.materialize import FICLONE

    (directory / "probe-src").write_bytes(b"x")
    with open(directory / "probe-src", "rb") as src, open(directory / "probe-dst", "wb") as dst:
        try:
            fcntl.ioctl(dst.fileno(), FICLONE, src.fileno())
        except OSError:
            return False
    return True


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_places_a_working_venv_and_a_later_venv_is_pristine(capsys, index, tmp_path, mode):
    first, second = tmp_path / "first", tmp_path / "second"
    code, _, err = run(capsys, "venv", str(first), "-q", "--link-mode", mode, "--index-url", index.url, "six")
    assert code == 0, err
    assert imports(first) == str(module(first))  # imported from the venv's own path, whatever the mode
    pristine = module(first).read_bytes()
    with open(module(first), "ab") as f:
        f.write(b"x = 1\n")
    code, _, err = run(capsys, "venv", str(second), "-q", "--link-mode", mode, "--index-url", index.url, "six")
    assert code == 0, err
    assert module(second).read_bytes() == pristine
    assert imports(second) == str(module(second))
    shared_inode = mode in ("hardlink", "symlink")
    assert ("changed in place" in err) is shared_inode, err
    if mode == "hardlink":  # the editor keeps its edit; the template was replaced under it
        assert module(first).read_bytes() == pristine + b"x = 1\n"
    if mode == "symlink":  # files are links into the template, which the rebuild restored
        assert module(second).is_symlink() and not module(second).parent.is_symlink()
        assert module(first).read_bytes() == pristine
    if mode in ("copy", "reflink"):
        assert not module(second).is_symlink() and module(second).stat().st_nlink == 1
        assert module(first).read_bytes() == pristine + b"x = 1\n"
    if mode == "reflink":
        assert ("copying the files instead" in err) is not _reflinks_here(tmp_path), err


def test_link_mode_from_the_environment_and_a_bad_value(capsys, index, tmp_path, monkeypatch):
    monkeypatch.setenv("VENVSMITH_LINK_MODE", "symlink")
    code, _, err = run(capsys, "venv", str(tmp_path / "a"), "-q", "--index-url", index.url, "six")
    assert code == 0, err
    assert module(tmp_path / "a").is_symlink()
    code, _, err = run(capsys, "venv", str(tmp_path / "b"), "-q", "--link-mode", "copy", "--index-url", index.url,
                       "six")
    assert code == 0 and not module(tmp_path / "b").is_symlink(), err  # the flag wins
    monkeypatch.setenv("VENVSMITH_LINK_MODE", "clone")
    code, _, err = run(capsys, "venv", str(tmp_path / "c"), "-q", "--index-url", index.url, "six")
    assert code == 2 and "VENVSMITH_LINK_MODE" in err and "clone" in err
    assert not (tmp_path / "c").exists()


# ------------------------------------------------------------------------------------------------ --clear


def test_an_occupied_path_is_refused_naming_clear_and_left_alone(capsys, index, tmp_path):
    dest = tmp_path / "env"
    dest.mkdir()
    (dest / "notes.txt").write_text("mine")
    code, _, err = run(capsys, "venv", str(dest), "-q", "--index-url", index.url, "six")
    assert code == 2 and "--clear" in err and str(dest) in err
    assert [p.name for p in dest.iterdir()] == ["notes.txt"]
    existing = tmp_path / "venv-like"
    code, _, err = run(capsys, "venv", str(existing), "-q", "--index-url", index.url, "six")
    assert code == 0, err
    code, _, err = run(capsys, "venv", str(existing), "-q", "--index-url", index.url, "six")
    assert code == 2 and "--clear" in err  # a venv there is not replaced silently either
    assert (existing / "pyvenv.cfg").is_file()


def test_clear_empties_the_path_without_following_symlinks_out(capsys, index, tmp_path):
    outside = tmp_path / "outside"
    (outside / "deep").mkdir(parents=True)
    (outside / "keep.txt").write_text("keep")
    (outside / "deep" / "keep.txt").write_text("keep")
    dest = tmp_path / "env"
    (dest / "sub").mkdir(parents=True)
    (dest / "old.txt").write_text("old")
    os.symlink(outside, dest / "link-to-dir")
    os.symlink(outside / "keep.txt", dest / "sub" / "link-to-file")
    os.symlink(outside, dest / "sub" / "nested-link")
    code, _, err = run(capsys, "venv", str(dest), "-q", "--clear", "--index-url", index.url, "six")
    assert code == 0, err
    assert sorted(p.name for p in outside.rglob("*")) == ["deep", "keep.txt", "keep.txt"]
    assert not (dest / "old.txt").exists() and not (dest / "sub").exists() and not (dest / "link-to-dir").exists()
    assert imports(dest) == str(module(dest))
    # a symlink at PATH itself is replaced (the link, not what it points to)
    link = tmp_path / "link"
    os.symlink(outside, link)
    code, _, err = run(capsys, "venv", str(link), "-q", "--clear", "--index-url", index.url, "six")
    assert code == 0, err
    assert not link.is_symlink() and (link / "pyvenv.cfg").is_file()
    assert sorted(p.name for p in outside.rglob("*")) == ["deep", "keep.txt", "keep.txt"]


def test_clear_keeps_the_old_venv_when_the_resolution_fails(capsys, index, tmp_path):
    dest = tmp_path / "env"
    code, _, err = run(capsys, "venv", str(dest), "-q", "--index-url", index.url, "six")
    assert code == 0, err
    code, _, err = run(capsys, "venv", str(dest), "-q", "--clear", "--index-url", index.url, "six>=9")
    assert code == 1, err
    assert imports(dest) == str(module(dest))


def test_the_clis_link_modes_are_the_materializers():
    from builder_service.materialize import LINK_MODES as PLACED
    from venvsmith.cli.build_args import LINK_MODES

    assert LINK_MODES == PLACED
