"""One environment of the node cache (:mod:`venvsmith.clients.node_cache`): ``envs/<sha256>/`` with its tree, its
manifest and its last-used stamp."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from builder_service import venv_template
from builder_service.venv_template import Template

__all__ = ["Entry", "NodeCacheError", "bytecode"]


class NodeCacheError(Exception):
    """The node cache cannot be used as asked (a directory that cannot be written, a lock never released, a
    placement mode not possible here): bad input, nothing placed."""


def bytecode(name: str) -> bool:
    """A ``__pycache__/*.pyc`` file: what an import writes into a shared tree (never damage)."""
    return name.endswith(".pyc") and "/__pycache__/" in f"/{name}"


@dataclass(frozen=True)
class Entry:
    """One environment of the node cache: ``path`` is ``envs/<sha256>``."""

    sha256: str
    path: Path

    @property
    def tree(self) -> Path:
        return self.path / "tree"

    @property
    def stamp(self) -> Path:
        return self.path / "last-used"

    def template(self) -> Template:
        """The entry as a template with its manifest (``files`` None when the manifest is missing or damaged)."""
        try:
            files = json.loads((self.path / "files.json").read_bytes())
            if not isinstance(files, dict):
                files = None
        except (OSError, ValueError):
            files = None
        return Template(self.path, files)

    def size(self) -> int:
        """Bytes of its files, from the manifest (0 when it has none)."""
        files = self.template().files or {}
        return sum(v[0] for v in files.values() if isinstance(v, list) and v and isinstance(v[0], int))

    def last_used(self) -> float:
        try:
            return self.stamp.stat().st_mtime
        except OSError:
            return 0.0

    def damage(self) -> str | None:
        """Why the tree is not the one its manifest records (None: intact)."""
        if not self.tree.is_dir():
            return "its tree is missing"
        return venv_template.changed(self.template(), venv_template.record(self.tree), bytecode)
