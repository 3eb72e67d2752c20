"""Install wheels into a venv with pypa/installer (no pip), refusing unsafe wheels before writing anything.

A wheel is checked as a whole first (:func:`check_wheel`): member paths that are absolute, carry a drive
letter or a ``..`` component, symlink members, ``.data`` directories naming no install scheme, console
script names that are paths, and installer's own ``RECORD`` validation (every member listed, hash and
size matching). Only then does ``installer.install`` write it, through a destination whose launchers start
with the relocatable header of :mod:`builder_service.relocate` instead of an absolute shebang.

Compiled bytecode is not listed in ``RECORD`` (as with installer and uv); uninstallers remove
``__pycache__`` next to the sources they remove.
"""

from __future__ import annotations

import io
import logging
import os
import re
import stat
import subprocess
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TypeVar, cast

from installer import install as installer_install
from installer.destinations import SchemeDictionaryDestination
from installer.records import RecordEntry
from installer.scripts import Script
from installer.sources import WheelFile
from installer.utils import SCHEME_NAMES, Scheme, parse_entrypoints, parse_metadata_file

from builder_service import relocate
from builder_service.errors import VenvError
from builder_service.venv_layout import VenvLayout
from venvsmith.core.index.limits import archive_problem, unpacked_cap

from .errors import UnsafeWheel

if TYPE_CHECKING:
    from installer.scripts import ScriptSection

