"""The unpacked template of a venv archive, and the check that it is still the tree the archive holds.

``<root>/<sha256>/`` holds ``tree/`` (the archive unpacked, safely: :func:`~builder_service.archive.unpack`) and
``files.json``: for every regular file of the tree, its size, mtime, inode and mode as they were when the
template was made. Venvs are placed from ``tree/`` (:mod:`~builder_service.materialize`); hard-linked ones share
its inodes, so an in-place edit of a file in such a venv (``echo x >> .../six.py``) is an edit of the template.
:func:`Template.changed` finds it from one ``lstat`` per file — a size, mtime, inode or mode that differs, a
file missing or added — and :func:`rebuild` replaces the template from the archive, its digest checked first.

The ctime is not compared: linking or unlinking any of a file's names (placing or deleting a venv) changes it.
An edit that restores the size and the mtime (``os.utime``) is not seen; the copy and reflink modes do not
share inodes at all.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from .file_stat import FileStat, stat_key

__all__ = ["FileStat", "Template", "adopt_template", "changed", "rebuild", "record", "stat_key", "template_for"]

_TREE = "tree"
_MANIFEST = "files.json"


@dataclass(frozen=True)
class Template:
    """A template directory: its tree and what its files were when it was made (``None``: not recorded)."""

    path: Path
    files: dict[str, FileStat] | None

    @property
    def tree(self) -> Path:
        return self.path / _TREE


def _scan(tree: str, prefix: str, out: dict[str, FileStat]) -> None:
    with os.scandir(tree) as it:
        entries = list(it)
    for entry in entries:
        if entry.is_symlink():
            continue
        if entry.is_dir(follow_symlinks=False):
            _scan(entry.path, f"{prefix}{entry.name}/", out)
        else:
            out[f"{prefix}{entry.name}"] = stat_key(entry.stat(follow_symlinks=False))


def record(tree: Path) -> dict[str, FileStat]:
    """The stat of every regular file under ``tree``, by relative path."""
    out: dict[str, FileStat] = {}
    _scan(os.fspath(tree), "", out)
    return out


def _load(path: Path) -> Template | None:
    if not (path / _TREE).is_dir():
        return None
    try:
        files = json.loads((path / _MANIFEST).read_bytes())
        if not isinstance(files, dict):
            raise ValueError("not an object")
    except (OSError, ValueError):
        files = None  # made before files were recorded, or damaged: checked as changed
    return Template(path, files)


def _install(work: Path, target: Path, files: dict[str, FileStat] | None = None) -> bool:
    """Write ``files.json`` for ``work/tree`` (``files``: its record, else scanned now) and move ``work`` to
    ``target``; False when ``target`` is taken."""
    if files is None:
        files = record(work / _TREE)
    (work / _MANIFEST).write_text(json.dumps(files, separators=(",", ":")))
    try:
        os.rename(work, target)
    except OSError:
        return False
    return True


def _from_archive(archive: Path, sha256: str, root: Path) -> Template:
    # Imported here: checking and placing a tree (the node cache's hit path) needs no archive code.
    from .archive import unpack
    from .digest import Digest
    from .errors import UnsafeArchive

    actual = Digest.of_file(archive).hash
    if actual != sha256:
        raise UnsafeArchive(archive, None, f"its sha256 is not {sha256}: no template made from it")
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{sha256[:12]}-", dir=root))
    try:
        files = unpack(archive, work / _TREE)
        if not _install(work, root / sha256, files):  # another process won the race: theirs is identical
            found = _load(root / sha256)
            if found is None:
                raise FileExistsError(root / sha256)
            return found
    finally:
        shutil.rmtree(work, ignore_errors=True)
    found = _load(root / sha256)
    assert found is not None
    return found


def template_for(archive: Path, sha256: str, root: Path) -> Template:
    """The template of ``archive`` (whose content digest is ``sha256``) under ``root``, made when absent."""
    found = _load(root / sha256)
    if found is not None:
        return found
    if (root / sha256).exists():  # an older layout (the tree itself at <root>/<sha256>): replaced
        return rebuild(archive, sha256, root)
    return _from_archive(archive, sha256, root)


def rebuild(archive: Path, sha256: str, root: Path) -> Template:
    """Move the template of ``sha256`` aside (deleted once replaced) and make it again from ``archive``.
    Venvs hard-linked to the old one keep their files; venvs symlinked to it see the archive's files again."""
    stale = root / sha256
    aside = Path(tempfile.mkdtemp(prefix=f".stale-{sha256[:12]}-", dir=root))
    try:
        os.rename(stale, aside / "old")
    except FileNotFoundError:  # another process moved it first
        pass
    try:
        return template_for(archive, sha256, root)
    finally:
        shutil.rmtree(aside, ignore_errors=True)


