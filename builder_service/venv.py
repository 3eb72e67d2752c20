"""Create a virtual environment for a target interpreter and fill it with wheels.

The venv is made by the *target* interpreter's own ``venv`` module (``--without-pip``), with **symlinks**,
as uv does: ``bin/python`` points at the base interpreter, which a venv needs on the machine that runs it
anyway (``home`` in ``pyvenv.cfg``); copying the binary would not make the venv independent of that
interpreter's standard library, so copies buy nothing and cost space. The same subprocess (the interpreter
probe, :func:`venvsmith.core.probe.probe`) reports the install scheme (``sysconfig``) of that interpreter for
the venv, so paths such as ``lib/python3.12/site-packages`` always match the Python that will import from them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from builder_service import install, relocate
from builder_service.venv_layout import VenvLayout
from venvsmith.core import cancellation
from venvsmith.core.probe import ProbeError, probe

from .errors import VenvError

__all__ = ["VenvLayout", "build_venv", "bundled_pip", "create_venv"]

#: Seconds allowed for the interpreter to create the venv.
CREATE_TIMEOUT = 120.0


# Runs in the target interpreter: where its ensurepip keeps the wheels it installs (offline).
_BUNDLED = "import ensurepip, os; print(os.path.join(os.path.dirname(ensurepip.__file__), '_bundled'))"




def create_venv(interpreter: Path, dest: Path, *, timeout: float = CREATE_TIMEOUT) -> VenvLayout:
    """Create an empty venv (no pip) at ``dest`` with ``interpreter``'s ``venv`` module; return its layout.

    ``dest`` must not exist or be an empty directory.
    """
    dest = Path(os.path.abspath(dest))
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise VenvError(dest, "destination exists and is not an empty directory")
    try:
        answer = probe(interpreter, venv=dest, create=True, timeout=timeout)
    except ProbeError as exc:
        if exc.kind in ("run", "timeout"):
            raise VenvError(dest, f"could not run {interpreter}: {exc.reason}") from exc
        if exc.kind == "exit":
            raise VenvError(dest, f"{interpreter} failed to create the venv: {exc.stderr[-2000:]}") from exc
        raise VenvError(dest, f"unexpected answer from {interpreter}: {exc.reason}") from exc
    try:
        scheme = answer.scheme
        major, minor = answer.version_info[:2]
        return VenvLayout(
            root=dest,
            python_version=f"{major}.{minor}",
            implementation=answer.implementation,
            scripts=scheme["scripts"],
            purelib=scheme["purelib"],
            platlib=scheme["platlib"],
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise VenvError(dest, f"unexpected answer from {interpreter}: {dict(answer.report)!r:.500}") from exc


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

    Every wheel is checked before anything is written (:class:`~builder_service.errors.UnsafeWheel`).
    ``compile_bytecode`` writes deterministic ``unchecked-hash`` pycs with the target interpreter. With
    ``verify`` the finished tree is scanned for the build directory's absolute path
    (:class:`~builder_service.errors.NotRelocatable`). On failure ``dest`` is removed again.
    """
    install.check_wheels(wheels)
    dest = Path(os.path.abspath(dest))
    created = not dest.exists()
    try:
        cancellation.check()  # between steps: a build whose callers all left stops (Cancelled)
        layout = create_venv(interpreter, dest)
        cancellation.check()
        install.install_wheels(wheels, layout, check=False)  # checked above
        relocate.make_relocatable(layout)
        cancellation.check()
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
