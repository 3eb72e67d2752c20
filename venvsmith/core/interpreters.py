"""Discovery of the Python interpreters installed on this machine.

Candidates come, in this priority order, from

1. ``VENVSMITH_PYTHONS`` -- an ``os.pathsep``-separated list of interpreter paths (explicit configuration);
2. ``PATH`` -- ``python3.X``, ``python3``, ``python`` (and ``pypy3``/``pypy3.X``) in every directory;
3. pyenv -- ``$PYENV_ROOT`` (default ``~/.pyenv``) ``/versions/*/bin/python``.

Candidates are de-duplicated by real path (a symlink and its target are one interpreter; the first spelling
found is kept), then each is asked once, by :func:`venvsmith.core.probe.probe` (one isolated subprocess with a
timeout and an output cap, whose answer also serves target environments and venv identities), for its version
and implementation.
Python 2 and interpreters that fail, hang or answer nonsense are skipped. No path is hard-coded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from venvsmith.core.probe import Probe, ProbeCache, ProbeError, file_identity, probe

if TYPE_CHECKING:
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

# packaging is imported where versions are compared: identify() (a remote venv's base interpreter check, on the
# thin client's path) needs only the version's text.

__all__ = [
    "ENV_VAR",
    "BaseInterpreter",
    "Interpreter",
    "QueryCache",
    "cached_identify",
    "candidate_paths",
    "discover_interpreters",
    "file_identity",
    "find_interpreter",
    "identify",
    "query",
]

log = logging.getLogger(__name__)

#: Environment variable listing extra interpreters, separated by ``os.pathsep``.
ENV_VAR = "VENVSMITH_PYTHONS"

_EXE = ".exe" if sys.platform == "win32" else ""
_NAME_RE = re.compile(r"(?:python|python3|python3\.\d+|pypy3|pypy3\.\d+)" + re.escape(_EXE), re.IGNORECASE)

_PRE = {"alpha": "a", "beta": "b", "candidate": "rc"}


@dataclass(frozen=True)
class Interpreter:
    """One usable Python 3 interpreter."""

    path: Path
    version: Version
    #: ``sys.implementation.name``: ``"cpython"``, ``"pypy"``, ...
    implementation: str

    def __str__(self) -> str:
        return f"{self.implementation} {self.version} at {self.path}"


def _split(value: str | None) -> list[str]:
    return [part for part in (value or "").split(os.pathsep) if part.strip()]


def _path_candidates(directory: Path) -> Iterator[Path]:
    try:
        entries = sorted(os.scandir(directory), key=lambda entry: _name_order(entry.name))
    except OSError:
        return
    for entry in entries:
        if _NAME_RE.fullmatch(entry.name):
            yield Path(entry.path)


def _name_order(name: str) -> tuple[int, str]:
    # Versioned names first (python3.12 before python3 before python); stable otherwise.
    stem = name.lower().removesuffix(_EXE)
    rank = 0 if "." in stem else (1 if stem.endswith("3") else 2)
    return rank, name


def _pyenv_candidates(root: Path) -> Iterator[Path]:
    versions = root / "versions"
    try:
        prefixes = sorted(p for p in versions.iterdir() if p.is_dir())
    except OSError:
        return
    for prefix in prefixes:
        names = ("python.exe",) if sys.platform == "win32" else ("bin/python", "bin/python3")
        for name in names:
            exe = prefix / name
            if exe.exists():
                yield exe
                break


def candidate_paths(environ: Mapping[str, str] | None = None) -> list[Path]:
    """Interpreter paths to try, in priority order, de-duplicated by real path; not yet queried."""
    env = os.environ if environ is None else environ
    pyenv_root = env.get("PYENV_ROOT")
    if pyenv_root:
        root = Path(pyenv_root).expanduser()
    else:
        home = env.get("HOME") or env.get("USERPROFILE")
        root = (Path(home) if home else Path.home()) / ".pyenv"
    # pyenv's shims are slow shell scripts whose answer depends on the working directory; the versions
    # they dispatch to are listed directly below.
    shims = os.path.realpath(root / "shims")

    found: list[Path] = [Path(part).expanduser() for part in _split(env.get(ENV_VAR))]
    for directory in _split(env.get("PATH")):
        if os.path.realpath(directory) != shims:
            found.extend(_path_candidates(Path(directory)))
    found.extend(_pyenv_candidates(root))

    unique: list[Path] = []
    seen: set[str] = set()
    for path in found:
        try:
            real = os.path.realpath(path)
        except OSError:
            continue
        if real in seen or not (os.path.isfile(real) and os.access(real, os.X_OK)):
            continue
        seen.add(real)
        unique.append(path)
    return unique


def _version_text(answer: Probe) -> str:
    """The interpreter's version as PEP 440 spells it (``3.13.0rc1``), from its ``sys.version_info``."""
    major, minor, micro, level, serial = answer.version_info
    return f"{int(major)}.{int(minor)}.{int(micro)}" + (f"{_PRE[level]}{int(serial)}" if level in _PRE else "")


def _version(answer: Probe) -> Version:
    from packaging.version import Version

    return Version(_version_text(answer))


