"""The target environment: the interpreter an answer is for, which need not be the server's own.

A :class:`TargetEnvironment` is the PEP 508 marker environment plus the ordered list of wheel tags the
target interpreter supports (best first, as ``packaging.tags.sys_tags()`` orders them). It comes from one of

* :meth:`TargetEnvironment.from_local` -- this process's interpreter;
* :meth:`TargetEnvironment.from_interpreter` -- another interpreter on this machine, queried in a subprocess;
* :meth:`TargetEnvironment.from_shorthand` -- a Python version plus a platform name spelled as uv's
  ``--python-version`` / ``--python-platform`` spell them (see :data:`PLATFORMS`);
* :meth:`TargetEnvironment.from_mapping` -- markers and tags a client sent (validated).

Every tag, marker and version decision is delegated to ``packaging``. The one list ``packaging`` does not
offer for a foreign machine is the Linux platform list (its ``_manylinux`` module asks the running glibc), so
:func:`linux_platform_tags` builds it the way PEP 600 and ``packaging`` document it.

Decisions (mirroring uv >= 0.8 unless noted):

* ``linux`` / ``x86_64-unknown-linux-gnu`` / ``aarch64-unknown-linux-gnu`` mean glibc 2.28
  (``manylinux_2_28``): uv 0.8 moved its default from ``manylinux_2_17`` to ``manylinux_2_28`` because the
  manylinux2014 images are end-of-life and nearly every consumer runs glibc >= 2.28.
  ``<arch>-manylinux_2_17`` / ``<arch>-manylinux2014`` stay available for older systems; every
  ``manylinux_2_17`` .. ``manylinux_2_40`` is accepted (uv accepts a subset of these).
* ``macos`` / ``*-apple-darwin`` mean macOS 13.0, the oldest non-EOL release, as uv assumes (the x86_64 list
  still contains every ``macosx_10_*`` tag down to 10.4 that ``packaging.tags.mac_platforms`` yields, and the
  arm64 list the ``universal2`` ones). ``MACOSX_DEPLOYMENT_TARGET`` is deliberately *not* read: a server's
  environment must not change answers.
* ``platform_machine`` is what a real interpreter reports: ``AMD64`` / ``x86`` / ``ARM64`` on Windows (uv says
  ``x86_64`` for Windows, which no CPython on Windows reports), ``arm64`` on Apple silicon.
* ``platform_release`` and ``platform_version`` are empty for shorthands (as uv does): they are unknowable.
* PyPy shorthands use the ``pp73`` ABI shared by every PyPy 7.3 release, tags as ``sys_tags()`` builds them on
  PyPy (``pp3XY-pypy3XY_pp73-<platform>``, ``pp3XY-none-<platform>``, then the compatible tags with ``pp3``),
  and ``implementation_version`` ``7.3.0`` (the first pp73 release; a shorthand cannot know the patch level).
* Free-threaded CPython (``cp313t``) is not expressible as a shorthand; describe such an interpreter instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform as _platform
import re
import shutil
import sys
import sysconfig
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cache, cached_property
from types import MappingProxyType
from typing import Any, cast

import packaging
from packaging.markers import Marker, UndefinedComparison, UndefinedEnvironmentName, default_environment
from packaging.tags import (
    INTERPRETER_SHORT_NAMES,
    Tag,
    compatible_tags,
    cpython_tags,
    generic_tags,
    mac_platforms,
    parse_tag,
    sys_tags,
)
from packaging.version import InvalidVersion, Version

from venvsmith.core.errors import InvalidInput
from venvsmith.core.probe import ProbeCache, ProbeError, probe

__all__ = [
    "IMPLEMENTATIONS",
    "MARKER_NAMES",
    "PLATFORMS",
    "PlatformSpec",
    "TargetEnvironment",
    "host_platform_name",
    "linux_platform_tags",
]

#: Every variable PEP 508 defines; a target environment has exactly these keys.
MARKER_NAMES: tuple[str, ...] = (
    "implementation_name",
    "implementation_version",
    "os_name",
    "platform_machine",
    "platform_python_implementation",
    "platform_release",
    "platform_system",
    "platform_version",
    "python_full_version",
    "python_version",
    "sys_platform",
)

#: Python implementations a shorthand may name.
IMPLEMENTATIONS: tuple[str, ...] = ("cpython", "pypy")

#: Upper bound on the number of tags a described environment may carry (a real one has ~1000-3000).
MAX_TAGS = 50_000

#: ``implementation_version`` of a PyPy shorthand: the first release of the pp73 ABI.
PYPY_SHORTHAND_VERSION = "7.3.0"

# packaging 26.3 moved the native ``linux_<arch>`` tags in front of the manylinux/musllinux ones; follow the
# installed packaging so that shorthands agree with what ``sys_tags()`` says on a real machine.
_LINUX_NATIVE_FIRST = Version(packaging.__version__) >= Version("26.3")

# Legacy manylinux aliases (PEP 600): the policy name that predates ``manylinux_2_X`` for the same glibc.
_LEGACY_MANYLINUX = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}

# The architectures manylinux has policies for (packaging's ``_manylinux._ALLOWED_ARCHS`` plus the 32-bit
# ones it checks by reading the interpreter's ELF header).
_MANYLINUX_ARCHS = frozenset(
    {"x86_64", "i686", "aarch64", "armv7l", "ppc64", "ppc64le", "s390x", "loongarch64", "riscv64"}
)

#: Bound on the tag sets whose best rank a target remembers.
_RANK_MEMO_MAX = 1 << 14
#: Entries of a target's marker memo (markers are held by it: bounded).
_MARKER_MEMO_MAX = 1 << 16

_VERSION_RE = re.compile(r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(?:\.(0|[1-9][0-9]*))?")


def linux_platform_tags(
    arch: str, *, glibc: tuple[int, int] | None = None, musl: tuple[int, int] | None = None
) -> list[str]:
    """Platform tags of a Linux machine with this architecture and C library, best first.

    Built as ``packaging.tags`` builds them for the running machine: ``linux_<arch>``, then (glibc) every
    ``manylinux_2_X`` from the glibc's minor version down to 2.17 -- down to 2.5 on x86_64/i686 -- each
    followed by its legacy alias (``manylinux2014`` = 2.17, ``manylinux2010`` = 2.12, ``manylinux1`` = 2.5),
    then (musl) ``musllinux_1_Y`` down to ``musllinux_1_0``. ``armv8l`` also accepts ``armv7l`` wheels.
    """
    archs = ["armv8l", "armv7l"] if arch == "armv8l" else [arch]
    native = [f"linux_{a}" for a in archs]
    portable: list[str] = []
    if glibc is not None and glibc[0] == 2 and any(a in _MANYLINUX_ARCHS for a in archs):
        floor = 5 if set(archs) & {"x86_64", "i686"} else 17
        for a in archs:
            for minor in range(glibc[1], floor - 1, -1):
                portable.append(f"manylinux_2_{minor}_{a}")
                if minor in _LEGACY_MANYLINUX:
                    portable.append(f"{_LEGACY_MANYLINUX[minor]}_{a}")
    if musl is not None:
        for a in archs:
            portable.extend(f"musllinux_{musl[0]}_{minor}_{a}" for minor in range(musl[1], -1, -1))
    return native + portable if _LINUX_NATIVE_FIRST else portable + native


@dataclass(frozen=True)
class PlatformSpec:
    """One platform name a shorthand may use, and what a real interpreter there reports."""

    name: str
    description: str
    #: ``"linux"``, ``"macos"`` or ``"windows"``.
    os: str
    #: Architecture as wheel platform tags spell it (``x86_64``, ``aarch64``, ``arm64``) or, on Windows, the
    #: whole platform tag (``win_amd64``, ``win32``, ``win_arm64``).
    arch: str
    #: ``"glibc"`` or ``"musl"`` on Linux, else empty.
    libc: str = ""
    #: glibc / musl version on Linux, macOS version on macOS.
    version: tuple[int, int] = (0, 0)
    #: ``platform_machine`` a real interpreter reports there.
    machine: str = ""
    #: Set on aliases (``linux``, ``macos``, ``windows``): the name this one stands for.
    alias_of: str = ""

    @property
    def sys_platform(self) -> str:
        return {"linux": "linux", "macos": "darwin", "windows": "win32"}[self.os]

    @property
    def platform_system(self) -> str:
        return {"linux": "Linux", "macos": "Darwin", "windows": "Windows"}[self.os]

    @property
    def os_name(self) -> str:
        return "nt" if self.os == "windows" else "posix"

    def marker_values(self) -> dict[str, str]:
        """The platform half of the marker environment (release and version are unknowable: empty)."""
        return {
            "os_name": self.os_name,
            "platform_machine": self.machine,
            "platform_release": "",
            "platform_system": self.platform_system,
            "platform_version": "",
            "sys_platform": self.sys_platform,
        }

    def platform_tags(self) -> list[str]:
        """Wheel platform tags, best first."""
        if self.os == "windows":
            return [self.arch]
        if self.os == "macos":
            return list(mac_platforms(self.version, self.arch))
        if self.libc == "musl":
            return linux_platform_tags(self.arch, musl=self.version)
        return linux_platform_tags(self.arch, glibc=self.version)


def _build_platforms() -> dict[str, PlatformSpec]:
    specs: list[PlatformSpec] = [
        PlatformSpec("x86_64-pc-windows-msvc", "64-bit x86 Windows", "windows", "win_amd64", machine="AMD64"),
        PlatformSpec("i686-pc-windows-msvc", "32-bit x86 Windows", "windows", "win32", machine="x86"),
        PlatformSpec("aarch64-pc-windows-msvc", "ARM64 Windows", "windows", "win_arm64", machine="ARM64"),
        PlatformSpec(
            "x86_64-unknown-linux-gnu",
            "x86_64 Linux, glibc 2.28+ (same as x86_64-manylinux_2_28)",
            "linux",
            "x86_64",
            "glibc",
            (2, 28),
            "x86_64",
        ),
        PlatformSpec(
            "aarch64-unknown-linux-gnu",
            "ARM64 Linux, glibc 2.28+ (same as aarch64-manylinux_2_28)",
            "linux",
            "aarch64",
            "glibc",
            (2, 28),
            "aarch64",
        ),
        PlatformSpec(
            "x86_64-unknown-linux-musl",
            "x86_64 Linux, musl 1.2+",
            "linux",
            "x86_64",
            "musl",
            (1, 2),
            "x86_64",
        ),
        PlatformSpec(
            "aarch64-unknown-linux-musl",
            "ARM64 Linux, musl 1.2+",
            "linux",
            "aarch64",
            "musl",
            (1, 2),
            "aarch64",
        ),
        PlatformSpec(
            "x86_64-apple-darwin", "x86_64 macOS 13.0+", "macos", "x86_64", version=(13, 0), machine="x86_64"
        ),
        PlatformSpec(
            "aarch64-apple-darwin",
            "Apple silicon macOS 13.0+",
            "macos",
            "arm64",
            version=(13, 0),
            machine="arm64",
        ),
    ]
    for arch in ("x86_64", "aarch64"):
        specs.append(
            PlatformSpec(
                f"{arch}-manylinux2014",
                f"{arch} Linux, glibc 2.17+ (manylinux2014)",
                "linux",
                arch,
                "glibc",
                (2, 17),
                arch,
            )
        )
        specs.extend(
            PlatformSpec(
                f"{arch}-manylinux_2_{minor}",
                f"{arch} Linux, glibc 2.{minor}+",
                "linux",
                arch,
                "glibc",
                (2, minor),
                arch,
            )
            for minor in range(17, 41)
        )
    table = {spec.name: spec for spec in specs}
    aliases = {
        "linux": "x86_64-unknown-linux-gnu",
        "windows": "x86_64-pc-windows-msvc",
        "macos": "aarch64-apple-darwin",
    }
    head = {
        alias: replace(table[target], name=alias, alias_of=target, description=f"alias for {target}")
        for alias, target in aliases.items()
    }
    return head | table


#: Platform names a shorthand may use, as uv's ``--python-platform`` spells them (aliases first).
PLATFORMS: Mapping[str, PlatformSpec] = MappingProxyType(_build_platforms())


@cache
def host_platform_name() -> str:
    """The :data:`PLATFORMS` name of this machine (``x86_64-manylinux_2_36`` on a glibc 2.36 x86_64 host).

    On Linux with glibc newer than the newest name known, the newest name is used: a newer glibc runs every
    older manylinux wheel. Raises :class:`InvalidInput` when no name fits (e.g. a 32-bit interpreter).
    """
    plat = sysconfig.get_platform()
    name = ""
    if sys.platform == "win32":
        name = {
            "win-amd64": "x86_64-pc-windows-msvc",
            "win32": "i686-pc-windows-msvc",
            "win-arm64": "aarch64-pc-windows-msvc",
        }.get(plat, "")
    elif sys.platform == "darwin":
        machine = _platform.machine()
        name = {"arm64": "aarch64-apple-darwin", "x86_64": "x86_64-apple-darwin"}.get(machine, "")
    elif sys.platform.startswith("linux") and plat.startswith("linux-"):
        arch = plat.split("-", 1)[1].replace("-", "_").replace(".", "_")
        libc, libc_version = _platform.libc_ver()
        if sys.maxsize > 2**32 and arch in ("x86_64", "aarch64"):
            if libc == "glibc":
                match = re.match(r"2\.(\d+)", libc_version)
                if match:
                    known = [s.version[1] for s in PLATFORMS.values() if s.libc == "glibc" and s.arch == arch]
                    minor = min(int(match.group(1)), max(known))
                    if f"{arch}-manylinux_2_{minor}" in PLATFORMS:
                        name = f"{arch}-manylinux_2_{minor}"
            elif not libc:
                name = f"{arch}-unknown-linux-musl"
    if not name:
        raise InvalidInput(f"{sys.platform} {plat}", "no platform name describes this server; name one")
    return name


def _parse_python_version(value: str) -> tuple[int, int, int]:
    match = _VERSION_RE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidInput(str(value), "invalid Python version")
    major, minor, micro = int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)
    if major != 3:
        raise InvalidInput(value, "unsupported Python version (only Python 3 targets are supported)")
    return major, minor, micro


def _pep440_full_version(value: str) -> str:
    # As packaging does for non-tagged builds: platform.python_version() may end in "+".
    return f"{value}local" if value.endswith("+") else value


def _expand_tag(text: str) -> list[Tag]:
    """Parse one tag or compressed tag set, keeping the written order of its components."""
    try:
        expected = parse_tag(text)
    except ValueError as exc:
        raise InvalidInput(text, f"invalid wheel tag ({exc})") from None
    interpreters, abis, platforms = (part.split(".") for part in text.split("-"))
    tags = [Tag(i, a, p) for i in interpreters for a in abis for p in platforms]
    if frozenset(tags) != expected:  # pragma: no cover - defensive: parse_tag accepted something else
        raise InvalidInput(text, "invalid wheel tag")
    return tags


@dataclass(frozen=True)
class TargetEnvironment:
    """A PEP 508 marker environment plus the wheel tags its interpreter supports, best first.

    ``platform`` and ``interpreter`` are labels (where the environment came from); they take no part in
    :meth:`canonical` / :meth:`digest`, so the same interpreter gives the same lock key wherever it lives.
    """

    markers: Mapping[str, str]
    tags: tuple[Tag, ...]
    platform: str = ""
    interpreter: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "markers", MappingProxyType(dict(self.markers)))
        object.__setattr__(self, "tags", tuple(self.tags))

    # -- identity -------------------------------------------------------------------------------------

    def __hash__(self) -> int:
        return hash((tuple(sorted(self.markers.items())), self.tags, self.platform, self.interpreter))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (dict(self.markers), self.tags, self.platform, self.interpreter))

    def __repr__(self) -> str:
        m = self.markers
        where = f", platform={self.platform!r}" if self.platform else ""
        where += f", interpreter={self.interpreter!r}" if self.interpreter else ""
        first = str(self.tags[0]) if self.tags else "-"
        return (
            f"TargetEnvironment({m.get('implementation_name')} {m.get('python_full_version')} "
            f"{m.get('sys_platform')}/{m.get('platform_machine')}{where}, {len(self.tags)} tags from {first})"
        )

    def canonical(self) -> dict[str, Any]:
        """JSON-able, deterministic form: sorted markers and the tags as strings, in order."""
        return {
            "markers": {name: self.markers[name] for name in sorted(self.markers)},
            "tags": [str(tag) for tag in self.tags],
        }

    def digest(self) -> str:
        """sha256 (hex) of the canonical JSON; part of the lock key."""
        return target_digest(self.markers, self.tags)

    def as_dict(self) -> dict[str, Any]:
        """Everything, for ``venvsmith env --format json`` (accepted back by :meth:`from_mapping`)."""
        return {
            **self.canonical(),
            "python_version": self.markers["python_full_version"],
            "platform": self.platform,
            "interpreter": self.interpreter,
        }

    # -- queries --------------------------------------------------------------------------------------

    @property
    def python_version(self) -> Version:
        """``python_full_version`` as a :class:`~packaging.version.Version` (for requires-python checks)."""
        return self._parsed_python_version

    @cached_property
    def _parsed_python_version(self) -> Version:
        return Version(_pep440_full_version(self.markers["python_full_version"]))

    @cached_property
    def tag_rank(self) -> Mapping[Tag, int]:
        """Rank of each supported tag, 0 = best. A repeated tag keeps its first (best) rank."""
        ranks: dict[Tag, int] = {}
        for rank, tag in enumerate(self.tags):
            ranks.setdefault(tag, rank)
        return MappingProxyType(ranks)

    def best_tag_rank(self, tags: Iterable[Tag]) -> int | None:
        """Best (lowest) rank among ``tags`` (e.g. a wheel's), or None when the target supports none.

        A frozenset's answer is remembered (wheels of one project share a few tag sets, and file-name parsing
        hands out one frozenset object per distinct tag string), so ranking a page's wheels is a dict lookup.
        """
        if type(tags) is frozenset:
            memo = self._rank_memo
            try:
                return memo[tags]
            except KeyError:
                pass
            rank = self._best_rank(tags)
            if len(memo) < _RANK_MEMO_MAX:
                memo[tags] = rank
            return rank
        return self._best_rank(tags)

    def _best_rank(self, tags: Iterable[Tag]) -> int | None:
        ranks = self.tag_rank
        found = [ranks[tag] for tag in tags if tag in ranks]
        return min(found) if found else None

    @cached_property
    def _rank_memo(self) -> dict[frozenset[Tag], int | None]:
        return {}

    def evaluate(self, marker: Marker, extras: Iterable[str] = ()) -> bool:
        """Evaluate ``marker`` here, true when it holds for any one of ``extras`` (``extra == ""`` if none).

        This is pip's reading of ``pkg[a,b]``: a dependency line applies when its marker holds with ``extra``
        set to any one requested extra. Extra names are normalised by ``packaging`` (PEP 685).
        """
        wanted = tuple(extras)
        memo = self._marker_memo
        key = (id(marker), wanted)
        held = memo.get(key)
        if held is not None and held[0] is marker:
            return held[1]
        answer = self._evaluate(marker, wanted)
        if len(memo) < _MARKER_MEMO_MAX:
            memo[key] = (marker, answer)
        return answer

    @cached_property
    def _marker_memo(self) -> dict[tuple[int, tuple[str, ...]], tuple[Marker, bool]]:
        """(id(marker), extras) -> (marker, answer): a resolution evaluates each dependency's marker about three
        times (lookahead, the forced-candidate check, the search); the marker is held so its id stays unique."""
        return {}

    def _evaluate(self, marker: Marker, extras: tuple[str, ...]) -> bool:
        environment: dict[str, str] = dict(self.markers)
        for extra in extras or ("",):
            environment["extra"] = extra
            try:
                if marker.evaluate(environment):
                    return True
            except (UndefinedComparison, UndefinedEnvironmentName) as exc:
                raise InvalidInput(str(marker), f"cannot evaluate marker ({exc})") from None
        return False

    # -- constructors ---------------------------------------------------------------------------------

    @classmethod
    def from_local(cls) -> TargetEnvironment:
        """This interpreter: ``packaging.markers.default_environment()`` and ``packaging.tags.sys_tags()``."""
        return cls(
            markers=dict(cast(Mapping[str, str], default_environment())),  # a TypedDict whose values are all str
            tags=tuple(sys_tags()),
            interpreter=sys.executable,
        )

    @classmethod
    def from_mapping(
        cls,
        markers: Mapping[str, str],
        tags: Sequence[str],
        platform: str = "",
        interpreter: str = "",
    ) -> TargetEnvironment:
        """Validate a described environment (e.g. from a request or ``venvsmith env --format json``).

        Every PEP 508 variable must be present and no other; ``python_full_version`` must be a version whose
        major.minor is ``python_version``; every tag must parse (a compressed tag set such as
        ``py2.py3-none-any`` expands in its written order). Raises :class:`InvalidInput` naming the offender.
        """
        if not isinstance(markers, Mapping):
            raise InvalidInput(repr(markers)[:80], "markers must be a mapping")
        for key, value in markers.items():
            if key not in MARKER_NAMES:
                raise InvalidInput(str(key), "unknown marker variable")
            if not isinstance(value, str):
                raise InvalidInput(key, "marker value must be a string")
        missing = [name for name in MARKER_NAMES if name not in markers]
        if missing:
            raise InvalidInput(missing[0], f"missing marker variable(s) {', '.join(missing)}")
        full = markers["python_full_version"]
        try:
            version = Version(_pep440_full_version(full))
        except InvalidVersion:
            raise InvalidInput(full, "invalid python_full_version") from None
        if markers["python_version"] != f"{version.major}.{version.minor}":
            raise InvalidInput(
                markers["python_version"], f"python_version does not match python_full_version {full!r}"
            )
        if isinstance(tags, str) or not isinstance(tags, Iterable):
            raise InvalidInput(str(tags)[:80], "tags must be a list of strings")
        parsed: list[Tag] = []
        for text in tags:
            if isinstance(text, Tag):
                text = str(text)
            if not isinstance(text, str):
                raise InvalidInput(repr(text), "wheel tag must be a string")
            parsed.extend(_expand_tag(text))
            if len(parsed) > MAX_TAGS:
                raise InvalidInput(text, f"more than {MAX_TAGS} wheel tags")
        if not parsed:
            raise InvalidInput("", "a target environment needs at least one wheel tag")
        return cls(markers=dict(markers), tags=tuple(parsed), platform=platform, interpreter=interpreter)

    @classmethod
    def from_shorthand(
        cls, python_version: str, platform: str = "", implementation: str = "cpython"
    ) -> TargetEnvironment:
        """Expand a Python version and a platform name, as uv's ``--python-version``/``--python-platform``.

        ``python_version`` is ``"X.Y"`` (meaning ``X.Y.0``) or ``"X.Y.Z"``; ``platform`` a key of
        :data:`PLATFORMS`, empty for this server's own (:func:`host_platform_name`); ``implementation``
        ``"cpython"`` (also when empty) or ``"pypy"``.
        """
        major, minor, micro = _parse_python_version(python_version)
        impl = (implementation or "cpython").strip().lower()
        if impl not in IMPLEMENTATIONS:
            known = ", ".join(IMPLEMENTATIONS)
            raise InvalidInput(implementation, f"unknown Python implementation (known: {known})")
        name = platform.strip() if platform else host_platform_name()
        spec = PLATFORMS.get(name) or PLATFORMS.get(name.lower())
        if spec is None:
            raise InvalidInput(platform, f"unknown platform (known: {', '.join(PLATFORMS)})")

        full = f"{major}.{minor}.{micro}"
        py = (major, minor)
        nodot = f"{major}{minor}"
        platforms = spec.platform_tags()
        if impl == "cpython":
            # CPython's own ABI: "m" (pymalloc) was part of it until 3.8 on every platform.
            abi = f"cp{nodot}m" if py < (3, 8) else f"cp{nodot}"
            tags = [*cpython_tags(py, [abi, "abi3", "none"], platforms)]
            tags += compatible_tags(py, f"cp{nodot}", platforms)
            identity = {
                "implementation_name": "cpython",
                "implementation_version": full,
                "platform_python_implementation": "CPython",
            }
        else:
            tags = [*generic_tags(f"pp{nodot}", [f"pypy{nodot}_pp73", "none"], platforms)]
            tags += compatible_tags(py, "pp3", platforms)
            identity = {
                "implementation_name": "pypy",
                "implementation_version": PYPY_SHORTHAND_VERSION,
                "platform_python_implementation": "PyPy",
            }
        markers = {
            **identity,
            **spec.marker_values(),
            "python_full_version": full,
            "python_version": f"{major}.{minor}",
        }
        return cls(markers=markers, tags=tuple(tags), platform=spec.name)

    @classmethod
    def from_interpreter(
        cls, python: str | os.PathLike[str], timeout: float = 30, cache: ProbeCache | None = None
    ) -> TargetEnvironment:
        """Ask another interpreter on this machine (Python 3.6+) for its markers and tags (:mod:`.probe`).

        The interpreter runs isolated (``-I -S -B``: no site-packages, no cwd on ``sys.path``, no bytecode
        written) with the directory of *our* ``packaging`` appended to ``sys.path``, and reports
        ``default_environment()`` and ``sys_tags()``. Our ``packaging`` needs a newer Python than some targets
        (it requires >= 3.10 today); such an interpreter instead reports its marker values (computed as
        ``default_environment`` computes them) and the facts ``sys_tags`` reads (ABI flags, EXT_SUFFIX,
        glibc/macOS version, architecture), and the tags are built here by ``packaging.tags`` from those.
        With ``cache`` the answer is kept while the interpreter binary is unchanged.
        """
        exe = os.fspath(python)
        if os.sep not in exe and (os.altsep is None or os.altsep not in exe):
            exe = shutil.which(exe) or exe
        exe = os.path.abspath(exe)
        try:
            answer = probe(exe, timeout=timeout, cache=cache)
        except ProbeError as exc:
            raise InvalidInput(exe, exc.reason) from None
        try:
            markers = answer.markers
            tags = answer.tags
            if tags is None:
                tags = [str(tag) for tag in _tags_from_facts(answer.facts, exe)]
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidInput(exe, f"unexpected answer from interpreter ({exc})") from None
        return cls.from_mapping(markers, tags, interpreter=exe)


def _normalize(text: str) -> str:
    return text.replace(".", "_").replace("-", "_").replace(" ", "_")


def _abis_from_facts(facts: Mapping[str, Any]) -> list[str]:
    """The interpreter's own ABIs, derived as ``packaging.tags`` derives them in that interpreter."""
    config = facts["config"]
    py = tuple(facts["version"])
    nodot = "".join(str(part) for part in py)
    if facts["implementation"] == "cpython":
        debug = threading = pymalloc = ucs4 = ""
        with_debug = config.get("Py_DEBUG")
        if with_debug or (with_debug is None and (facts["gettotalrefcount"] or facts["debug_extensions"])):
            debug = "d"
        if py >= (3, 13) and config.get("Py_GIL_DISABLED"):
            threading = "t"
        if py < (3, 8):
            if config.get("WITH_PYMALLOC") or config.get("WITH_PYMALLOC") is None:
                pymalloc = "m"
            if py < (3, 3):
                size = config.get("Py_UNICODE_SIZE")
                if size == 4 or (size is None and facts["maxunicode"] == 0x10FFFF):
                    ucs4 = "u"
        abis = [f"cp{nodot}{threading}{debug}{pymalloc}{ucs4}"]
        if py >= (3, 8) and debug:
            abis.append(f"cp{nodot}{threading}")
        return abis
    # Other implementations: the ABI part of EXT_SUFFIX (".pypy310-pp73-x86_64-linux-gnu.so" -> pypy310_pp73).
    suffix = config.get("EXT_SUFFIX") or ""
    parts = suffix.split(".")
    if len(parts) < 3:
        return []
    soabi = parts[1]
    if soabi.startswith("pypy"):
        return [_normalize("-".join(soabi.split("-")[:2]))]
    if soabi.startswith("graalpy"):
        return [_normalize("-".join(soabi.split("-")[:3]))]
    return [_normalize(soabi)] if soabi else []


