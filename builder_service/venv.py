"""Create a virtual environment for a target interpreter and fill it with wheels.

The venv is made by the *target* interpreter's own ``venv`` module (``--without-pip``), with **symlinks**,
as uv does: ``bin/python`` points at the base interpreter, which a venv needs on the machine that runs it
anyway (``home`` in ``pyvenv.cfg``); copying the binary would not make the venv independent of that
interpreter's standard library, so copies buy nothing and cost space. The same subprocess reports the
install scheme (``sysconfig``) of that interpreter for the venv, so paths such as
``lib/python3.12/site-packages`` always match the Python that will import from them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from .errors import VenvError

__all__ = ["VenvLayout", "build_venv", "bundled_pip", "create_venv"]

#: Seconds allowed for the interpreter to create the venv.
CREATE_TIMEOUT = 120.0

# Runs in the target interpreter (any Python 3.6+): creates the venv at argv[1] and prints its scheme as
# paths relative to the venv root. ``venv`` is what ``python -m venv --without-pip --symlinks`` runs.
_CREATE = r"""
import json, os, sys, sysconfig, venv
dest = sys.argv[1]
venv.EnvBuilder(symlinks=True, with_pip=False).create(dest)
names = sysconfig.get_scheme_names()
scheme = "venv" if "venv" in names else ("nt" if os.name == "nt" else "posix_prefix")
base = {"base": dest, "platbase": dest, "installed_base": dest, "installed_platbase": dest}
paths = sysconfig.get_paths(scheme, vars=base)
rel = dict((key, os.path.relpath(paths[key], dest)) for key in ("purelib", "platlib", "scripts"))
print(json.dumps({
    "paths": rel,
    "version": "%d.%d" % sys.version_info[:2],
    "implementation": sys.implementation.name,
}))
"""


# Runs in the target interpreter: where its ensurepip keeps the wheels it installs (offline).
_BUNDLED = "import ensurepip, os; print(os.path.join(os.path.dirname(ensurepip.__file__), '_bundled'))"


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


def create_venv(interpreter: Path, dest: Path, *, timeout: float = CREATE_TIMEOUT) -> VenvLayout:
    """Create an empty venv (no pip) at ``dest`` with ``interpreter``'s ``venv`` module; return its layout.

    ``dest`` must not exist or be an empty directory.
    """
    dest = Path(os.path.abspath(dest))
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise VenvError(dest, "destination exists and is not an empty directory")
    try:
        proc = subprocess.run(
            [os.fspath(interpreter), "-I", "-c", _CREATE, os.fspath(dest)],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            cwd=dest.parent if dest.parent.is_dir() else None,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise VenvError(dest, f"could not run {interpreter}: {exc}") from exc
    if proc.returncode != 0:
        raise VenvError(dest, f"{interpreter} failed to create the venv: {proc.stderr.strip()[-2000:]}")
    try:
        answer = json.loads(proc.stdout.strip().splitlines()[-1])
        paths = answer["paths"]
        return VenvLayout(
            root=dest,
            python_version=answer["version"],
            implementation=answer["implementation"],
            scripts=paths["scripts"],
            purelib=paths["purelib"],
            platlib=paths["platlib"],
        )
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise VenvError(dest, f"unexpected answer from {interpreter}: {proc.stdout[-500:]!r}") from exc


def bundled_pip(interpreter: Path, *, timeout: float = CREATE_TIMEOUT) -> Path:
    """The pip wheel bundled with ``interpreter``'s ``ensurepip`` (newest when several); :class:`VenvError` if none.

    This is what ``python -m ensurepip`` installs, without the network: seeding a venv with it is offline.
    """
    from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

    try:
        proc = subprocess.run([os.fspath(interpreter), "-I", "-c", _BUNDLED], capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise VenvError(Path(interpreter), f"could not run {interpreter}: {exc}") from exc
    if proc.returncode != 0 or not proc.stdout.strip():
        raise VenvError(Path(interpreter), f"{interpreter} has no ensurepip to seed pip from: "
                                           f"{proc.stderr.strip()[-500:]}")
    bundled = Path(proc.stdout.strip().splitlines()[-1])
    found = []
    for wheel in bundled.glob("*.whl") if bundled.is_dir() else ():
        try:
            name, version, _, _ = parse_wheel_filename(wheel.name)
        except InvalidWheelFilename:
            continue
        if name == canonicalize_name("pip") and wheel.is_file() and not wheel.is_symlink():
            found.append((version, wheel))
    if not found:
        raise VenvError(Path(interpreter), f"{interpreter}'s ensurepip bundles no pip wheel (in {bundled})")
    return max(found)[1]


def build_venv(
    interpreter: Path,
    wheels: Sequence[Path],
    dest: Path,
    compile_bytecode: bool = False,
    *,
    verify: bool = True,
) -> VenvLayout:
    """Create a relocatable venv at ``dest`` holding ``wheels`` (installed in the order given).

    Every wheel is checked before anything is written (:class:`~builder_service.install.UnsafeWheel`).
    ``compile_bytecode`` writes deterministic ``unchecked-hash`` pycs with the target interpreter. With
    ``verify`` the finished tree is scanned for the build directory's absolute path
    (:class:`~builder_service.relocate.NotRelocatable`). On failure ``dest`` is removed again.
    """
    from builder_service import install, relocate  # here, as both import VenvLayout from this module

    install.check_wheels(wheels)
    dest = Path(os.path.abspath(dest))
    created = not dest.exists()
    try:
        layout = create_venv(interpreter, dest)
        install.install_wheels(wheels, layout, check=False)  # checked above
        relocate.make_relocatable(layout)
        if compile_bytecode:
            install.compile_bytecode(layout)
        if verify:
            relocate.check_relocatable(layout.root)
    except BaseException:
        if created:
            shutil.rmtree(dest, ignore_errors=True)
        else:  # an empty directory we were given: leave it empty
            for child in dest.iterdir() if dest.is_dir() else ():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
        raise
    return layout
