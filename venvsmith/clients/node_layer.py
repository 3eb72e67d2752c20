"""Placing a node cache entry at a venv path: hard links to its files, or a thin writable venv layered on it.

* ``hardlink`` (PATH on the node cache's filesystem, links allowed): the entry's tree recreated at PATH, its
  directories PATH's own (writable), its files hard links to the entry's read-only inodes
  (:func:`builder_service.materialize.clone_tree`, which checks the manifest in the same pass). The venv does
  not depend on the entry afterwards: evicting the entry leaves its files to the links.
* ``layered`` (another filesystem, e.g. the pod's own disk and a ``hostPath`` volume): PATH gets its own
  ``pyvenv.cfg``, its own ``bin/`` (the ``python`` symlinks to the base interpreter, the activate scripts and the
  launchers copied: the archive's launchers are relocatable — they exec the ``python`` next to themselves — so a
  copy in PATH's ``bin/`` is the launcher an installer would write for PATH, and runs PATH's interpreter), its own
  empty ``lib/pythonX.Y/site-packages/`` holding :data:`LAYER_PTH`, whose
  ``site.addsitedir`` line puts the shared site-packages on ``sys.path`` after PATH's own (``.pth`` files there
  are processed too). Other data (``share/``, ``include/``, ``etc/``) is mirrored: PATH's own directories,
  symlinks to the entry's files. ``pip install`` (``-e .``, a wheel, a directory) into PATH writes into PATH's
  site-packages and ``bin/``; pip sees the shared distributions as installed (importlib.metadata reads
  ``sys.path``) and, being outside PATH's prefix, never uninstalls them: an upgrade shadows them instead.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from builder_service import venv_template
from venvsmith.clients.node_entry import Entry, NodeCacheError, bytecode

__all__ = ["LAYER_PTH", "depends_on", "layer", "place"]

#: The ``.pth`` file of a layered venv that puts the shared site-packages on ``sys.path``.
LAYER_PTH = "_venvsmith_node_cache.pth"

#: Bytes of a layered venv's ``.pth`` file read to tell which entry it names.
_PTH_READ = 1 << 16


def place(entry: Entry, dest: Path, mode: str, root: Path, check: bool = True) -> str | None:
    """Place ``entry`` (of the node cache at ``root``) at ``dest``, under the entry's lock, in ``mode`` (``auto``
    chooses); the mode used, or None when the entry is not the tree its manifest records (nothing placed).
    Without ``check`` the entry is not compared with its manifest (its filler, which just recorded it)."""
    how = mode
    if mode != "layered":
        linkable = can_link(entry.tree, dest)
        if mode == "hardlink" and not linkable:
            raise NodeCacheError(f"--node-cache-mode hardlink: {dest} cannot hold hard links to {root} "
                                 f"(another filesystem or mount, or links not allowed); use auto or layered")
        how = "hardlink" if linkable else "layered"
    if how == "hardlink":
        from builder_service.materialize import TemplateChanged, clone_tree

        try:
            clone_tree(entry.tree, dest, "hardlink", entry.template() if check else None, added_ok=bytecode)
        except TemplateChanged:
            return None
    else:
        if check and venv_template.changed(entry.template(), venv_template.record(entry.tree), bytecode) is not None:
            return None
        layer(entry, dest)
    return how


def can_link(tree: Path, dest: Path) -> bool:
    """Whether ``dest`` (made when absent) can hold hard links to ``tree``'s files: the same device, and a probe
    link made (bind mounts of one filesystem refuse links across them; ``fs.protected_hardlinks`` refuses links
    to another user's read-only files)."""
    dest.mkdir(parents=True, exist_ok=True)
    if os.stat(dest).st_dev != os.stat(tree).st_dev:
        return False
    probe = dest / f".venvsmith-link-probe-{os.getpid()}"
    try:
        os.link(tree / "pyvenv.cfg", probe)
    except OSError:
        return False
    probe.unlink()
    return True


def _site_packages(tree: Path) -> set[str]:
    return {p.relative_to(tree).as_posix() for p in tree.glob("lib/python*/site-packages") if not p.is_symlink()}


def layer(entry: Entry, dest: Path) -> None:
    """Make ``dest`` (an empty directory) a writable venv layered on ``entry``'s tree (see the module docstring)."""
    tree = entry.tree
    sites = _site_packages(tree)
    if not sites:
        raise NodeCacheError(f"the node cache entry {entry.path} has no lib/pythonX.Y/site-packages")
    dest.mkdir(parents=True, exist_ok=True)
    _mirror(os.fspath(tree), os.fspath(dest), "", sites)


def _mirror(src: str, dst: str, rel: str, sites: set[str]) -> None:
    with os.scandir(src) as it:
        entries = list(it)
    for item in entries:
        name = f"{rel}{item.name}"
        target = os.path.join(dst, item.name)
        if item.is_symlink():
            os.symlink(os.readlink(item.path), target)
        elif item.is_dir(follow_symlinks=False):
            os.mkdir(target)
            if name in sites:
                with open(os.path.join(target, LAYER_PTH), "w", encoding="utf-8") as pth:
                    pth.write("# venvsmith node cache: the shared, read-only packages of this venv\n"
                              f"import site; site.addsitedir({item.path!r})\n")
            else:
                _mirror(item.path, target, f"{name}/", sites)
        elif name == "pyvenv.cfg" or name.startswith("bin/"):
            shutil.copyfile(item.path, target)
            os.chmod(target, stat.S_IMODE(item.stat(follow_symlinks=False).st_mode) | stat.S_IWUSR)
        else:
            os.symlink(item.path, target)


def depends_on(path: Path, entry: Entry) -> bool:
    """Whether the venv at ``path`` is a layered venv of ``entry`` (its ``.pth`` names the entry's tree)."""
    needle = repr(os.fspath(entry.tree) + os.sep)[1:-1]
    for pth in path.glob(f"lib/python*/site-packages/{LAYER_PTH}"):
        try:
            with open(pth, encoding="utf-8", errors="replace") as fh:
                if needle in fh.read(_PTH_READ):
                    return True
        except OSError:
            continue
    return False
