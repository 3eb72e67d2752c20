"""Build a wheel (or only its metadata) from an sdist in isolation, through the PEP 517 hooks.

One build: unpack the sdist safely into a fresh work directory, read ``[build-system]``, create a fresh venv for
the target interpreter, let a :class:`BuildEnvProvider` (our resolver + installer; never pip) install
``requires`` and then what ``get_requires_for_build_wheel`` asks for, and call the hook. Every hook runs in the
build venv's Python via :class:`pyproject_hooks.BuildBackendHookCaller` whose runner is
:func:`~builder_service.limits.run_limited` (time, memory and output limits, process group killed on timeout)
with a scrubbed environment (:func:`build_environ`): no credentials or configuration of the service leak in.
The produced wheel is checked against the sdist's name and version before it is handed out.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
import tomllib
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version
from pyproject_hooks import BackendUnavailable, BuildBackendHookCaller, HookMissing, UnsupportedOperation

from builder_service.build_log import BuildLog
from builder_service.errors import (
    BuildError,
    BuildOutputTooLarge,
    BuildRequirementUnavailable,
    BuildTimeout,
    InvalidSdist,
    VenvError,
)
from builder_service.limits import BuildLimits, run_limited
from builder_service.sandbox import NoSandbox, Sandbox
from builder_service.sdist_unpack import extract_sdist
from builder_service.venv import create_venv
from builder_service.venv_layout import VenvLayout

__all__ = [
    "DEFAULT_BUILD_SYSTEM",
    "SOURCE_DATE_EPOCH",
    "BuildEnvProvider",
    "BuildOutcome",
    "BuildSystem",
    "InvalidSdist",
    "WheelDirBuildEnv",
    "build_environ",
    "build_wheel",
    "extract_sdist",
    "prepare_metadata",
    "read_build_system",
]

#: Timestamp every build sees (1980-01-01T00:00:00Z, the earliest a zip can hold), for reproducible wheels.
SOURCE_DATE_EPOCH = 315532800
_NO_SETTINGS: Mapping[str, str] = MappingProxyType({})
_DIST_INFO_METADATA = re.compile(r"[^/]+\.dist-info/METADATA")


class BuildEnvProvider(Protocol):
    """Fills build venvs: resolves PEP 508 requirements for the venv's interpreter and installs them."""

    def install(self, requirements: Sequence[str], layout: VenvLayout) -> list[str]:
        """Install ``requirements`` into the build venv ``layout``; return the pins used (``"name==version"``).

        Called up to twice per build on the same venv (``requires``, then the backend's
        ``get_requires_for_build_wheel``); the second set must be resolved compatibly with the first.
        """
        ...


@dataclass(frozen=True)
class BuildSystem:
    """The ``[build-system]`` table of a source tree."""

    requires: tuple[str, ...]
    backend: str
    backend_path: tuple[str, ...] = ()


#: What PEP 517/518 frontends assume when ``pyproject.toml`` or its ``[build-system]`` is missing.
DEFAULT_BUILD_SYSTEM = BuildSystem(("setuptools>=40.8.0",), "setuptools.build_meta:__legacy__")


@dataclass(frozen=True)
class BuildOutcome:
    """A built wheel, the build-dependency pins it was built with (sorted) and its build log."""

    wheel: Path
    build_requirements: tuple[str, ...]
    log: Path


# ------------------------------------------------------------------------------------------------ unpacking


def _parse_requirements(sdist: Path, values: object, where: str) -> tuple[str, ...]:
    if not isinstance(values, list | tuple) or not all(isinstance(value, str) for value in values):
        raise InvalidSdist(sdist, f"{where} must be a list of strings, not {values!r}")
    for value in values:
        try:
            Requirement(value)
        except InvalidRequirement as exc:
            raise InvalidSdist(sdist, f"{where}: invalid requirement {value!r}: {exc}") from exc
    return tuple(values)


