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

from .archive import file_mode, unpack


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
        wanted = file_mode(mode)
        if mode != wanted:
            os.chmod(entry.path, wanted)


#: Threads making the hard links (system calls that release the GIL; measured neutral to 1.5x with 2 on 2
#: cores, the disk deciding).
CLONE_WORKERS = 2
_CHUNK = 512


def clone_tree(template: Path, dest: Path) -> None:
    """Recreate ``template`` at ``dest`` (absent or empty): directories made, files hard-linked (copied when
    links are not possible), symlinks copied."""
    dest.mkdir(parents=True, exist_ok=True)
    dirs: list[str] = []
    files: list[tuple[str, str]] = []
    links: list[tuple[str, str]] = []
    _collect(os.fspath(template), os.fspath(dest), dirs, files, links)
    for directory in dirs:  # parents before children
        os.mkdir(directory)
    for target, path in links:
        os.symlink(target, path)
    mode = [os.link]
    chunks = [files[i : i + _CHUNK] for i in range(0, len(files), _CHUNK)]
    if CLONE_WORKERS <= 1 or len(chunks) <= 1:
        for chunk in chunks:
            _link_all(chunk, mode)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=CLONE_WORKERS, thread_name_prefix="clone") as pool:
        for future in [pool.submit(_link_all, chunk, mode) for chunk in chunks]:
            future.result()


def _collect(src: str, dst: str, dirs: list, files: list, links: list) -> None:
    # os.scandir's entries know their type without a stat; plain strings instead of Path objects: a venv has
    # 10k+ files, and placing them is most of the time a repeat request takes.
    with os.scandir(src) as it:
        entries = list(it)
    for entry in entries:
        target = f"{dst}/{entry.name}"
        if entry.is_symlink():
            links.append((os.readlink(entry.path), target))
        elif entry.is_dir(follow_symlinks=False):
            dirs.append(target)
            _collect(entry.path, target, dirs, files, links)
        else:
            files.append((entry.path, target))


def _link_all(pairs: list[tuple[str, str]], mode: list) -> None:
    for src, dst in pairs:
        try:
            mode[0](src, dst)
        except OSError:  # another filesystem, or links not allowed: copy instead from now on
            if mode[0] is _copy:
                raise
            mode[0] = _copy
            _copy(src, dst)


def _copy(src: str, dst: os.PathLike[str] | str) -> None:
    shutil.copy2(src, dst)


def materialize(archive: Path, sha256: str, dest: Path, root: Path) -> None:
    """A ready venv at ``dest`` from ``archive``, through the template cache at ``root``."""
    clone_tree(template_for(archive, sha256, root), dest)