def _platforms_from_facts(facts: Mapping[str, Any], exe: str) -> list[str]:
    system = facts["system"]
    is_32bit = bool(facts["is_32bit"])
    if system == "Darwin":
        version = tuple(int(part) for part in facts["mac_version"].split(".")[:2])
        arch = facts["mac_machine"]
        if is_32bit:
            arch = "ppc" if arch.startswith("ppc") else "i386"
        return list(mac_platforms((version[0], version[1] if len(version) > 1 else 0), arch))
    linux = _normalize(facts["sysconfig_platform"])
    if system != "Linux" or not linux.startswith("linux_"):
        return [linux]
    arch = linux.split("_", 1)[1]
    if is_32bit:
        arch = {"x86_64": "i686", "aarch64": "armv8l"}.get(arch, arch)
    glibc = None
    if facts.get("glibc"):
        match = re.match(r"\S+\s+(\d+)\.(\d+)", facts["glibc"])
        glibc = (int(match.group(1)), int(match.group(2))) if match else None
    musl = None
    if glibc is None:
        try:  # only for old interpreters on musl; packaging reads the ELF interpreter of the executable
            from packaging._musllinux import _get_musl_version

            found = _get_musl_version(exe)
            musl = (found.major, found.minor) if found else None
        except Exception:  # an unknown musl version just means no musllinux tags
            musl = None
    return linux_platform_tags(arch, glibc=glibc, musl=musl)