def changed(template: Template, seen: dict[str, FileStat],
            added_ok: Callable[[str], bool] | None = None) -> str | None:
    """The first difference between the files ``seen`` in the template's tree now and those recorded, else None.
    A file not recorded whose name ``added_ok`` accepts is not a difference (the node cache's shared trees gain
    the bytecode that root's imports write, see :mod:`venvsmith.clients.node_cache`)."""
    what = names_changed(template, seen, added_ok)
    if what is not None or template.files is None:
        return what
    for name, now in seen.items():
        was = template.files.get(name)
        if was is not None and was != now:
            return difference(name, was, now)
    return None


def names_changed(template: Template, names: Collection[str],
                  added_ok: Callable[[str], bool] | None = None) -> str | None:
    """The first file added to or removed from the template's tree (``names``: its files now), else None."""
    if template.files is None:
        return "no record of its files"
    added = 0
    for name in names:
        if name not in template.files:
            if added_ok is not None and added_ok(name):
                added += 1
                continue
            return f"{name} was added"
    if len(names) - added != len(template.files):
        present = set(names)
        missing = next(name for name in template.files if name not in present)
        return f"{missing} was removed"
    return None


def difference(name: str, was: FileStat, now: FileStat) -> str:
    """How the file ``name`` differs from its record (``was != now``)."""
    if not isinstance(was, list) or len(was) != len(now):
        return f"{name} (its record is damaged)"
    what = next(field for field, a, b in zip(("size", "mtime", "inode", "mode"), was, now, strict=True) if a != b)
    return f"{name} ({what} differs)"


def adopt_template(tree: Path, sha256: str, root: Path) -> bool:
    """Keep ``tree`` (the directory just packed into the archive whose digest is ``sha256``) as that archive's
    template, moving it (same filesystem) rather than unpacking the archive again. Its modes are normalised as
    :func:`~builder_service.archive.unpack` would write them. False when a template is already there or the
    move is not possible (the tree is left in place)."""
    if (root / sha256).exists():
        return False
    _normalise_modes(os.fspath(tree))
    try:
        root.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{sha256[:12]}-", dir=root))
    except OSError:
        return False
    try:
        os.rename(tree, work / _TREE)
    except OSError:  # another filesystem
        shutil.rmtree(work, ignore_errors=True)
        return False
    if _install(work, root / sha256):
        return True
    os.rename(work / _TREE, tree)  # a concurrent adopter won: theirs is the same tree
    shutil.rmtree(work, ignore_errors=True)
    return False


def _normalise_modes(path: str) -> None:
    from .archive import file_mode

    os.chmod(path, 0o755)
    with os.scandir(path) as it:
        entries = list(it)
    for entry in entries:
        if entry.is_symlink():
            continue
        if entry.is_dir(follow_symlinks=False):
            _normalise_modes(entry.path)
            continue
        mode = entry.stat(follow_symlinks=False).st_mode & 0o7777
        wanted = file_mode(mode)
        if mode != wanted:
            os.chmod(entry.path, wanted)