__all__ = [
    "INSTALLER_NAME",
    "check_wheel",
    "check_wheels",
    "compile_bytecode",
    "install_wheel",
    "install_wheels",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Written to each distribution's ``INSTALLER`` file.
INSTALLER_NAME = "venvsmith"
#: Seconds allowed for compiling a venv's bytecode.
COMPILE_TIMEOUT = 900.0
#: Wheels checked / installed at once.
INSTALL_WORKERS = min(4, os.cpu_count() or 1)

_DRIVE = re.compile(r"^[A-Za-z]:")
_SEPARATORS = re.compile(r"[\\/]")


def _path_problem(name: str) -> str | None:
    """Why an archive path (or script name) could land outside its directory, or None."""
    if not name or "\x00" in name:
        return "empty or NUL in path"
    if name.startswith(("/", "\\")):
        return "absolute path"
    if _DRIVE.match(name):
        return "path with a drive letter"
    if ".." in _SEPARATORS.split(name):
        return "path with a '..' component"
    return None


def _member_problem(info: zipfile.ZipInfo) -> str | None:
    if stat.S_ISLNK(info.external_attr >> 16):
        return "symlink member"
    return _path_problem(info.filename)


def _named_member(issue: str, names: Sequence[str]) -> str | None:
    """The (longest) member name an installer validation message is about."""
    found = [name for name in names if f" {name} " in f" {issue} "]
    return max(found, key=len) if found else None


def _check_totals(wheel_name: str, zf: zipfile.ZipFile, compressed: int) -> None:
    """The sizes the central directory declares, against the caps of :mod:`venvsmith.core.index.limits`
    (before anything is inflated: checking the RECORD would inflate a bomb whole)."""
    infos = zf.infolist()
    problem = archive_problem(
        members=len(infos), unpacked=sum(info.file_size for info in infos), compressed=compressed
    )
    if problem:
        raise UnsafeWheel(wheel_name, None, problem)


def _check_source(wheel_name: str, zf: zipfile.ZipFile, compressed: int) -> WheelFile:
    """Every check of the module docstring, on an open wheel of ``compressed`` bytes; returns installer's source."""
    _check_totals(wheel_name, zf, compressed)
    for info in zf.infolist():
        problem = _member_problem(info)
        if problem:
            raise UnsafeWheel(wheel_name, info.filename, problem)
    try:
        source = WheelFile(zf)
        dist_info = source.dist_info_dir
        wheel_metadata = parse_metadata_file(source.read_dist_info("WHEEL"))
    except (KeyError, ValueError) as exc:  # bad filename, no or several .dist-info, no WHEEL
        raise UnsafeWheel(wheel_name, None, f"not a valid wheel: {exc}") from exc
    wheel_version = wheel_metadata["Wheel-Version"] or ""
    if not wheel_version.startswith("1."):
        raise UnsafeWheel(wheel_name, f"{dist_info}/WHEEL", f"unsupported Wheel-Version {wheel_version!r}")

    data_prefix = source.data_dir + "/"
    for name in zf.namelist():
        if name.startswith(data_prefix) and not name.endswith("/"):
            parts = name[len(data_prefix) :].split("/")
            if len(parts) < 2 or parts[0] not in SCHEME_NAMES:
                raise UnsafeWheel(wheel_name, name, "not inside a valid .data/<scheme> directory")

    if "entry_points.txt" in source.dist_info_filenames:
        member = f"{dist_info}/entry_points.txt"
        try:
            scripts = [name for name, *_ in parse_entrypoints(source.read_dist_info("entry_points.txt"))]
        except (AssertionError, ValueError, UnicodeDecodeError) as exc:  # installer asserts on bad entries
            raise UnsafeWheel(wheel_name, member, f"invalid entry points: {exc!r}") from exc
        for script in scripts:
            problem = _path_problem(script) or ("script name with a path separator" if "/" in script else None)
            if problem:
                raise UnsafeWheel(wheel_name, member, f"console script {script!r}: {problem}")

    try:
        source.validate_record()
    except source.validation_error as exc:
        issues = [str(issue) for issue in getattr(exc, "issues", [exc])]
        raise UnsafeWheel(wheel_name, _named_member(issues[0], zf.namelist()), "; ".join(issues)) from exc
    return source


def check_wheel(wheel: Path, filename: str | None = None) -> None:
    """Raise :class:`UnsafeWheel` unless ``wheel`` passes every check; reads (and hashes) the whole wheel.

    ``filename`` is the wheel's own file name when the file at ``wheel`` is named otherwise (a store blob).
    """
    wheel = Path(wheel)
    name = filename or wheel.name
    try:
        with open(wheel, "rb") as f, zipfile.ZipFile(f) as zf:
            zf.filename = name  # what the wheel checks read its name and version from
            _check_source(name, zf, wheel.stat().st_size)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UnsafeWheel(name, None, f"unreadable archive: {exc}") from exc


class _Budget:
    """The bytes one wheel may still write; :meth:`reader` streams a member through it."""

    def __init__(self, wheel_name: str, cap: int) -> None:
        self.wheel_name = wheel_name
        self.cap = cap
        self.written = 0

    def reader(self, stream: BinaryIO, path: str) -> BinaryIO:
        budget = self

        class Counted(io.RawIOBase):
            def readable(self) -> bool:
                return True

            def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
                data = stream.read(len(buffer))
                budget.written += len(data)
                if budget.written > budget.cap:
                    raise UnsafeWheel(budget.wheel_name, path, f"writes more than {budget.cap} bytes")
                buffer[: len(data)] = data
                return len(data)

        return cast(BinaryIO, io.BufferedReader(Counted(), 1 << 16))


class _VenvDestination(SchemeDictionaryDestination):
    """installer's filesystem destination, with relocatable launchers instead of absolute shebangs, and every
    byte written counted against ``budget`` (sizes are enforced while writing too: headers can lie)."""

    budget: _Budget | None = None

    def write_to_fs(self, scheme: Scheme, path: str, stream: BinaryIO, is_executable: bool) -> RecordEntry:
        # Parents made here, tolerating another thread making them at the same time (installer's own
        # ``mkdir(parents=True)`` would fail then): wheels with disjoint files are installed concurrently.
        Path(self.scheme_dict[scheme], path).parent.mkdir(parents=True, exist_ok=True)
        if self.budget is not None:
            stream = self.budget.reader(stream, path)
        return super().write_to_fs(scheme, path, stream, is_executable)

    def write_file(
        self, scheme: Scheme, path: str | os.PathLike[str], stream: BinaryIO, is_executable: bool
    ) -> RecordEntry:
        if scheme != "scripts":
            return super().write_file(scheme, path, stream, is_executable)
        # A ``.data/scripts`` file: ``#!python`` becomes the relocatable header (installer would write
        # ``#!<interpreter>``) and the file is made executable whatever its zip mode (as uv does); scripts
        # are small, so reading one into memory is fine.
        with io.BytesIO(relocate.relocatable_script(stream.read())) as fixed:
            return self.write_to_fs(scheme, os.fspath(path), fixed, is_executable=True)

    def write_script(self, name: str, module: str, attr: str, section: ScriptSection) -> RecordEntry:
        # installer's launcher code, with "python" as a placeholder interpreter replaced by the header.
        script_name, data = Script(name, module, attr, section).generate("python", "posix")
        with io.BytesIO(relocate.relocatable_script(data)) as stream:
            return self.write_to_fs(Scheme("scripts"), script_name, stream, is_executable=True)


def install_wheel(wheel: Path, layout: VenvLayout, *, check: bool = True) -> str:
    """Install one wheel into the venv of ``layout``; return its ``.dist-info`` directory name.

    With ``check`` (the default) the wheel is verified first and nothing is written if it fails.
    """
    wheel = Path(wheel)
    compressed = wheel.stat().st_size
    with zipfile.ZipFile(wheel) as zf:
        source = _check_source(wheel.name, zf, compressed) if check else WheelFile(zf)
        destination = _VenvDestination(
            scheme_dict=layout.scheme_dict(source.distribution),
            interpreter="python",  # unused: every launcher gets the relocatable header
            script_kind="posix",
        )
        # Launchers and INSTALLER/RECORD add a little to what the members declare.
        destination.budget = _Budget(wheel.name, unpacked_cap(compressed) + (1 << 20))
        installer_install(source, destination, {"INSTALLER": f"{INSTALLER_NAME}\n".encode()})
        return source.dist_info_dir


def check_wheels(wheels: Sequence[Path], workers: int | None = None) -> None:
    """:func:`check_wheel` on every wheel, several at a time (reading, inflating and hashing release the GIL);
    the failure of the first failing wheel in the order given is raised."""
    _in_parallel(wheels, check_wheel, workers or INSTALL_WORKERS)


def install_wheels(
    wheels: Sequence[Path], layout: VenvLayout, *, check: bool = True, workers: int | None = None
) -> list[str]:
    """Install ``wheels`` as if one after the other in the order given (with ``check``, all are verified before
    the first is written); return their ``.dist-info`` names in that order.

    Wheels that would write a common file (or console script) are installed one after the other, in order, so
    the outcome is the sequential one (installer refuses to overwrite: the later one fails); the others,
    whose files are disjoint, are installed by several threads at once.
    """
    if check:
        check_wheels(wheels, workers)
    groups = _disjoint_groups(wheels)
    names: dict[Path, str] = {}

    def install_group(group: list[Path]) -> None:
        for wheel in group:
            names[wheel] = install_wheel(wheel, layout, check=False)

    _in_parallel(groups, install_group, workers or INSTALL_WORKERS)
    return [names[w] for w in wheels]


def _in_parallel(items: Sequence[T], run: Callable[[T], object], workers: int) -> None:
    """``run(item)`` for every item, ``workers`` at a time; the error of the first failing item (in order)."""
    if workers <= 1 or len(items) <= 1:
        for item in items:
            run(item)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="install") as pool:
        futures = [pool.submit(run, item) for item in items]
    for future in futures:
        if (exc := future.exception()) is not None:
            raise exc