def read_build_system(source: Path, sdist: Path) -> BuildSystem:
    """The ``[build-system]`` of the source tree ``source`` (PEP 517/518 defaults when absent)."""
    path = source / "pyproject.toml"
    if not path.is_file():
        return DEFAULT_BUILD_SYSTEM
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8")).get("build-system")
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InvalidSdist(sdist, f"invalid pyproject.toml: {exc}") from exc
    if table is None:
        return DEFAULT_BUILD_SYSTEM
    if not isinstance(table, dict) or "requires" not in table:
        raise InvalidSdist(sdist, "pyproject.toml: [build-system] must be a table with 'requires'")
    requires = _parse_requirements(sdist, table["requires"], "[build-system] requires")
    backend = table.get("build-backend", DEFAULT_BUILD_SYSTEM.backend)
    if not isinstance(backend, str) or not backend.strip():
        raise InvalidSdist(sdist, f"pyproject.toml: invalid build-backend {backend!r}")
    backend_path = table.get("backend-path", [])
    if not isinstance(backend_path, list) or not all(isinstance(entry, str) for entry in backend_path):
        raise InvalidSdist(sdist, f"pyproject.toml: backend-path must be a list of strings, not {backend_path!r}")
    return BuildSystem(requires, backend.strip(), tuple(backend_path))


def _name_version(sdist: Path, name: object, version: object, where: str) -> tuple[NormalizedName, Version]:
    try:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"no name in {where}")
        return canonicalize_name(name, validate=True), Version(str(version))
    except (ValueError, InvalidVersion) as exc:
        raise InvalidSdist(sdist, f"cannot tell its project and version from {where}: {exc}") from exc


def _sdist_project(sdist: Path, source: Path, top_level: bool) -> tuple[NormalizedName, Version]:
    """Name and version of the sdist: from ``PKG-INFO``, else its top-level directory, else its file name."""
    pkg_info = source / "PKG-INFO"
    if pkg_info.is_file():
        headers = BytesHeaderParser().parsebytes(pkg_info.read_bytes())
        return _name_version(sdist, headers.get("Name"), headers.get("Version"), "PKG-INFO")
    if top_level and "-" in source.name:
        name, _, version = source.name.rpartition("-")
        return _name_version(sdist, name, version, f"its directory {source.name}")
    try:
        return parse_sdist_filename(sdist.name)
    except InvalidSdistFilename as exc:
        raise InvalidSdist(sdist, "no PKG-INFO and the file name is not name-version.tar.gz") from exc


def _check_metadata(sdist: Path, data: bytes, project: tuple[NormalizedName, Version], where: str) -> None:
    headers = BytesHeaderParser().parsebytes(data)
    found = _name_version(sdist, headers.get("Name"), headers.get("Version"), where)
    if found != project:
        raise InvalidSdist(sdist, f"{where} is for {found[0]} {found[1]}, not {project[0]} {project[1]}")


