"""Where things live in a venv: the layout that creating, installing into and relocating a venv share."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

__all__ = ["VenvLayout"]


@dataclass(frozen=True)
class VenvLayout:
    """Where things live in one venv; every location but ``root`` is relative, so a moved venv keeps its layout."""

    root: Path
    #: ``"3.12"`` -- the target interpreter's ``major.minor``.
    python_version: str
    #: ``sys.implementation.name`` of the target interpreter.
    implementation: str
    scripts: str = "bin"
    purelib: str = "lib/python3/site-packages"
    platlib: str = "lib/python3/site-packages"

    @property
    def python(self) -> Path:
        """The venv's interpreter (a symlink to the base interpreter)."""
        return self.root / self.scripts / "python"

    @property
    def bin_dir(self) -> Path:
        return self.root / self.scripts

    @property
    def site_packages(self) -> Path:
        return self.root / self.purelib

    def headers(self, distribution: str) -> str:
        """Relative headers directory of ``distribution`` (pip's venv layout: ``include/site/pythonX.Y/NAME``)."""
        return f"include/site/python{self.python_version}/{distribution}"

    def scheme_dict(self, distribution: str) -> dict[str, str]:
        """Absolute install-scheme paths for ``installer`` (purelib, platlib, headers, scripts, data)."""
        rel = {
            "purelib": self.purelib,
            "platlib": self.platlib,
            "headers": self.headers(distribution),
            "scripts": self.scripts,
            "data": ".",
        }
        return {key: os.path.normpath(self.root / value) for key, value in rel.items()}

    def moved_to(self, root: Path) -> VenvLayout:
        """The same layout for the venv after it was moved to ``root``."""
        return replace(self, root=Path(root))
