"""Put a ready venv at a new path fast: unpack its archive once into a template, then hard-link the template.

A venv archive is relocatable, so every copy of it is the same tree: the first request for an archive unpacks
it (safely, :func:`~builder_service.archive.unpack`) into ``<root>/<sha256>/``; every later one clones that
template with hard links (as uv installs from its cache), falling back to copies across filesystems.
Hard-linked files share their bytes with the template: editing a file *in place* in one venv edits it in the
template too (deleting, replacing or adding files does not), the trade-off uv's default link mode makes as well.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from .archive import unpack


def template_for(archive: Path, sha256: str, root: Path) -> Path:
    """The unpacked template of ``archive`` (whose content digest is ``sha256``) under ``root``."""
    template = root / sha256
    if template.is_dir():
        return template
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{sha256[:12]}-", dir=root))
    try:
        unpack(archive, work / "tree")
        try:
            os.replace(work / "tree", template)
        except OSError:
            if not template.is_dir():  # another process won the race: theirs is identical
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return template


def adopt_template(tree: Path, sha256: str, root: Path) -> bool:
    """Keep ``tree`` (the directory just packed into the archive whose digest is ``sha256``) as that archive's
    template, moving it (same filesystem) rather than unpacking the archive again. Its modes are normalised as
    :func:`~builder_service.archive.unpack` would write them. False when a template is already there or the
    move is not possible (the tree is left in place)."""
    template = root / sha256
    if template.is_dir():
        return False
    _normalise_modes(os.fspath(tree))
    try:
        root.mkdir(parents=True, exist_ok=True)
        os.rename(tree, template)
    except OSError:  # another filesystem, or a concurrent adopter won: theirs is the same tree
        return False
    return True


def _normalise_modes(path: str) -> None:
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
        wanted = 0o755 if mode & 0o111 else 0o644
        if mode != wanted:
            os.chmod(entry.path, wanted)


def clone_tree(template: Path, dest: Path) -> None:
    """Recreate ``template`` at ``dest`` (absent or empty): directories made, files hard-linked, symlinks copied."""
    dest.mkdir(parents=True, exist_ok=True)
    _clone_dir(os.fspath(template), os.fspath(dest), [os.link])


def _clone_dir(src: str, dst: str, link: list) -> None:
    # os.scandir's entries know their type without a stat; plain strings instead of Path objects: a venv has
    # 10k+ files, and this loop is most of the time a repeat request takes.
    with os.scandir(src) as it:
        entries = list(it)
    for entry in entries:
        target = f"{dst}/{entry.name}"
        if entry.is_symlink():
            os.symlink(os.readlink(entry.path), target)
        elif entry.is_dir(follow_symlinks=False):
            os.mkdir(target)
            _clone_dir(entry.path, target, link)
        else:
            try:
                link[0](entry.path, target)
            except OSError:  # another filesystem, or links not allowed: copy instead from now on
                if link[0] is _copy:
                    raise
                link[0] = _copy
                _copy(entry.path, target)


def _copy(src: str, dst: os.PathLike[str] | str) -> None:
    shutil.copy2(src, dst)


def materialize(archive: Path, sha256: str, dest: Path, root: Path) -> None:
    """A ready venv at ``dest`` from ``archive``, through the template cache at ``root``."""
    clone_tree(template_for(archive, sha256, root), dest)
