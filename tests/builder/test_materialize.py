"""Venvs cloned from an unpacked template: same tree, hard-linked files, symlinks kept, template made once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
    assert _tree(first) == _tree(second) == _tree(root / sha / "tree") == _tree(src)
    assert os.path.samefile(first / "lib" / "pkg" / "__init__.py", second / "lib" / "pkg" / "__init__.py")
    assert (second / "bin" / "alias").is_symlink() and os.access(second / "bin" / "tool", os.X_OK)
    assert [p.name for p in root.iterdir()] == [sha]  # one template, no leftovers
    assert sorted(p.name for p in (root / sha).iterdir()) == ["files.json", "tree"]
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
    from builder_service.venv_template import adopt_template

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
    assert _tree(root / sha / "tree") == _tree(tmp_path / "unpacked")
    assert _modes(root / sha / "tree") == _modes(tmp_path / "unpacked")
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


def _archive(tmp_path: Path) -> tuple[Path, str]:
    src = tmp_path / "src"
    (src / "lib" / "pkg").mkdir(parents=True)
    (src / "lib" / "pkg" / "__init__.py").write_text("X = 1\n")
    (src / "lib" / "pkg" / "data.txt").write_text("data\n")
    os.symlink("pkg", src / "lib" / "alias")
    archive = tmp_path / "venv.tar.zst"
    sha, _ = pack(src, archive)
    return archive, sha


def _append(path: Path) -> None:
    with open(path, "ab") as f:
        f.write(b"#")


def _same_size_edit(path: Path) -> None:
    with open(path, "r+b") as f:
        f.write(b"Y")


def _chmod(path: Path) -> None:
    os.chmod(path, 0o700)


def _replace(path: Path) -> None:  # same bytes, same mtime, another inode
    st = path.stat()
    data = path.read_bytes()
    path.unlink()
    path.write_bytes(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _remove(path: Path) -> None:
    path.unlink()


def _add(path: Path) -> None:
    (path.parent / "extra.py").write_text("")


@pytest.mark.parametrize("edit", [_append, _same_size_edit, _chmod, _replace, _remove, _add])
def test_a_changed_template_is_rebuilt_before_placing(tmp_path: Path, edit):
    archive, sha = _archive(tmp_path)
    root = tmp_path / "templates"
    notes: list[str] = []
    materialize(archive, sha, tmp_path / "a", root, note=notes.append)
    assert notes == []
    edit(root / sha / "tree" / "lib" / "pkg" / "__init__.py")
    materialize(archive, sha, tmp_path / "b", root, note=notes.append)
    assert len(notes) == 1 and "changed in place" in notes[0] and "lib/pkg/" in notes[0], notes
    assert _tree(tmp_path / "b") == _tree(tmp_path / "src")
    assert _modes(tmp_path / "b") == _modes(tmp_path / "src")
    assert sorted(p.name for p in root.iterdir()) == [sha]  # the stale template is gone
    materialize(archive, sha, tmp_path / "c", root, note=notes.append)
    assert len(notes) == 1  # rebuilt once


def test_a_template_of_the_old_layout_or_a_lost_record_is_rebuilt(tmp_path: Path):
    from builder_service.archive import unpack

    archive, sha = _archive(tmp_path)
    root = tmp_path / "templates"
    root.mkdir()
    unpack(archive, root / sha)  # the tree itself at <root>/<sha>, as before files were recorded
    materialize(archive, sha, tmp_path / "a", root)
    assert _tree(tmp_path / "a") == _tree(tmp_path / "src")
    (root / sha / "files.json").write_text("{not json")
    notes: list[str] = []
    materialize(archive, sha, tmp_path / "b", root, note=notes.append)
    assert _tree(tmp_path / "b") == _tree(tmp_path / "src") and "no record" in notes[0]


def test_an_archive_that_is_not_its_digest_makes_no_template(tmp_path: Path):
    from builder_service.errors import UnsafeArchive

    archive, sha = _archive(tmp_path)
    other = "0" * 64
    with pytest.raises(UnsafeArchive):
        materialize(archive, other, tmp_path / "a", tmp_path / "templates")
    assert not (tmp_path / "a").exists()
    assert not (tmp_path / "templates").exists() or not any((tmp_path / "templates").iterdir())


def test_reflink_falls_back_to_copies_with_a_note_and_symlink_links_files(tmp_path: Path, monkeypatch):
    import builder_service.materialize as m

    archive, sha = _archive(tmp_path)
    root = tmp_path / "templates"

    def no_clone(fd, request, arg):
        raise OSError(95, "Operation not supported")

    monkeypatch.setattr(m.fcntl, "ioctl", no_clone)
    notes: list[str] = []
    materialize(archive, sha, tmp_path / "r", root, "reflink", note=notes.append)
    assert _tree(tmp_path / "r") == _tree(tmp_path / "src") and _modes(tmp_path / "r") == _modes(tmp_path / "src")
    assert len(notes) == 1 and "copying the files instead" in notes[0]
    assert (tmp_path / "r" / "lib" / "pkg" / "__init__.py").stat().st_nlink == 1
    materialize(archive, sha, tmp_path / "s", root, "symlink")
    placed = tmp_path / "s" / "lib" / "pkg" / "__init__.py"
    assert placed.is_symlink() and placed.resolve() == (root / sha / "tree" / "lib" / "pkg" / "__init__.py")
    assert (tmp_path / "s" / "lib" / "alias").is_symlink() and os.readlink(tmp_path / "s" / "lib" / "alias") == "pkg"
    assert placed.read_text() == "X = 1\n" and (tmp_path / "s" / "lib" / "pkg").is_dir()


@pytest.mark.parametrize("existed", [False, True], ids=["absent", "empty-dir"])
def test_a_file_found_changed_while_placing_leaves_the_destination_as_it_was(tmp_path: Path, monkeypatch,
                                                                            existed: bool):
    """The stats are checked by the placing threads, file by file: a difference found after other files were
    linked undoes the placement (the destination absent again, or empty as it was)."""
    import builder_service.materialize as materialize_module
    from builder_service.materialize import TemplateChanged, clone_tree
    from builder_service.venv_template import Template, record

    monkeypatch.setattr(materialize_module, "_CHUNK", 16)  # several chunks, on both threads
    tree = tmp_path / "template"
    for i in range(200):
        (tree / f"pkg{i % 5}").mkdir(parents=True, exist_ok=True)
        (tree / f"pkg{i % 5}" / f"m{i}.py").write_text(f"x = {i}\n")
    os.symlink("pkg0", tree / "alias")
    expected = Template(tmp_path, record(tree))
    last = tree / "pkg4" / "m199.py"
    with open(last, "ab") as f:  # placed among the last
        f.write(b"# edited\n")
    dest = tmp_path / "venv"
    if existed:
        dest.mkdir()
    with pytest.raises(TemplateChanged, match="m199.py"):
        clone_tree(tree, dest, "hardlink", expected)
    assert (list(dest.iterdir()) == []) if existed else not dest.exists()
    clone_tree(tree, dest, "hardlink", Template(tmp_path, record(tree)))  # with a fresh record: placed
    assert (dest / "pkg4" / "m199.py").read_bytes().endswith(b"# edited\n") and os.readlink(dest / "alias") == "pkg0"