def _interpreter(path: Path, answer: Probe) -> Interpreter | None:
    from packaging.version import InvalidVersion

    try:
        major = answer.version_info[0]
        if major < 3:
            log.debug("skipping %s: Python %s", path, major)
            return None
        version, implementation = _version(answer), answer.implementation
    except (ValueError, KeyError, TypeError, InvalidVersion) as exc:
        log.debug("skipping %s: %s", path, exc)
        return None
    # The interpreter's own idea of its path: a wrapper (a pyenv shim) names the real binary; a venv's
    # symlinked python keeps the venv's path, as Python does not resolve symlinks in sys.executable.
    executable = answer.executable
    if executable and os.path.isabs(executable) and os.path.isfile(executable):
        path = Path(executable)
    return Interpreter(path=path, version=version, implementation=implementation)


def query(
    path: str | os.PathLike[str], timeout: float = 10.0, cache: QueryCache | None = None
) -> Interpreter | None:
    """Ask one interpreter for its version and implementation; None when it is unusable or Python 2.

    With ``cache`` the whole probe answer (environment, identity) is kept for the other callers.
    """
    exe = Path(path)
    try:
        answer = probe(exe, timeout=timeout, cache=cache, environment=False)
    except ProbeError as exc:
        log.debug("skipping %s: %s", exe, exc.reason)
        return None
    return _interpreter(exe, answer)


@dataclass(frozen=True)
class BaseInterpreter:
    """The base interpreter of a venv: the path the venv links to, its version, and the identity of its build."""

    path: str
    version: str
    implementation: str
    #: sha256 hex of sys.version, cache tag, ABI flags, SOABI, the real path of ``path`` and sys.base_prefix.
    identity: str

    def __str__(self) -> str:
        return f"{self.implementation} {self.version} at {self.path}"


def identify(
    path: str | os.PathLike[str], timeout: float = 10.0, cache: QueryCache | None = None
) -> BaseInterpreter | None:
    """Ask ``path`` what a venv made with it depends on; None when it cannot be run or answers nonsense.

    The venv links to ``sys._base_executable``; the identity tells this build of it from another of the same version.
    """
    try:
        answer = probe(path, timeout=timeout, cache=cache, environment=False)
        base = answer.base
        build = json.dumps(base["build"], sort_keys=True, separators=(",", ":"))
        return BaseInterpreter(
            path=str(base["path"]),
            version=_version_text(answer),
            implementation=answer.implementation,
            identity=hashlib.sha256(build.encode()).hexdigest(),
        )
    except (ProbeError, ValueError, KeyError, TypeError):
        return None


def cached_identify(path: str | os.PathLike[str], cache: QueryCache | None) -> BaseInterpreter | None:
    """:func:`identify`, kept in ``cache`` while the interpreter binary is unchanged (see :func:`file_identity`)."""
    found = identify(path, cache=cache)
    if cache is not None:
        cache.save()
    return found


#: The probe cache, by its older name.
QueryCache = ProbeCache


def discover_interpreters(
    environ: Mapping[str, str] | None = None, *, timeout: float = 10.0, cache: QueryCache | None = None
) -> list[Interpreter]:
    """Every usable Python 3 interpreter found, newest version first (ties keep discovery priority).

    With ``cache``, an interpreter whose binary is unchanged is not run again.
    """
    paths = candidate_paths(environ)
    if not paths:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(paths))) as pool:
        answers = list(pool.map(lambda path: query(path, timeout, cache), paths))
    if cache is not None:
        cache.save()
    found: list[Interpreter] = []
    seen: set[str] = set()
    for interpreter in answers:  # a second de-duplication, by the path each interpreter reported
        if interpreter is None:
            continue
        real = os.path.realpath(interpreter.path)
        if real not in seen:
            seen.add(real)
            found.append(interpreter)
    return sorted(found, key=lambda interpreter: interpreter.version, reverse=True)


def _specifier(version_spec: str) -> SpecifierSet:
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    spec = version_spec.strip()
    if re.fullmatch(r"\d+(\.\d+){0,2}", spec):
        # "3" / "3.11" mean any release of that series; "3.11.7" exactly that release.
        return SpecifierSet(f"=={spec}" if spec.count(".") == 2 else f"=={spec}.*")
    try:
        return SpecifierSet(spec)
    except InvalidSpecifier:
        raise ValueError(f"invalid Python version request: {version_spec!r}") from None


def find_interpreter(
    version_spec: str,
    interpreters: Iterable[Interpreter] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> Interpreter | None:
    """The newest interpreter matching ``"3.11"`` (any 3.11.x), ``"3.11.7"`` or a specifier (``">=3.10"``).

    Pre-releases match only when no final release does (PEP 440). ``interpreters`` defaults to
    :func:`discover_interpreters`. Raises ``ValueError`` for a malformed request.
    """
    spec = _specifier(version_spec)
    candidates = list(
        discover_interpreters(environ, timeout=timeout) if interpreters is None else interpreters
    )
    matching = set(spec.filter(interpreter.version for interpreter in candidates))
    best = sorted(
        (interpreter for interpreter in candidates if interpreter.version in matching),
        key=lambda interpreter: interpreter.version,
        reverse=True,
    )
    return best[0] if best else None