def _wheel_metadata(sdist: Path, wheel: Path) -> bytes:
    """The ``METADATA`` of ``wheel`` (its one top-level ``.dist-info`` directory)."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            names = [name for name in archive.namelist() if _DIST_INFO_METADATA.fullmatch(name)]
            if len(names) != 1:
                raise InvalidSdist(sdist, f"built wheel {wheel.name} has {len(names)} .dist-info/METADATA files")
            return archive.read(names[0])
    except (zipfile.BadZipFile, zlib.error, OSError) as exc:
        raise InvalidSdist(sdist, f"built wheel {wheel.name} is not a readable zip: {exc}") from exc


def _check_wheel(sdist: Path, wheel_dir: Path, returned: object, build: _Build) -> Path:
    """The single wheel ``build_wheel`` wrote, after checking its name, version and size."""
    wheels = sorted(path.name for path in wheel_dir.iterdir() if path.name.endswith(".whl"))
    if len(wheels) != 1 or returned != wheels[0]:
        raise InvalidSdist(sdist, f"build_wheel returned {returned!r} but wrote {wheels}")
    wheel = wheel_dir / wheels[0]
    if wheel.is_symlink() or not wheel.is_file():
        raise InvalidSdist(sdist, f"built wheel {wheel.name} is not a regular file")
    if wheel.stat().st_size > build.limits.max_output_bytes:
        raise BuildOutputTooLarge(f"build_wheel of {build.label}", build.limits.max_output_bytes, "")
    try:
        name, version, _build_tag, _tags = parse_wheel_filename(wheel.name)
    except InvalidWheelFilename as exc:
        raise InvalidSdist(sdist, f"built wheel has an invalid file name: {exc}") from exc
    if (name, version) != build.project:
        raise InvalidSdist(sdist, f"built wheel {wheel.name} is not for {build.project[0]} {build.project[1]}")
    _check_metadata(sdist, _wheel_metadata(sdist, wheel), build.project, f"METADATA of {wheel.name}")
    return wheel


# ------------------------------------------------------------------------------------------------ the build


def build_environ(bin_dir: Path, home: Path, tmp: Path, path: str | None = None) -> dict[str, str]:
    """The complete environment of a build process; nothing of the service's environment but ``PATH``.

    :param path: the ``PATH`` to put after ``bin_dir`` (default: the service's ``PATH``).
    """
    rest = os.environ.get("PATH", os.defpath) if path is None else path
    return {
        "PATH": os.pathsep.join(part for part in (str(bin_dir), rest) if part),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TMPDIR": str(tmp),
        "SOURCE_DATE_EPOCH": str(SOURCE_DATE_EPOCH),
        "PYTHONHASHSEED": "0",
    }


@dataclass
class _Build:
    """A prepared build: unpacked source, filled build venv and the hook caller for it."""

    sdist: Path
    work: Path
    project: tuple[NormalizedName, Version]
    hooks: BuildBackendHookCaller
    pins: tuple[str, ...]
    limits: BuildLimits
    log: BuildLog
    config_settings: dict[str, str]

    @property
    def label(self) -> str:
        return f"{self.project[0]} {self.project[1]}"

    def call(self, hook: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call a hook of ``self.hooks``, turning backend problems into :class:`InvalidSdist`."""
        return _call_hook(self.sdist, self.log, hook, *args, **kwargs)


def _call_hook(sdist: Path, log: BuildLog, hook: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return hook(*args, **kwargs)
    except BackendUnavailable as exc:
        raise InvalidSdist(sdist, f"cannot import build backend {exc.backend_name!r}", exc.traceback) from exc
    except HookMissing as exc:
        raise InvalidSdist(sdist, f"build backend has no {exc.hook_name} hook") from exc
    except UnsupportedOperation as exc:
        raise InvalidSdist(sdist, "build backend does not support this operation", exc.traceback) from exc
    except (OSError, ValueError, KeyError) as exc:  # no or garbled output.json from the hook process
        raise InvalidSdist(sdist, f"build hook gave no result: {exc!r}", log.tail_text()) from exc


class _HookRunner:
    """A ``pyproject_hooks`` subprocess runner: each hook through :func:`run_limited` with only ``environ``, in
    ``sandbox`` with ``work`` writable (and the hook's control directory, where its input and output go)."""

    def __init__(self, environ: Mapping[str, str], limits: BuildLimits, log: BuildLog, deadline: float, label: str,
                 sandbox: Sandbox | None = None, work: Path | None = None, interpreter: Path | None = None):
        self.environ = dict(environ)
        self.limits = limits
        self.log = log
        self.deadline = deadline
        self.label = label
        self.sandbox = sandbox or NoSandbox()
        self.work = work
        #: The base interpreter's installation, which the build venv's ``python`` runs from.
        self.readable = [Path(os.path.realpath(interpreter)).parent.parent] if interpreter is not None else []

    def _wrap(self, cmd: Sequence[str], cwd: Path) -> Callable[[list[str]], list[str]]:
        """The sandbox wrapper of one hook call ``[python, _in_process.py, hook, control_dir]``."""
        readable = [*self.readable, *([Path(cmd[1]).parent] if len(cmd) > 1 else [])]
        writable = [Path(cmd[3])] if len(cmd) > 3 else []
        work = self.work or cwd
        return lambda argv: self.sandbox.wrap(argv, work, readable, writable, cwd=cwd)

    def __call__(
        self, cmd: Sequence[str], cwd: str | None = None, extra_environ: Mapping[str, str] | None = None
    ) -> None:
        hook = cmd[2] if len(cmd) > 2 else "build hook"
        where = Path(os.path.abspath(cwd or "."))
        run_limited(
            cmd,
            cwd=where,
            env={**self.environ, **(extra_environ or {})},
            limits=self.limits,
            log=self.log,
            what=f"{hook} of {self.label}",
            deadline=self.deadline,
            wrap=self._wrap(cmd, where),
        )


def _create_env(sdist: Path, interpreter: Path, dest: Path, deadline: float, limits: BuildLimits) -> VenvLayout:
    try:
        return create_venv(interpreter, dest, timeout=max(deadline - time.monotonic(), 0.001))
    except VenvError as exc:
        if time.monotonic() >= deadline:
            raise BuildTimeout(f"creating the build venv for {sdist.name}", limits.timeout_seconds, "") from exc
        raise BuildError(str(interpreter), f"cannot create a build venv: {exc}") from exc


def _install(
    provider: BuildEnvProvider, requirements: Sequence[str], layout: VenvLayout, runner: _HookRunner
) -> tuple[str, ...]:
    if not requirements:
        return ()
    pins = tuple(provider.install(list(requirements), layout))
    if time.monotonic() >= runner.deadline:
        raise BuildTimeout(f"installing the build requirements of {runner.label}", runner.limits.timeout_seconds, "")
    return pins


def remove_tree(path: Path) -> None:
    """Remove ``path`` even if the build left read-only directories in it."""
    try:
        shutil.rmtree(path)
    except OSError:
        for directory, _dirs, _files in os.walk(path):
            if not os.path.islink(directory):
                os.chmod(directory, 0o700)
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def _prepared(
    sdist: Path,
    *,
    interpreter: Path,
    env_provider: BuildEnvProvider,
    limits: BuildLimits,
    config_settings: Mapping[str, str],
    work_dir: Path | None,
    log: Path | None,
    sandbox: Sandbox | None = None,
    log_lines: Callable[[list[str]], None] | None = None,
) -> Iterator[_Build]:
    """Unpack ``sdist``, create and fill its build venv (both rounds of requirements); removed afterwards.

    The build's output goes to a :class:`BuildLog` at ``log`` (closed, so complete, when the block ends: also when
    it raised), bounded by ``limits.max_log_bytes`` and ``limits.max_output_bytes``; ``log_lines`` gets its lines.
    """
    deadline = time.monotonic() + limits.timeout_seconds
    sdist = Path(os.path.abspath(sdist))
    if work_dir is not None:
        work_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="venvsmith-build-", dir=work_dir))
    build_log = BuildLog(log or work / "build.log", min(limits.max_log_bytes, limits.max_output_bytes),
                         kill_bytes=limits.max_output_bytes, on_lines=log_lines)
    try:
        source = extract_sdist(sdist, work / "src", max_bytes=limits.max_output_bytes)
        project = _sdist_project(sdist, source, top_level=source != work / "src")
        label = f"{project[0]} {project[1]}"
        system = read_build_system(source, sdist)
        layout = _create_env(sdist, interpreter, work / "env", deadline, limits)
        for name in ("home", "tmp"):
            (work / name).mkdir()
        environ = build_environ(layout.bin_dir, work / "home", work / "tmp")
        runner = _HookRunner(environ, limits, build_log, deadline, label, sandbox, work, interpreter)
        try:
            hooks = BuildBackendHookCaller(
                str(source), system.backend, list(system.backend_path) or None, runner, str(layout.python)
            )
        except ValueError as exc:  # backend-path outside the source tree
            raise InvalidSdist(sdist, f"pyproject.toml: backend-path {list(system.backend_path)}: {exc}") from exc
        pins = _install(env_provider, system.requires, layout, runner)
        settings = dict(config_settings)
        extra = _call_hook(sdist, build_log, hooks.get_requires_for_build_wheel, settings)
        extra = _parse_requirements(sdist, extra, "get_requires_for_build_wheel")
        pins += _install(env_provider, extra, layout, runner)
        yield _Build(sdist, work, project, hooks, tuple(sorted(set(pins))), limits, build_log, settings)
    finally:
        build_log.close()
        remove_tree(work)