def _claims(wheel: Path) -> set[tuple[str, str]]:
    """``(place, path)`` of every file ``wheel`` would write (site-packages files, ``.data`` scheme files,
    console and GUI scripts): two wheels claiming a common one must be installed in order."""
    claims: set[tuple[str, str]] = set()
    try:
        with zipfile.ZipFile(wheel) as zf:
            names = zf.namelist()
            source = WheelFile(zf)
            data_prefix = source.data_dir + "/"
            for name in names:
                if name.endswith("/"):
                    continue
                if name.startswith(data_prefix):
                    scheme, _, rest = name[len(data_prefix):].partition("/")
                    claims.add(("lib" if scheme in ("purelib", "platlib") else scheme, rest))
                else:
                    claims.add(("lib", name))
            if "entry_points.txt" in source.dist_info_filenames:
                for script, *_ in parse_entrypoints(source.read_dist_info("entry_points.txt")):
                    claims.add(("scripts", script))
    except (zipfile.BadZipFile, OSError, KeyError, ValueError, AssertionError):
        claims.add(("?", str(wheel)))  # unreadable (checked before, so not expected): a group of its own
    return claims


def _disjoint_groups(wheels: Sequence[Path]) -> list[list[Path]]:
    """``wheels`` split into groups that claim no common file (union of overlapping ones), each in order."""
    if len(wheels) <= 1:
        return [list(wheels)]
    owner: dict[tuple[str, str], int] = {}
    parent = list(range(len(wheels)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, wheel in enumerate(wheels):
        for claim in _claims(wheel):
            j = owner.setdefault(claim, i)
            if j != i:
                parent[find(i)] = find(j)
    groups: dict[int, list[Path]] = {}
    for i, wheel in enumerate(wheels):
        groups.setdefault(find(i), []).append(wheel)
    return list(groups.values())


def compile_bytecode(layout: VenvLayout, *, timeout: float = COMPILE_TIMEOUT) -> None:
    """Compile site-packages with the venv's interpreter: ``unchecked-hash`` pycs, same bytes on every build.

    Paths embedded in the pycs are relative to the venv root (``-d``), the hash seed is fixed (set and
    frozenset constants), and files that do not compile (Python 2 leftovers in some sdists) are logged and
    skipped, as pip and uv do.
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    env["PYTHONHASHSEED"] = "0"
    for rel in dict.fromkeys((layout.purelib, layout.platlib)):
        directory = layout.root / rel
        if not directory.is_dir():
            continue
        cmd = [os.fspath(layout.python), "-s", "-m", "compileall", "-q", "-j", "0"]
        cmd += ["--invalidation-mode", "unchecked-hash", "-d", rel, os.fspath(directory)]
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=layout.root, stdin=subprocess.DEVNULL
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise VenvError(layout.root, f"compiling bytecode failed: {exc}") from exc
        if proc.returncode != 0:
            log.warning("some files in %s did not compile:\n%s", rel, (proc.stdout + proc.stderr)[-4000:])