def _tags_from_facts(facts: Mapping[str, Any], exe: str) -> Iterator[Tag]:
    """``sys_tags()`` of an interpreter our packaging cannot run in, from the facts ``sys_tags`` reads."""
    py = tuple(int(part) for part in facts["version"])
    name = INTERPRETER_SHORT_NAMES.get(facts["implementation"]) or facts["implementation"]
    nodot = str(facts["config"].get("py_version_nodot") or "".join(str(part) for part in py))
    abis = _abis_from_facts(facts)
    platforms = _platforms_from_facts(facts, exe)
    if name == "cp":
        yield from cpython_tags(py, abis, platforms)
    else:
        yield from generic_tags(f"{name}{nodot}", abis, platforms)
    interpreter = {"pp": "pp3", "cp": f"cp{nodot}"}.get(name)
    yield from compatible_tags(py, interpreter, platforms)


def target_digest(markers: Mapping[str, str], tags: Sequence[object]) -> str:
    """sha256 (hex) of a target's canonical JSON (:meth:`TargetEnvironment.canonical`: markers sorted, tags as
    strings in order), for a target known only as its markers and tags (a BuildResult's)."""
    doc = {"markers": {name: markers[name] for name in sorted(markers)}, "tags": [str(tag) for tag in tags]}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()
