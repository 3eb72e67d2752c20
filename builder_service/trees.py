"""Directory trees made read-only (sealed), deleted again, or emptied: what unpacking a sealed tree
(:mod:`builder_service.archive`), placing one (:mod:`builder_service.materialize`), the node cache
(:mod:`venvsmith.clients.node_cache`) and ``venv --clear`` share. Standard library only: the node cache's hit
path imports it."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

__all__ = ["NOT_WRITABLE", "empty_directory", "remove_sealed", "seal"]

#: A mode without any write bit: ``mode & NOT_WRITABLE``.
NOT_WRITABLE = ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)


def seal(tree: Path, *, files: bool = True, below: bool = False) -> None:
    """Every regular file (unless not ``files``) and directory under ``tree`` (and ``tree`` itself unless
    ``below``) without write permission, directories deepest first; symlinks untouched."""
    root = os.fspath(tree)
    if files:
        for dirpath, _, filenames in os.walk(root):
            for name in filenames:
                path = os.path.join(dirpath, name)
                st = os.lstat(path)
                if stat.S_ISREG(st.st_mode) and st.st_mode & 0o222:
                    os.chmod(path, stat.S_IMODE(st.st_mode) & NOT_WRITABLE)
    for dirpath, _, _ in os.walk(root, topdown=False):
        if below and dirpath == root:
            continue
        os.chmod(dirpath, stat.S_IMODE(os.lstat(dirpath).st_mode) & NOT_WRITABLE)


def remove_sealed(path: Path) -> None:
    """Delete a tree whose directories may be sealed: made writable again first (needed unless root)."""
    if not path.exists() and not path.is_symlink():
        return
    for dirpath, _, _ in os.walk(path):  # each directory is listed (r-x) before it is made writable
        os.chmod(dirpath, 0o755)
    shutil.rmtree(path, ignore_errors=True)


def empty_directory(path: Path, ignore_errors: bool = False) -> None:
    """Remove every entry of the directory ``path``, never following symlinks (a link to a directory outside
    loses the link, never the directory)."""
    for entry in os.scandir(path):
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=ignore_errors)  # the fd-based variant on Linux: no symlinks
        else:
            os.unlink(entry.path)
