"""Put a ready venv at a new path fast: unpack its archive once into a template, then place the template.

A venv archive is relocatable, so every copy of it is the same tree: the first request for an archive unpacks
it into a template (:mod:`~builder_service.venv_template`); every later one places that template at the new
path in one of the link modes uv has (``--link-mode``):

* ``hardlink`` (the default): files are hard links to the template's (as uv installs from its cache), copies
  across filesystems. A venv shares its files' bytes with the template and every other hard-linked venv: an
  in-place edit of a file in one of them is seen in all of those. It never reaches a venv placed *later*: each
  placement compares every template file's size, mtime, inode and mode with what was recorded when the template
  was made (each file just before it is linked), and a changed template is rebuilt from the archive (with a
  warning) and placed again, what was placed of the changed one undone first.
* ``copy``: the archive unpacked afresh; nothing shared.
* ``reflink``: files cloned from the template (``FICLONE``: copy-on-write, e.g. btrfs, XFS): as fast as links
  where the filesystem can, and independent files; elsewhere copies, with a note.
* ``symlink``: directories made, files symbolic links to the template's (uv's symlink mode, which links into
  its cache): the fastest and smallest, but the venv breaks when the template is deleted (``$VENVSMITH_HOME``
  cleaned), and an edit through a link is an edit of the template; the next placement finds the template
  changed and rebuilds it, which also undoes the edit in every symlinked venv.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from . import venv_template
from .trees import empty_directory
from .venv_template import FileStat, Template, adopt_template, template_for  # noqa: F401 - re-exported

log = logging.getLogger(__name__)

LINK_MODES = ("hardlink", "copy", "symlink", "reflink")
#: ioctl(dest_fd, FICLONE, src_fd): linux/fs.h ``_IOW(0x94, 9, int)``.
FICLONE = 0x40049409

#: Threads making the hard links (system calls that release the GIL; measured neutral to 1.5x with 2 on 2
#: cores, the disk deciding).
CLONE_WORKERS = 2
_CHUNK = 512


class TemplateChanged(Exception):
    """The template's files are not those recorded when it was made: ``what`` says the first difference."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


def clone_tree(template: Path, dest: Path, mode: str = "hardlink", expected: Template | None = None,
               note: Callable[[str], None] | None = None, added_ok: Callable[[str], bool] | None = None) -> None:
    """Recreate ``template`` at ``dest`` (absent or empty): directories made, files placed in ``mode``
    (``hardlink``, ``reflink``, ``symlink``; copies when that is not possible, said through ``note``), symlinks
    copied. With ``expected``, the files are checked against it: the names (one added or removed; files not
    recorded whose name ``added_ok`` accepts are no change) before anything is made, and each file's stat just
    before it is placed, by the threads that place them (one ``lstat`` each, overlapping the links). On a
    difference :class:`TemplateChanged`, and ``dest`` is left as it was (empty)."""
    dirs: list[str] = []
    files: list[tuple[str, str, str]] = []
    links: list[tuple[str, str]] = []
    _collect(os.fspath(template), os.fspath(dest), "", dirs, files, links)
    if expected is not None:
        what = venv_template.names_changed(expected, [rel for _, _, rel in files], added_ok)
        if what is not None:
            raise TemplateChanged(what)
    existed = dest.exists()
    dest.mkdir(parents=True, exist_ok=True)
    try:
        for directory in dirs:  # parents before children
            os.mkdir(directory)
        for target, path in links:
            os.symlink(target, path)
        place = _Placer(mode, note, expected.files if expected is not None else None)
        chunks = [files[i : i + _CHUNK] for i in range(0, len(files), _CHUNK)]
        if CLONE_WORKERS <= 1 or len(chunks) <= 1:
            for chunk in chunks:
                place.all(chunk)
            return
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=CLONE_WORKERS, thread_name_prefix="clone") as pool:
            for future in [pool.submit(place.all, chunk) for chunk in chunks]:
                future.result()
    except TemplateChanged:
        _undo(dest, existed)
        raise


def _undo(dest: Path, existed: bool) -> None:
    """``dest`` as it was before a placement that stopped: absent, or empty."""
    if existed:
        empty_directory(dest, ignore_errors=True)
    else:
        shutil.rmtree(dest, ignore_errors=True)


def _collect(src: str, dst: str, rel: str, dirs: list, files: list, links: list) -> None:
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
            _collect(entry.path, target, f"{rel}{entry.name}/", dirs, files, links)
        else:
            files.append((entry.path, target, f"{rel}{entry.name}"))


class _Placer:
    """Places files in one mode; the first failure of a hard link or clone switches to copies, noted once. With
    ``recorded`` (a template's files), each file recorded is checked against its record just before."""

    def __init__(self, mode: str, note: Callable[[str], None] | None,
                 recorded: dict[str, FileStat] | None = None) -> None:
        self.mode = mode
        self.note = note
        self.recorded = recorded
        self.how: Callable[[str, str], None] = {"hardlink": os.link, "reflink": _reflink, "symlink": _symlink,
                                                "copy": _copy}[mode]

    def all(self, items: list[tuple[str, str, str]]) -> None:
        recorded = self.recorded
        for src, dst, rel in items:
            if recorded is not None:
                was = recorded.get(rel)
                if was is not None:
                    now = venv_template.stat_key(os.lstat(src))
                    if now != was:
                        raise TemplateChanged(venv_template.difference(rel, was, now))
            try:
                self.how(src, dst)
            except OSError as exc:  # another filesystem, links not allowed, no reflinks: copy from now on
                if self.how is _copy or self.mode == "symlink":
                    raise
                self.how = _copy
                message = (f"--link-mode {self.mode}: not possible from {Path(src).parent} to {Path(dst).parent}"
                           f" ({os.strerror(exc.errno) if exc.errno else exc}); copying the files instead")
                log.info("%s", message)
                if self.note is not None:
                    self.note(message)
                _copy(src, dst)


def _copy(src: str, dst: str) -> None:
    shutil.copy2(src, dst)


def _symlink(src: str, dst: str) -> None:
    os.symlink(os.path.abspath(src), dst)


def _reflink(src: str, dst: str) -> None:
    with open(src, "rb") as fin:
        fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            fcntl.ioctl(fd, FICLONE, fin.fileno())
        except OSError:
            os.close(fd)
            os.unlink(dst)
            raise
        os.close(fd)
    shutil.copystat(src, dst)


def materialize(archive: Path, sha256: str, dest: Path, root: Path, mode: str = "hardlink",
                note: Callable[[str], None] | None = None) -> None:
    """A ready venv at ``dest`` from ``archive`` (content digest ``sha256``), placed in ``mode`` from the
    template cache at ``root``; a changed template is rebuilt first, said through ``note`` and the log."""
    if mode not in LINK_MODES:
        raise ValueError(f"unknown link mode {mode!r} (one of {', '.join(LINK_MODES)})")
    if mode == "copy":
        from .archive import unpack

        unpack(archive, dest)
        return
    template = template_for(archive, sha256, root)
    try:
        clone_tree(template.tree, dest, mode, template, note)
        return
    except TemplateChanged as exc:
        message = (f"the venv template {template.path} was changed in place ({exc.what}); rebuilt it from the "
                   f"archive {sha256[:16]} before placing {dest}")
        log.warning("%s", message)
        if note is not None:
            note(message)
    template = venv_template.rebuild(archive, sha256, root)
    clone_tree(template.tree, dest, mode, template, note)
