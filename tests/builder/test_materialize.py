"""Venvs cloned from an unpacked template: same tree, hard-linked files, symlinks kept, template made once."""

from __future__ import annotations

import os
from pathlib import Path

from builder_service.archive import pack
from builder_service.materialize import materialize


def _tree(root: Path) -> dict[str, str]:
    out = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(directory) / name
            rel = str(path.relative_to(root))
            out[rel] = f"-> {os.readlink(path)}" if path.is_symlink() else ("dir" if path.is_dir() else
                                                                          path.read_bytes().decode())
        dirs[:] = [d for d in dirs if not (Path(directory) / d).is_symlink()]
    return out


def test_clones_share_bytes_with_the_template_and_match_the_archive(tmp_path: Path):
    src = tmp_path / "src"
    (src / "bin").mkdir(parents=True)
    (src / "lib" / "pkg").mkdir(parents=True)
    (src / "bin" / "tool").write_text("#!/bin/sh\necho hi\n")
    os.chmod(src / "bin" / "tool", 0o755)
    (src / "lib" / "pkg" / "__init__.py").write_text("X = 1\n")
    os.symlink("tool", src / "bin" / "alias")
    archive = tmp_path / "venv.tar.zst"
    sha, _ = pack(src, archive)
    root = tmp_path / "templates"
    first, second = tmp_path / "a", tmp_path / "b"
    materialize(archive, sha, first, root)
    materialize(archive, sha, second, root)
    assert _tree(first) == _tree(second) == _tree(root / sha) == _tree(src)
    assert os.path.samefile(first / "lib" / "pkg" / "__init__.py", second / "lib" / "pkg" / "__init__.py")
    assert (second / "bin" / "alias").is_symlink() and os.access(second / "bin" / "tool", os.X_OK)
    assert [p.name for p in root.iterdir()] == [sha]  # one template, no leftovers
    (second / "lib" / "pkg" / "__init__.py").unlink()  # deleting in one venv leaves the others alone
    assert (first / "lib" / "pkg" / "__init__.py").read_text() == "X = 1\n"


def _modes(root: Path) -> dict[str, int]:
    return {
        str(p.relative_to(root)): p.lstat().st_mode & 0o7777
        for p in sorted(root.rglob("*"))
        if not p.is_symlink()
    }


def test_an_adopted_tree_is_the_template_unpacking_would_make(tmp_path: Path):
    from builder_service.archive import unpack
    from builder_service.materialize import adopt_template

    src = tmp_path / "src"
    (src / "bin").mkdir(parents=True)
    (src / "bin" / "tool").write_text("#!/bin/sh\n")
    os.chmod(src / "bin" / "tool", 0o775)  # group-writable, as under another umask: normalised
    (src / "data.txt").write_text("d")
    os.chmod(src / "data.txt", 0o600)
    os.symlink("tool", src / "bin" / "alias")
    archive = tmp_path / "venv.tar.zst"
    sha, _ = pack(src, archive)
    unpack(archive, tmp_path / "unpacked")
    root = tmp_path / "templates"

    assert adopt_template(src, sha, root)
    assert not src.exists()
    assert _tree(root / sha) == _tree(tmp_path / "unpacked")
    assert _modes(root / sha) == _modes(tmp_path / "unpacked")
    other = tmp_path / "other"
    other.mkdir()
    assert not adopt_template(other, sha, root) and other.exists()  # one template per archive
    materialize(archive, sha, tmp_path / "venv", root)
    assert _tree(tmp_path / "venv") == _tree(tmp_path / "unpacked")


def test_clone_of_many_files_and_copy_when_links_fail(tmp_path: Path, monkeypatch):
    import errno

    import builder_service.materialize as m

    template = tmp_path / "t"
    for i in range(1300):  # several chunks for the linking threads
        sub = template / f"d{i % 9}" / f"e{i % 4}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{i}.py").write_text(f"N = {i}\n")
    os.symlink("d0", template / "alias")
    m.clone_tree(template, tmp_path / "linked")
    assert _tree(tmp_path / "linked") == _tree(template)
    assert os.path.samefile(tmp_path / "linked/d0/e0/f0.py", template / "d0/e0/f0.py")

    def no_links(src, dst):
        raise OSError(errno.EXDEV, "cross-device link")

    monkeypatch.setattr(m.os, "link", no_links)
    m.clone_tree(template, tmp_path / "copied")
    assert _tree(tmp_path / "copied") == _tree(template)
    assert not os.path.samefile(tmp_path / "copied/d0/e0/f0.py", template / "d0/e0/f0.py")