def build_wheel(
    sdist: Path,
    *,
    interpreter: Path,
    env_provider: BuildEnvProvider,
    out_dir: Path,
    limits: BuildLimits,
    config_settings: Mapping[str, str] = _NO_SETTINGS,
    work_dir: Path | None = None,
    sandbox: Sandbox | None = None,
    log: Path | None = None,
    log_lines: Callable[[list[str]], None] | None = None,
) -> BuildOutcome:
    """Build the wheel of ``sdist`` for ``interpreter`` in isolation; it and the build log end up in ``out_dir``.

    :param work_dir: where the temporary work directory goes (default: the system's temp directory).
    :param sandbox: what the backend's hooks run in (default: none), its work directory the only one writable.
    :param log: where the build log goes (default: a new ``*.build.log`` in ``out_dir``).
    :param log_lines: called with the build log's lines as they are written (a caller following the build).
    :raises BuildError: the build failed (:class:`InvalidSdist`, :class:`~builder_service.errors.BuildFailed`,
        :class:`~builder_service.errors.BuildTimeout`, ...); the log is kept, complete.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    if log is None:
        fd, log_name = tempfile.mkstemp(prefix=f"{Path(sdist).name}.", suffix=".build.log", dir=out_dir)
        os.close(fd)
        log = Path(log_name)
    with _prepared(
        sdist,
        interpreter=interpreter,
        env_provider=env_provider,
        limits=limits,
        config_settings=config_settings,
        work_dir=work_dir,
        log=log,
        sandbox=sandbox,
        log_lines=log_lines,
    ) as build:
        wheel_dir = build.work / "wheel"
        wheel_dir.mkdir()
        returned = build.call(build.hooks.build_wheel, str(wheel_dir), build.config_settings)
        wheel = _check_wheel(build.sdist, wheel_dir, returned, build)
        final = out_dir / wheel.name
        shutil.move(wheel, final)
        return BuildOutcome(final, build.pins, log)


def prepare_metadata(
    sdist: Path,
    *,
    interpreter: Path,
    env_provider: BuildEnvProvider,
    limits: BuildLimits,
    config_settings: Mapping[str, str] = _NO_SETTINGS,
    work_dir: Path | None = None,
    log: Path | None = None,
    sandbox: Sandbox | None = None,
) -> bytes:
    """The core metadata (``METADATA`` bytes) of the wheel ``sdist`` would build for ``interpreter``.

    Uses ``prepare_metadata_for_build_wheel``; backends without it build the wheel (in the hook process) and
    its ``METADATA`` is returned. ``log``: where to keep the build log (default: discarded).
    """
    with _prepared(
        sdist,
        interpreter=interpreter,
        env_provider=env_provider,
        limits=limits,
        config_settings=config_settings,
        work_dir=work_dir,
        log=log,
        sandbox=sandbox,
    ) as build:
        metadata_dir = build.work / "metadata"
        metadata_dir.mkdir()
        returned = build.call(
            build.hooks.prepare_metadata_for_build_wheel, str(metadata_dir), build.config_settings, _allow_fallback=True
        )
        if not isinstance(returned, str) or not re.fullmatch(r"[^/\\]+\.dist-info", returned):
            raise InvalidSdist(build.sdist, f"prepare_metadata_for_build_wheel returned {returned!r}")
        path = metadata_dir / returned / "METADATA"
        if path.is_symlink() or not path.is_file() or path.parent.is_symlink():
            raise InvalidSdist(build.sdist, f"prepare_metadata_for_build_wheel wrote no {returned}/METADATA")
        if path.stat().st_size > build.limits.max_output_bytes:
            raise BuildOutputTooLarge(f"metadata of {build.label}", build.limits.max_output_bytes, "")
        data = path.read_bytes()
        _check_metadata(build.sdist, data, build.project, f"{returned}/METADATA")
        return data


# ------------------------------------------------------------------------------------------------ cache key


# ------------------------------------------------------------------------------------------------ test provider


class WheelDirBuildEnv:
    """A :class:`BuildEnvProvider` over a directory of wheels, for tests and offline use.

    Each requirement gets the newest wheel in ``wheel_dir`` whose name matches and whose version the specifier
    allows (pre-releases included); no dependency resolution, no tag check. Markers are evaluated against
    ``environment`` (default: the running interpreter). ``installer_fn(wheel, env_dir)`` installs one wheel.
    """

    def __init__(
        self,
        wheel_dir: Path,
        installer_fn: Callable[[Path, Path], None],
        environment: Mapping[str, str] | None = None,
    ) -> None:
        self.wheel_dir = wheel_dir
        self.installer_fn = installer_fn
        self.environment = dict(environment) if environment is not None else None

    def _best(self, requirement: Requirement) -> tuple[Version, Path]:
        name = canonicalize_name(requirement.name)
        found: list[tuple[Version, Path]] = []
        for path in sorted(self.wheel_dir.glob("*.whl")):
            try:
                wheel_name, version, _build, _tags = parse_wheel_filename(path.name)
            except InvalidWheelFilename:
                continue
            if wheel_name == name and requirement.specifier.contains(version, prereleases=True):
                found.append((version, path))
        if not found:
            raise BuildRequirementUnavailable(str(requirement), f"no matching wheel in {self.wheel_dir}")
        return max(found, key=lambda item: item[0])

    def install(self, requirements: Sequence[str], layout: VenvLayout) -> list[str]:
        """Install the best wheel for each requirement; return ``name==version`` pins."""
        env_dir = layout.root
        pins: list[str] = []
        for text in requirements:
            requirement = Requirement(text)
            if requirement.marker is not None and not requirement.marker.evaluate(self.environment):
                continue
            version, wheel = self._best(requirement)
            self.installer_fn(wheel, env_dir)
            pins.append(f"{canonicalize_name(requirement.name)}=={version}")
        return pins
